//! [`RunnerMetrics`]: the [`MetricsBackend`] runners report through.

use std::time::Duration;

use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec, Registry};
use solti_runner::{AttemptOutcome, MetricsBackend};

use crate::{
    MetricsError, family,
    names::{
        LABEL_KIND, LABEL_OUTCOME, LABEL_REASON, LABEL_RUNNER, RUNNER_ATTEMPT_DURATION_SECONDS,
        RUNNER_ATTEMPTS_COMPLETED_TOTAL, RUNNER_ATTEMPTS_IN_FLIGHT, RUNNER_ATTEMPTS_STARTED_TOTAL,
        RUNNER_ERRORS_TOTAL,
    },
};

/// Runner-level metrics: attempts started, in flight and completed by outcome, attempt
/// durations, and runner errors, labelled by runner name and task kind.
///
/// Every call is a few atomic operations behind a read lock; it never blocks on I/O.
///
/// ```
/// use std::{sync::Arc, time::Duration};
///
/// use solti_prometheus::RunnerMetrics;
/// use solti_runner::{AttemptOutcome, MetricsBackend};
///
/// let registry = prometheus::Registry::new();
/// let backend: Arc<dyn MetricsBackend> = Arc::new(RunnerMetrics::new(&registry)?);
/// backend.task_started("default", "subprocess");
/// backend.task_completed("default", "subprocess", AttemptOutcome::Success, Duration::from_millis(120));
/// # Ok::<(), solti_prometheus::MetricsError>(())
/// ```
#[derive(Clone, Debug)]
pub struct RunnerMetrics {
    started: IntCounterVec,
    completed: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGaugeVec,
    errors: IntCounterVec,
    /// The output hub's families (`solti_output_*`).
    output: crate::output::OutputMetrics,
}

impl RunnerMetrics {
    /// Registers the runner families on `registry`.
    ///
    /// # Errors
    /// [`MetricsError::Register`] when a family is already registered there.
    pub fn new(registry: &Registry) -> Result<Self, MetricsError> {
        Ok(Self {
            started: family::counter_vec(
                registry,
                RUNNER_ATTEMPTS_STARTED_TOTAL,
                "Task attempts started, by runner and task kind.",
                &[LABEL_RUNNER, LABEL_KIND],
            )?,
            completed: family::counter_vec(
                registry,
                RUNNER_ATTEMPTS_COMPLETED_TOTAL,
                "Task attempts ended, by runner, task kind and outcome.",
                &[LABEL_RUNNER, LABEL_KIND, LABEL_OUTCOME],
            )?,
            duration: family::histogram_vec(
                registry,
                RUNNER_ATTEMPT_DURATION_SECONDS,
                "Duration of task attempts in seconds, by runner, task kind and outcome.",
                &[LABEL_RUNNER, LABEL_KIND, LABEL_OUTCOME],
                ATTEMPT_BUCKETS,
            )?,
            in_flight: family::gauge_vec(
                registry,
                RUNNER_ATTEMPTS_IN_FLIGHT,
                "Task attempts currently running, by runner and task kind.",
                &[LABEL_RUNNER, LABEL_KIND],
            )?,
            errors: family::counter_vec(
                registry,
                RUNNER_ERRORS_TOTAL,
                "Runner failures to build or start a task, by runner and reason.",
                &[LABEL_RUNNER, LABEL_REASON],
            )?,
            output: crate::output::OutputMetrics::new(registry)?,
        })
    }
}

impl MetricsBackend for RunnerMetrics {
    fn task_started(&self, runner: &str, kind: &str) {
        self.started.with_label_values(&[runner, kind]).inc();
        self.in_flight.with_label_values(&[runner, kind]).inc();
    }

    fn task_completed(
        &self,
        runner: &str,
        kind: &str,
        outcome: AttemptOutcome,
        duration: Duration,
    ) {
        let labels = [runner, kind, outcome.as_label()];
        self.completed.with_label_values(&labels).inc();
        self.duration
            .with_label_values(&labels)
            .observe(duration.as_secs_f64());
        let in_flight = self.in_flight.with_label_values(&[runner, kind]);
        // A completion without a start (a backend swapped in mid-attempt) must not drive the
        // gauge negative.
        if in_flight.get() > 0 {
            in_flight.dec();
        }
    }

    fn runner_error(&self, runner: &str, reason: &'static str) {
        self.errors.with_label_values(&[runner, reason]).inc();
    }

    fn output_retained_bytes(&self, bytes: u64) {
        self.output.retained(bytes);
    }

    fn output_trimmed(&self, reason: &'static str, events: u64) {
        self.output.trimmed(reason, events);
    }

    fn output_lagged(&self, events: u64) {
        self.output.lagged(events);
    }
}

/// Attempt durations span milliseconds (a failed spawn) to hours (a backup job).
pub const ATTEMPT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];
