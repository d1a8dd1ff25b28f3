//! The `/metrics` server of the agent: the solti-prometheus router behind the same hardened
//! accept loop as the API (connection cap, header and idle timeouts), with the `Host` check
//! on a loopback listener. It never asks for the API's bearer token: a scraper would carry
//! the credential that runs commands, in clear text. A non-loopback metrics address needs
//! `--insecure-allow-unauthenticated` (checked in `run`).

use std::{sync::Arc, time::Duration};

use axum::{
    extract::Request,
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse as _, Response},
};
use prometheus::Registry;
use solti_api::{HostPolicy, Listener, ServeConfig};
use solti_model::{MAX_DURATION_MS, RestartPolicy, TaskKind, TaskSpec};
use taskvisor::{TaskContext, TaskError, TaskFn, TaskRef};
use tokio::net::{TcpListener, TcpStream};

/// Connections the metrics server keeps open at once (Prometheus needs one or two).
pub(crate) const METRICS_MAX_CONNECTIONS: usize = 32;
/// Time a metrics client has to send its request head.
const METRICS_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle keep-alive connections are closed after this (longer than common scrape intervals).
const METRICS_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// The metrics server as an embedded task (slot `solti-metrics`, restarted on failure on the
/// same listener).
pub(crate) fn server(
    listener: TcpListener,
    registry: Registry,
    host: HostPolicy,
) -> anyhow::Result<(TaskRef, TaskSpec)> {
    let listener = Arc::new(listener);
    let task: TaskRef = TaskFn::arc(move |ctx: TaskContext| {
        let listener = Shared(Arc::clone(&listener));
        let router = solti_prometheus::metrics_router(registry.clone()).layer(middleware::from_fn(
            move |req: Request, next: Next| guard(host, req, next),
        ));
        async move {
            let stop = ctx.clone();
            let served = ServeConfig::new()
                .max_connections(METRICS_MAX_CONNECTIONS)
                .header_read_timeout(METRICS_HEADER_TIMEOUT)
                .idle_timeout(METRICS_IDLE_TIMEOUT)
                .shutdown_grace(Duration::from_secs(1))
                .serve(listener, router, async move { stop.cancelled().await })
                .await;
            if ctx.is_cancelled() {
                return Err(TaskError::Canceled);
            }
            Err(match served {
                Ok(()) => TaskError::fail("metrics server stopped"),
                Err(e) => TaskError::fail_from(e),
            })
        }
    });
    let spec = TaskSpec::builder(
        solti_prometheus::METRICS_SLOT,
        TaskKind::Embedded,
        MAX_DURATION_MS,
    )
    .restart(RestartPolicy::OnFailure)
    .build()?;
    Ok((task, spec))
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

/// The listener shared by every attempt of the embedded task.
struct Shared(Arc<TcpListener>);

impl Listener for Shared {
    type Io = TcpStream;

    async fn accept(&mut self) -> std::io::Result<TcpStream> {
        let (stream, _) = self.0.accept().await?;
        Ok(stream)
    }
}
