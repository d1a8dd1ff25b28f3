//! [`ApiHandler`] over `solti_core::SupervisorApi`.

use std::{fmt, sync::Arc, time::Duration};

use solti_core::{CoreError, OutputQuery, SupervisorApi};
use solti_model::{ModelError, Task, TaskId, TaskKind, TaskPage, TaskQuery, TaskRun, TaskSpec};

use crate::{ApiError, ApiHandler, LogStream};

/// How long a cancel request waits for the task to reach its terminal phase before
/// answering with the task as it is (still stopping). Above the subprocess runner's default
/// kill grace (5 s), so a task that ignores SIGTERM is normally answered `Canceled`.
pub const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// Serves the API from a [`SupervisorApi`].
#[derive(Clone)]
pub struct SupervisorApiAdapter {
    api: Arc<SupervisorApi>,
}

impl SupervisorApiAdapter {
    /// Wraps a supervisor.
    #[must_use]
    pub fn new(api: Arc<SupervisorApi>) -> Self {
        Self { api }
    }

    /// The wrapped supervisor.
    #[must_use]
    pub fn supervisor(&self) -> &Arc<SupervisorApi> {
        &self.api
    }

    /// Whether `id` names a task the network API may show. Embedded tasks (the sweep,
    /// discovery, the metrics server, code-supplied closures) have no wire form and are not
    /// listed; over the network they do not exist, so nobody can read, stream or delete them.
    async fn visible(&self, id: &TaskId) -> Result<bool, ApiError> {
        Ok(self
            .api
            .get_task(id)
            .await?
            .is_some_and(|t| !matches!(t.spec.kind(), TaskKind::Embedded)))
    }
}

impl ApiHandler for SupervisorApiAdapter {
    async fn submit(&self, spec: TaskSpec) -> Result<TaskId, ApiError> {
        Ok(self.api.submit(&spec).await?)
    }

    async fn apply(&self, spec: TaskSpec) -> Result<TaskId, ApiError> {
        Ok(self.api.submit(&spec).await?)
    }

    async fn get(&self, id: TaskId) -> Result<Option<Task>, ApiError> {
        Ok(self
            .api
            .get_task(&id)
            .await?
            .filter(|t| !matches!(t.spec.kind(), TaskKind::Embedded)))
    }

    async fn list(&self, query: TaskQuery) -> Result<TaskPage<Task>, ApiError> {
        Ok(self.api.query_tasks(&query).await?)
    }

    async fn runs(&self, id: TaskId) -> Result<Option<Vec<TaskRun>>, ApiError> {
        if !self.visible(&id).await? {
            return Ok(None);
        }
        Ok(self.api.list_task_runs(&id).await?)
    }

    async fn delete(&self, id: TaskId) -> Result<bool, ApiError> {
        if !self.visible(&id).await? {
            return Ok(false);
        }
        Ok(self.api.delete_task(&id).await?)
    }

    async fn cancel(&self, id: TaskId, reason: &str) -> Result<Option<Task>, ApiError> {
        if !self.visible(&id).await? {
            return Ok(None);
        }
        self.api.cancel_task_with_reason(&id, reason).await?;
        Ok(self
            .api
            .wait_terminal(&id, CANCEL_WAIT)
            .await?
            .filter(|t| !matches!(t.spec.kind(), TaskKind::Embedded)))
    }

    async fn stream_logs(
        &self,
        id: TaskId,
        query: OutputQuery,
    ) -> Result<Option<LogStream>, ApiError> {
        if !self.visible(&id).await? {
            return Ok(None);
        }
        let sub = match self.api.subscribe_output(&id, query).await {
            Ok(sub) => sub,
            // The only invalid input here is the resume offset; name it as the API does.
            Err(CoreError::Invalid(ModelError::Invalid { field, rule, .. })) => {
                return Err(ApiError::invalid(field, rule));
            }
            Err(err) => return Err(err.into()),
        };
        Ok(sub.map(|sub| LogStream::batched(sub.into_batch_stream())))
    }
}

impl fmt::Debug for SupervisorApiAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorApiAdapter")
            .finish_non_exhaustive()
    }
}
