//! The sweep: an internal embedded task that drops expired runs and terminal tasks.

use std::sync::Arc;

use solti_model::{AdmissionPolicy, RestartPolicy, TaskKind, TaskSpec};
use taskvisor::{TaskContext, TaskError, TaskFn};
use tokio::time::Instant;

use crate::{CoreError, SupervisorApi};

/// Submits the sweep: every `sweep_interval` it removes finished runs older than `run_ttl`,
/// then terminal tasks that have had no runs for `task_ttl`. It is an embedded task under the
/// same supervisor, so it is cancelled with everything else at shutdown and never listed.
pub(crate) async fn start(api: &SupervisorApi) -> Result<(), CoreError> {
    let shared = Arc::clone(api.shared());
    let every = shared.config.sweep_interval;
    let task = TaskFn::arc(move |_ctx: TaskContext| {
        let shared = Arc::clone(&shared);
        async move {
            let report = shared.store.sweep(Instant::now());
            for id in &report.tasks {
                shared.output.free(id);
            }
            if report.runs > 0 || !report.tasks.is_empty() {
                tracing::debug!(
                    runs = report.runs,
                    tasks = report.tasks.len(),
                    "sweep removed expired state"
                );
            }
            Ok::<(), TaskError>(())
        }
    });
    let interval_ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX).max(1);
    let spec = TaskSpec::builder(SWEEP_SLOT, TaskKind::Embedded, SWEEP_TIMEOUT_MS)
        .restart(RestartPolicy::Always {
            interval_ms: Some(interval_ms.min(solti_model::MAX_DURATION_MS)),
        })
        .admission(AdmissionPolicy::Replace)
        .build()?;
    api.submit_with_task(task, &spec).await?;
    Ok(())
}

/// Slot of the sweep task; the leading underscore keeps it apart from user slots by
/// convention.
pub(crate) const SWEEP_SLOT: &str = "_solti.sweep";
/// A sweep is a synchronous pass over the store; a minute means something is badly wrong.
const SWEEP_TIMEOUT_MS: u64 = 60_000;
