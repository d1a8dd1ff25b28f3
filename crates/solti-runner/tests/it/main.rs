//! Behaviour of the runner boundary through its public API.
#![allow(
    clippy::unwrap_used,
    reason = "test fakes outside #[test] fns may unwrap"
)]

mod attempt;
mod output;
mod router;
