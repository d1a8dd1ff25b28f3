//! [`LifecycleLogger`]: taskvisor events as structured log lines.

use taskvisor::{Event, EventKind, RejectionKind, Subscribe, SubscriberExecution, TaskOutcomeKind};
use tracing::Level;

/// Emits one event at a constant level with every lifecycle field.
macro_rules! emit {
    ($level:expr, $e:expr) => {{
        let e: &Event = $e;
        if tracing::enabled!(target: LIFECYCLE_TARGET, $level) {
            tracing::event!(
                target: LIFECYCLE_TARGET,
                $level,
                event = e.kind.as_label(),
                task = e.task.as_deref(),
                run_id = e.id.map(|id| id.get()),
                attempt = e.attempt,
                duration_ms = e.duration_ms,
                timeout_ms = e.timeout_ms,
                delay_ms = e.delay_ms,
                backoff_source = e.backoff_source.map(|s| s.as_label()),
                outcome = e.outcome_kind.map(outcome_label),
                rejection = e.rejection_kind.map(|r| r.as_label()),
                exit_code = e.exit_code,
                dropped = e.dropped,
                reason = e.reason.as_deref(),
                "{}",
                message(e)
            );
        }
    }};
}

/// The `tracing` target of every lifecycle line, so it can be filtered on its own
/// (`info,solti::lifecycle=debug`).
pub const LIFECYCLE_TARGET: &str = "solti::lifecycle";

/// A taskvisor [`Subscribe`] implementation that logs task lifecycle events with structured
/// fields, at levels chosen for an operator:
///
/// | level | events |
/// |---|---|
/// | ERROR | runtime failure, subscriber panic, ownership capacity retired, task finished fatal / panicked |
/// | WARN | attempt failed, attempt timed out, task finished failed / force-aborted, grace exceeded, events dropped (subscriber overflow), admission failure / resource limit |
/// | INFO | task finished completed / canceled, shutdown requested, all stopped within grace |
/// | DEBUG | attempt succeeded / canceled, backoff scheduled, task added / removed, controller submission, other rejections (slot busy, queue full, replaced) |
/// | TRACE | attempt starting, add / remove requested, controller slot transitions |
///
/// Fields (set when the event carries them): `event` (the stable snake-case kind), `task`
/// (taskvisor task name, or the slot / subscriber / component the event names), `run_id`,
/// `attempt`, `duration_ms`, `timeout_ms`, `delay_ms`, `backoff_source`, `outcome`,
/// `rejection`, `exit_code`, `dropped`, `reason`.
///
/// It runs on its own subscriber lane ([`SubscriberExecution::Dedicated`]) because writing a
/// line can block on the output; a slow terminal then never delays metrics subscribers.
///
/// ```
/// use std::sync::Arc;
///
/// use solti_observe::LifecycleLogger;
/// use taskvisor::Subscribe;
///
/// let subscribers: Vec<Arc<dyn Subscribe>> = vec![Arc::new(LifecycleLogger::new())];
/// # drop(subscribers);
/// ```
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct LifecycleLogger;

impl LifecycleLogger {
    /// A lifecycle logger.
    #[must_use]
    pub const fn new() -> Self {
        Self
    }
}

impl Subscribe for LifecycleLogger {
    fn on_event(&self, event: &Event) {
        let level = level_for(event);
        // `tracing` needs the level as a constant; one arm per level keeps the fields in one place.
        match level {
            Level::ERROR => emit!(Level::ERROR, event),
            Level::WARN => emit!(Level::WARN, event),
            Level::INFO => emit!(Level::INFO, event),
            Level::DEBUG => emit!(Level::DEBUG, event),
            _ => emit!(Level::TRACE, event),
        }
    }

    fn execution(&self) -> SubscriberExecution {
        SubscriberExecution::Dedicated
    }

    fn name(&self) -> &str {
        "solti-lifecycle-logger"
    }
}

/// The level for an event; see the table on [`LifecycleLogger`].
pub(crate) fn level_for(e: &Event) -> Level {
    match e.kind {
        EventKind::RuntimeFailure
        | EventKind::SubscriberPanicked
        | EventKind::OwnershipCapacityRetired => Level::ERROR,
        EventKind::AttemptFailed
        | EventKind::AttemptTimedOut
        | EventKind::GraceExceeded
        | EventKind::SubscriberOverflow => Level::WARN,
        EventKind::TaskFinished => match e.outcome_kind {
            Some(TaskOutcomeKind::Fatal | TaskOutcomeKind::Panicked) => Level::ERROR,
            Some(TaskOutcomeKind::Completed | TaskOutcomeKind::Canceled) => Level::INFO,
            Some(TaskOutcomeKind::Rejected) => rejection_level(e.rejection_kind),
            _ => Level::WARN,
        },
        EventKind::ShutdownRequested | EventKind::AllStoppedWithinGrace => Level::INFO,
        EventKind::TaskAddFailed | EventKind::ControllerRejected => {
            rejection_level(e.rejection_kind)
        }
        EventKind::AttemptSucceeded
        | EventKind::AttemptCanceled
        | EventKind::BackoffScheduled
        | EventKind::TaskAdded
        | EventKind::TaskRemoved
        | EventKind::ControllerSubmitted => Level::DEBUG,
        _ => Level::TRACE,
    }
}

