//! Behaviour tests for solti-tls, through the public API only. Certificates are generated in
//! memory with rcgen; handshakes run over 127.0.0.1.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions panic on broken fixtures"
)]

mod debug;
mod errors;
mod files;
mod handshake;
mod harness;
mod keys;
mod pki;
#[cfg(feature = "tonic")]
mod tonic_shapes;
mod validity;
