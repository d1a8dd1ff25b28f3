//! `solti_api::ApiObserver` for [`ApiMetrics`](crate::ApiMetrics).

use std::time::Duration;

use solti_api::{ApiObserver, Transport};

use crate::ApiMetrics;

/// Forwards to the inherent methods with the transport as `"http"` / `"grpc"`.
impl ApiObserver for ApiMetrics {
    fn request_started(&self, transport: Transport, method: &str, route: &'static str) {
        Self::request_started(self, transport.as_str(), method, route);
    }

    fn request_finished(
        &self,
        transport: Transport,
        method: &str,
        route: &'static str,
        status: &str,
        duration: Duration,
    ) {
        Self::request_finished(self, transport.as_str(), method, route, status, duration);
    }
}
