//! Discovery (Podium) configuration from the agent's flags.

use anyhow::{Context as _, Result};
use solti_discover::{DiscoverConfig, DiscoveryTransport, HttpDialect};
use solti_model::{AgentId, ContainerSpec, SubprocessSpec, TaskKind, TaskSpec, Token, WasmSpec};
use solti_prometheus::SoltiMetrics;
use solti_runner::RunnerRouter;

use crate::{Config, DialectArg, PodiumTransportArg, TransportKind};

/// Builds the discovery configuration: the control plane reaches the agent at `advertise`
/// over the agent's own API (`transport`, always advertised as `endpoint_type`), with the
/// agent's token; heartbeats go over `--podium-transport` (default: the same kind).
#[expect(
    clippy::too_many_arguments,
    reason = "the pieces of one agent, passed once from `run`"
)]
pub(crate) fn config(
    config: &Config,
    capabilities: &[String],
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
    .with_capabilities(capabilities.iter().cloned())
    .with_metrics(metrics.discovery())
    .with_started_at(started);
    for (key, value) in config.metadata() {
        builder = builder.with_metadata(key, value);
    }
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

/// The task kinds some registered runner accepts (`subprocess`, `wasm`, `container`): what
/// the agent advertises as its capabilities. Asked of the router with one probe spec per
/// kind, so a runner an embedder registers shows up without code here.
pub(crate) fn capabilities(router: &RunnerRouter) -> Vec<String> {
    let probes = [
        TaskKind::Subprocess(SubprocessSpec::command("true", Vec::<String>::new())),
        TaskKind::Wasm(WasmSpec::new("probe.wasm")),
        TaskKind::Container(ContainerSpec::new("probe")),
    ];
    probes
        .into_iter()
        .filter_map(|kind| {
            let name = kind.name().to_owned();
            let spec = TaskSpec::builder("capability-probe", kind, 1_000u64)
                .build()
                .ok()?;
            router.pick(&spec).is_ok().then_some(name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use clap::Parser as _;
    use solti_discover::{DiscoveryTransport, HttpDialect};
    use solti_runner::{BuildContext, Runner, RunnerError};

    use super::*;

    /// Accepts WASM specs only.
    struct Wasm;

    impl Runner for Wasm {
        fn name(&self) -> &str {
            "wasm"
        }
        fn supports(&self, spec: &TaskSpec) -> bool {
            matches!(spec.kind(), TaskKind::Wasm(_))
        }
        fn build_task(
            &self,
            _: &TaskSpec,
            _: &BuildContext,
        ) -> Result<taskvisor::TaskRef, RunnerError> {
            Err(RunnerError::build("wasm", "probe only"))
        }
    }

    #[test]
    fn capabilities_follow_the_registered_runners() {
        let mut router = RunnerRouter::new();
        assert!(capabilities(&router).is_empty());
        solti_exec::register_subprocess_runner(&mut router, "default").unwrap();
        assert_eq!(capabilities(&router), ["subprocess"]);
        router
            .register_arc(
                Arc::new(Wasm),
                solti_model::Labels::new().with("engine", "wasm"),
            )
            .unwrap();
        assert_eq!(capabilities(&router), ["subprocess", "wasm"]);
    }

    /// Every agent kind × heartbeat transport × dialect: the advertised `endpoint_type` is the
    /// agent's own API, the Sync goes over `--podium-transport` (default: the API kind).
    #[tokio::test]
    async fn endpoint_type_is_the_agents_own_api_kind() {
        let registry = prometheus::Registry::new();
        let metrics = SoltiMetrics::new(&registry).unwrap();
        let id = AgentId::new("agent-1");
        for (kind, api) in [
            (TransportKind::Http, DiscoveryTransport::Http),
            (TransportKind::Grpc, DiscoveryTransport::Grpc),
        ] {
            for heartbeat in [None, Some("http"), Some("grpc")] {
                for dialect in ["proto", "legacy"] {
                    let mut args = vec![
                        "agentd",
                        "--control-plane",
                        "http://127.0.0.1:9",
                        "--podium-dialect",
                        dialect,
                    ];
                    if let Some(h) = heartbeat {
                        args.extend(["--podium-transport", h]);
                    }
                    let cfg = Config::try_parse_from(args).unwrap();
                    let advertise = cfg.advertise(kind, "127.0.0.1:8085".parse().unwrap());
                    let d = config(
                        &cfg,
                        &[],
                        kind,
                        &id,
                        &advertise,
                        None,
                        &metrics,
                        std::time::Instant::now(),
                    )
                    .unwrap();
                    let case = format!("{kind:?} heartbeat={heartbeat:?} {dialect}");
                    assert_eq!(d.endpoint_type(), api, "{case}");
                    let want = match heartbeat {
                        None => api,
                        Some("http") => DiscoveryTransport::Http,
                        Some(_) => DiscoveryTransport::Grpc,
                    };
                    assert_eq!(d.transport(), want, "{case}");
                    let want = if dialect == "legacy" {
                        HttpDialect::Legacy
                    } else {
                        HttpDialect::Proto
                    };
                    assert_eq!(d.dialect(), want, "{case}");
                }
            }
        }
    }
}
