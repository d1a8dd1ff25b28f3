//! [`ApiMetrics`]: request counts, durations and in-flight requests of the network API.

use std::time::Duration;

use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec, Registry};

use crate::{
    MetricsError, family,
    guard::BoundedLabel,
    names::{
        API_IN_FLIGHT_REQUESTS, API_REQUEST_DURATION_SECONDS, API_REQUESTS_TOTAL, LABEL_METHOD,
        LABEL_PATH, LABEL_STATUS, LABEL_TRANSPORT, OTHER,
    },
};

/// Records API requests. Its inherent methods have the names and arguments of
/// `solti_api::ApiObserver` (with the transport as `"http"` / `"grpc"`); with the `api`
/// feature it implements that trait.
///
/// Families: `solti_api_requests_total{transport,method,path,status}`,
/// `solti_api_request_duration_seconds{transport,method,path}` and
/// `solti_api_in_flight_requests{transport}` (both transports present at 0 from the start).
/// `path` is the route template (or the gRPC method path), `status` the HTTP code or the gRPC
/// code number.
///
/// Labels stay bounded even if a caller passes raw request data: the transport must be
/// `http` or `grpc`; methods and statuses are limited to 32 / 64 distinct short values, the
/// rest are recorded as `other`. The route is the handler's template, a `&'static str`.
///
/// ```
/// use std::time::Duration;
///
/// use solti_prometheus::ApiMetrics;
///
/// let registry = prometheus::Registry::new();
/// let api = ApiMetrics::new(&registry)?;
/// api.request_started("http", "GET", "/api/v1/tasks/{id}");
/// api.request_finished("http", "GET", "/api/v1/tasks/{id}", "200", Duration::from_millis(3));
/// api.request_started("grpc", "ListTasks", "/solti.task.v1.TaskService/ListTasks");
/// api.request_finished("grpc", "ListTasks", "/solti.task.v1.TaskService/ListTasks", "0", Duration::from_millis(1));
/// # Ok::<(), solti_prometheus::MetricsError>(())
/// ```
#[derive(Debug)]
pub struct ApiMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGaugeVec,
    methods: BoundedLabel,
    statuses: BoundedLabel,
}

impl ApiMetrics {
    /// Registers the API families on `registry`.
    ///
    /// # Errors
    /// [`MetricsError::Register`] when a family is already registered there.
    pub fn new(registry: &Registry) -> Result<Self, MetricsError> {
        let metrics = Self {
            requests: family::counter_vec(
                registry,
                API_REQUESTS_TOTAL,
                "API requests answered, by transport, method, path (route template) and status (HTTP code or gRPC code number).",
                &[LABEL_TRANSPORT, LABEL_METHOD, LABEL_PATH, LABEL_STATUS],
            )?,
            duration: family::histogram_vec(
                registry,
                API_REQUEST_DURATION_SECONDS,
                "API request duration in seconds, by transport, method and path (route template).",
                &[LABEL_TRANSPORT, LABEL_METHOD, LABEL_PATH],
                REQUEST_BUCKETS,
            )?,
            in_flight: family::gauge_vec(
                registry,
                API_IN_FLIGHT_REQUESTS,
                "API requests whose response is not ready yet, by transport.",
                &[LABEL_TRANSPORT],
            )?,
            methods: BoundedLabel::new(MAX_METHODS),
            statuses: BoundedLabel::new(MAX_STATUSES),
        };
        for transport in ["http", "grpc"] {
            metrics.in_flight.with_label_values(&[transport]);
        }
        Ok(metrics)
    }

    /// A request arrived on `transport` for `method` on the route template `route`.
    pub fn request_started(&self, transport: &str, method: &str, route: &'static str) {
        let _ = (method, route);
        self.in_flight
            .with_label_values(&[transport_label(transport)])
            .inc();
    }

    /// The request was answered with `status` (HTTP code as text, or gRPC code number) after
    /// `duration`.
    pub fn request_finished(
        &self,
        transport: &str,
        method: &str,
        route: &'static str,
        status: &str,
        duration: Duration,
    ) {
        let transport = transport_label(transport);
        let method = self.methods.admit(method);
        let status = self.statuses.admit(status);
        self.requests
            .with_label_values(&[transport, method, route, status])
            .inc();
        self.duration
            .with_label_values(&[transport, method, route])
            .observe(duration.as_secs_f64());
        let in_flight = self.in_flight.with_label_values(&[transport]);
        if in_flight.get() > 0 {
            in_flight.dec();
        }
    }
}

fn transport_label(transport: &str) -> &'static str {
    match transport {
        "http" => "http",
        "grpc" => "grpc",
        _ => OTHER,
    }
}

/// API calls are in-memory operations: sub-millisecond to a few seconds (a stream counts
/// until it is open).
pub const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Distinct method values kept before the rest become `other`.
const MAX_METHODS: usize = 32;
/// Distinct status values kept before the rest become `other`.
const MAX_STATUSES: usize = 64;
