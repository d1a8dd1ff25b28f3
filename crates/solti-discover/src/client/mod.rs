//! Transports: one Sync over HTTP/JSON or gRPC, with the answer classified the way the
//! heartbeat loop acts on it ([`Failure`]).

#[cfg(test)]
pub(crate) mod fake;
#[cfg(feature = "grpc")]
mod grpc;
#[cfg(feature = "http")]
mod http;
#[cfg(all(feature = "http", feature = "tls"))]
mod http_tls;
#[cfg(feature = "http")]
mod legacy;

use std::time::Duration;

use crate::{
    DiscoverConfig, DiscoverError,
    payload::{Payload, Reply},
};

/// A Sync that did not reach an answer the loop can use, by what the loop does next.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Try again after a backoff (transport error, timeout, HTTP 408/425/429/5xx, most gRPC
    /// codes); `retry_after` is a pause the server asked for (`Retry-After`).
    Retry {
        reason: &'static str,
        detail: String,
        retry_after: Option<Duration>,
    },
    /// The control plane refuses this payload (other 4xx, `INVALID_ARGUMENT`, …): logged as
    /// an error and retried at the regular interval only.
    Permanent {
        reason: &'static str,
        detail: String,
    },
    /// The credentials were refused: the heartbeat stops.
    Unauthorized { status: String, detail: String },
}

impl Failure {
    pub(crate) fn retry(reason: &'static str, detail: impl Into<String>) -> Self {
        Self::Retry {
            reason,
            detail: detail.into(),
            retry_after: None,
        }
    }
}

/// The client of the configured transport.
pub(crate) enum Client {
    #[cfg(feature = "http")]
    Http(http::HttpClient),
    #[cfg(feature = "grpc")]
    Grpc(grpc::GrpcClient),
    #[cfg(test)]
    Fake(fake::FakeClient),
}

impl Client {
    /// Builds the client for `config.transport`. Must run inside the Tokio runtime (the gRPC
    /// channel starts its worker there).
    pub(crate) fn new(config: &DiscoverConfig) -> Result<Self, DiscoverError> {
        match config.transport {
            #[cfg(feature = "http")]
            crate::DiscoveryTransport::Http => Ok(Self::Http(http::HttpClient::new(config)?)),
            #[cfg(feature = "grpc")]
            crate::DiscoveryTransport::Grpc => Ok(Self::Grpc(grpc::GrpcClient::new(config)?)),
            #[cfg_attr(
                all(feature = "http", feature = "grpc"),
                expect(
                    unreachable_patterns,
                    reason = "reachable when a transport feature is off"
                )
            )]
            other => Err(DiscoverError::config(
                "transport",
                format!("{other} support is not compiled in"),
            )),
        }
    }

    /// Sends one Sync. Not bounded in time here: the loop applies the request timeout.
    pub(crate) async fn sync(&mut self, payload: &Payload) -> Result<Reply, Failure> {
        match *self {
            #[cfg(feature = "http")]
            Self::Http(ref c) => c.sync(payload).await,
            #[cfg(feature = "grpc")]
            Self::Grpc(ref mut c) => c.sync(payload).await,
            #[cfg(test)]
            Self::Fake(ref c) => c.sync(payload).await,
        }
    }
}

/// A peer's explanation shortened for a log line: at most 256 characters, control
/// characters replaced.
pub(crate) fn shorten(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_DETAIL)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > MAX_DETAIL {
        out.push('…');
    }
    out.trim().to_owned()
}

const MAX_DETAIL: usize = 256;

#[cfg(test)]
mod shorten_tests {
    use super::*;

    #[test]
    fn control_plane_text_is_escaped_and_truncated() {
        // A reason with a forged log line and terminal escapes becomes one harmless line.
        let hostile = format!("ok\n2026-01-01 ERROR forged\x1b[31m{}", "x".repeat(10_000));
        let out = shorten(&hostile);
        assert!(!out.chars().any(char::is_control), "{out:?}");
        assert!(out.chars().count() <= MAX_DETAIL + 1, "{}", out.len());
        assert!(out.ends_with('…'));
    }
}
