//! Process metrics (Linux) and the build-info gauge.

use prometheus::Registry;

use crate::{
    MetricsError, family,
    names::{BUILD_INFO, LABEL_AGENT, LABEL_VERSION},
};

/// The Solti SDK version reported by `solti_build_info`.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The agent name `solti_build_info` reports when the embedder names none.
pub const DEFAULT_AGENT_NAME: &str = "solti";

/// Registers `solti_build_info{agent, version}` = 1. `agent` names the program
/// (`agentd-http`, `agentd-grpc`, or an embedder's own name): the published dashboard lists
/// agents by this label and joins every panel on it.
///
/// # Errors
/// [`MetricsError::Register`] when it is already registered on `registry`.
pub fn register_build_info(
    registry: &Registry,
    agent: &str,
    version: &str,
) -> Result<(), MetricsError> {
    let info = family::gauge_vec(
        registry,
        BUILD_INFO,
        "Solti build information, by agent name and version; always 1.",
        &[LABEL_AGENT, LABEL_VERSION],
    )?;
    info.with_label_values(&[agent, version]).set(1);
    Ok(())
}

/// Registers the standard `process_*` families (CPU seconds, resident and virtual memory,
/// open and max file descriptors, threads, start time) for this process. They keep
/// Prometheus' usual names, without the `solti_` prefix, so stock dashboards work.
/// On platforms other than Linux this registers nothing.
///
/// # Errors
/// [`MetricsError::Register`] when they are already registered on `registry`.
pub fn register_process_metrics(registry: &Registry) -> Result<(), MetricsError> {
    imp::register(registry)
}

#[cfg(target_os = "linux")]
mod imp {
    use prometheus::{Registry, process_collector::ProcessCollector};

    use crate::MetricsError;

    pub(super) fn register(registry: &Registry) -> Result<(), MetricsError> {
        registry
            .register(Box::new(ProcessCollector::for_self()))
            .map_err(|source| MetricsError::Register {
                name: crate::names::PROCESS_PREFIX,
                source,
            })
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use prometheus::Registry;

    use crate::MetricsError;

    pub(super) fn register(_registry: &Registry) -> Result<(), MetricsError> {
        Ok(())
    }
}
