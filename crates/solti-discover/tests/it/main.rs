//! Behaviour tests of solti-discover through its public API, against in-process control
//! planes on 127.0.0.1. They need both transports (the default features).
#![cfg(all(feature = "http", feature = "grpc"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test doubles and helpers outside #[test] fns may panic on broken setup"
)]

mod config;
mod endpoint_type;
mod grpc;
mod harness;
mod http;
#[cfg(feature = "tls")]
mod tls;
