//! [`DiscoverConfig`] and its builder.

use std::{collections::BTreeMap, fmt, sync::Arc, time::Duration};

use solti_model::{AgentId, Token};
use tokio::time::Instant;

use crate::{
    DiscoverError, DiscoverMetrics, NoOpDiscoverMetrics,
    endpoint::{self, ControlPlaneUrl, Scheme},
};

/// How the agent talks to the control plane, and (unless
/// [`with_endpoint_type`](DiscoverConfigBuilder::with_endpoint_type) says otherwise) which
/// kind of task API it advertises: the reference agents serve one API kind each and sync
/// over the same one.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DiscoveryTransport {
    /// `POST {control_plane}/api/v1/discovery/sync` with JSON; the agent serves HTTP
    /// (`endpoint` = `http://host:port`). Needs feature `http`.
    Http,
    /// `solti.discover.v1.DiscoverService/Sync`; the agent serves gRPC
    /// (`endpoint` = `host:port`). Needs feature `grpc`.
    Grpc,
}

impl DiscoveryTransport {
    /// `"http"` or `"grpc"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Grpc => "grpc",
        }
    }
}

impl fmt::Display for DiscoveryTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Podium dialect: the JSON shape of the HTTP transport, and the numbering of
/// `endpoint_type` on both transports (the gRPC binding has the same field numbers in both).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HttpDialect {
    /// The shared proto: over HTTP the canonical proto3 JSON of
    /// `solti.discover.v1.SyncRequest` (camelCase keys, 64-bit integers as strings,
    /// `endpointType` as the enum name, `"ENDPOINT_TYPE_HTTP"`); `endpoint_type` numbered
    /// `ENDPOINT_TYPE_GRPC = 1`, `ENDPOINT_TYPE_HTTP = 2` on both transports.
    #[default]
    Proto,
    /// The released Podium before the shared proto: over HTTP snake_case keys and integers
    /// as JSON numbers; `endpoint_type` 0 = gRPC, 1 = HTTP on **both** transports (its gRPC
    /// binding numbers the enum that way too).
    Legacy,
}

/// A validated discovery configuration; build it with [`DiscoverConfig::builder`] and pass it
/// to [`sync`](crate::sync()).
///
/// `Debug` never shows the token.
#[derive(Clone)]
pub struct DiscoverConfig {
    pub(crate) agent_id: AgentId,
    pub(crate) name: String,
    pub(crate) agent_endpoint: String,
    pub(crate) control_plane: ControlPlaneUrl,
    pub(crate) transport: DiscoveryTransport,
    pub(crate) endpoint_type: DiscoveryTransport,
    pub(crate) interval: Duration,
    pub(crate) api_version: i32,
    pub(crate) token: Option<Token>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<solti_tls::ClientTlsConfig>,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) capabilities: Vec<String>,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) backoff_initial: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) start_jitter: Duration,
    pub(crate) dialect: HttpDialect,
    pub(crate) metrics: Arc<dyn DiscoverMetrics>,
    pub(crate) started_at: Instant,
}

