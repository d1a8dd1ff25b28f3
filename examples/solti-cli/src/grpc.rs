//! The gRPC transport: solti-api's generated tonic client (`TaskServiceClient`) over one
//! HTTP/2 connection, and the standard `grpc.health.v1` check.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::{HeaderValue, Uri, header};
use hyper::{body::Incoming, client::conn::http2};
use hyper_util::rt::TokioExecutor;
use solti_api::pb::{self, task_service_client::TaskServiceClient};
use tokio::task::JoinHandle;
use tonic::{Code, Status};

use crate::{
    client::{LogEvent, LogOptions, Readiness, Tail, not_found},
    conn::Connector,
    error::{Error, Result},
    target::Target,
};

/// Responses may be as large as a full list page (4 MiB) plus framing.
const MAX_MESSAGE: usize = 8 << 20;

/// The tower service tonic sends requests through: one HTTP/2 connection, with the bearer
/// token added to every request.
#[derive(Clone, Debug)]
pub(crate) struct H2 {
    sender: http2::SendRequest<tonic::body::Body>,
    auth: Option<HeaderValue>,
}

impl tower::Service<http::Request<tonic::body::Body>> for H2 {
    type Response = http::Response<Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.sender.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<tonic::body::Body>) -> Self::Future {
        if let Some(auth) = &self.auth {
            req.headers_mut()
                .insert(header::AUTHORIZATION, auth.clone());
        }
        Box::pin(self.sender.send_request(req))
    }
}

/// A gRPC client of one agent.
#[derive(Debug)]
pub(crate) struct GrpcClient {
    client: TaskServiceClient<H2>,
    h2: H2,
    origin: Uri,
    target: Target,
    sent_token: bool,
    driver: JoinHandle<()>,
}

impl Drop for GrpcClient {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl GrpcClient {
    /// Connects and runs the HTTP/2 handshake.
    pub(crate) async fn connect(conn: &Connector, auth: Option<HeaderValue>) -> Result<Self> {
        let target = conn.target().clone();
        let io = conn.connect().await?;
        let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| {
                Error::failed(format!(
                    "cannot talk gRPC (HTTP/2) to the agent at {target}: {e} (an HTTP agent? use http://)"
                ))
            })?;
        let driver = tokio::spawn(async move {
            // Ends when the agent closes the connection or the client is dropped.
            let _ = connection.await;
        });
        let origin = Uri::builder()
            .scheme(if target.tls { "https" } else { "http" })
            .authority(target.authority())
            .path_and_query("/")
            .build()
            .map_err(|e| Error::usage(format!("--addr {target}: {e}")))?;
        let sent_token = auth.is_some();
        let h2 = H2 { sender, auth };
        let client = TaskServiceClient::with_origin(h2.clone(), origin.clone())
            .max_decoding_message_size(MAX_MESSAGE);
        Ok(Self {
            client,
            h2,
            origin,
            target,
            sent_token,
            driver,
        })
    }

    fn fail(&self, rpc: &str, status: &Status) -> Error {
        status_error(&self.target, self.sent_token, rpc, status)
    }

    pub(crate) async fn submit(&mut self, spec: pb::CreateSpec, apply: bool) -> Result<String> {
        if apply {
            let req = pb::ApplyTaskRequest { spec: Some(spec) };
            match self.client.apply_task(req).await {
                Ok(r) => Ok(r.into_inner().task_id),
                Err(s) => Err(self.fail("ApplyTask", &s)),
            }
        } else {
            let req = pb::SubmitTaskRequest { spec: Some(spec) };
            match self.client.submit_task(req).await {
                Ok(r) => Ok(r.into_inner().task_id),
                Err(s) => Err(self.fail("SubmitTask", &s)),
            }
        }
    }

    pub(crate) async fn get(&mut self, id: &str) -> Result<Option<pb::TaskData>> {
        let req = pb::GetTaskStatusRequest {
            task_id: id.to_owned(),
        };
        match self.client.get_task_status(req).await {
            Ok(r) => Ok(r.into_inner().task),
            Err(s) => Err(self.fail("GetTaskStatus", &s)),
        }
    }

