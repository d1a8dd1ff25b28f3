//! `solti_discover::DiscoverMetrics` for [`DiscoveryMetrics`](crate::DiscoveryMetrics).

use std::time::Duration;

use solti_discover::DiscoverMetrics;

use crate::DiscoveryMetrics;

/// Forwards to the inherent methods.
impl DiscoverMetrics for DiscoveryMetrics {
    fn sync_attempt(&self) {
        Self::sync_attempt(self);
    }

    fn sync_success(&self, duration: Duration) {
        Self::sync_success(self, duration);
    }

    fn sync_failure(&self, reason: &'static str) {
        Self::sync_failure(self, reason);
    }

    fn hold(&self, duration: Duration) {
        Self::hold(self, duration);
    }
}
