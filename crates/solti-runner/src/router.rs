//! Dispatch of specs to runners by kind and labels.

use std::{fmt, sync::Arc};

use solti_model::{Labels, TaskKind, TaskSpec};
use taskvisor::TaskRef;

use crate::{BuildContext, MetricsBackend, NoOpMetrics, Runner, RunnerEnv, RunnerError};

/// Routes each spec to the first registered runner that supports it and whose labels
/// satisfy the spec's `labels` and `runner_selector`.
///
/// Runners are tried in registration order. Embedded specs are rejected with
/// [`RunnerError::EmbeddedNeedsTask`]: their code comes with `submit_with_task`.
pub struct RunnerRouter {
    runners: Vec<Entry>,
    env: RunnerEnv,
    metrics: Arc<dyn MetricsBackend>,
}

struct Entry {
    runner: Arc<dyn Runner>,
    labels: Labels,
}

impl RunnerRouter {
    /// An empty router with no-op metrics and an empty runner environment.
    #[must_use]
    pub fn new() -> Self {
        Self {
            runners: Vec::new(),
            env: RunnerEnv::new(),
            metrics: Arc::new(NoOpMetrics),
        }
    }

    /// Registers a runner with no labels.
    ///
    /// # Errors
    /// When a runner of the same name is already registered, or the name is not 1..=64 chars.
    pub fn register(&mut self, runner: impl Runner) -> Result<(), RunnerError> {
        self.register_with_labels(runner, Labels::new())
    }

    /// Registers a runner carrying `labels`, which spec selectors match against.
    ///
    /// # Errors
    /// When a runner of the same name is already registered, or the name is not 1..=64 chars.
    pub fn register_with_labels(
        &mut self,
        runner: impl Runner,
        labels: Labels,
    ) -> Result<(), RunnerError> {
        self.register_arc(Arc::new(runner), labels)
    }

    /// Registers a shared runner.
    ///
    /// # Errors
    /// As [`register_with_labels`](Self::register_with_labels).
    pub fn register_arc(
        &mut self,
        runner: Arc<dyn Runner>,
        labels: Labels,
    ) -> Result<(), RunnerError> {
        let name = runner.name();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(RunnerError::InvalidName(name.chars().count()));
        }
        if self.contains(name) {
            return Err(RunnerError::DuplicateName(name.to_owned()));
        }
        self.runners.push(Entry { runner, labels });
        Ok(())
    }

    /// Sets the environment every runner merges under task environments.
    pub fn set_env(&mut self, env: RunnerEnv) {
        self.env = env;
    }

    /// Sets the metrics backend handed to runners.
    pub fn set_metrics(&mut self, metrics: Arc<dyn MetricsBackend>) {
        self.metrics = metrics;
    }

    /// The metrics backend.
    #[must_use]
    pub fn metrics(&self) -> &Arc<dyn MetricsBackend> {
        &self.metrics
    }

    /// Whether a runner called `name` is registered.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.runners.iter().any(|e| e.runner.name() == name)
    }

    /// Names of the registered runners, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.runners.iter().map(|e| e.runner.name())
    }

    /// Number of registered runners.
    #[must_use]
    pub fn len(&self) -> usize {
        self.runners.len()
    }

    /// Whether no runner is registered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.runners.is_empty()
    }

    /// The runner that would build `spec`.
    ///
    /// # Errors
    /// [`RunnerError::EmbeddedNeedsTask`] for embedded specs, [`RunnerError::NoRunner`] when
    /// nothing qualifies.
    pub fn pick(&self, spec: &TaskSpec) -> Result<&Arc<dyn Runner>, RunnerError> {
        if matches!(spec.kind(), TaskKind::Embedded) {
            return Err(RunnerError::EmbeddedNeedsTask);
        }
        self.runners
            .iter()
            .find(|e| {
                e.runner.supports(spec)
                    && spec
                        .labels()
                        .iter()
                        .all(|(k, v)| e.labels.get(k) == Some(v))
                    && spec.runner_selector().is_none_or(|s| s.matches(&e.labels))
            })
            .map(|e| &e.runner)
            .ok_or(RunnerError::NoRunner {
                kind: spec.kind().name(),
            })
    }

    /// A build context for a task carrying this router's env and metrics.
    #[must_use]
    pub fn context(&self, output: crate::OutputPublisher) -> BuildContext {
        BuildContext::new(output.task_id().clone(), output)
            .with_env(self.env.clone())
            .with_metrics(Arc::clone(&self.metrics))
    }

    /// Picks a runner and builds the task; returns the runner's name with the task.
    ///
    /// # Errors
    /// As [`pick`](Self::pick), or the runner's own build error.
    pub fn build(
        &self,
        spec: &TaskSpec,
        ctx: &BuildContext,
    ) -> Result<(TaskRef, String), RunnerError> {
        let runner = self.pick(spec)?;
        let task = runner.build_task(spec, ctx)?;
        Ok((task, runner.name().to_owned()))
    }
}

impl Default for RunnerRouter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RunnerRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunnerRouter")
            .field(
                "runners",
                &self
                    .runners
                    .iter()
                    .map(|e| (e.runner.name(), &e.labels))
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}