/// Routine admission refusals (busy slot, full queue, replaced) are DEBUG: solti reports them
/// through the task itself. Resource limits and commit failures need an operator: WARN.
fn rejection_level(kind: Option<RejectionKind>) -> Level {
    match kind {
        Some(
            RejectionKind::SlotBusy
            | RejectionKind::QueueFull
            | RejectionKind::SupersededByReplace
            | RejectionKind::RemovedFromQueue
            | RejectionKind::ControllerShuttingDown
            | RejectionKind::AlreadyExists
            | RejectionKind::BatchRejected,
        ) => Level::DEBUG,
        _ => Level::WARN,
    }
}

/// `completed`, `failed`, … (taskvisor's label without its `outcome_` prefix).
fn outcome_label(kind: TaskOutcomeKind) -> &'static str {
    let label = kind.as_label();
    label.strip_prefix("outcome_").unwrap_or(label)
}

/// A short human message; the details are in the fields.
fn message(e: &Event) -> &'static str {
    match e.kind {
        EventKind::AttemptStarting => "attempt starting",
        EventKind::AttemptSucceeded => "attempt succeeded",
        EventKind::AttemptCanceled => "attempt canceled",
        EventKind::AttemptFailed => "attempt failed",
        EventKind::AttemptTimedOut => "attempt timed out",
        EventKind::BackoffScheduled => "next attempt scheduled",
        EventKind::TaskAddRequested => "task add requested",
        EventKind::TaskAdded => "task added",
        EventKind::TaskAddFailed => "task add rejected",
        EventKind::TaskRemoveRequested => "task remove requested",
        EventKind::TaskRemoved => "task removed",
        EventKind::TaskFinished => "task finished",
        EventKind::ControllerRejected => "submission rejected",
        EventKind::ControllerSubmitted => "submission accepted",
        EventKind::ControllerSlotTransition => "slot transition",
        EventKind::ShutdownRequested => "shutdown requested",
        EventKind::AllStoppedWithinGrace => "all tasks stopped within grace",
        EventKind::GraceExceeded => "tasks did not stop within grace",
        EventKind::SubscriberOverflow => "lifecycle events dropped",
        EventKind::SubscriberPanicked => "event subscriber panicked",
        EventKind::RuntimeFailure => "supervisor runtime failure",
        EventKind::OwnershipCapacityRetired => "supervisor ownership capacity retired",
        _ => "supervisor event",
    }
}

#[cfg(test)]
mod tests {
    use taskvisor::BackoffSource;

    use super::*;

    #[test]
    fn levels() {
        let finished = |k| Event::new(EventKind::TaskFinished).with_outcome_kind(k);
        assert_eq!(
            level_for(&Event::new(EventKind::AttemptFailed)),
            Level::WARN
        );
        assert_eq!(
            level_for(&Event::new(EventKind::AttemptTimedOut)),
            Level::WARN
        );
        assert_eq!(
            level_for(&Event::subscriber_overflow("x", "full")),
            Level::WARN
        );
        assert_eq!(
            level_for(&Event::subscriber_panicked("x", "boom")),
            Level::ERROR
        );
        assert_eq!(
            level_for(&finished(TaskOutcomeKind::Completed)),
            Level::INFO
        );
        assert_eq!(
            level_for(&finished(TaskOutcomeKind::Panicked)),
            Level::ERROR
        );
        assert_eq!(level_for(&finished(TaskOutcomeKind::Fatal)), Level::ERROR);
        assert_eq!(level_for(&finished(TaskOutcomeKind::Failed)), Level::WARN);
        assert_eq!(
            level_for(&Event::new(EventKind::AttemptSucceeded)),
            Level::DEBUG
        );
        assert_eq!(
            level_for(&Event::new(EventKind::AttemptStarting)),
            Level::TRACE
        );
        let busy =
            Event::new(EventKind::ControllerRejected).with_rejection_kind(RejectionKind::SlotBusy);
        assert_eq!(level_for(&busy), Level::DEBUG);
        let limit =
            Event::new(EventKind::TaskAddFailed).with_rejection_kind(RejectionKind::ResourceLimit);
        assert_eq!(level_for(&limit), Level::WARN);
        let backoff =
            Event::new(EventKind::BackoffScheduled).with_backoff_source(BackoffSource::Failure);
        assert_eq!(level_for(&backoff), Level::DEBUG);
    }

    #[test]
    fn outcome_labels_drop_the_prefix() {
        assert_eq!(
            outcome_label(TaskOutcomeKind::ForceAborted),
            "force_aborted"
        );
        assert_eq!(outcome_label(TaskOutcomeKind::Completed), "completed");
    }
}
