//! Design notes (documentation only).

#[doc = include_str!("docs/timing.md")]
pub mod timing {}
