//! The metrics hook: [`DiscoverMetrics`] and its no-op default.

use std::time::Duration;

/// Observer of the heartbeat, called from the heartbeat task for every attempt, success,
/// failure and extra wait. Implementations must be cheap and must not block: they run
/// inline in the heartbeat loop.
///
/// `solti-prometheus` implements it behind its `discover` feature; pass one with
/// [`DiscoverConfigBuilder::with_metrics`](crate::DiscoverConfigBuilder::with_metrics).
pub trait DiscoverMetrics: Send + Sync + 'static {
    /// A Sync request is about to be sent.
    fn sync_attempt(&self);

    /// The control plane accepted a Sync (`success = true`); `duration` is the round trip.
    fn sync_success(&self, duration: Duration);

    /// A Sync failed. `reason` is one short fixed label: `transport`, `timeout`,
    /// `http_status`, `grpc_status`, `rejected` (`success = false`), `unauthorized`,
    /// `encode`, `decode`.
    fn sync_failure(&self, reason: &'static str);

    /// Time the loop will wait (backoff or the control plane's `retry_after_s`) before the
    /// next attempt, instead of its regular schedule.
    fn hold(&self, duration: Duration);
}

/// A [`DiscoverMetrics`] that records nothing; the default.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoOpDiscoverMetrics;

impl DiscoverMetrics for NoOpDiscoverMetrics {
    fn sync_attempt(&self) {}

    fn sync_success(&self, _duration: Duration) {}

    fn sync_failure(&self, _reason: &'static str) {}

    fn hold(&self, _duration: Duration) {}
}

/// Failure labels passed to [`DiscoverMetrics::sync_failure`], defined once.
pub(crate) mod reason {
    pub(crate) const TRANSPORT: &str = "transport";
    pub(crate) const TIMEOUT: &str = "timeout";
    pub(crate) const HTTP_STATUS: &str = "http_status";
    pub(crate) const GRPC_STATUS: &str = "grpc_status";
    pub(crate) const REJECTED: &str = "rejected";
    pub(crate) const UNAUTHORIZED: &str = "unauthorized";
    pub(crate) const ENCODE: &str = "encode";
    pub(crate) const DECODE: &str = "decode";
}