impl DiscoverConfig {
    /// Starts a configuration with every required choice; optional settings are `with_*`
    /// methods on the builder, and [`build`](DiscoverConfigBuilder::build) checks the whole.
    ///
    /// - `agent_id`: the agent's stable id (Sync `id`).
    /// - `name`: a human-readable agent name, 1..=256 characters without control characters.
    /// - `agent_endpoint`: where the control plane reaches this agent's task API, with a port.
    ///   Normalised to `http://host:port` for [`DiscoveryTransport::Http`] (an `https://`
    ///   scheme is kept) and to `host:port` for [`DiscoveryTransport::Grpc`]. Unspecified
    ///   addresses (`0.0.0.0`, `[::]`) are refused: advertise a reachable address.
    /// - `control_plane_endpoint`: `http://host[:port]` or `https://host[:port]` (default port
    ///   80 / 443), for both transports; no path. `https://` needs
    ///   [`with_tls`](DiscoverConfigBuilder::with_tls) (feature `tls`).
    /// - `transport`: see [`DiscoveryTransport`].
    /// - `heartbeat_ms`: the Sync interval, at least 1000 ms.
    /// - `api_version`: the agent API version the agent serves (e.g. `solti_api::API_VERSION`), >= 1.
    ///
    /// Uptime is counted from this call unless
    /// [`with_started_at`](DiscoverConfigBuilder::with_started_at) says otherwise.
    pub fn builder(
        agent_id: AgentId,
        name: impl Into<String>,
        agent_endpoint: impl Into<String>,
        control_plane_endpoint: impl Into<String>,
        transport: DiscoveryTransport,
        heartbeat_ms: u64,
        api_version: i32,
    ) -> DiscoverConfigBuilder {
        DiscoverConfigBuilder {
            agent_id,
            name: name.into(),
            agent_endpoint: agent_endpoint.into(),
            control_plane_endpoint: control_plane_endpoint.into(),
            transport,
            endpoint_type: None,
            heartbeat_ms,
            api_version,
            token: None,
            #[cfg(feature = "tls")]
            tls: None,
            metadata: BTreeMap::new(),
            capabilities: Vec::new(),
            connect_timeout: None,
            request_timeout: None,
            backoff: None,
            start_jitter: None,
            dialect: HttpDialect::default(),
            metrics: Arc::new(NoOpDiscoverMetrics),
            started_at: Instant::now(),
        }
    }

    /// The agent id sent as `id`.
    #[must_use]
    pub fn agent_id(&self) -> &AgentId {
        &self.agent_id
    }

    /// The agent name sent as `name`.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The normalised endpoint sent as `endpoint`.
    #[must_use]
    pub fn agent_endpoint(&self) -> &str {
        &self.agent_endpoint
    }

    /// The control plane, normalised to `scheme://host:port`.
    #[must_use]
    pub fn control_plane_endpoint(&self) -> String {
        self.control_plane.to_string()
    }

    /// The transport of Sync.
    #[must_use]
    pub fn transport(&self) -> DiscoveryTransport {
        self.transport
    }

    /// The kind of task API advertised (`endpoint_type`).
    #[must_use]
    pub fn endpoint_type(&self) -> DiscoveryTransport {
        self.endpoint_type
    }

    /// The interval between Syncs.
    #[must_use]
    pub fn heartbeat_interval(&self) -> Duration {
        self.interval
    }

    /// The advertised `heartbeat_interval_s`: the interval in whole seconds, rounded up (at
    /// least 1), so the control plane never expects beats faster than they come: 1,999 ms is
    /// advertised as 2 s.
    #[must_use]
    pub fn heartbeat_interval_s(&self) -> i32 {
        i32::try_from(self.interval.as_millis().div_ceil(1000))
            .unwrap_or(i32::MAX)
            .max(1)
    }

    /// The timeout for establishing a connection (TCP + TLS).
    #[must_use]
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The timeout for one whole Sync (connect, send, answer).
    #[must_use]
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The HTTP dialect.
    #[must_use]
    pub fn dialect(&self) -> HttpDialect {
        self.dialect
    }

    pub(crate) fn uses_tls(&self) -> bool {
        self.control_plane.scheme == Scheme::Https
    }
}

impl fmt::Debug for DiscoverConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscoverConfig")
            .field("agent_id", &self.agent_id)
            .field("name", &self.name)
            .field("agent_endpoint", &self.agent_endpoint)
            .field("control_plane", &self.control_plane.to_string())
            .field("transport", &self.transport)
            .field("endpoint_type", &self.endpoint_type)
            .field("interval", &self.interval)
            .field("api_version", &self.api_version)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.uses_tls())
            .field("metadata", &self.metadata)
            .field("capabilities", &self.capabilities)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("backoff", &(self.backoff_initial, self.backoff_max))
            .field("start_jitter", &self.start_jitter)
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

// === impl DiscoverConfigBuilder ===

