//! The generated `TaskService` trait implemented over an [`ApiHandler`].

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::Stream;
use tonic::{Request, Response, Status};

use crate::{ApiError, ApiHandler, LogStream, convert, pb};

/// Decodes, calls the handler, encodes. Auth, observation and the message checks happen in the gate in front of it.
pub(super) struct TaskServiceImpl<H> {
    pub(super) handler: Arc<H>,
}

#[tonic::async_trait]
impl<H: ApiHandler> pb::task_service_server::TaskService for TaskServiceImpl<H> {
    async fn submit_task(
        &self,
        req: Request<pb::SubmitTaskRequest>,
    ) -> Result<Response<pb::SubmitTaskResponse>, Status> {
        let spec = convert::spec_from_pb(req.into_inner().spec)?;
        let id = self.handler.submit(spec).await?;
        Ok(Response::new(pb::SubmitTaskResponse {
            task_id: id.as_str().to_owned(),
        }))
    }

    async fn apply_task(
        &self,
        req: Request<pb::ApplyTaskRequest>,
    ) -> Result<Response<pb::ApplyTaskResponse>, Status> {
        let spec = convert::apply_spec_from_pb(req.into_inner().spec)?;
        let id = self.handler.apply(spec).await?;
        Ok(Response::new(pb::ApplyTaskResponse {
            task_id: id.as_str().to_owned(),
        }))
    }

    async fn get_task_status(
        &self,
        req: Request<pb::GetTaskStatusRequest>,
    ) -> Result<Response<pb::GetTaskStatusResponse>, Status> {
        let id = convert::task_id("taskId", &req.into_inner().task_id)?;
        let task = self.handler.get(id).await?;
        Ok(Response::new(pb::GetTaskStatusResponse {
            task: task.as_ref().map(convert::task_to_pb),
        }))
    }

    async fn list_tasks(
        &self,
        req: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        let req = req.into_inner();
        let phase = convert::phase_from_pb(req.status)?;
        let query = convert::query(req.slot.as_deref(), phase, req.limit, req.offset)?;
        let page = self.handler.list(query.clone()).await?;
        Ok(Response::new(convert::list_response(&query, &page)?))
    }

    async fn list_task_runs(
        &self,
        req: Request<pb::ListTaskRunsRequest>,
    ) -> Result<Response<pb::ListTaskRunsResponse>, Status> {
        let id = convert::task_id("taskId", &req.into_inner().task_id)?;
        let runs = self.handler.runs(id).await?.unwrap_or_default();
        Ok(Response::new(pb::ListTaskRunsResponse {
            runs: runs.iter().map(convert::run_to_pb).collect(),
        }))
    }

    async fn delete_task(
        &self,
        req: Request<pb::DeleteTaskRequest>,
    ) -> Result<Response<pb::DeleteTaskResponse>, Status> {
        let id = convert::task_id("taskId", &req.into_inner().task_id)?;
        self.handler.delete(id).await?;
        Ok(Response::new(pb::DeleteTaskResponse {}))
    }

    async fn cancel_task(
        &self,
        req: Request<pb::CancelTaskRequest>,
    ) -> Result<Response<pb::CancelTaskResponse>, Status> {
        let id = convert::task_id("taskId", &req.into_inner().task_id)?;
        let task = self
            .handler
            .cancel(id.clone(), GRPC_CANCEL_REASON)
            .await?
            .ok_or_else(|| Status::from(ApiError::TaskNotFound(id.to_string())))?;
        Ok(Response::new(pb::CancelTaskResponse {
            task: Some(convert::task_to_pb(&task)),
        }))
    }

    type StreamTaskLogsStream = LogResponses;

    async fn stream_task_logs(
        &self,
        req: Request<pb::StreamTaskLogsRequest>,
    ) -> Result<Response<Self::StreamTaskLogsStream>, Status> {
        let req = req.into_inner();
        let id = convert::task_id("taskId", &req.task_id)?;
        let query = convert::log_query_from_pb(&req)?;
        let stream = self
            .handler
            .stream_logs(id.clone(), query)
            .await
            .map_err(|e| e.rename_field("after_offset", "afterOffset"))?;
        let stream = stream.ok_or_else(|| Status::from(ApiError::TaskNotFound(id.to_string())))?;
        Ok(Response::new(LogResponses { inner: stream }))
    }
}

/// The error text of a task cancelled over gRPC.
const GRPC_CANCEL_REASON: &str = "canceled by an API client (gRPC CancelTask)";

/// The server stream of `StreamTaskLogs`: output events as `StreamTaskLogsResponse`s.
/// Dropping it (client gone) drops the subscription.
pub(super) struct LogResponses {
    inner: LogStream,
}

impl Stream for LogResponses {
    type Item = Result<pb::StreamTaskLogsResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match self.inner.poll_next_event(cx) {
                Poll::Ready(Some((offset, event))) => {
                    if let Some(msg) = convert::event_to_pb(offset, event) {
                        return Poll::Ready(Some(Ok(msg)));
                    }
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
