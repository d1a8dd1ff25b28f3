//! [`DiscoveryMetrics`]: control-plane sync attempts, results and waits.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, Registry};

use crate::{
    MetricsError, family,
    names::{
        DISCOVER_ATTEMPTS_TOTAL, DISCOVER_DURATION_SECONDS, DISCOVER_FAILURES_TOTAL,
        DISCOVER_HOLD_SECONDS, DISCOVER_LAST_SUCCESS_TIMESTAMP_SECONDS, DISCOVER_OUTCOMES_TOTAL,
        LABEL_OUTCOME, LABEL_REASON,
    },
};

/// Records discovery (heartbeat) syncs. Its inherent methods have the names and arguments of
/// `solti_discover::DiscoverMetrics`; with the `discover` feature it implements that trait.
///
/// Families: `solti_discover_attempts_total`, `solti_discover_outcomes_total{outcome}`
/// (`success`, `failure`), `solti_discover_failures_total{reason}`,
/// `solti_discover_duration_seconds` (successful syncs),
/// `solti_discover_last_success_timestamp_seconds` and `solti_discover_hold_seconds`; every
/// outcome and reason exists at 0 from the start.
///
/// ```
/// use std::time::Duration;
///
/// use solti_prometheus::DiscoveryMetrics;
///
/// let registry = prometheus::Registry::new();
/// let discovery = DiscoveryMetrics::new(&registry)?;
/// discovery.sync_attempt();
/// discovery.sync_failure("timeout");
/// discovery.hold(Duration::from_secs(2));
/// # Ok::<(), solti_prometheus::MetricsError>(())
/// ```
#[derive(Clone, Debug)]
pub struct DiscoveryMetrics {
    attempts: IntCounter,
    outcomes: IntCounterVec,
    failures: IntCounterVec,
    duration: Histogram,
    hold: Histogram,
    last_success: IntGauge,
}

impl DiscoveryMetrics {
    /// Registers the discovery families on `registry`.
    ///
    /// # Errors
    /// [`MetricsError::Register`] when a family is already registered there.
    pub fn new(registry: &Registry) -> Result<Self, MetricsError> {
        let metrics = Self {
            attempts: family::counter(
                registry,
                DISCOVER_ATTEMPTS_TOTAL,
                "Sync (heartbeat) attempts to the control plane.",
            )?,
            outcomes: family::counter_vec(
                registry,
                DISCOVER_OUTCOMES_TOTAL,
                "Syncs by outcome (success, failure).",
                &[LABEL_OUTCOME],
            )?,
            failures: family::counter_vec(
                registry,
                DISCOVER_FAILURES_TOTAL,
                "Failed syncs, by reason.",
                &[LABEL_REASON],
            )?,
            duration: family::histogram(
                registry,
                DISCOVER_DURATION_SECONDS,
                "Duration of successful syncs in seconds.",
                SYNC_BUCKETS,
            )?,
            hold: family::histogram(
                registry,
                DISCOVER_HOLD_SECONDS,
                "Time waited (backoff or retry-after) before the next sync attempt, in seconds.",
                HOLD_BUCKETS,
            )?,
            last_success: family::gauge(
                registry,
                DISCOVER_LAST_SUCCESS_TIMESTAMP_SECONDS,
                "Unix time of the last successful sync (0 = never).",
            )?,
        };
        // The documented reasons exist at 0 from the start, so alerts on their rate work.
        for reason in FAILURE_REASONS {
            metrics.failures.with_label_values(&[reason]);
        }
        for outcome in [SUCCESS, FAILURE] {
            metrics.outcomes.with_label_values(&[outcome]);
        }
        Ok(metrics)
    }

    /// A sync attempt starts.
    pub fn sync_attempt(&self) {
        self.attempts.inc();
    }

    /// A sync succeeded after `duration`.
    pub fn sync_success(&self, duration: Duration) {
        self.outcomes.with_label_values(&[SUCCESS]).inc();
        self.duration.observe(duration.as_secs_f64());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_success
            .set(i64::try_from(now).unwrap_or(i64::MAX));
    }

    /// A sync failed; `reason` is a short fixed label (`transport`, `timeout`, …).
    pub fn sync_failure(&self, reason: &'static str) {
        self.outcomes.with_label_values(&[FAILURE]).inc();
        self.failures.with_label_values(&[reason]).inc();
    }

    /// The next attempt waits `duration` (backoff or the control plane's retry-after).
    pub fn hold(&self, duration: Duration) {
        self.hold.observe(duration.as_secs_f64());
    }
}

const SUCCESS: &str = "success";
const FAILURE: &str = "failure";

/// One request/response round trip to the control plane.
pub const SYNC_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Heartbeat periods and backoffs: a fraction of a second to minutes.
pub const HOLD_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// The failure reasons `solti-discover` reports, pre-created at 0.
pub const FAILURE_REASONS: [&str; 8] = [
    "transport",
    "timeout",
    "http_status",
    "grpc_status",
    "rejected",
    "unauthorized",
    "encode",
    "decode",
];
