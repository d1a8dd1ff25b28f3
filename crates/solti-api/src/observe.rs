//! Request observation hook (metrics, access logs).

use std::time::Duration;

/// Which transport served a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// HTTP/JSON (including the SSE log stream).
    Http,
    /// gRPC.
    Grpc,
}

impl Transport {
    /// `"http"` or `"grpc"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Grpc => "grpc",
        }
    }
}

/// Observes every request both transports serve, including rejected ones (401, 404 route,
/// 413). Implement it to record metrics; the methods are called on the request path, so they
/// must be cheap and must not block.
///
/// - `method`: the HTTP method (`GET`, …) or the gRPC method name (`SubmitTask`, …).
/// - `route`: the route template (`/api/v1/tasks/{id}`), never a concrete id; for gRPC the
///   full method path (`/solti.task.v1.TaskService/SubmitTask`). Requests that match no route
///   report [`UNMATCHED_ROUTE`].
/// - `status`: the HTTP status code as text (`"200"`) or the gRPC status code number as
///   text (`"0"` for OK, `"5"` for NOT_FOUND), as the published dashboard expects.
/// - `duration`: time until the response head was ready. For streams (SSE, `StreamTaskLogs`)
///   this is the time to open the stream, not its lifetime.
pub trait ApiObserver: Send + Sync + 'static {
    /// A request arrived.
    fn request_started(&self, transport: Transport, method: &str, route: &'static str);
    /// A response head was produced for a request.
    fn request_finished(
        &self,
        transport: Transport,
        method: &str,
        route: &'static str,
        status: &str,
        duration: Duration,
    );
}

/// The route reported for requests that match no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// An [`ApiObserver`] that does nothing (the default).
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct NoOpApiObserver;

impl ApiObserver for NoOpApiObserver {
    fn request_started(&self, _: Transport, _: &str, _: &'static str) {}
    fn request_finished(&self, _: Transport, _: &str, _: &'static str, _: &str, _: Duration) {}
}
