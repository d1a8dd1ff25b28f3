//! The one error type of this crate.

use solti_model::ModelError;
use solti_runner::RunnerError;

/// Why a [`SupervisorApi`](crate::SupervisorApi) request failed.
///
/// Admission outcomes (a busy slot, a full queue, a replacement) are not errors: they are
/// reported through the task's terminal phase and error text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The spec broke a validation rule (HTTP 400 / `INVALID_ARGUMENT`).
    #[error("invalid task spec")]
    Invalid(#[source] ModelError),
    /// No runner could build the spec, or the runner failed to build it.
    #[error("runner could not build the task")]
    Runner(#[source] RunnerError),
    /// A configured bound was hit; `what` names it and `limit` is its value.
    #[error("capacity exhausted: {what} (limit {limit})")]
    Capacity {
        /// Which bound: `tasks`, `supervisor ownership`, `controller intake`, …
        what: &'static str,
        /// The configured value of that bound.
        limit: usize,
    },
    /// The supervisor is shutting down and accepts no new work.
    #[error("supervisor is shutting down")]
    ShuttingDown,
    /// The state store cannot persist (disk full, read-only file system, I/O error): the
    /// request was not carried out; the text names the file and the failure. Reads and
    /// running tasks are not affected (HTTP 503 / `UNAVAILABLE`).
    #[error("state store unavailable: {0}")]
    Storage(String),
    /// An unexpected internal failure; the text says what failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ModelError> for CoreError {
    fn from(err: ModelError) -> Self {
        Self::Invalid(err)
    }
}

impl From<RunnerError> for CoreError {
    fn from(err: RunnerError) -> Self {
        Self::Runner(err)
    }
}
