//! Behaviour tests of solti-api through its public API: HTTP in-process with `oneshot`,
//! HTTP and gRPC over 127.0.0.1:0, TLS and mTLS, and fuzzing of the request decoders.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failed unwrap is a failed test"
)]

mod auth;
mod browser;
mod cancel;
mod fuzz;
mod grpc;
mod harness;
mod http;
mod limits;
mod sse;
mod status;
mod strict;
mod tls;
