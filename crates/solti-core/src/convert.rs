//! Mapping between solti-model policies and taskvisor's, and from taskvisor outcomes to
//! terminal task phases. Pure functions, unit-tested below.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use solti_model::{
    AdmissionPolicy, BackoffPolicy, JitterPolicy, RestartPolicy, TaskId, TaskPhase, TaskSpec,
};
use taskvisor as tv;

use crate::CoreError;

/// The taskvisor task spec for one submission: unique name, our policies, per-attempt timeout.
pub(crate) fn task_spec(
    name: Arc<str>,
    task: tv::TaskRef,
    spec: &TaskSpec,
) -> Result<tv::TaskSpec, CoreError> {
    let timeout = Duration::from_millis(spec.timeout_ms());
    let tv_spec = tv::TaskSpec::new(
        name,
        task,
        restart(spec.restart()),
        backoff(spec.backoff())?,
        Some(timeout),
    )
    .with_max_retries(spec.max_retries().and_then(NonZeroU32::new));
    Ok(tv_spec)
}

/// The shortest wait between a successful attempt of an `Always` task and the next one
/// (also when no interval, or 0, is given): without it a task that exits at once would be
/// respawned about a thousand times a second.
pub const MIN_ALWAYS_INTERVAL: Duration = Duration::from_millis(100);

/// Restart policies map one to one; an `Always` interval is at least
/// [`MIN_ALWAYS_INTERVAL`] (none, or 0, means that minimum).
pub(crate) fn restart(policy: RestartPolicy) -> tv::RestartPolicy {
    match policy {
        RestartPolicy::OnFailure => tv::RestartPolicy::OnFailure,
        RestartPolicy::Always { interval_ms } => tv::RestartPolicy::Always {
            interval: Some(
                Duration::from_millis(interval_ms.unwrap_or(0)).max(MIN_ALWAYS_INTERVAL),
            ),
        },
        // `Never` and any policy added later: one attempt is the safe reading.
        _ => tv::RestartPolicy::Never,
    }
}

/// Our backoff is taskvisor's with `Decorrelated` spelled `RandomizedBand`.
pub(crate) fn backoff(policy: BackoffPolicy) -> Result<tv::BackoffPolicy, CoreError> {
    let jitter = match policy.jitter() {
        JitterPolicy::None => tv::JitterPolicy::None,
        JitterPolicy::Equal => tv::JitterPolicy::Equal,
        JitterPolicy::Decorrelated => tv::JitterPolicy::RandomizedBand,
        // `Full` (the model's default) and anything added later.
        _ => tv::JitterPolicy::Full,
    };
    tv::BackoffPolicy::new(
        Duration::from_millis(policy.first_ms()),
        Duration::from_millis(policy.max_ms()),
        policy.factor(),
        jitter,
    )
    // The model validates the same rules, so this only fires if the two ever drift apart.
    .map_err(|e| CoreError::Internal(format!("backoff policy rejected by taskvisor: {e}")))
}

/// The taskvisor admission of a submission the supervisor has admitted.
///
/// `Replace` and `Queue` map one to one. `DropIfRunning` (the default, and anything added
/// later) is enforced by the supervisor itself, against its own index of active tasks, when
/// the task is submitted; a task that passed that check is handed to taskvisor as `Queue`.
/// taskvisor's own `DropIfRunning` must not decide: its waiter delivers a task's outcome
/// before its controller releases the slot, so a submission right after the previous task
/// of the slot finished (its phase stored, its output ended) would be refused `SlotBusy`
/// by a slot that is free for every caller. Queued instead, it starts as soon as taskvisor
/// has retired the previous task (at once in practice; a force-aborted task that never
/// returns keeps the slot, and the new task `Pending`, until it physically exits).
pub(crate) fn admission(policy: AdmissionPolicy) -> tv::AdmissionPolicy {
    match policy {
        AdmissionPolicy::Replace => tv::AdmissionPolicy::Replace,
        // Never displace work.
        _ => tv::AdmissionPolicy::Queue,
    }
}

/// What the finalizer knows besides the outcome.
#[derive(Debug, Default)]
pub(crate) struct OutcomeContext<'a> {
    /// Why we asked the task to stop (cancel, replace, shutdown), if we did.
    pub(crate) stop_reason: Option<&'a str>,
    /// Phase of the task's last recorded run.
    pub(crate) last_run: Option<TaskPhase>,
    /// The slot the task was submitted to.
    pub(crate) slot: &'a str,
    /// The task that owned the slot when this one was refused.
    pub(crate) owner: Option<&'a TaskId>,
}

/// The terminal state a watched outcome maps to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Terminal {
    pub(crate) phase: TaskPhase,
    pub(crate) error: Option<String>,
    pub(crate) exit_code: Option<i32>,
}

impl Terminal {
    fn new(phase: TaskPhase, error: Option<String>, exit_code: Option<i32>) -> Self {
        Self {
            phase,
            error,
            exit_code,
        }
    }
}