/// Builder for [`DiscoverConfig`]; see [`DiscoverConfig::builder`]. `Debug` never shows the
/// token.
#[must_use]
pub struct DiscoverConfigBuilder {
    agent_id: AgentId,
    name: String,
    agent_endpoint: String,
    control_plane_endpoint: String,
    transport: DiscoveryTransport,
    endpoint_type: Option<DiscoveryTransport>,
    heartbeat_ms: u64,
    api_version: i32,
    token: Option<Token>,
    #[cfg(feature = "tls")]
    tls: Option<solti_tls::ClientTlsConfig>,
    metadata: BTreeMap<String, String>,
    capabilities: Vec<String>,
    connect_timeout: Option<Duration>,
    request_timeout: Option<Duration>,
    backoff: Option<(Duration, Duration)>,
    start_jitter: Option<Duration>,
    dialect: HttpDialect,
    metrics: Arc<dyn DiscoverMetrics>,
    started_at: Instant,
}

impl DiscoverConfigBuilder {
    /// Sends `Authorization: Bearer <token>` (HTTP) or `authorization: Bearer <token>`
    /// metadata (gRPC) with every Sync. Over plain `http://` a warning is logged once.
    ///
    /// # Default
    /// No token.
    pub fn with_token(mut self, token: Token) -> Self {
        self.token = Some(token);
        self
    }

    /// Connects to an `https://` control plane with these trust roots (and client identity
    /// for mTLS). Required for `https://`, refused for `http://`.
    ///
    /// # Default
    /// No TLS.
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, tls: solti_tls::ClientTlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Advertises a task API of another kind than the Sync transport, e.g. a gRPC agent
    /// registering with an HTTP-only (legacy) Podium. The agent endpoint is normalised for
    /// this kind (`http://host:port` or `host:port`).
    ///
    /// # Default
    /// The `transport` given to [`DiscoverConfig::builder`].
    pub fn with_endpoint_type(mut self, kind: DiscoveryTransport) -> Self {
        self.endpoint_type = Some(kind);
        self
    }

    /// Adds one `metadata` entry (keys 1..=256 characters, values up to 4096, at most 64
    /// entries); a repeated key keeps the last value.
    ///
    /// # Default
    /// No metadata.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Adds advertised capabilities (each 1..=256 characters, at most 64; duplicates are
    /// dropped, order kept).
    ///
    /// # Default
    /// None.
    pub fn with_capabilities<I>(mut self, capabilities: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        for c in capabilities {
            let c = c.into();
            if !self.capabilities.contains(&c) {
                self.capabilities.push(c);
            }
        }
        self
    }

