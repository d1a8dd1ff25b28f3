//! The `/metrics` server of the agent: the solti-prometheus router behind the same hardened
//! accept loop as the API (connection cap, header and idle timeouts), with the `Host` check
//! on a loopback listener. It never asks for the API's bearer token: a scraper would carry
//! the credential that runs commands, in clear text. A non-loopback metrics address needs
//! `--insecure-allow-unauthenticated` (checked in `run`).

use std::time::Duration;

use axum::{
    extract::Request,
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse as _, Response},
};
use prometheus::Registry;
use solti_api::{Health, HostPolicy, ServeConfig};
use tokio::net::TcpListener;

/// Connections the metrics server keeps open at once (Prometheus needs one or two).
pub(crate) const METRICS_MAX_CONNECTIONS: usize = 32;
/// Time a metrics client has to send its request head.
const METRICS_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle keep-alive connections are closed after this (longer than common scrape intervals).
const METRICS_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Serves `/metrics` and the probes (`/healthz`, `/readyz` from `health`) on `listener`
/// until `stop` completes. The agent runs it itself, not as a supervisor task, so `/readyz`
/// keeps answering (503) while the supervisor shuts down.
pub(crate) async fn serve(
    listener: TcpListener,
    registry: Registry,
    host: HostPolicy,
    health: Health,
    stop: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let router = solti_prometheus::metrics_router(registry)
        .merge(solti_api::http::health_router(health))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            guard(host, req, next)
        }));
    ServeConfig::new()
        .max_connections(METRICS_MAX_CONNECTIONS)
        .header_read_timeout(METRICS_HEADER_TIMEOUT)
        .idle_timeout(METRICS_IDLE_TIMEOUT)
        .shutdown_grace(Duration::from_secs(1))
        .serve(listener, router, stop)
        .await
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
