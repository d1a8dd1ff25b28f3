//! `GET /healthz` and `GET /readyz`: no auth, nothing revealed but the state.

use axum::{
    Router,
    body::Body,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::Response,
    routing::get,
};

use crate::{Health, Readiness};

/// Path of the liveness probe: 200 `{"status":"ok"}` while the process serves.
pub const ROUTE_HEALTHZ: &str = "/healthz";
/// Path of the readiness probe: 200 `{"status":"ready"}` once ready, 503
/// `{"status":"starting"}` / `{"status":"shutting down"}` (with `Retry-After`) otherwise.
pub const ROUTE_READYZ: &str = "/readyz";

/// A router with `GET /healthz` and `GET /readyz` answering from `health`, with no auth and
/// no other route. [`HttpApi::router`](crate::HttpApi::router) includes it; mount it on
/// other listeners (say, the metrics port) to probe them the same way.
pub fn health_router(health: Health) -> Router {
    Router::new()
        .route(ROUTE_HEALTHZ, get(healthz))
        .route(ROUTE_READYZ, get(readyz))
        // `POST /healthz` and the like: 405 with the API's JSON error body (and `Allow`).
        .method_not_allowed_fallback(super::routes::method_not_allowed)
        .with_state(health)
}

async fn healthz() -> Response {
    status_body(StatusCode::OK, "ok")
}

async fn readyz(State(health): State<Health>) -> Response {
    let state = health.readiness();
    if state == Readiness::Ready {
        return status_body(StatusCode::OK, state.as_str());
    }
    let mut res = status_body(StatusCode::SERVICE_UNAVAILABLE, state.as_str());
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    res
}

fn status_body(status: StatusCode, word: &str) -> Response {
    let mut res = Response::new(Body::from(format!("{{\"status\":\"{word}\"}}")));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
