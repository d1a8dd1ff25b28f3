//! Design notes: why the runner is built the way it is.

/// How an attempt's processes are started, stopped and reaped.
#[doc = include_str!("docs/lifetime.md")]
pub mod lifetime {}

/// What isolation is applied, how, and what happens when it cannot be.
#[doc = include_str!("docs/isolation.md")]
pub mod isolation {}
