//! Prometheus metrics for the Solti SDK, on the [`prometheus`] crate: a runner
//! [`MetricsBackend`](solti_runner::MetricsBackend), a taskvisor lifecycle subscriber, a
//! tasks-by-phase collector read at scrape time, API and discovery recorders, process
//! metrics, build info, and a `/metrics` server that runs as an embedded task.
//!
//! Place in the stack: depends on `solti-runner` (the `MetricsBackend` trait), `solti-model`
//! (phases, the embedded task's spec) and `taskvisor` (the `Subscribe` trait); it does not
//! depend on `solti-core` (the phase collector takes a closure). The reference agents
//! (`examples/agentd-*`) wire it up.
//!
//! Metric names, types, labels and label values are the original Solti SDK's
//! (`solti_build_info`, `solti_runner_*`, `solti_sv_*`, `solti_ctrl_*`, `solti_api_*`,
//! `solti_discover_*`, `process_*`), so the published Grafana dashboard ("Solti agent
//! overview") works unchanged; each is a constant in [`names`]. Label values are bounded:
//! runner names, task kinds, outcomes, fixed reason labels, phases, route templates; never
//! task ids; every known value exists at 0 from the start. `docs/observability.md` lists
//! every family with its type and labels.
//!
//! # Example
//! ```no_run
//! use std::sync::Arc;
//!
//! use solti_prometheus::{SoltiMetrics, metrics_server};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = prometheus::Registry::new();
//! // `agent` is the `solti_build_info` label the published dashboard selects agents by.
//! let metrics = SoltiMetrics::builder().agent("my-agent").build(&registry)?;
//!
//! // The runner backend goes to the runners, the lifecycle subscriber to the supervisor.
//! let backend: Arc<dyn solti_runner::MetricsBackend> = metrics.runner();
//! let subscribers: Vec<Arc<dyn taskvisor::Subscribe>> = vec![metrics.lifecycle()];
//! // let api = SupervisorApi::new(sup, ctl, subscribers, router, state).await?;
//! // metrics.register_phase_counts({ let api = api.clone(); move || api.phase_counts() })?;
//!
//! // The binary binds the port; the server runs under supervision until shutdown.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9090").await?;
//! let (task, spec) = metrics_server(listener, registry);
//! // api.submit_with_task(task, &spec).await?;
//! # drop((backend, subscribers, task, spec));
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//! | feature | adds |
//! |---|---|
//! | `api` | `impl solti_api::ApiObserver for ApiMetrics` (pass `metrics.api()` to `HttpApi::with_observer` / the gRPC service) |
//! | `discover` | `impl solti_discover::DiscoverMetrics for DiscoveryMetrics` (pass `metrics.discovery()` to `DiscoverConfigBuilder::with_metrics`) |
//!
//! No feature is on by default.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod api;
mod discover;
mod error;
mod family;
mod guard;
#[cfg(any(feature = "api", feature = "discover"))]
mod hooks;
mod lifecycle;
mod metrics;
pub mod names;
mod output;
mod phase;
mod process;
mod runner;
mod server;

/// Compiles the Rust snippets of the crate README and of the repository's observability guide.
#[cfg(doctest)]
mod doc_snippets {
    #[doc = include_str!("../README.md")]
    struct Readme;
    #[doc = include_str!("../../../docs/observability.md")]
    struct Guide;
}

#[doc(inline)]
pub use api::{ApiMetrics, REQUEST_BUCKETS};
#[doc(inline)]
pub use discover::{DiscoveryMetrics, FAILURE_REASONS, HOLD_BUCKETS, SYNC_BUCKETS};
#[doc(inline)]
pub use error::MetricsError;
#[doc(inline)]
pub use lifecycle::LifecycleMetrics;
#[doc(inline)]
pub use metrics::{SoltiMetrics, SoltiMetricsBuilder};
#[doc(inline)]
pub use output::{
    OUTPUT_LAGGED_EVENTS_TOTAL, OUTPUT_RETAINED_BYTES, OUTPUT_TRIMMED_EVENTS_TOTAL, TRIM_REASONS,
};
#[doc(inline)]
pub use phase::PhaseCollector;
#[doc(inline)]
pub use process::{DEFAULT_AGENT_NAME, SDK_VERSION, register_build_info, register_process_metrics};
#[doc(inline)]
pub use runner::{ATTEMPT_BUCKETS, REJECTION_REASONS, RUNNER_ERRORS, RunnerMetrics};
#[doc(inline)]
pub use server::{
    METRICS_HEADER_TIMEOUT, METRICS_IDLE_TIMEOUT, METRICS_MAX_CONNECTIONS, METRICS_PATH,
    METRICS_SHUTDOWN_GRACE, METRICS_SLOT, encode_text, metrics_router, metrics_serve_config,
    metrics_server, serve_metrics, serve_metrics_router, serve_metrics_with,
};