/// Maps taskvisor's final outcome to our terminal phase (product.md §4).
pub(crate) fn terminal(outcome: &tv::TaskOutcome, cx: &OutcomeContext<'_>) -> Terminal {
    let stopped = |default: &str| Some(cx.stop_reason.unwrap_or(default).to_owned());
    match outcome {
        tv::TaskOutcome::Completed => Terminal::new(TaskPhase::Succeeded, None, None),
        tv::TaskOutcome::Failed {
            reason, exit_code, ..
        } => {
            // taskvisor's only structured hint that retries are spent is this reason text.
            let phase = if reason.contains(RETRY_LIMIT_REASON) {
                TaskPhase::Exhausted
            } else if cx.last_run == Some(TaskPhase::Timeout) {
                TaskPhase::Timeout
            } else {
                TaskPhase::Failed
            };
            Terminal::new(phase, Some(reason.to_string()), *exit_code)
        }
        tv::TaskOutcome::Fatal {
            reason, exit_code, ..
        } => Terminal::new(TaskPhase::Failed, Some(reason.to_string()), *exit_code),
        tv::TaskOutcome::Canceled => Terminal::new(TaskPhase::Canceled, stopped("canceled"), None),
        tv::TaskOutcome::ForceAborted => {
            let why = cx.stop_reason.unwrap_or("canceled");
            Terminal::new(
                TaskPhase::Canceled,
                Some(format!("{why} (force-aborted after the grace period)")),
                None,
            )
        }
        tv::TaskOutcome::Panicked => {
            Terminal::new(TaskPhase::Failed, Some("task panicked".to_owned()), None)
        }
        tv::TaskOutcome::Rejected { kind, reason, .. } => rejected(*kind, reason, cx),
        other => Terminal::new(
            TaskPhase::Failed,
            Some(format!("unexpected outcome: {}", other.as_label())),
            None,
        ),
    }
}

fn rejected(kind: tv::RejectionKind, reason: &str, cx: &OutcomeContext<'_>) -> Terminal {
    let slot = cx.slot;
    match kind {
        tv::RejectionKind::SlotBusy => {
            Terminal::new(TaskPhase::Canceled, Some(slot_busy(slot, cx.owner)), None)
        }
        tv::RejectionKind::QueueFull => Terminal::new(
            TaskPhase::Failed,
            Some(format!("queue of slot {slot} is full: {reason}")),
            None,
        ),
        tv::RejectionKind::SupersededByReplace | tv::RejectionKind::RemovedFromQueue => {
            Terminal::new(
                TaskPhase::Canceled,
                Some(
                    cx.stop_reason
                        .unwrap_or("removed from the queue")
                        .to_owned(),
                ),
                None,
            )
        }
        tv::RejectionKind::ControllerShuttingDown => {
            Terminal::new(TaskPhase::Canceled, Some(SHUTDOWN_REASON.to_owned()), None)
        }
        _ => Terminal::new(
            TaskPhase::Failed,
            Some(format!("admission refused ({}): {reason}", kind.as_label())),
            None,
        ),
    }
}

/// The metric label of an admission refusal (the names the published dashboard knows:
/// `slot_busy`, `slot_full`, `superseded`, `removed`, `shutting_down`, `add_failed`; then
/// `resource_limit`, and `other` for anything taskvisor adds later).
pub(crate) fn rejection_label(kind: tv::RejectionKind) -> &'static str {
    match kind {
        tv::RejectionKind::SlotBusy => "slot_busy",
        tv::RejectionKind::QueueFull => "slot_full",
        tv::RejectionKind::SupersededByReplace => "superseded",
        tv::RejectionKind::RemovedFromQueue => "removed",
        tv::RejectionKind::ControllerShuttingDown => "shutting_down",
        tv::RejectionKind::AdmissionFailed
        | tv::RejectionKind::AlreadyExists
        | tv::RejectionKind::BatchRejected => "add_failed",
        tv::RejectionKind::ResourceLimit => "resource_limit",
        _ => "other",
    }
}

/// Error text of a task refused under `DropIfRunning` because `owner` holds `slot`.
pub(crate) fn slot_busy(slot: &str, owner: Option<&TaskId>) -> String {
    match owner {
        Some(owner) => {
            format!("slot {slot} is busy: already running task {owner} (admission drop-if-running)")
        }
        None => format!("slot {slot} is busy (admission drop-if-running)"),
    }
}

