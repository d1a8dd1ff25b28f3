//! Process metrics (Linux) and the build-info gauge.

use prometheus::Registry;

use crate::{
    MetricsError, family,
    names::{BUILD_INFO, LABEL_VERSION},
};

/// The Solti SDK version reported by `solti_build_info`.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Registers `solti_build_info{version}` = 1.
///
/// # Errors
/// [`MetricsError::Register`] when it is already registered on `registry`.
pub fn register_build_info(registry: &Registry, version: &str) -> Result<(), MetricsError> {
    let info = family::gauge_vec(
        registry,
        BUILD_INFO,
        "Solti build information; always 1.",
        &[LABEL_VERSION],
    )?;
    info.with_label_values(&[version]).set(1);
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
