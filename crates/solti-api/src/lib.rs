//! The network face of a Solti agent: the task API v1 over HTTP/JSON (axum) and gRPC
//! (tonic), with live task output as Server-Sent Events or a gRPC server stream.
//!
//! Place in the stack: depends on `solti-core` (the [`SupervisorApi`](solti_core::SupervisorApi)
//! it serves, through [`SupervisorApiAdapter`]) and `solti-model` (domain types); with the
//! `tls` feature also on `solti-tls`. Agent binaries (`examples/agentd-*`) build it and own the
//! ports and signals. The wire contract (package `solti.task.v1`, the HTTP routes, the SSE
//! format) is documented route by route in `api_v1.md` at the repository root.
//!
//! # How it fits together
//! - [`ApiHandler`] is the transport-agnostic set of operations (submit, apply, get, list,
//!   runs, delete, cancel, stream logs) in domain types; [`SupervisorApiAdapter`] implements it.
//! - [`HttpApi`] turns a handler into an [`axum::Router`]; [`GrpcApi`] into the
//!   `solti.task.v1.TaskService` tonic service. Both decode and validate with the same
//!   conversions, map failures through the one [`ApiError`], check the optional bearer
//!   [`Token`](solti_model::Token) in constant time before any handler runs, and report
//!   every request to an [`ApiObserver`].
//! - [`serve_http`] / [`serve_grpc`] (or [`ServeConfig::serve`]) run an accept loop over a
//!   listener the caller bound, until the caller's shutdown future completes; with `tls`,
//!   [`TlsListener`] adds TLS or mTLS. Libraries never bind ports or install signal handlers.
//!
// The examples need both transports; docs.rs and CI build with all features.
#![cfg_attr(all(feature = "http", feature = "grpc"), doc = include_str!("docs/examples.md"))]
//!
//! # Limits and guarantees
//! - Request bodies and gRPC messages: 4 MiB (`413 PayloadTooLarge` / `RESOURCE_EXHAUSTED`);
//!   decoded script bodies: 2 MiB; slots: 64 characters; list pages: 1000.
//! - Browser defences on every route of both transports, before auth: a body not declared
//!   `application/json` is refused (415), a cross-site `Origin` / `Sec-Fetch-Site` too (403),
//!   and on a loopback listener a `Host` that is not loopback (421, DNS rebinding); see
//!   [`HostPolicy`]. List counts in a JSON body are checked before it is decoded.
//! - Listeners ([`ServeConfig`]): a connection cap derived from `RLIMIT_NOFILE` (the oldest
//!   idle connection makes room), idle and header timeouts, HTTP/2 keep-alive; TCP, Unix
//!   sockets and TLS.
//! - Every failure, including unknown routes, wrong methods and malformed JSON, answers with
//!   `{"error":"<Label>","message":"<field>: <rule>"}` on HTTP and the matching gRPC code.
//! - A log stream ends when the task is terminal and drained; a client that disconnects
//!   drops its subscription at once; a slow reader gets a `lagged` event, never slows the task.
//!
//! # Features
//! | feature | what it adds |
//! |---|---|
//! | `http` | [`HttpApi`], [`serve_http`], the proto3 JSON `serde` impls on [`pb`] |
//! | `grpc` | [`GrpcApi`], [`serve_grpc`], the tonic service |
//! | `tls` | [`TlsListener`]: TLS / mTLS for both transports with `solti-tls` |
//!
//! Internal features (do not enable directly): `_proto` (the generated [`pb`] types, on with
//! `http` or `grpc`), `_serve` (the shared accept loop: [`ServeConfig`], [`Listener`]).
#![forbid(unsafe_code)]
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod adapter;
mod auth;
#[cfg(feature = "_proto")]
mod codec;
#[cfg(feature = "_proto")]
mod convert;
mod error;
#[cfg(any(feature = "http", feature = "grpc"))]
mod gate;
#[cfg(feature = "_proto")]
mod generated;
#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(any(feature = "http", feature = "grpc"))]
mod guard;
mod handler;
mod health;
#[cfg(feature = "http")]
pub mod http;
mod observe;
#[cfg(feature = "_serve")]
mod serve;

#[doc(inline)]
pub use adapter::{CANCEL_WAIT, SupervisorApiAdapter};
#[doc(inline)]
pub use auth::SharedToken;
#[doc(inline)]
pub use error::{ApiError, Wire};
#[cfg(feature = "_proto")]
pub use generated::pb;
#[cfg(feature = "grpc")]
#[doc(inline)]
pub use grpc::{GrpcApi, serve_grpc};
#[cfg(any(feature = "http", feature = "grpc"))]
#[doc(inline)]
pub use guard::HostPolicy;
#[doc(inline)]
pub use handler::{ApiHandler, LogStream};
#[doc(inline)]
pub use health::{Health, Readiness};
#[cfg(feature = "http")]
#[doc(inline)]
pub use http::{HttpApi, serve_http};
#[doc(inline)]
pub use observe::{ApiObserver, NoOpApiObserver, Transport, UNMATCHED_ROUTE};
#[cfg(feature = "_serve")]
#[doc(inline)]
pub use serve::{Accepted, Listener, MAX_HEADER_BYTES, ServeConfig};
#[cfg(feature = "tls")]
#[doc(inline)]
pub use serve::{TlsListener, TlsReloader};

/// The version of the task API this crate serves (`api_version` in discovery).
pub const API_VERSION: i32 = 1;