    pub(crate) async fn list(
        &mut self,
        slot: Option<&str>,
        phase: Option<pb::TaskStatus>,
        limit: u32,
        offset: u32,
    ) -> Result<pb::ListTasksResponse> {
        let req = pb::ListTasksRequest {
            slot: slot.map(str::to_owned),
            status: phase.map(|p| p as i32),
            limit,
            offset,
        };
        match self.client.list_tasks(req).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.fail("ListTasks", &s)),
        }
    }

    pub(crate) async fn runs(&mut self, id: &str) -> Result<Vec<pb::TaskRunInfo>> {
        // gRPC answers OK with no runs for an unknown id; tell the two apart.
        if self.get(id).await?.is_none() {
            return Err(not_found(id));
        }
        let req = pb::ListTaskRunsRequest {
            task_id: id.to_owned(),
        };
        match self.client.list_task_runs(req).await {
            Ok(r) => Ok(r.into_inner().runs),
            Err(s) => Err(self.fail("ListTaskRuns", &s)),
        }
    }

    pub(crate) async fn delete(&mut self, id: &str) -> Result<()> {
        let req = pb::DeleteTaskRequest {
            task_id: id.to_owned(),
        };
        match self.client.delete_task(req).await {
            Ok(_) => Ok(()),
            Err(s) => Err(self.fail("DeleteTask", &s)),
        }
    }

    pub(crate) async fn cancel(&mut self, id: &str) -> Result<pb::TaskData> {
        let req = CancelTaskRequest {
            task_id: id.to_owned(),
        };
        let mut grpc = self.raw().await?;
        let path = http::uri::PathAndQuery::from_static("/solti.task.v1.TaskService/CancelTask");
        let codec = tonic_prost::ProstCodec::<CancelTaskRequest, CancelTaskResponse>::default();
        match grpc.unary(tonic::Request::new(req), path, codec).await {
            Ok(r) => r.into_inner().task.ok_or_else(|| not_found(id)),
            Err(s) if s.code() == Code::NotFound => Err(not_found(id)),
            Err(s) if s.code() == Code::Unimplemented => Err(Error::failed(format!(
                "the agent at {} does not implement CancelTask (an older agent): use `solti rm` to stop and forget the task",
                self.target
            ))),
            Err(s) => Err(self.fail("CancelTask", &s)),
        }
    }

    /// A plain tonic client on the same connection, for calls by path.
    async fn raw(&self) -> Result<tonic::client::Grpc<H2>> {
        let mut grpc = tonic::client::Grpc::with_origin(self.h2.clone(), self.origin.clone())
            .max_decoding_message_size(MAX_MESSAGE);
        grpc.ready()
            .await
            .map_err(|e| crate::http::closed(&self.target, &e))?;
        Ok(grpc)
    }

    pub(crate) async fn logs(&mut self, id: &str, opts: &LogOptions) -> Result<GrpcLogStream> {
        let req = pb::StreamTaskLogsRequest {
            task_id: id.to_owned(),
            tail: match opts.tail {
                Some(Tail::Lines(n)) => Some(n),
                _ => None,
            },
            no_follow: !opts.follow,
            since_ms: opts.since_ms,
            after_offset: None,
            tail_all: matches!(opts.tail, Some(Tail::All)),
        };
        match self.client.stream_task_logs(req).await {
            Ok(r) => Ok(GrpcLogStream {
                inner: r.into_inner(),
                target: self.target.clone(),
            }),
            Err(s) if s.code() == Code::NotFound => Err(not_found(id)),
            Err(s) => Err(self.fail("StreamTaskLogs", &s)),
        }
    }

    pub(crate) async fn readiness(&mut self) -> Result<Readiness> {
        let mut status = None;
        for service in ["", "solti.task.v1.TaskService"] {
            let mut grpc = self.raw().await?;
            let path = http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check");
            let codec =
                tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
            let req = tonic::Request::new(HealthCheckRequest {
                service: service.to_owned(),
            });
            match grpc.unary(req, path, codec).await {
                Ok(r) => {
                    let s = r.into_inner().status;
                    if s != SERVING {
                        return Ok(Readiness::NotReady(serving_name(s).to_owned()));
                    }
                    status = Some(serving_name(s));
                }
                Err(s) if s.code() == Code::Unimplemented => {
                    // An older agent without the health service: the task API answering is
                    // the best sign there is.
                    self.list(None, None, 1, 0).await?;
                    return Ok(Readiness::NoHealthEndpoint);
                }
                Err(s) => return Err(self.fail("grpc.health.v1.Health/Check", &s)),
            }
        }
        Ok(Readiness::Ready(status.unwrap_or("SERVING").to_owned()))
    }
}

