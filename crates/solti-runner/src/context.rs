//! What a runner is handed when it builds a task.

use std::{fmt, sync::Arc};

use solti_model::{TaskEnv, TaskId};

use crate::{MetricsBackend, NoOpMetrics, OutputPublisher};

/// Environment a runner adds under every task's own environment (task values win).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunnerEnv(TaskEnv);

impl RunnerEnv {
    /// An empty runner environment.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Wraps a set of variables.
    #[must_use]
    pub fn from_env(env: TaskEnv) -> Self {
        Self(env)
    }

    /// The variables.
    #[must_use]
    pub fn vars(&self) -> &TaskEnv {
        &self.0
    }

    /// The task's env merged over this one.
    #[must_use]
    pub fn merge(&self, task: &TaskEnv) -> TaskEnv {
        task.merged_over(&self.0)
    }
}

/// Per-task context for [`Runner::build_task`](crate::Runner::build_task).
#[derive(Clone)]
pub struct BuildContext {
    task_id: TaskId,
    env: RunnerEnv,
    metrics: Arc<dyn MetricsBackend>,
    output: OutputPublisher,
}

impl BuildContext {
    /// A context for `task_id` with empty env, no-op metrics and the given publisher.
    #[must_use]
    pub fn new(task_id: TaskId, output: OutputPublisher) -> Self {
        Self {
            task_id,
            env: RunnerEnv::new(),
            metrics: Arc::new(NoOpMetrics),
            output,
        }
    }

    /// Sets the runner environment.
    #[must_use]
    pub fn with_env(mut self, env: RunnerEnv) -> Self {
        self.env = env;
        self
    }

    /// Sets the metrics backend.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<dyn MetricsBackend>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The task being built.
    #[must_use]
    pub fn task_id(&self) -> &TaskId {
        &self.task_id
    }
    /// Runner environment (merged under the task's).
    #[must_use]
    pub fn env(&self) -> &RunnerEnv {
        &self.env
    }
    /// Metrics handle.
    #[must_use]
    pub fn metrics(&self) -> &Arc<dyn MetricsBackend> {
        &self.metrics
    }
    /// Output publisher: the sink of each attempt (see [`AttemptFn`](crate::AttemptFn)).
    #[must_use]
    pub fn output(&self) -> &OutputPublisher {
        &self.output
    }
}

impl fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildContext")
            .field("task_id", &self.task_id)
            .field("env", &self.env)
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}
