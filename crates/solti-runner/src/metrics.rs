//! The metrics interface runners and the supervisor report through.

use std::time::Duration;

/// How one attempt ended, as seen by metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// The attempt succeeded.
    Success,
    /// The attempt failed (non-zero exit, error, panic).
    Failure,
    /// The attempt hit its timeout.
    Timeout,
    /// The attempt was cancelled (cancel, delete, replace, shutdown).
    Canceled,
}

impl AttemptOutcome {
    /// A stable lowercase label: `success`, `failure`, `timeout`, `canceled`.
    #[must_use]
    pub const fn as_label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Timeout => "timeout",
            Self::Canceled => "canceled",
        }
    }
}

/// Receives runner-level measurements. Implementations must be cheap and must never block:
/// they are called on the attempt's path. Labels passed in are bounded (runner names, kind
/// names, outcome labels); never task ids.
pub trait MetricsBackend: Send + Sync + 'static {
    /// An attempt of a task of `kind` started on `runner`.
    fn task_started(&self, runner: &str, kind: &str);
    /// An attempt ended with `outcome` after `duration`.
    fn task_completed(&self, runner: &str, kind: &str, outcome: AttemptOutcome, duration: Duration);
    /// A runner failed to build or start a task; `reason` is a short fixed label
    /// (e.g. `spawn`, `script_write`, `cgroup`).
    fn runner_error(&self, runner: &str, reason: &'static str);

    /// The output hub now retains `bytes` (charged bytes of every task's window together).
    /// The default ignores it.
    fn output_retained_bytes(&self, bytes: u64) {
        let _ = bytes;
    }

    /// `events` were dropped from the front of a task's output window by a bound; `reason`
    /// is `task_bytes` (the task's own retention) or `global_bytes` (the budget of all
    /// tasks). The default ignores it.
    fn output_trimmed(&self, reason: &'static str, events: u64) {
        let _ = (reason, events);
    }

    /// A reader fell behind a task's output window and missed `events` events (it got
    /// `Lagged`). The default ignores it.
    fn output_lagged(&self, events: u64) {
        let _ = events;
    }

    /// The supervisor took a submission to admission (it passed validation): every task the
    /// supervisor is asked to run, embedded ones included, whether it is then admitted or
    /// refused. Default: nothing.
    fn task_submitted(&self) {}
    /// The supervisor refused a submission before its task ran; `reason` is a short fixed
    /// label (`slot_busy`, `slot_full`, `superseded`, `removed`, `shutting_down`,
    /// `add_failed`, `resource_limit`, `other`). Default: nothing.
    fn task_rejected(&self, reason: &'static str) {
        let _ = reason;
    }
}

/// Discards every measurement. The default.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct NoOpMetrics;

impl MetricsBackend for NoOpMetrics {
    fn task_started(&self, _runner: &str, _kind: &str) {}
    fn task_completed(
        &self,
        _runner: &str,
        _kind: &str,
        _outcome: AttemptOutcome,
        _duration: Duration,
    ) {
    }
    fn runner_error(&self, _runner: &str, _reason: &'static str) {}
}