/// The log stream of one task over gRPC.
#[derive(Debug)]
pub(crate) struct GrpcLogStream {
    inner: tonic::Streaming<pb::StreamTaskLogsResponse>,
    target: Target,
}

impl GrpcLogStream {
    /// The next event, or `None` when the stream ended.
    pub(crate) async fn next(&mut self) -> Result<Option<LogEvent>> {
        loop {
            match self.inner.message().await {
                Ok(None) => return Ok(None),
                Ok(Some(msg)) => {
                    if let Some(event) = LogEvent::from_grpc(msg) {
                        return Ok(Some(event));
                    }
                }
                Err(s) => {
                    return Err(Error::failed(format!(
                        "the log stream from {} broke: {} ({:?})",
                        self.target,
                        s.message(),
                        s.code()
                    )));
                }
            }
        }
    }
}

/// A gRPC status as one line naming what to fix.
fn status_error(target: &Target, sent_token: bool, rpc: &str, status: &Status) -> Error {
    let message = status.message();
    if matches!(
        status.code(),
        Code::Cancelled | Code::Unknown | Code::Unavailable
    ) && let Some(source) = std::error::Error::source(status)
    {
        // A transport failure: its cause is in the error chain, not in the message.
        return crate::http::closed(target, source);
    }
    match status.code() {
        Code::Unauthenticated if sent_token => Error::failed(format!(
            "token rejected by the agent at {target} (check --token-file, SOLTI_TOKEN_FILE or SOLTI_TOKEN)"
        )),
        Code::Unauthenticated => Error::failed(format!(
            "the agent at {target} requires a token: give --token-file, SOLTI_TOKEN_FILE or SOLTI_TOKEN"
        )),
        Code::InvalidArgument => Error::failed(format!("the agent refused the request: {message}")),
        Code::ResourceExhausted => Error::failed(format!("too large or over capacity: {message}")),
        Code::Unimplemented => Error::failed(format!(
            "the agent at {target} does not implement {rpc} (an older agent, or not a Solti gRPC agent)"
        )),
        Code::Unavailable => Error::failed(format!(
            "the agent at {target} is unavailable (shutting down, at capacity or unreachable): {message}"
        )),
        Code::Unknown | Code::Internal
            if [
                "HTTP status",
                "content-type",
                "compression flag",
                "404 Not Found",
            ]
            .iter()
            .any(|m| message.contains(m)) =>
        {
            Error::failed(format!(
                "the agent at {target} did not answer gRPC: an HTTP agent? use --addr http://{}",
                target.authority()
            ))
        }
        code => Error::failed(format!("{rpc} failed at {target}: {message} ({code:?})")),
    }
}

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

/// `grpc.health.v1.HealthCheckResponse`.
#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

/// `ServingStatus.SERVING`.
const SERVING: i32 = 1;

fn serving_name(status: i32) -> &'static str {
    match status {
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "UNKNOWN",
    }
}

/// `solti.task.v1.CancelTaskRequest` (wire contract §5), written out so the client works
/// whether or not this build's generated code has it.
#[derive(Clone, PartialEq, prost::Message)]
struct CancelTaskRequest {
    #[prost(string, tag = "1")]
    task_id: String,
}

/// `solti.task.v1.CancelTaskResponse` (wire contract §5).
#[derive(Clone, PartialEq, prost::Message)]
struct CancelTaskResponse {
    #[prost(message, optional, tag = "1")]
    task: Option<pb::TaskData>,
}