/// Error text of tasks stopped by [`SupervisorApi::shutdown`](crate::SupervisorApi::shutdown).
pub(crate) const SHUTDOWN_REASON: &str = "agent shutting down";
/// Error text of tasks stopped by [`SupervisorApi::cancel_task`](crate::SupervisorApi::cancel_task).
pub(crate) const CANCEL_REASON: &str = "canceled";
/// Error text of tasks stopped by [`SupervisorApi::delete_task`](crate::SupervisorApi::delete_task)
/// (seen only by subscribers and the run record of a still-stopping attempt).
pub(crate) const DELETE_REASON: &str = "deleted";
/// Marker in taskvisor's `Failed` reason when the retry limit stopped the task.
const RETRY_LIMIT_REASON: &str = "retry limit reached";

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> OutcomeContext<'static> {
        OutcomeContext {
            slot: "s",
            ..OutcomeContext::default()
        }
    }

    #[test]
    fn completed_is_succeeded() {
        assert_eq!(
            terminal(&tv::TaskOutcome::Completed, &cx()).phase,
            TaskPhase::Succeeded
        );
    }

    #[test]
    fn failed_variants() {
        let exhausted = tv::TaskOutcome::failed_for_tests(
            "retry limit reached after 2 of 2 retries: boom",
            Some(3),
        );
        let t = terminal(&exhausted, &cx());
        assert_eq!(t.phase, TaskPhase::Exhausted);
        assert_eq!(t.exit_code, Some(3));
        let plain = tv::TaskOutcome::failed_for_tests("boom", None);
        assert_eq!(terminal(&plain, &cx()).phase, TaskPhase::Failed);
        let timed = OutcomeContext {
            last_run: Some(TaskPhase::Timeout),
            ..cx()
        };
        assert_eq!(terminal(&plain, &timed).phase, TaskPhase::Timeout);
        let fatal = tv::TaskOutcome::fatal_for_tests("nope", Some(2));
        assert_eq!(terminal(&fatal, &cx()).phase, TaskPhase::Failed);
    }

    #[test]
    fn cancel_and_rejections() {
        let c = OutcomeContext {
            stop_reason: Some("replaced by tsk_x"),
            ..cx()
        };
        let t = terminal(&tv::TaskOutcome::Canceled, &c);
        assert_eq!(
            (t.phase, t.error.as_deref()),
            (TaskPhase::Canceled, Some("replaced by tsk_x"))
        );
        let owner = TaskId::try_new("tsk_owner").unwrap();
        let c = OutcomeContext {
            owner: Some(&owner),
            ..cx()
        };
        let busy = tv::TaskOutcome::rejected_for_tests(tv::RejectionKind::SlotBusy, "busy");
        let t = terminal(&busy, &c);
        assert_eq!(t.phase, TaskPhase::Canceled);
        assert!(t.error.unwrap().contains("tsk_owner"));
        let full = tv::TaskOutcome::rejected_for_tests(tv::RejectionKind::QueueFull, "depth 1");
        assert_eq!(terminal(&full, &cx()).phase, TaskPhase::Failed);
        let gone = tv::TaskOutcome::rejected_for_tests(tv::RejectionKind::RemovedFromQueue, "x");
        assert_eq!(terminal(&gone, &cx()).phase, TaskPhase::Canceled);
    }

    #[test]
    fn backoff_delays_stay_within_the_model_bounds() {
        let jitters = [
            JitterPolicy::None,
            JitterPolicy::Full,
            JitterPolicy::Equal,
            JitterPolicy::Decorrelated,
        ];
        for jitter in jitters {
            let model = BackoffPolicy::new(jitter, 100, 5_000, 2.0).unwrap();
            let tv = backoff(model).unwrap();
            for n in 0..10 {
                let (lo, hi) = model.delay_range_ms(n);
                for _ in 0..200 {
                    let d = tv.delay_for_retry(n);
                    let ok = d >= Duration::from_millis(lo) && d <= Duration::from_millis(hi);
                    assert!(ok, "{jitter} retry {n}: {d:?} outside [{lo}, {hi}] ms");
                }
            }
        }
    }

    #[test]
    fn policies_map() {
        assert!(matches!(
            restart(RestartPolicy::Never),
            tv::RestartPolicy::Never
        ));
        assert!(matches!(
            restart(RestartPolicy::Always { interval_ms: Some(500) }),
            tv::RestartPolicy::Always { interval: Some(d) } if d == Duration::from_millis(500)
        ));
        // No interval, 0, or a tiny one: at least the minimum, never a hot loop.
        for interval_ms in [None, Some(0), Some(5)] {
            assert!(matches!(
                restart(RestartPolicy::Always { interval_ms }),
                tv::RestartPolicy::Always { interval: Some(d) } if d == MIN_ALWAYS_INTERVAL
            ));
        }
        let b =
            backoff(BackoffPolicy::new(JitterPolicy::Decorrelated, 10, 100, 2.0).unwrap()).unwrap();
        assert_eq!(b.jitter(), tv::JitterPolicy::RandomizedBand);
        assert_eq!(b.first(), Duration::from_millis(10));
        assert_eq!(
            admission(AdmissionPolicy::Queue),
            tv::AdmissionPolicy::Queue
        );
        // DropIfRunning is decided by the supervisor; taskvisor only queues behind a task
        // it is still retiring.
        assert_eq!(
            admission(AdmissionPolicy::DropIfRunning),
            tv::AdmissionPolicy::Queue
        );
    }
}
