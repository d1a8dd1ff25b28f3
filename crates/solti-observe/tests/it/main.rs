//! Behaviour tests of solti-observe through its public API.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions panic on broken fixtures"
)]

mod capture;
mod format;
mod init;
mod lifecycle;
