//! Discovery (Podium) configuration from the agent's flags.

use anyhow::{Context as _, Result};
use solti_discover::{DiscoverConfig, DiscoveryTransport, HttpDialect};
use solti_model::{AgentId, Token};
use solti_prometheus::SoltiMetrics;

use crate::{Config, DialectArg, PodiumTransportArg, TransportKind};

/// Builds the discovery configuration: the control plane reaches the agent at `advertise`
/// over the agent's own API (`transport`, always advertised as `endpoint_type`), with the
/// agent's token; heartbeats go over `--podium-transport` (default: the same kind).
pub(crate) fn config(
    config: &Config,
    transport: TransportKind,
    agent_id: &AgentId,
    advertise: &str,
    token: Option<Token>,
    metrics: &SoltiMetrics,
    started: std::time::Instant,
) -> Result<DiscoverConfig> {
    let api_kind = match transport {
        TransportKind::Http => DiscoveryTransport::Http,
        TransportKind::Grpc => DiscoveryTransport::Grpc,
    };
    let discovery_transport = match config.podium_transport {
        None => api_kind,
        Some(PodiumTransportArg::Http) => DiscoveryTransport::Http,
        Some(PodiumTransportArg::Grpc) => DiscoveryTransport::Grpc,
    };
    let mut builder = DiscoverConfig::builder(
        agent_id.clone(),
        config.agent_name(),
        advertise,
        config.control_plane.as_deref().unwrap_or_default(),
        discovery_transport,
        config.heartbeat_ms,
        solti_api::API_VERSION,
    )
    .with_endpoint_type(api_kind)
    .with_dialect(match config.podium_dialect {
        DialectArg::Proto => HttpDialect::Proto,
        DialectArg::Legacy => HttpDialect::Legacy,
    })
    .with_capabilities(["subprocess"])
    .with_metrics(metrics.discovery())
    .with_started_at(started);
    if let Some(token) = token {
        builder = builder.with_token(token);
    }
    if let Some(ca) = &config.cp_ca {
        let mut tls = solti_tls::ClientTlsConfig::builder().ca_pem_file(ca);
        if let (Some(cert), Some(key)) = (&config.cp_client_cert, &config.cp_client_key) {
            tls = tls.client_cert_pem_file(cert).client_key_pem_file(key);
        }
        if discovery_transport == DiscoveryTransport::Grpc {
            tls = tls.with_alpn(["h2"]);
        }
        builder = builder.with_tls(
            tls.build()
                .context("--cp-ca / --cp-client-cert / --cp-client-key")?,
        );
    }
    builder
        .build()
        .context("--control-plane / --advertise / --heartbeat-ms")
}
