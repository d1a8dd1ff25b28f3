//! The attempt wrapper: the authority for run history and run markers.
//!
//! taskvisor's events are lossy under load, so attempt boundaries are recorded from inside
//! the attempt itself: `spawn` records the start, the returned future records the end, and a
//! drop guard records the end when taskvisor drops the future (timeout, force-abort).
//!
//! The wrapper numbers the attempts and starts the runner's task with
//! [`solti_runner::start_attempt`], which hands it the number and gives back the attempt's
//! [`AttemptEnd`] (result and exit code).

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use solti_model::{OutputEvent, TaskId, TaskPhase};
use solti_runner::{AttemptEnd, AttemptOutcome, MetricsBackend, OutputTarget as _, now_ms};
use taskvisor::{BoxTaskFuture, Task, TaskContext, TaskError, TaskRef};
use tokio::time::Instant;

use crate::{
    output::OutputChannel,
    store::{RunEnd, StateStore},
};

/// Everything the attempts of one task share.
pub(crate) struct TaskCell {
    pub(crate) id: TaskId,
    pub(crate) output: Arc<OutputChannel>,
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) metrics: Arc<dyn MetricsBackend>,
    /// Runner name for metrics (`embedded` for embedded tasks).
    pub(crate) runner: Arc<str>,
    /// Task kind name for metrics.
    pub(crate) kind: &'static str,
    /// The per-attempt timeout taskvisor enforces.
    pub(crate) timeout: Duration,
    attempts: AtomicU32,
}

impl TaskCell {
    pub(crate) fn new(
        id: TaskId,
        output: Arc<OutputChannel>,
        store: Arc<dyn StateStore>,
        metrics: Arc<dyn MetricsBackend>,
        runner: Arc<str>,
        kind: &'static str,
        timeout: Duration,
    ) -> Self {
        Self {
            id,
            output,
            store,
            metrics,
            runner,
            kind,
            timeout,
            attempts: AtomicU32::new(0),
        }
    }
}

impl TaskCell {
    /// Continues the attempt count after `done` earlier attempts (a task restored after an
    /// agent restart).
    #[must_use]
    pub(crate) fn with_attempts(self, done: u32) -> Self {
        self.attempts.store(done, Ordering::Release);
        self
    }
}

impl fmt::Debug for TaskCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskCell")
            .field("id", &self.id)
            .field("runner", &self.runner)
            .finish_non_exhaustive()
    }
}

/// A taskvisor [`Task`] wrapping the runner-built task of one submission.
pub(crate) struct AttemptTask {
    inner: TaskRef,
    cell: Arc<TaskCell>,
}

impl AttemptTask {
    pub(crate) fn new(inner: TaskRef, cell: Arc<TaskCell>) -> Self {
        Self { inner, cell }
    }
}

impl Task for AttemptTask {
    fn spawn(&self, ctx: TaskContext) -> BoxTaskFuture {
        let cell = &self.cell;
        let attempt = cell.attempts.fetch_add(1, Ordering::AcqRel) + 1;
        let started_at = now_ms();
        cell.store.run_started(&cell.id, attempt, started_at);
        cell.output.publish(OutputEvent::RunStarted {
            attempt,
            started_at,
        });
        cell.metrics.task_started(&cell.runner, cell.kind);
        let guard = RunGuard {
            cell: Arc::clone(cell),
            attempt,
            started: Instant::now(),
            ctx: ctx.clone(),
            done: false,
        };
        let fut = solti_runner::start_attempt(&self.inner, attempt, ctx);
        Box::pin(async move {
            let mut guard = guard;
            let end = fut.await;
            guard.finish(Some(&end));
            end.into_result()
        })
    }
}

impl fmt::Debug for AttemptTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttemptTask")
            .field("cell", &self.cell)
            .finish_non_exhaustive()
    }
}

/// Records the end of one attempt exactly once, also when the future is dropped.
struct RunGuard {
    cell: Arc<TaskCell>,
    attempt: u32,
    started: Instant,
    ctx: TaskContext,
    done: bool,
}

impl RunGuard {
    /// `None` = the future was dropped before it finished.
    fn finish(&mut self, end: Option<&AttemptEnd>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let elapsed = self.started.elapsed();
        let (phase, error) = match end.map(AttemptEnd::result) {
            Some(Ok(())) => (TaskPhase::Succeeded, None),
            Some(Err(err)) => {
                let phase = match err {
                    TaskError::Timeout { .. } => TaskPhase::Timeout,
                    TaskError::Canceled => TaskPhase::Canceled,
                    // A failure while stopping is the stop's doing, not the task's.
                    _ if self.ctx.is_cancelled() => TaskPhase::Canceled,
                    _ => TaskPhase::Failed,
                };
                (phase, Some(err.to_string()))
            }
            // Unwinding out of the runner's `spawn` or its future: taskvisor turns the panic
            // into a retryable failure, and so does the run record.
            None if std::thread::panicking() => {
                (TaskPhase::Failed, Some("attempt panicked".to_owned()))
            }
            // taskvisor drops the future on timeout (after cancelling it) and on force-abort.
            None if elapsed >= self.cell.timeout => (
                TaskPhase::Timeout,
                Some(format!(
                    "timed out after {} ms",
                    self.cell.timeout.as_millis()
                )),
            ),
            None => (
                TaskPhase::Canceled,
                Some("attempt stopped before it finished".to_owned()),
            ),
        };
        let cell = &self.cell;
        let exit_code = end.and_then(AttemptEnd::exit_code);
        let finished_at = now_ms();
        cell.store.run_finished(
            &cell.id,
            self.attempt,
            RunEnd {
                phase,
                finished_at,
                error,
                exit_code,
            },
        );
        cell.output.publish(OutputEvent::RunFinished {
            attempt: self.attempt,
            exit_code,
            finished_at,
        });
        cell.metrics
            .task_completed(&cell.runner, cell.kind, metrics_outcome(phase), elapsed);
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.finish(None);
    }
}

fn metrics_outcome(phase: TaskPhase) -> AttemptOutcome {
    match phase {
        TaskPhase::Succeeded => AttemptOutcome::Success,
        TaskPhase::Timeout => AttemptOutcome::Timeout,
        TaskPhase::Canceled => AttemptOutcome::Canceled,
        _ => AttemptOutcome::Failure,
    }
}
