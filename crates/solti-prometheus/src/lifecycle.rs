//! [`LifecycleMetrics`]: supervisor lifecycle counters fed by taskvisor events.

use std::num::NonZeroUsize;

use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};
use taskvisor::{BackoffSource, Event, EventKind, RejectionKind, Subscribe, TaskOutcomeKind};

use crate::{
    MetricsError, family,
    names::{
        LABEL_EVENT, LABEL_OUTCOME, LABEL_REASON, LABEL_SOURCE, LABEL_SUBSCRIBER,
        SUPERVISOR_ATTEMPT_FAILURES_TOTAL, SUPERVISOR_ATTEMPT_TIMEOUTS_TOTAL,
        SUPERVISOR_ATTEMPTS_IN_FLIGHT, SUPERVISOR_BACKOFFS_TOTAL, SUPERVISOR_DIAGNOSTICS_TOTAL,
        SUPERVISOR_EVENTS_DROPPED_TOTAL, SUPERVISOR_REJECTIONS_TOTAL, SUPERVISOR_RESTARTS_TOTAL,
        SUPERVISOR_TASKS_FINISHED_TOTAL,
    },
};

/// A taskvisor [`Subscribe`] implementation that counts lifecycle events: attempts in
/// flight, restarts, backoffs, timeouts, failures, terminal outcomes, rejections, dropped
/// events and supervisor diagnostics. Register it with the supervisor's subscribers.
///
/// Events are best-effort: under overload the supervisor may drop some for this subscriber
/// (counted in `solti_supervisor_events_dropped_total`). The in-flight gauge never goes
/// below zero. Precise per-attempt numbers come from [`RunnerMetrics`](crate::RunnerMetrics),
/// which is called on the attempt's path.
///
/// ```
/// use std::sync::Arc;
///
/// use solti_prometheus::LifecycleMetrics;
/// use taskvisor::{Event, EventKind, Subscribe};
///
/// let registry = prometheus::Registry::new();
/// let lifecycle = Arc::new(LifecycleMetrics::new(&registry)?);
/// lifecycle.on_event(&Event::new(EventKind::AttemptTimedOut));
/// let subscribers: Vec<Arc<dyn Subscribe>> = vec![lifecycle];
/// # drop(subscribers);
/// # Ok::<(), solti_prometheus::MetricsError>(())
/// ```
#[derive(Clone, Debug)]
pub struct LifecycleMetrics {
    in_flight: IntGauge,
    restarts: IntCounter,
    backoffs: IntCounterVec,
    timeouts: IntCounter,
    failures: IntCounter,
    finished: IntCounterVec,
    rejections: IntCounterVec,
    dropped: IntCounterVec,
    diagnostics: IntCounterVec,
}

impl LifecycleMetrics {
    /// Registers the supervisor families on `registry`.
    ///
    /// # Errors
    /// [`MetricsError::Register`] when a family is already registered there.
    pub fn new(registry: &Registry) -> Result<Self, MetricsError> {
        let metrics = Self {
            in_flight: family::gauge(
                registry,
                SUPERVISOR_ATTEMPTS_IN_FLIGHT,
                "Task attempts running, as seen from supervisor events (embedded tasks included).",
            )?,
            restarts: family::counter(
                registry,
                SUPERVISOR_RESTARTS_TOTAL,
                "Attempts started after the first attempt of a task (retries and periodic restarts).",
            )?,
            backoffs: family::counter_vec(
                registry,
                SUPERVISOR_BACKOFFS_TOTAL,
                "Delays scheduled before another attempt, by source (failure backoff or success interval).",
                &[LABEL_SOURCE],
            )?,
            timeouts: family::counter(
                registry,
                SUPERVISOR_ATTEMPT_TIMEOUTS_TOTAL,
                "Attempts that hit their timeout.",
            )?,
            failures: family::counter(
                registry,
                SUPERVISOR_ATTEMPT_FAILURES_TOTAL,
                "Attempts that failed (error, non-zero exit, panic).",
            )?,
            finished: family::counter_vec(
                registry,
                SUPERVISOR_TASKS_FINISHED_TOTAL,
                "Tasks that reached a terminal outcome, by outcome.",
                &[LABEL_OUTCOME],
            )?,
            rejections: family::counter_vec(
                registry,
                SUPERVISOR_REJECTIONS_TOTAL,
                "Submissions refused before running, by reason.",
                &[LABEL_REASON],
            )?,
            dropped: family::counter_vec(
                registry,
                SUPERVISOR_EVENTS_DROPPED_TOTAL,
                "Lifecycle events a subscriber lost because its queue was full, by subscriber.",
                &[LABEL_SUBSCRIBER],
            )?,
            diagnostics: family::counter_vec(
                registry,
                SUPERVISOR_DIAGNOSTICS_TOTAL,
                "Supervisor diagnostics (runtime failures, subscriber panics, grace exceeded), by event.",
                &[LABEL_EVENT],
            )?,
        };
        metrics.zero_closed_sets();
        Ok(metrics)
    }

