//! The attempt wrapper: the authority for run history and run markers.
//!
//! taskvisor's events are lossy under load, so attempt boundaries are recorded from inside
//! the attempt itself: `spawn` records the start, the returned future records the end, and a
//! drop guard records the end when taskvisor drops the future (timeout, force-abort).

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use solti_model::{OutputEvent, TaskId, TaskPhase};
use solti_runner::{AttemptOutcome, MetricsBackend, OutputPublisher, OutputTarget as _, now_ms};
use taskvisor::{BoxTaskFuture, Task, TaskContext, TaskError, TaskRef};
use tokio::time::Instant;

use crate::{
    output::OutputChannel,
    store::{RunEnd, StateStore},
};

/// Everything the attempts of one task share.
pub(crate) struct TaskCell {
    pub(crate) id: TaskId,
    pub(crate) publisher: OutputPublisher,
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
    #[expect(
        clippy::too_many_arguments,
        reason = "a plain record of what the submit path assembled"
    )]
    pub(crate) fn new(
        id: TaskId,
        publisher: OutputPublisher,
        output: Arc<OutputChannel>,
        store: Arc<dyn StateStore>,
        metrics: Arc<dyn MetricsBackend>,
        runner: Arc<str>,
        kind: &'static str,
        timeout: Duration,
    ) -> Self {
        Self {
            id,
            publisher,
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
        // Runners call `output().sink()` inside `spawn`, so the attempt must be set first.
        cell.publisher.set_attempt(attempt);
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
        let fut = self.inner.spawn(ctx);
        Box::pin(async move {
            let mut guard = guard;
            let result = fut.await;
            guard.finish(Some(&result));
            result
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
    fn finish(&mut self, result: Option<&Result<(), TaskError>>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let elapsed = self.started.elapsed();
        let (phase, error, exit_code) = match result {
            Some(Ok(())) => (TaskPhase::Succeeded, None, None),
            Some(Err(err)) => {
                let phase = match err {
                    TaskError::Timeout { .. } => TaskPhase::Timeout,
                    TaskError::Canceled => TaskPhase::Canceled,
                    // A failure while stopping is the stop's doing, not the task's.
                    _ if self.ctx.is_cancelled() => TaskPhase::Canceled,
                    _ => TaskPhase::Failed,
                };
                (phase, Some(err.to_string()), err.exit_code())
            }
            // Unwinding out of the runner's `spawn` or its future: taskvisor turns the panic
            // into a retryable failure, and so does the run record.
            None if std::thread::panicking() => {
                (TaskPhase::Failed, Some("attempt panicked".to_owned()), None)
            }
            // taskvisor drops the future on timeout (after cancelling it) and on force-abort.
            None if elapsed >= self.cell.timeout => (
                TaskPhase::Timeout,
                Some(format!(
                    "timed out after {} ms",
                    self.cell.timeout.as_millis()
                )),
                None,
            ),
            None => (
                TaskPhase::Canceled,
                Some("attempt stopped before it finished".to_owned()),
                None,
            ),
        };
        let cell = &self.cell;
        // The runner records the code whenever the process exited by itself, also on success
        // (`Ok` carries no code); an error's own code is the fallback.
        let exit_code = cell.publisher.take_exit_code(self.attempt).or(exit_code);
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