    /// Bounds establishing a connection (TCP connect plus TLS handshake). Must be above zero
    /// and below the heartbeat interval.
    ///
    /// # Default
    /// The smaller of 5 s and half the interval.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Bounds one whole Sync, connection included; a control plane that does not answer in
    /// time counts as a retryable failure. Must be above zero and below the interval.
    ///
    /// # Default
    /// The smaller of 10 s and half the interval.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// Retry delays after retryable failures: `initial` doubles per consecutive failure up
    /// to `max`, each drawn at random from the upper half of that step (equal jitter).
    /// Needs `0 < initial <= max <= 3600 s`.
    ///
    /// # Default
    /// `initial` = the smaller of 1 s and the interval, `max` = the interval.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = Some((initial, max));
        self
    }

    /// The first Sync waits a random delay in `[0, max)`, so a fleet restarted together
    /// does not hit the control plane at once. At most the interval; zero sends at once.
    ///
    /// # Default
    /// The heartbeat interval (as the protocol asks).
    pub fn with_start_jitter(mut self, max: Duration) -> Self {
        self.start_jitter = Some(max);
        self
    }

    /// Selects the Podium dialect (JSON shape over HTTP, `endpoint_type` numbers on both
    /// transports).
    ///
    /// # Default
    /// [`HttpDialect::Proto`].
    pub fn with_dialect(mut self, dialect: HttpDialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// Reports attempts, successes, failures and holds to `metrics`.
    ///
    /// # Default
    /// [`NoOpDiscoverMetrics`].
    pub fn with_metrics(mut self, metrics: Arc<dyn DiscoverMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Counts `uptime_seconds` from `started_at` (e.g. an `Instant` taken first thing in
    /// `main`).
    ///
    /// # Default
    /// The moment [`DiscoverConfig::builder`] was called.
    pub fn with_started_at(mut self, started_at: std::time::Instant) -> Self {
        self.started_at = Instant::from_std(started_at);
        self
    }

    /// Checks every value and builds the configuration.
    ///
    /// # Errors
    /// [`DiscoverError::Config`] naming the first field that breaks a rule (see
    /// [`DiscoverConfig::builder`] and the setters).
    pub fn build(self) -> Result<DiscoverConfig, DiscoverError> {
        let transport = self.transport;
        let enabled = match transport {
            DiscoveryTransport::Http => cfg!(feature = "http"),
            DiscoveryTransport::Grpc => cfg!(feature = "grpc"),
        };
        if !enabled {
            return Err(DiscoverError::config(
                "transport",
                format!(
                    "{transport} needs the `{transport}` feature of solti-discover, which is disabled"
                ),
            ));
        }
        check_text("name", &self.name, MAX_NAME_LEN, false)?;
        let endpoint_type = self.endpoint_type.unwrap_or(transport);
        let agent_endpoint = endpoint::normalise_agent(&self.agent_endpoint, endpoint_type)
            .map_err(|r| DiscoverError::config("agent_endpoint", r))?;
        let control_plane = endpoint::parse_control_plane(&self.control_plane_endpoint)
            .map_err(|r| DiscoverError::config("control_plane_endpoint", r))?;
        self.check_tls(&control_plane)?;

        if self.heartbeat_ms < MIN_HEARTBEAT_MS {
            return Err(DiscoverError::config(
                "heartbeat_ms",
                format!(
                    "must be at least {MIN_HEARTBEAT_MS} ms, got {}",
                    self.heartbeat_ms
                ),
            ));
        }
        if self.heartbeat_ms > MAX_HEARTBEAT_MS {
            return Err(DiscoverError::config(
                "heartbeat_ms",
                format!(
                    "must be at most {MAX_HEARTBEAT_MS} ms (one day), got {}",
                    self.heartbeat_ms
                ),
            ));
        }
        let interval = Duration::from_millis(self.heartbeat_ms);
        if self.api_version < 1 {
            return Err(DiscoverError::config(
                "api_version",
                format!("must be >= 1, got {}", self.api_version),
            ));
        }

        let connect_timeout = self
            .connect_timeout
            .unwrap_or_else(|| DEFAULT_CONNECT_TIMEOUT.min(interval / 2));
        check_below_interval("connect_timeout", connect_timeout, interval)?;
        let request_timeout = self
            .request_timeout
            .unwrap_or_else(|| DEFAULT_REQUEST_TIMEOUT.min(interval / 2));
        check_below_interval("request_timeout", request_timeout, interval)?;

        let (backoff_initial, backoff_max) = self
            .backoff
            .unwrap_or_else(|| (DEFAULT_BACKOFF_INITIAL.min(interval), interval));
        if backoff_initial.is_zero() || backoff_initial > backoff_max || backoff_max > MAX_BACKOFF {
            return Err(DiscoverError::config(
                "backoff",
                format!(
                    "needs 0 < initial <= max <= {MAX_BACKOFF:?}, got initial {backoff_initial:?}, max {backoff_max:?}"
                ),
            ));
        }
        let start_jitter = self.start_jitter.unwrap_or(interval);
        if start_jitter > interval {
            return Err(DiscoverError::config(
                "start_jitter",
                format!("must be at most the interval ({interval:?}), got {start_jitter:?}"),
            ));
        }

        if self.metadata.len() > MAX_ENTRIES {
            return Err(DiscoverError::config(
                "metadata",
                format!("at most {MAX_ENTRIES} entries, got {}", self.metadata.len()),
            ));
        }
        for (k, v) in &self.metadata {
            check_text("metadata key", k, MAX_NAME_LEN, false)?;
            check_text("metadata value", v, MAX_VALUE_LEN, true)?;
        }
        if self.capabilities.len() > MAX_ENTRIES {
            return Err(DiscoverError::config(
                "capabilities",
                format!(
                    "at most {MAX_ENTRIES} entries, got {}",
                    self.capabilities.len()
                ),
            ));
        }
        for c in &self.capabilities {
            check_text("capabilities", c, MAX_NAME_LEN, false)?;
        }

        Ok(DiscoverConfig {
            agent_id: self.agent_id,
            name: self.name,
            agent_endpoint,
            control_plane,
            transport,
            endpoint_type,
            interval,
            api_version: self.api_version,
            token: self.token,
            #[cfg(feature = "tls")]
            tls: self.tls,
            metadata: self.metadata,
            capabilities: self.capabilities,
            connect_timeout,
            request_timeout,
            backoff_initial,
            backoff_max,
            start_jitter,
            dialect: self.dialect,
            metrics: self.metrics,
            started_at: self.started_at,
        })
    }

    /// `https://` needs a TLS config and `http://` must not have one: a silent plaintext
    /// fallback, or trusting roots nobody chose, are both worse than a clear error.
    fn check_tls(&self, control_plane: &ControlPlaneUrl) -> Result<(), DiscoverError> {
        match (control_plane.scheme, self.has_tls()) {
            (Scheme::Https, false) => Err(DiscoverError::config(
                "control_plane_endpoint",
                format!(
                    "{control_plane} is https:// but no TLS config was given; call with_tls (feature `tls`) with the control plane's CA"
                ),
            )),
            (Scheme::Http, true) => Err(DiscoverError::config(
                "control_plane_endpoint",
                format!("{control_plane} is plain http:// but with_tls was given; use https://"),
            )),
            _ => Ok(()),
        }
    }
}

impl DiscoverConfigBuilder {
    #[cfg(feature = "tls")]
    fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    #[cfg(not(feature = "tls"))]
    #[expect(
        clippy::unused_self,
        reason = "same signature as with the `tls` feature"
    )]
    fn has_tls(&self) -> bool {
        false
    }
}

