//! Registration and heartbeat of a Solti agent with the Podium control plane.
//!
//! The agent tells the control plane who it is and where its task API listens, by calling
//! `Sync` once per heartbeat interval over HTTP/JSON or gRPC
//! (`solti.discover.v1.DiscoverService`). The control plane then drives the agent through
//! that API. [`sync()`] turns a validated [`DiscoverConfig`] into an embedded task that the
//! agent's supervisor runs next to its other tasks.
//!
//! # Place in the stack
//!
//! Depends on `solti-model` (ids, token, task spec), `taskvisor` (the task shape) and,
//! with feature `tls`, `solti-tls`. Used by agent binaries (`examples/agentd-*`), which
//! submit the task to `solti-core`'s `SupervisorApi`. `solti-prometheus` implements
//! [`DiscoverMetrics`].
//!
//! # Example
//!
//! ```no_run
//! use solti_discover::{DiscoverConfig, DiscoveryTransport};
//! use solti_model::{AgentId, Token};
//!
//! # struct SupervisorApi; // stand-in for solti_core::SupervisorApi
//! # impl SupervisorApi {
//! #     async fn submit_with_task(&self, _: taskvisor::TaskRef, _: &solti_model::TaskSpec) -> Result<(), std::io::Error> { Ok(()) }
//! # }
//! # async fn demo(supervisor: SupervisorApi) -> Result<(), Box<dyn std::error::Error>> {
//! # const API_VERSION: i32 = 1; // solti_api::API_VERSION
//! let config = DiscoverConfig::builder(
//!     AgentId::new("worker-001"),
//!     "worker",
//!     "http://this-host:8085",
//!     "http://podium:8082",
//!     DiscoveryTransport::Http,
//!     10_000, // heartbeat interval (ms)
//!     API_VERSION,
//! )
//! .with_token(Token::new("s3cret-token")?)
//! .with_metadata("zone", "eu-1")
//! .build()?;
//! let (task, spec) = solti_discover::sync(config)?;
//! supervisor.submit_with_task(task, &spec).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Failure handling
//!
//! | Answer | What the heartbeat does |
//! |---|---|
//! | accepted (`success = true`) | next Sync on the fixed schedule |
//! | `success = false` | retry after `retry_after_s` (clamped to 3600 s; 0 = backoff) |
//! | transport error, timeout, HTTP 408/425/429/5xx, gRPC `UNAVAILABLE`, … | retry with exponential backoff and jitter (capped at the interval by default) |
//! | other HTTP 4xx, gRPC `INVALID_ARGUMENT`, `NOT_FOUND`, `UNIMPLEMENTED`, … | ERROR log, retry at the regular interval |
//! | HTTP 401/403, gRPC `UNAUTHENTICATED`/`PERMISSION_DENIED` | ERROR log, the task ends with a fatal [`DiscoverError::Unauthorized`] |
//!
//! The token never appears in logs or `Debug` output; a token sent over plain `http://` is
//! warned about once. See [`docs`] for the reasoning behind the timing.
//!
//! # Features
//!
//! | Feature | Default | What it adds |
//! |---|---|---|
//! | `http` | yes | HTTP/JSON transport ([`DiscoveryTransport::Http`]), both [`HttpDialect`]s |
//! | `grpc` | yes | gRPC transport ([`DiscoveryTransport::Grpc`]) |
//! | `tls` | no | `https://` control planes and mTLS: [`DiscoverConfigBuilder::with_tls`] |
//!
//! With `http` or `grpc`, the generated protobuf types are public in [`pb`].
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// With a transport compiled out, helpers shared by the transports go unused; which ones
// depends on the feature set, so this cannot be an `expect`.
#![cfg_attr(
    not(all(feature = "http", feature = "grpc")),
    allow(
        dead_code,
        unused_variables,
        reason = "shared helpers unused when a transport feature is off"
    )
)]

mod client;
mod config;
#[cfg(feature = "_proto")]
mod convert;
pub mod docs;
mod endpoint;
mod error;
mod heartbeat;
mod metrics;
mod payload;
mod schedule;
mod task;

#[cfg(feature = "_proto")]
#[rustfmt::skip]
#[allow(
    missing_docs,
    unreachable_pub,
    unused_qualifications,
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    clippy::restriction,
    reason = "generated code"
)]
mod generated {
    include!("generated/solti.discover.v1.rs");
    #[cfg(feature = "http")]
    include!("generated/solti.discover.v1.serde.rs");
}

/// The generated `solti.discover.v1` protobuf types, client and server (for control planes
/// and tests written in Rust).
#[cfg(feature = "_proto")]
pub mod pb {
    #[doc(inline)]
    pub use crate::generated::{
        EndpointType, SyncRequest, SyncResponse, discover_service_client, discover_service_server,
    };
}

#[doc(inline)]
pub use config::{DiscoverConfig, DiscoverConfigBuilder, DiscoveryTransport, HttpDialect};
#[doc(inline)]
pub use error::DiscoverError;
#[doc(inline)]
pub use metrics::{DiscoverMetrics, NoOpDiscoverMetrics};
#[doc(inline)]
pub use task::{SLOT, sync};
