//! [`SoltiMetrics`]: every Solti family on one registry.

use std::{collections::BTreeMap, sync::Arc};

use prometheus::Registry;
use solti_model::TaskPhase;

use crate::{
    ApiMetrics, DiscoveryMetrics, LifecycleMetrics, MetricsError, PhaseCollector, RunnerMetrics,
    names::SV_TASKS_BY_PHASE,
    process::{DEFAULT_AGENT_NAME, SDK_VERSION, register_build_info, register_process_metrics},
};

/// All Solti metrics on one registry: the runner backend, the lifecycle subscriber, the API
/// and discovery recorders, build info and (on Linux) process metrics. Hand the pieces to the
/// parts of the agent that report, and serve the registry with
/// [`metrics_server`](crate::metrics_server).
///
/// Name the agent with [`SoltiMetrics::builder`]: `solti_build_info{agent}` is how the
/// published dashboard lists and selects agents (the reference agents say `agentd-http` and
/// `agentd-grpc`; [`new`](Self::new) says `solti`).
///
/// ```
/// let registry = prometheus::Registry::new();
/// let metrics = solti_prometheus::SoltiMetrics::builder()
///     .agent("my-agent")
///     .version("1.4.2")
///     .build(&registry)?;
/// let text = solti_prometheus::encode_text(metrics.registry())?;
/// assert!(text.contains(r#"solti_build_info{agent="my-agent",version="1.4.2"} 1"#));
/// # Ok::<(), solti_prometheus::MetricsError>(())
/// ```
///
/// ```
/// use std::{collections::BTreeMap, sync::Arc};
///
/// use solti_prometheus::SoltiMetrics;
/// use solti_runner::MetricsBackend;
/// use taskvisor::Subscribe;
///
/// let registry = prometheus::Registry::new();
/// let metrics = SoltiMetrics::new(&registry)?;
/// let backend: Arc<dyn MetricsBackend> = metrics.runner();
/// let subscriber: Arc<dyn Subscribe> = metrics.lifecycle();
/// // In the agent: metrics.register_phase_counts(move || api.phase_counts())?;
/// metrics.register_phase_counts(BTreeMap::new)?;
/// let text = solti_prometheus::encode_text(&registry)?;
/// assert!(text.contains("solti_build_info"));
/// # drop((backend, subscriber));
/// # Ok::<(), solti_prometheus::MetricsError>(())
/// ```
#[derive(Clone, Debug)]
pub struct SoltiMetrics {
    registry: Registry,
    runner: Arc<RunnerMetrics>,
    lifecycle: Arc<LifecycleMetrics>,
    api: Arc<ApiMetrics>,
    discovery: Arc<DiscoveryMetrics>,
}

impl SoltiMetrics {
    /// Registers every Solti family, `solti_build_info{agent="solti", version=<this SDK's
    /// version>}` and the process families on `registry`. Call it once per registry; use
    /// [`builder`](Self::builder) to name the agent.
    ///
    /// # Errors
    /// [`MetricsError::Register`] when a family is already registered there.
    pub fn new(registry: &Registry) -> Result<Self, MetricsError> {
        Self::builder().build(registry)
    }

    /// A builder naming the agent (and its version) in `solti_build_info`.
    pub fn builder() -> SoltiMetricsBuilder {
        SoltiMetricsBuilder {
            agent: DEFAULT_AGENT_NAME.to_owned(),
            version: SDK_VERSION.to_owned(),
        }
    }

    /// Adds the `solti_sv_tasks_by_phase{phase}` gauge, read from `source` at every scrape (the agent
    /// passes `move || api.phase_counts()`).
    ///
    /// # Errors
    /// [`MetricsError::Register`] when a phase source is already registered.
    pub fn register_phase_counts<F>(&self, source: F) -> Result<(), MetricsError>
    where
        F: Fn() -> BTreeMap<TaskPhase, u64> + Send + Sync + 'static,
    {
        self.registry
            .register(Box::new(PhaseCollector::new(source)?))
            .map_err(|source| MetricsError::Register {
                name: SV_TASKS_BY_PHASE,
                source,
            })
    }

    /// The registry everything is registered on (cheap clone).
    #[must_use]
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
    /// The runner backend (coerces to `Arc<dyn MetricsBackend>`).
    #[must_use]
    pub fn runner(&self) -> Arc<RunnerMetrics> {
        Arc::clone(&self.runner)
    }
    /// The lifecycle subscriber (coerces to `Arc<dyn taskvisor::Subscribe>`).
    #[must_use]
    pub fn lifecycle(&self) -> Arc<LifecycleMetrics> {
        Arc::clone(&self.lifecycle)
    }
    /// The API request recorder.
    #[must_use]
    pub fn api(&self) -> Arc<ApiMetrics> {
        Arc::clone(&self.api)
    }
    /// The discovery recorder.
    #[must_use]
    pub fn discovery(&self) -> Arc<DiscoveryMetrics> {
        Arc::clone(&self.discovery)
    }
}

/// Builds [`SoltiMetrics`] with the agent's name and version; see [`SoltiMetrics::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct SoltiMetricsBuilder {
    agent: String,
    version: String,
}

impl SoltiMetricsBuilder {
    /// The `agent` label of `solti_build_info`: the program's name (`agentd-http`,
    /// `agentd-grpc`, `my-agent`). Keep it constant for a program: the dashboard lists agents
    /// by it.
    ///
    /// # Default
    /// `solti`.
    pub fn agent(mut self, agent: impl Into<String>) -> Self {
        self.agent = agent.into();
        self
    }

    /// The `version` label of `solti_build_info`.
    ///
    /// # Default
    /// This SDK's version ([`SDK_VERSION`](crate::SDK_VERSION)).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Registers every Solti family, `solti_build_info` and the process families on
    /// `registry`. Call it once per registry.
    ///
    /// # Errors
    /// [`MetricsError::Register`] when a family is already registered there.
    pub fn build(self, registry: &Registry) -> Result<SoltiMetrics, MetricsError> {
        let metrics = SoltiMetrics {
            registry: registry.clone(),
            runner: Arc::new(RunnerMetrics::new(registry)?),
            lifecycle: Arc::new(LifecycleMetrics::new(registry)?),
            api: Arc::new(ApiMetrics::new(registry)?),
            discovery: Arc::new(DiscoveryMetrics::new(registry)?),
        };
        register_build_info(registry, &self.agent, &self.version)?;
        register_process_metrics(registry)?;
        Ok(metrics)
    }
}