    /// Creates the series of closed label sets at 0, so rates and alerts work before the
    /// first occurrence.
    fn zero_closed_sets(&self) {
        for outcome in OUTCOMES {
            self.finished.with_label_values(&[outcome_label(outcome)]);
        }
        for source in [BackoffSource::Success, BackoffSource::Failure] {
            self.backoffs.with_label_values(&[source.as_label()]);
        }
        for reason in REJECTIONS {
            self.rejections.with_label_values(&[reason.as_label()]);
        }
        for event in DIAGNOSTICS {
            self.diagnostics.with_label_values(&[event.as_label()]);
        }
    }

    fn attempt_ended(&self) {
        // The subscriber lane is serial, so check-then-decrement cannot race with itself;
        // a lost AttemptStarting must not push the gauge negative.
        if self.in_flight.get() > 0 {
            self.in_flight.dec();
        }
    }
}

impl Subscribe for LifecycleMetrics {
    fn on_event(&self, e: &Event) {
        match e.kind {
            EventKind::AttemptStarting => {
                self.in_flight.inc();
                if e.attempt.is_some_and(|n| n > 1) {
                    self.restarts.inc();
                }
            }
            EventKind::AttemptSucceeded | EventKind::AttemptCanceled => self.attempt_ended(),
            EventKind::AttemptFailed => {
                self.attempt_ended();
                self.failures.inc();
            }
            EventKind::AttemptTimedOut => {
                self.attempt_ended();
                self.timeouts.inc();
            }
            EventKind::BackoffScheduled => {
                let source = e.backoff_source.map_or(UNKNOWN, |s| s.as_label());
                self.backoffs.with_label_values(&[source]).inc();
            }
            EventKind::TaskFinished => {
                let outcome = e.outcome_kind.map_or(UNKNOWN, outcome_label);
                self.finished.with_label_values(&[outcome]).inc();
            }
            EventKind::TaskAddFailed | EventKind::ControllerRejected => {
                let reason = e.rejection_kind.map_or(UNKNOWN, |r| r.as_label());
                self.rejections.with_label_values(&[reason]).inc();
            }
            EventKind::SubscriberOverflow => {
                // Names come from the fixed set of configured subscribers and relays.
                let subscriber = e.task.as_deref().unwrap_or(UNKNOWN);
                self.dropped
                    .with_label_values(&[subscriber])
                    .inc_by(e.dropped.unwrap_or(1));
            }
            EventKind::RuntimeFailure
            | EventKind::SubscriberPanicked
            | EventKind::GraceExceeded
            | EventKind::OwnershipCapacityRetired => {
                self.diagnostics
                    .with_label_values(&[e.kind.as_label()])
                    .inc();
            }
            _ => {}
        }
    }

    fn name(&self) -> &str {
        SUBSCRIBER_NAME
    }

    fn queue_capacity(&self) -> NonZeroUsize {
        QUEUE_CAPACITY
    }
}

/// `completed`, `failed`, … (taskvisor's label without its `outcome_` prefix).
fn outcome_label(kind: TaskOutcomeKind) -> &'static str {
    let label = kind.as_label();
    label.strip_prefix("outcome_").unwrap_or(label)
}

/// The subscriber name taskvisor reports in its diagnostics.
const SUBSCRIBER_NAME: &str = "solti-prometheus";
/// Counting is cheap, so a deeper queue than taskvisor's default absorbs bursts of
/// thousands of short tasks instead of dropping their events.
const QUEUE_CAPACITY: NonZeroUsize = NonZeroUsize::new(8192).unwrap();
/// Label value for a field the event did not carry.
const UNKNOWN: &str = "unknown";
/// Terminal outcomes pre-created at 0.
const OUTCOMES: [TaskOutcomeKind; 7] = [
    TaskOutcomeKind::Completed,
    TaskOutcomeKind::Failed,
    TaskOutcomeKind::Fatal,
    TaskOutcomeKind::Canceled,
    TaskOutcomeKind::ForceAborted,
    TaskOutcomeKind::Panicked,
    TaskOutcomeKind::Rejected,
];
/// Rejection reasons pre-created at 0.
const REJECTIONS: [RejectionKind; 9] = [
    RejectionKind::AlreadyExists,
    RejectionKind::BatchRejected,
    RejectionKind::SlotBusy,
    RejectionKind::QueueFull,
    RejectionKind::SupersededByReplace,
    RejectionKind::RemovedFromQueue,
    RejectionKind::ControllerShuttingDown,
    RejectionKind::AdmissionFailed,
    RejectionKind::ResourceLimit,
];
/// Diagnostic events pre-created at 0.
const DIAGNOSTICS: [EventKind; 4] = [
    EventKind::RuntimeFailure,
    EventKind::SubscriberPanicked,
    EventKind::GraceExceeded,
    EventKind::OwnershipCapacityRetired,
];
