//! Stopping tasks: cancel, delete, and shutdown of the whole supervisor.

use std::sync::atomic::Ordering;

use solti_model::{TaskId, TaskPhase};
use solti_runner::now_ms;
use taskvisor as tv;

use super::{REQUEST_WAIT, SupervisorApi};
use crate::{
    CoreError,
    convert::{CANCEL_REASON, DELETE_REASON, SHUTDOWN_REASON},
    store::RunEnd,
};

impl SupervisorApi {
    /// Stops an active task (running, in backoff, or queued); it ends `Canceled`.
    ///
    /// Returns `true` when the task existed, was active, and is now stopping; `false` for an
    /// unknown or already terminal task. Does not wait for the task to stop.
    ///
    /// # Errors
    /// [`CoreError::Capacity`] when taskvisor's management queue stays full, or
    /// [`CoreError::ShuttingDown`].
    pub async fn cancel_task(&self, id: &TaskId) -> Result<bool, CoreError> {
        self.cancel_task_with_reason(id, CANCEL_REASON).await
    }

    /// [`cancel_task`](Self::cancel_task) with the task's error text set to `reason` (say,
    /// who cancelled it) instead of `"canceled"`. A reason already set by an earlier stop
    /// (a replacement, another cancel, shutdown) wins.
    ///
    /// # Errors
    /// As [`cancel_task`](Self::cancel_task).
    pub async fn cancel_task_with_reason(
        &self,
        id: &TaskId,
        reason: &str,
    ) -> Result<bool, CoreError> {
        let Some(entry) = self.shared().runtime.get(id) else {
            return Ok(false);
        };
        entry.stop_with(|| reason.to_owned());
        let claimed = self
            .remove(entry.tv_id)
            .await
            .inspect_err(|_| entry.clear_stop_reason(reason))?;
        // `false` from taskvisor also means "someone else is already stopping it" (a
        // replacement): the task is still on its way to Canceled then.
        Ok(claimed || self.shared().runtime.get(id).is_some())
    }

    /// Waits until the task is terminal (at most `max_wait`), then returns it as
    /// [`get_task`](Self::get_task) does: terminal, or still stopping when `max_wait`
    /// elapsed first. `None` when the id is unknown. Waits for nothing when the task is
    /// already terminal.
    ///
    /// # Errors
    /// As [`get_task`](Self::get_task).
    pub async fn wait_terminal(
        &self,
        id: &TaskId,
        max_wait: std::time::Duration,
    ) -> Result<Option<solti_model::Task>, CoreError> {
        if let Some(entry) = self.shared().runtime.get(id) {
            let _ = tokio::time::timeout(max_wait, entry.finished()).await;
        }
        self.get_task(id).await
    }

    /// Stops the task if active and purges it, its run history and its retained output.
    /// Returns whether it existed. Idempotent. Subscribers of its output see their stream
    /// end.
    ///
    /// # Errors
    /// As [`cancel_task`](Self::cancel_task); nothing is purged then.
    pub async fn delete_task(&self, id: &TaskId) -> Result<bool, CoreError> {
        let shared = self.shared();
        let entry = shared.runtime.get(id);
        if let Some(entry) = &entry {
            entry.stop_with(|| DELETE_REASON.to_owned());
            self.remove(entry.tv_id)
                .await
                .inspect_err(|_| entry.clear_stop_reason(DELETE_REASON))?;
            if entry.mark_deleted() {
                // A concurrent delete won the race; it reports the deletion.
                return Ok(false);
            }
            entry.output.close();
        }
        // A still-stopping task keeps its runtime entry (its slot is busy until it exits);
        // its late writes to the store are ignored because the record is gone.
        let existed = shared.store.delete(id);
        shared.output.free(id);
        Ok(existed || entry.is_some())
    }

    /// Stops accepting work, cancels every task, waits up to the supervisor's grace, and
    /// reaps. Every task still active ends `Canceled` ("agent shutting down") and every
    /// output stream ends. Idempotent: later calls wait for the first one's result.
    /// See [`crate::docs::shutdown`] for the ordering.
    ///
    /// # Errors
    /// [`CoreError::Internal`] when taskvisor's runtime reports a failure while stopping.
    pub async fn shutdown(&self) -> Result<(), CoreError> {
        let result = self
            .inner
            .shutdown
            .get_or_init(|| async { self.shutdown_once().await.map_err(|e| e.to_string()) });
        result.await.clone().map_err(CoreError::Internal)
    }

    async fn shutdown_once(&self) -> Result<(), CoreError> {
        let shared = self.shared();
        // 1. No new work: submit fails with ShuttingDown from here on.
        shared.closing.store(true, Ordering::Release);
        // 2. Name the reason before anything stops, so finalizers write it.
        for (_, entry) in shared.runtime.all() {
            entry.stop_with(|| SHUTDOWN_REASON.to_owned());
        }
        // 3. taskvisor cancels every task and waits up to its grace, then force-aborts.
        let result = match self.inner.handle.clone().shutdown().await {
            Ok(()) => Ok(()),
            Err(tv::RuntimeError::GraceExceeded { grace, stuck, .. }) => {
                tracing::warn!(
                    ?grace,
                    stuck = stuck.len(),
                    "tasks did not stop within the grace; force-aborted"
                );
                Ok(())
            }
            Err(err) => Err(CoreError::Internal(format!(
                "taskvisor shutdown failed: {err}"
            ))),
        };
        // 4. Finalizers resolve as taskvisor delivers outcomes; wait for them, bounded.
        shared.tracker.close();
        if tokio::time::timeout(REQUEST_WAIT, shared.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = shared.runtime.len(),
                "finalizers still pending after shutdown"
            );
        }
        // 5. Anything without a delivered outcome ends Canceled here; close every stream.
        for (id, entry) in shared.runtime.all() {
            let end = RunEnd {
                phase: TaskPhase::Canceled,
                finished_at: now_ms(),
                error: Some(
                    entry
                        .stop_reason()
                        .unwrap_or_else(|| SHUTDOWN_REASON.to_owned()),
                ),
                exit_code: None,
            };
            shared.store.finish(&id, end, TaskPhase::Canceled);
            shared.runtime.unregister(&id);
            entry.output.close();
        }
        result
    }

    /// Asks taskvisor to remove a task by id (reaches queued work too), bounded in time.
    async fn remove(&self, tv_id: tv::TaskId) -> Result<bool, CoreError> {
        match tokio::time::timeout(REQUEST_WAIT, self.inner.handle.remove(tv_id).execute()).await {
            Ok(Ok(claimed)) => Ok(claimed),
            Ok(Err(tv::RuntimeError::ShuttingDown)) => Err(CoreError::ShuttingDown),
            Ok(Err(tv::RuntimeError::ResourceLimitReached {
                resource, limit, ..
            })) => Err(CoreError::Capacity {
                what: resource,
                limit,
            }),
            Ok(Err(err)) => Err(CoreError::Internal(format!(
                "taskvisor remove failed: {err}"
            ))),
            Err(_) => Err(CoreError::Capacity {
                what: waited_out!("taskvisor management queue"),
                limit: self.shared().capacities.management,
            }),
        }
    }

    /// [`remove`](Self::remove) for best-effort cleanups: failures are logged.
    pub(super) async fn remove_quietly(&self, tv_id: tv::TaskId) {
        if let Err(err) = self.remove(tv_id).await {
            tracing::warn!(error = %err, "could not remove a displaced task");
        }
    }
}
