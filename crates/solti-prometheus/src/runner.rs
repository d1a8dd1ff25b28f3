//! [`RunnerMetrics`]: the [`MetricsBackend`] runners and the supervisor report through.

use std::{
    sync::{PoisonError, RwLock},
    time::Duration,
};

use prometheus::{HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Registry};
use solti_runner::{AttemptOutcome, MetricsBackend};

use crate::{
    MetricsError, family,
    names::{
        CTRL_REJECTIONS_TOTAL, CTRL_SUBMISSIONS_TOTAL, LABEL_ERROR, LABEL_KIND, LABEL_OUTCOME,
        LABEL_REASON, LABEL_RUNNER, RUNNER_ATTEMPTS_IN_FLIGHT, RUNNER_ERRORS_TOTAL,
        RUNNER_TASK_DURATION_SECONDS, RUNNER_TASKS_COMPLETED_TOTAL, RUNNER_TASKS_STARTED_TOTAL,
    },
};

/// Runner-level metrics (attempts started and completed by outcome, attempt durations,
/// runner errors, by runner name; attempts in flight by runner and task kind) and the
/// supervisor's submissions and refusals (`solti_ctrl_*`).
///
/// The series of a runner are created at 0 for every outcome and error label the first time
/// the runner is named: by [`register_runner`](Self::register_runner) (the agent calls it
/// for each runner it registers) or by its first measurement.
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
/// let metrics = Arc::new(RunnerMetrics::new(&registry)?);
/// metrics.register_runner("default");
/// let backend: Arc<dyn MetricsBackend> = metrics;
/// backend.task_started("default", "subprocess");
/// backend.task_completed("default", "subprocess", AttemptOutcome::Success, Duration::from_millis(120));
/// # Ok::<(), solti_prometheus::MetricsError>(())
/// ```
#[derive(Debug)]
pub struct RunnerMetrics {
    started: IntCounterVec,
    completed: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGaugeVec,
    errors: IntCounterVec,
    /// The output hub's families (`solti_output_*`).
    output: crate::output::OutputMetrics,
    submissions: IntCounter,
    rejections: IntCounterVec,
    /// Runners whose series exist already: a handful of short names, scanned on each
    /// attempt start and runner error, written once per runner.
    known: RwLock<Vec<Box<str>>>,
}

impl RunnerMetrics {
    /// Registers the runner and controller families on `registry`, with every rejection
    /// reason at 0.
    ///
    /// # Errors
    /// [`MetricsError::Register`] when a family is already registered there.
    pub fn new(registry: &Registry) -> Result<Self, MetricsError> {
        let metrics = Self {
            started: family::counter_vec(
                registry,
                RUNNER_TASKS_STARTED_TOTAL,
                "Task attempts started, by runner.",
                &[LABEL_RUNNER],
            )?,
            completed: family::counter_vec(
                registry,
                RUNNER_TASKS_COMPLETED_TOTAL,
                "Task attempts ended, by runner and outcome.",
                &[LABEL_RUNNER, LABEL_OUTCOME],
            )?,
            duration: family::histogram_vec(
                registry,
                RUNNER_TASK_DURATION_SECONDS,
                "Duration of task attempts in seconds, by runner and outcome.",
                &[LABEL_RUNNER, LABEL_OUTCOME],
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
                "Runner failures to build or start a task, by runner and error.",
                &[LABEL_RUNNER, LABEL_ERROR],
            )?,
            output: crate::output::OutputMetrics::new(registry)?,
            submissions: family::counter(
                registry,
                CTRL_SUBMISSIONS_TOTAL,
                "Submissions the supervisor took to admission.",
            )?,
            rejections: family::counter_vec(
                registry,
                CTRL_REJECTIONS_TOTAL,
                "Submissions refused before their task ran, by reason.",
                &[LABEL_REASON],
            )?,
            known: RwLock::new(Vec::new()),
        };
        for reason in REJECTION_REASONS {
            metrics.rejections.with_label_values(&[reason]);
        }
        Ok(metrics)
    }

    /// Creates the series of `runner` at 0: started, and completed and durations for every
    /// outcome, and errors for every error label. Idempotent; the agent calls it for each
    /// runner it registers, so dashboards have series before the first task.
    pub fn register_runner(&self, runner: &str) {
        let is_known = |known: &[Box<str>]| known.iter().any(|k| &**k == runner);
        if is_known(&self.known.read().unwrap_or_else(PoisonError::into_inner)) {
            return;
        }
        {
            let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
            if is_known(&known) {
                return;
            }
            known.push(runner.into());
        }
        self.started.with_label_values(&[runner]);
        for outcome in OUTCOMES {
            let labels = [runner, outcome.as_label()];
            self.completed.with_label_values(&labels);
            self.duration.with_label_values(&labels);
        }
        for error in RUNNER_ERRORS {
            self.errors.with_label_values(&[runner, error]);
        }
    }
}

impl MetricsBackend for RunnerMetrics {
    fn task_started(&self, runner: &str, kind: &str) {
        self.register_runner(runner);
        self.started.with_label_values(&[runner]).inc();
        self.in_flight.with_label_values(&[runner, kind]).inc();
    }

    fn task_completed(
        &self,
        runner: &str,
        kind: &str,
        outcome: AttemptOutcome,
        duration: Duration,
    ) {
        // The series exist since this attempt's start.
        let labels = [runner, outcome.as_label()];
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
        self.register_runner(runner);
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

    fn task_submitted(&self) {
        self.submissions.inc();
    }

    fn task_rejected(&self, reason: &'static str) {
        self.rejections.with_label_values(&[reason]).inc();
    }
}

/// Attempt durations span milliseconds (a failed spawn) to hours (a backup job).
pub const ATTEMPT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// The attempt outcomes pre-created per runner.
const OUTCOMES: [AttemptOutcome; 4] = [
    AttemptOutcome::Success,
    AttemptOutcome::Failure,
    AttemptOutcome::Canceled,
    AttemptOutcome::Timeout,
];

/// The runner error labels of the subprocess runner, pre-created per runner.
pub const RUNNER_ERRORS: [&str; 8] = [
    "spawn",
    "spawn_timeout",
    "not_found",
    "script_write",
    "cgroup",
    "isolation",
    "config",
    "spec",
];

/// The refusal reasons the supervisor reports, pre-created at 0.
pub const REJECTION_REASONS: [&str; 8] = [
    "slot_busy",
    "slot_full",
    "superseded",
    "removed",
    "shutting_down",
    "add_failed",
    "resource_limit",
    "other",
];
