//! Behaviour tests of solti-prometheus through its public API.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions panic on broken fixtures"
)]

mod exposition;
#[cfg(all(feature = "api", feature = "discover"))]
mod hooks;
mod labels;
mod scenario;
mod server;
