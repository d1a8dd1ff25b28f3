//! Behaviour tests of solti-core through its public API.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failed unwrap is a failed test"
)]

mod admission;
#[cfg(feature = "disk")]
mod durable;
mod lifecycle;
mod output;
mod restart;
mod state;
mod stop;
mod support;
