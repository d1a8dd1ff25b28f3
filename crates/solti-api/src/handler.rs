//! The transport-agnostic operations both transports call.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use futures_util::Stream;
use solti_model::{OutputEvent, Task, TaskId, TaskPage, TaskQuery, TaskRun, TaskSpec};

use crate::ApiError;

/// The task operations behind the API, in domain types.
///
/// Both transports decode and validate requests, call one of these methods and encode the
/// result; a handler never sees wire types. [`SupervisorApiAdapter`](crate::SupervisorApiAdapter)
/// implements it over `solti_core::SupervisorApi`; tests and custom agents may implement it
/// with anything else.
///
/// # Contract
/// - Futures must be `Send` and must not block the runtime.
/// - "Unknown" is not an error: `get`, `runs` and `stream_logs` return `Ok(None)` and each
///   transport maps that (HTTP 404, gRPC an empty answer or `NOT_FOUND` for logs).
/// - A dropped future (the client went away) must leave no state behind.
pub trait ApiHandler: Send + Sync + 'static {
    /// Submits `spec` under its own admission policy; returns the new task's id.
    fn submit(&self, spec: TaskSpec) -> impl Future<Output = Result<TaskId, ApiError>> + Send;

    /// Submits `spec`, replacing whatever runs on its slot. The transports have already set
    /// the admission policy to `Replace`.
    fn apply(&self, spec: TaskSpec) -> impl Future<Output = Result<TaskId, ApiError>> + Send;

    /// The task, or `None` when the id is unknown.
    fn get(&self, id: TaskId) -> impl Future<Output = Result<Option<Task>, ApiError>> + Send;

    /// One page of tasks matching `query` (oldest first); `total` counts every match.
    fn list(
        &self,
        query: TaskQuery,
    ) -> impl Future<Output = Result<TaskPage<Task>, ApiError>> + Send;

    /// The runs of a task, oldest first, or `None` when the id is unknown.
    fn runs(
        &self,
        id: TaskId,
    ) -> impl Future<Output = Result<Option<Vec<TaskRun>>, ApiError>> + Send;

    /// Stops (if active) and forgets a task; `true` when it existed. Idempotent.
    fn delete(&self, id: TaskId) -> impl Future<Output = Result<bool, ApiError>> + Send;

    /// The live output of a task from now on, or `None` when the id is unknown. The stream
    /// ends when the task is terminal and its output drained; dropping it unsubscribes.
    fn stream_logs(
        &self,
        id: TaskId,
    ) -> impl Future<Output = Result<Option<LogStream>, ApiError>> + Send;
}

/// A task's live output: `RunStarted`, `Chunk`s, `RunFinished` per attempt, and `Lagged`
/// when this reader fell behind.
pub struct LogStream {
    inner: Pin<Box<dyn Stream<Item = OutputEvent> + Send + 'static>>,
}

impl LogStream {
    /// Wraps any stream of output events.
    pub fn new(stream: impl Stream<Item = OutputEvent> + Send + 'static) -> Self {
        Self {
            inner: Box::pin(stream),
        }
    }
}

impl Stream for LogStream {
    type Item = OutputEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl fmt::Debug for LogStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStream").finish_non_exhaustive()
    }
}
