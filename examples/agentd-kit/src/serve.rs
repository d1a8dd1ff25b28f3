//! Serving the task API on the agent's listener, plain or over TLS.

use std::{sync::Arc, time::Duration};

use anyhow::{Context as _, Result};
use solti_api::{
    GrpcApi, Health, HttpApi, ServeConfig, SharedToken, SupervisorApiAdapter, TlsListener,
};
use solti_core::SupervisorApi;
use solti_prometheus::ApiMetrics;
use tokio::net::TcpListener;

/// The API listener: plain, or TLS (whose certificate a reload can swap).
#[derive(Debug)]
pub(crate) enum ApiListener {
    Plain(TcpListener),
    Tls(TlsListener),
}
use tokio_util::sync::CancellationToken;

use crate::TransportKind;

/// Serves the API of `transport` until `shutdown` is cancelled, then stops accepting and
/// drains open connections for up to `drain` (log streams end when their task does).
#[expect(
    clippy::too_many_arguments,
    reason = "the pieces of one agent, passed once from `run`"
)]
pub(crate) async fn api(
    transport: TransportKind,
    listener: ApiListener,
    supervisor: Arc<SupervisorApi>,
    token: Option<SharedToken>,
    metrics: Arc<ApiMetrics>,
    health: Health,
    shutdown: CancellationToken,
    drain: Duration,
) -> Result<()> {
    let handler = Arc::new(SupervisorApiAdapter::new(supervisor));
    let serve = ServeConfig::new().shutdown_grace(drain);
    let stop = async move { shutdown.cancelled().await };
    let served = match transport {
        TransportKind::Http => {
            let mut api = HttpApi::new(handler)
                .with_observer(metrics.clone())
                .with_health(health);
            if let Some(token) = token {
                api = api.with_shared_auth(token);
            }
            let router = api.router();
            match listener {
                ApiListener::Tls(tls) => serve.serve(tls, router, stop).await,
                ApiListener::Plain(tcp) => serve.serve(tcp, router, stop).await,
            }
        }
        TransportKind::Grpc => {
            let mut api = GrpcApi::new(handler)
                .with_observer(metrics.clone())
                .with_health(health);
            if let Some(token) = token {
                api = api.with_shared_auth(token);
            }
            let routes = api.into_routes();
            match listener {
                ApiListener::Tls(tls) => serve.serve(tls, routes, stop).await,
                ApiListener::Plain(tcp) => serve.serve(tcp, routes, stop).await,
            }
        }
    };
    served.context("serve the task API")
}
