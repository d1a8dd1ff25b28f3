//! Serving the task API on the agent's listener, plain or over TLS.

use std::{sync::Arc, time::Duration};

use anyhow::{Context as _, Result};
use solti_api::{GrpcApi, Health, HttpApi, ServeConfig, SupervisorApiAdapter, TlsListener};
use solti_core::SupervisorApi;
use solti_model::Token;
use solti_prometheus::ApiMetrics;
use solti_tls::ServerTlsConfig;
use tokio::net::TcpListener;
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
    listener: TcpListener,
    supervisor: Arc<SupervisorApi>,
    token: Option<Token>,
    tls: Option<ServerTlsConfig>,
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
                api = api.with_auth(token);
            }
            let router = api.router();
            match tls {
                Some(tls) => {
                    serve
                        .serve(TlsListener::new(listener, &tls), router, stop)
                        .await
                }
                None => serve.serve(listener, router, stop).await,
            }
        }
        TransportKind::Grpc => {
            let mut api = GrpcApi::new(handler)
                .with_observer(metrics.clone())
                .with_health(health);
            if let Some(token) = token {
                api = api.with_auth(token);
            }
            let routes = api.into_routes();
            match tls {
                Some(tls) => {
                    serve
                        .serve(TlsListener::new(listener, &tls), routes, stop)
                        .await
                }
                None => serve.serve(listener, routes, stop).await,
            }
        }
    };
    served.context("serve the task API")
}
