//! Recovery after an agent restart: the tasks a durable store brought back unfinished.

use solti_model::{RestartPolicy, TaskPhase};
use solti_runner::now_ms;

use super::SupervisorApi;
use crate::store::RunEnd;

/// Why a run (or a task that may not be restarted) ended when the agent stopped under it.
pub(crate) const RESTART_REASON: &str = "agent restarted during the run";

impl SupervisorApi {
    /// Closes the runs left open and starts again, or fails, every unfinished task of the
    /// store, oldest first (so queued tasks keep their slot order).
    pub(super) async fn recover(&self) {
        let store = std::sync::Arc::clone(&self.shared().store);
        let tasks = store.active();
        if tasks.is_empty() {
            return;
        }
        let (mut restarted, mut failed) = (0usize, 0usize);
        let mut succeeded = 0usize;
        for task in tasks {
            let id = &task.metadata.id;
            let now = now_ms();
            let runs = store.runs(id).unwrap_or_default();
            let mut interrupted = false;
            for run in &runs {
                if run.finished_at.is_none() {
                    interrupted = true;
                    let end = RunEnd::new(TaskPhase::Failed, now, Some(RESTART_REASON.to_owned()));
                    store.run_finished(id, run.attempt, end);
                }
            }
            // The last attempt ended by itself with success and its end was stored, but not
            // the task's (the agent stopped in between): unless the policy restarts
            // successes too, the task ends as it would have.
            let policy = task.spec.restart();
            if !interrupted
                && !matches!(policy, RestartPolicy::Always { .. })
                && let Some(last) = runs.last()
                && last.phase == TaskPhase::Succeeded
            {
                let end = RunEnd::new(TaskPhase::Succeeded, last.finished_at.unwrap_or(now), None);
                store.finish(id, end, TaskPhase::Failed);
                succeeded += 1;
                continue;
            }
            let again = matches!(
                policy,
                RestartPolicy::Always { .. } | RestartPolicy::OnFailure
            );
            if again {
                match self.readmit(&task).await {
                    Ok(()) => restarted += 1,
                    Err(err) => {
                        // readmit finished the task with the reason when it got that far.
                        let end = RunEnd::new(
                            TaskPhase::Failed,
                            now_ms(),
                            Some(format!("{RESTART_REASON}; could not start it again: {err}")),
                        );
                        store.finish(id, end, TaskPhase::Failed);
                        tracing::warn!(task_id = %id, error = %err, "restored task not restarted");
                        failed += 1;
                    }
                }
            } else {
                let end = RunEnd::new(TaskPhase::Failed, now, Some(RESTART_REASON.to_owned()));
                store.finish(id, end, TaskPhase::Failed);
                failed += 1;
            }
        }
        if let Err(err) = store.sync().await {
            tracing::warn!(error = %err, "recovery outcome not yet persisted");
        }
        tracing::info!(
            restarted,
            failed,
            succeeded,
            "recovered unfinished tasks from the state store"
        );
    }
}
