//! Serving the task API on the agent's listener: TCP (plain or TLS) or a Unix socket.

use std::{sync::Arc, time::Duration};

use anyhow::{Context as _, Result};
use solti_api::{
    GrpcApi, Health, HostPolicy, HttpApi, ServeConfig, SharedToken, SupervisorApiAdapter,
    TlsListener,
};
use solti_core::SupervisorApi;
use solti_prometheus::ApiMetrics;
use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;

use crate::TransportKind;

/// The bound API listener.
#[derive(Debug)]
pub(crate) enum ApiListener {
    /// Plain TCP.
    Plain(TcpListener),
    /// TCP with TLS (a reload can swap its certificate).
    Tls(TlsListener),
    /// A Unix socket (plain).
    Unix(UnixListener),
}

impl ApiListener {
    /// DNS rebinding: a loopback (or Unix-socket) listener answers only to loopback names.
    fn host_policy(&self) -> HostPolicy {
        let addr = match self {
            Self::Plain(tcp) => tcp.local_addr(),
            Self::Tls(tls) => tls.local_addr(),
            Self::Unix(_) => return HostPolicy::Loopback,
        };
        addr.map_or(HostPolicy::Loopback, HostPolicy::for_listen_addr)
    }
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
    token: Option<SharedToken>,
    metrics: Arc<ApiMetrics>,
    health: Health,
    shutdown: CancellationToken,
    drain: Duration,
) -> Result<()> {
    let handler = Arc::new(SupervisorApiAdapter::new(supervisor));
    let serve = serve.shutdown_grace(drain);
    let host = listener.host_policy();
    let stop = async move { shutdown.cancelled().await };
    let served = match transport {
        TransportKind::Http => {
            let mut api = HttpApi::new(handler)
                .with_observer(metrics.clone())
                .with_host_policy(host)
                .with_health(health);
            if let Some(token) = token {
                api = api.with_shared_auth(token);
            }
            let router = api.router();
            match listener {
                ApiListener::Plain(l) => serve.serve(l, router, stop).await,
                ApiListener::Tls(l) => serve.serve(l, router, stop).await,
                ApiListener::Unix(l) => serve.serve(l, router, stop).await,
            }
        }
        TransportKind::Grpc => {
            let mut api = GrpcApi::new(handler)
                .with_observer(metrics.clone())
                .with_host_policy(host)
                .with_health(health);
            if let Some(token) = token {
                api = api.with_shared_auth(token);
            }
            let routes = api.into_routes();
            match listener {
                ApiListener::Plain(l) => serve.serve(l, routes, stop).await,
                ApiListener::Tls(l) => serve.serve(l, routes, stop).await,
                ApiListener::Unix(l) => serve.serve(l, routes, stop).await,
            }
        }
    };
    served.context("serve the task API")
}
