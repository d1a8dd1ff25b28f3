//! Serving the task API on the agent's listener, plain or over TLS.

use std::{sync::Arc, time::Duration};

use anyhow::{Context as _, Result};
use solti_api::{GrpcApi, HostPolicy, HttpApi, ServeConfig, SupervisorApiAdapter, TlsListener};
use solti_core::SupervisorApi;
use solti_model::Token;
use solti_prometheus::ApiMetrics;
use solti_tls::ServerTlsConfig;
use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;

use crate::TransportKind;

/// The bound API listener.
pub(crate) enum ApiListener {
    /// TCP (plain, or TLS when configured).
    Tcp(TcpListener),
    /// A Unix socket (plain).
    Unix(UnixListener),
}

/// Serves the API of `transport` until `shutdown` is cancelled, then stops accepting and
/// drains open connections for up to `drain` (log streams end when their task does).
#[expect(
    clippy::too_many_arguments,
    reason = "the pieces of one agent, passed once from `run`"
)]
pub(crate) async fn api(
    transport: TransportKind,
    listener: ApiListener,
    serve: ServeConfig,
    supervisor: Arc<SupervisorApi>,
    token: Option<Token>,
    tls: Option<ServerTlsConfig>,
    metrics: Arc<ApiMetrics>,
    shutdown: CancellationToken,
    drain: Duration,
) -> Result<()> {
    let handler = Arc::new(SupervisorApiAdapter::new(supervisor));
    let serve = serve.shutdown_grace(drain);
    // DNS rebinding: a loopback (or Unix-socket) listener answers only to loopback names.
    let host = match &listener {
        ApiListener::Tcp(tcp) => tcp
            .local_addr()
            .map_or(HostPolicy::Loopback, HostPolicy::for_listen_addr),
        ApiListener::Unix(_) => HostPolicy::Loopback,
    };
    let stop = async move { shutdown.cancelled().await };
    let served = match transport {
        TransportKind::Http => {
            let mut api = HttpApi::new(handler)
                .with_observer(metrics.clone())
                .with_host_policy(host);
            if let Some(token) = token {
                api = api.with_auth(token);
            }
            let router = api.router();
            match (listener, tls) {
                (ApiListener::Tcp(l), Some(tls)) => {
                    serve.serve(TlsListener::new(l, &tls), router, stop).await
                }
                (ApiListener::Tcp(l), None) => serve.serve(l, router, stop).await,
                (ApiListener::Unix(l), _) => serve.serve(l, router, stop).await,
            }
        }
        TransportKind::Grpc => {
            let mut api = GrpcApi::new(handler)
                .with_observer(metrics.clone())
                .with_host_policy(host);
            if let Some(token) = token {
                api = api.with_auth(token);
            }
            let routes = api.into_routes();
            match (listener, tls) {
                (ApiListener::Tcp(l), Some(tls)) => {
                    serve.serve(TlsListener::new(l, &tls), routes, stop).await
                }
                (ApiListener::Tcp(l), None) => serve.serve(l, routes, stop).await,
                (ApiListener::Unix(l), _) => serve.serve(l, routes, stop).await,
            }
        }
    };
    served.context("serve the task API")
}
