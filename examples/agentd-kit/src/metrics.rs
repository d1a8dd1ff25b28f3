//! The `/metrics` server of the agent: solti-prometheus's hardened metrics server
//! (`serve_metrics_router`: the API's accept loop with a connection cap, header and idle
//! timeouts) with the probes and the `Host` check on a loopback listener. It never asks for
//! the API's bearer token: a scraper would carry the credential that runs commands, in
//! clear text. A non-loopback metrics address needs
//! `--insecure-allow-unauthenticated` (checked in `run`).

use axum::{
    extract::Request,
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse as _, Response},
};
use prometheus::Registry;
use solti_api::{Health, HostPolicy};
use tokio::net::TcpListener;

/// Serves `/metrics` and the probes (`/healthz`, `/readyz` from `health`) on `listener`
/// until `stop` completes. The agent runs it itself, not as a supervisor task, so `/readyz`
/// keeps answering (503) while the supervisor shuts down.
pub(crate) async fn serve(
    listener: TcpListener,
    registry: Registry,
    host: HostPolicy,
    health: Health,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), solti_prometheus::MetricsError> {
    let router = solti_prometheus::metrics_router(registry)
        .merge(solti_api::http::health_router(health))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            guard(host, req, next)
        }));
    solti_prometheus::serve_metrics_router(listener, router, stop).await
}

/// `421` for a non-loopback `Host` on a loopback listener (DNS rebinding).
async fn guard(host: HostPolicy, req: Request, next: Next) -> Response {
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        });
    if !host.allows(authority.as_deref()) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "Host: this listener answers only to localhost or a loopback IP\n",
        )
            .into_response();
    }
    next.run(req).await
}
