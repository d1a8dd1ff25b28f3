//! The crate's error type.

use solti_model::ModelError;

/// Why discovery could not be configured, or why the heartbeat stopped for good.
///
/// Retryable failures (transport errors, timeouts, HTTP 408/425/429/5xx, `success = false`)
/// never surface here: the heartbeat task handles them itself. The heartbeat task ends with
/// [`DiscoverError::Unauthorized`] (as the source of a fatal `taskvisor::TaskError`) when the
/// control plane refuses the agent's credentials.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// A configuration value breaks a rule. `field` names the builder argument or setter
    /// (`control_plane_endpoint`, `heartbeat_ms`, `request_timeout`, …), `reason` the rule.
    #[error("invalid discovery config: {field}: {reason}")]
    Config {
        /// The offending setting.
        field: &'static str,
        /// The rule it breaks, with the value given.
        reason: String,
    },

    /// The embedded task's spec could not be built (its values are fixed, so this is a bug).
    #[error("failed to build the discovery task spec")]
    Spec(#[source] ModelError),

    /// The transport client for the control plane could not be set up.
    #[error("failed to set up the {transport} client for the control plane")]
    Client {
        /// `http` or `grpc`.
        transport: &'static str,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// The control plane refused the agent's credentials (HTTP 401/403, gRPC
    /// `UNAUTHENTICATED`/`PERMISSION_DENIED`). The heartbeat stops and is not restarted:
    /// fix the token (or client certificate) and restart the agent.
    #[error("control plane refused the agent's credentials ({status}): {detail}")]
    Unauthorized {
        /// `HTTP 401`, `HTTP 403`, `gRPC UNAUTHENTICATED` or `gRPC PERMISSION_DENIED`.
        status: String,
        /// The control plane's explanation (response body or status message), shortened.
        detail: String,
    },
}

impl DiscoverError {
    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Config {
            field,
            reason: reason.into(),
        }
    }
}
