//! The error type of the runner layer.

/// Why a runner could not be registered, picked, or could not build a task.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// No registered runner supports this spec and matches its selector.
    #[error("no runner for task kind {kind:?} matches the spec's labels and selector")]
    NoRunner {
        /// The task kind's short name.
        kind: &'static str,
    },
    /// Embedded tasks carry their own code; they are not built by runners.
    #[error("embedded tasks are not built by runners; use SupervisorApi::submit_with_task")]
    EmbeddedNeedsTask,
    /// A runner with this name is already registered.
    #[error("a runner named {0:?} is already registered")]
    DuplicateName(String),
    /// The runner name is empty or too long.
    #[error("runner name must be 1..=64 characters, got {0}")]
    InvalidName(usize),
    /// The runner accepted the spec but failed to build it.
    #[error("runner {runner:?} failed to build the task")]
    Build {
        /// Runner name.
        runner: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl RunnerError {
    /// A [`RunnerError::Build`] from any error.
    pub fn build(
        runner: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Build {
            runner: runner.into(),
            source: source.into(),
        }
    }
}
