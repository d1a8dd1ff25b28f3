//! [`LifecycleMetrics`]: supervisor lifecycle counters fed by taskvisor events.

use std::num::NonZeroUsize;

use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};
use taskvisor::{BackoffSource, Event, EventKind, Subscribe, TaskOutcomeKind};

use crate::{
    MetricsError, family,
    names::{
        LABEL_EVENT, LABEL_REASON, LABEL_SOURCE, SV_ATTEMPT_FAILURES_TOTAL, SV_DIAGNOSTICS_TOTAL,
        SV_SUBSCRIBER_OVERFLOW_TOTAL, SV_SUBSCRIBER_PANICKED_TOTAL, SV_TASK_BACKOFF_COUNT_TOTAL,
        SV_TASK_RESTARTS_TOTAL, SV_TASK_TERMINAL_TOTAL, SV_TASK_TIMEOUTS_TOTAL, SV_TASKS_IN_FLIGHT,
    },
};

/// A taskvisor [`Subscribe`] implementation that counts lifecycle events (`solti_sv_*`):
/// attempts in flight, restarts, backoffs by source, terminal outcomes by reason, timeouts,
/// lost events and subscriber panics, plus attempt failures and other supervisor
/// diagnostics. Register it with the supervisor's subscribers.
///
/// Events are best-effort: under overload the supervisor may drop some for this subscriber
/// (counted in `solti_sv_subscriber_overflow_total`). The in-flight gauge never goes below
/// zero. Precise per-attempt numbers come from [`RunnerMetrics`](crate::RunnerMetrics),
/// which is called on the attempt's path; submissions and refusals are counted there too.
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
    terminal: IntCounterVec,
    timeouts: IntCounter,
    overflow: IntCounter,
    panicked: IntCounter,
    failures: IntCounter,
    diagnostics: IntCounterVec,
}

impl LifecycleMetrics {
    /// Registers the supervision families on `registry`, every known label value at 0.
    ///
    /// # Errors
    /// [`MetricsError::Register`] when a family is already registered there.
    pub fn new(registry: &Registry) -> Result<Self, MetricsError> {
        let metrics = Self {
            in_flight: family::gauge(
                registry,
                SV_TASKS_IN_FLIGHT,
                "Task attempts running, as seen from supervisor events (embedded tasks included).",
            )?,
            restarts: family::counter(
                registry,
                SV_TASK_RESTARTS_TOTAL,
                "Attempts started after the first attempt of a task (retries and periodic restarts).",
            )?,
            backoffs: family::counter_vec(
                registry,
                SV_TASK_BACKOFF_COUNT_TOTAL,
                "Delays scheduled before another attempt, by source (failure backoff or success interval).",
                &[LABEL_SOURCE],
            )?,
            terminal: family::counter_vec(
                registry,
                SV_TASK_TERMINAL_TOTAL,
                "Tasks that left the supervisor, by reason.",
                &[LABEL_REASON],
            )?,
            timeouts: family::counter(
                registry,
                SV_TASK_TIMEOUTS_TOTAL,
                "Attempts that hit their timeout.",
            )?,
            overflow: family::counter(
                registry,
                SV_SUBSCRIBER_OVERFLOW_TOTAL,
                "Supervisor events lost because a subscriber's queue was full.",
            )?,
            panicked: family::counter(
                registry,
                SV_SUBSCRIBER_PANICKED_TOTAL,
                "Subscriber callbacks that panicked.",
            )?,
            failures: family::counter(
                registry,
                SV_ATTEMPT_FAILURES_TOTAL,
                "Attempts that failed (error, non-zero exit, panic).",
            )?,
            diagnostics: family::counter_vec(
                registry,
                SV_DIAGNOSTICS_TOTAL,
                "Other supervisor diagnostics (runtime failures, grace exceeded, capacity retired), by event.",
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
            self.terminal.with_label_values(&[terminal_reason(outcome)]);
        }
        for source in [BackoffSource::Success, BackoffSource::Failure] {
            self.backoffs.with_label_values(&[source.as_label()]);
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
                let reason = e.outcome_kind.map_or(UNKNOWN, terminal_reason);
                self.terminal.with_label_values(&[reason]).inc();
            }
            EventKind::SubscriberOverflow => {
                self.overflow.inc_by(e.dropped.unwrap_or(1));
            }
            EventKind::SubscriberPanicked => self.panicked.inc(),
            EventKind::RuntimeFailure
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

/// The `reason` of a task's terminal outcome, in the SDK's words: a task whose restart
/// policy or retry budget ended on a failure is `exhausted`, a permanent failure `fatal`;
/// the rest keep taskvisor's label without its `outcome_` prefix (`completed`, `canceled`,
/// `force_aborted`, `panicked`, `rejected`).
fn terminal_reason(kind: TaskOutcomeKind) -> &'static str {
    match kind {
        TaskOutcomeKind::Failed => "exhausted",
        TaskOutcomeKind::Fatal => "fatal",
        other => {
            let label = other.as_label();
            label.strip_prefix("outcome_").unwrap_or(label)
        }
    }
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
/// Diagnostic events pre-created at 0.
const DIAGNOSTICS: [EventKind; 3] = [
    EventKind::RuntimeFailure,
    EventKind::GraceExceeded,
    EventKind::OwnershipCapacityRetired,
];