impl fmt::Debug for DiscoverConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscoverConfigBuilder")
            .field("agent_id", &self.agent_id)
            .field("name", &self.name)
            .field("agent_endpoint", &self.agent_endpoint)
            .field("control_plane_endpoint", &self.control_plane_endpoint)
            .field("transport", &self.transport)
            .field("heartbeat_ms", &self.heartbeat_ms)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

fn check_text(
    field: &'static str,
    value: &str,
    max: usize,
    empty_ok: bool,
) -> Result<(), DiscoverError> {
    let len = value.chars().count();
    if (len == 0 && !empty_ok) || len > max {
        let min = usize::from(!empty_ok);
        return Err(DiscoverError::config(
            field,
            format!("must be {min}..={max} characters, got {len}"),
        ));
    }
    if value.trim().is_empty() && !empty_ok {
        return Err(DiscoverError::config(field, "must not be blank"));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(DiscoverError::config(
            field,
            format!("must not contain control characters, found {c:?}"),
        ));
    }
    Ok(())
}

fn check_below_interval(
    field: &'static str,
    value: Duration,
    interval: Duration,
) -> Result<(), DiscoverError> {
    if value.is_zero() || value >= interval {
        return Err(DiscoverError::config(
            field,
            format!(
                "must be above zero and below the heartbeat interval ({interval:?}), got {value:?}"
            ),
        ));
    }
    Ok(())
}

/// Smallest heartbeat interval: `heartbeat_interval_s` is whole seconds and must be >= 1.
const MIN_HEARTBEAT_MS: u64 = 1000;
/// Largest heartbeat interval (one day).
const MAX_HEARTBEAT_MS: u64 = 24 * 3600 * 1000;
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// Longest configurable backoff (also the clamp of `retry_after_s`).
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
const MAX_NAME_LEN: usize = 256;
const MAX_VALUE_LEN: usize = 4096;
const MAX_ENTRIES: usize = 64;
