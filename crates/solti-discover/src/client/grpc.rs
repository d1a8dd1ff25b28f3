//! gRPC transport: `/solti.discover.v1.DiscoverService/Sync` over a tonic channel.
//!
//! The channel connects lazily and reconnects by itself, so a control plane that is down
//! at start only fails Syncs (which the loop retries), never the heartbeat task.

use tonic::{
    Code, Request, Status,
    metadata::{AsciiMetadataValue, MetadataValue},
    transport::{Channel, Endpoint},
};

use super::{Failure, shorten};
use crate::{
    DiscoverConfig, DiscoverError, HttpDialect,
    metrics::reason,
    payload::{Payload, Reply, endpoint_type_number},
    pb::{self, discover_service_client::DiscoverServiceClient},
};

/// The gRPC client for one control plane.
pub(crate) struct GrpcClient {
    client: DiscoverServiceClient<Channel>,
    authorization: Option<AsciiMetadataValue>,
    dialect: HttpDialect,
}

impl GrpcClient {
    /// Must run inside the Tokio runtime: the channel starts its worker task (owned by the
    /// channel, it ends when the client is dropped).
    pub(crate) fn new(config: &DiscoverConfig) -> Result<Self, DiscoverError> {
        let client_err = |e: Box<dyn std::error::Error + Send + Sync>| DiscoverError::Client {
            transport: "grpc",
            source: e,
        };
        let endpoint = Endpoint::from_shared(config.control_plane.to_string())
            .map_err(|e| client_err(Box::new(e)))?
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            .user_agent(concat!("solti-discover/", env!("CARGO_PKG_VERSION")))
            .map_err(|e| client_err(Box::new(e)))?;
        let endpoint = with_tls(endpoint, config).map_err(client_err)?;
        let authorization = match &config.token {
            Some(token) => {
                let mut value: AsciiMetadataValue =
                    MetadataValue::try_from(format!("Bearer {}", token.expose_secret()))
                        .map_err(|e| client_err(Box::new(e)))?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Self {
            client: DiscoverServiceClient::new(endpoint.connect_lazy()),
            authorization,
            dialect: config.dialect,
        })
    }

    pub(crate) async fn sync(&mut self, payload: &Payload) -> Result<Reply, Failure> {
        let mut body = pb::SyncRequest::from(payload);
        // Same field numbers in both dialects; released Podium numbers the enum 0/1.
        body.endpoint_type = endpoint_type_number(payload.endpoint_type, self.dialect);
        let mut request = Request::new(body);
        if let Some(auth) = &self.authorization {
            request.metadata_mut().insert("authorization", auth.clone());
        }
        match self.client.sync(request).await {
            Ok(response) => Ok(response.into_inner().into()),
            Err(status) => Err(classify(&status)),
        }
    }
}

#[cfg(feature = "tls")]
fn with_tls(
    endpoint: Endpoint,
    config: &DiscoverConfig,
) -> Result<Endpoint, Box<dyn std::error::Error + Send + Sync>> {
    match &config.tls {
        Some(tls) => Ok(endpoint.tls_config(tls.to_tonic())?),
        None => Ok(endpoint),
    }
}

#[cfg(not(feature = "tls"))]
#[expect(
    clippy::unnecessary_wraps,
    reason = "same signature as the TLS variant"
)]
fn with_tls(
    endpoint: Endpoint,
    _config: &DiscoverConfig,
) -> Result<Endpoint, Box<dyn std::error::Error + Send + Sync>> {
    Ok(endpoint)
}

/// Maps a gRPC status the way the contract maps HTTP statuses.
fn classify(status: &Status) -> Failure {
    let code = status.code();
    let detail = || shorten(status.message());
    match code {
        Code::Unauthenticated | Code::PermissionDenied => Failure::Unauthorized {
            status: format!("gRPC {}", code_name(code)),
            detail: detail(),
        },
        // The request itself is wrong for this control plane: retrying fast will not help.
        Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::FailedPrecondition
        | Code::OutOfRange
        | Code::Unimplemented => Failure::Permanent {
            reason: reason::GRPC_STATUS,
            detail: format!("gRPC {}: {}", code_name(code), detail()),
        },
        _ => {
            // A status synthesised from a connection failure carries the transport error.
            let transport = std::error::Error::source(status)
                .is_some_and(|s| s.downcast_ref::<tonic::transport::Error>().is_some());
            let reason = if transport {
                reason::TRANSPORT
            } else {
                reason::GRPC_STATUS
            };
            let mut detail = format!("gRPC {}: {}", code_name(code), detail());
            if let Some(source) = std::error::Error::source(status) {
                detail.push_str(&format!(" ({source})"));
            }
            Failure::retry(reason, detail)
        }
    }
}

/// The canonical upper-case name of a code (`UNAVAILABLE`).
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
