//! Logging for the Solti SDK: one call installs the process-wide `tracing` subscriber (text
//! with RFC 3339 timestamps in UTC or local time, JSON lines, or journald), a helper reads the
//! local UTC offset before the runtime starts, an embedded task keeps that offset current
//! across daylight-saving changes, and [`LifecycleLogger`] turns taskvisor lifecycle events
//! into structured log lines.
//!
//! Place in the stack: a leaf used only by binaries (`examples/agentd-*`). It depends on
//! `tracing-subscriber`, `taskvisor` (for [`LifecycleLogger`] and the embedded task) and
//! `solti-model` (for the embedded task's `TaskSpec`). Library crates never call
//! [`init_logger`]; they only emit `tracing` events.
//!
//! # Example
//! ```no_run
//! use std::sync::Arc;
//!
//! use solti_observe::{LifecycleLogger, LogFormat, LoggerConfig, Timezone, init_local_offset, init_logger};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Single-threaded still: the local offset is reliably readable here.
//!     init_local_offset()?;
//!     init_logger(
//!         &LoggerConfig::new()
//!             .with_format(LogFormat::Text)
//!             .with_level("info,solti_core=debug")
//!             .with_timezone(Timezone::Local),
//!     )?;
//!     let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
//!     runtime.block_on(async {
//!         // Pass this to the supervisor (SupervisorApi::new(.., subscribers, ..)).
//!         let subscribers: Vec<Arc<dyn taskvisor::Subscribe>> = vec![Arc::new(LifecycleLogger::new())];
//!         // And submit the offset refresher next to the other embedded tasks:
//!         // api.submit_with_task(task, &spec).await?
//!         let (_task, _spec) = solti_observe::timezone_sync();
//!         tracing::info!(subscribers = subscribers.len(), "agent started");
//!     });
//!     Ok(())
//! }
//! ```
//!
//! # Formats
//! - **text**: `2026-11-26T23:06:49.123456Z  INFO solti_core::api: task submitted slot="backup"`;
//!   colour only when the output is a terminal ([`ColorChoice::Auto`]).
//! - **json**: `{"timestamp":"2026-11-26T23:06:49.123456Z","level":"INFO","message":"task submitted","slot":"backup","target":"solti_core::api"}`.
//! - **journald**: native journal fields; fails with [`ObserveError::JournaldUnavailable`] when
//!   `/run/systemd/journal/socket` is missing.
//!
//! # Features
//! This crate has no Cargo features. Journald support is compiled on Linux only.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod clock;
mod config;
mod error;
mod journald;
mod lifecycle;
mod logger;
mod timezone;

/// Compiles the Rust snippets of the crate README.
#[cfg(doctest)]
mod doc_snippets {
    #[doc = include_str!("../README.md")]
    struct Readme;
}

#[doc(inline)]
pub use clock::{init_local_offset, local_offset};
#[doc(inline)]
pub use config::{
    ColorChoice, DEFAULT_LEVEL, LogFormat, LogTarget, LoggerConfig, ParseChoiceError, Timezone,
};
#[doc(inline)]
pub use error::ObserveError;
#[doc(inline)]
pub use journald::JOURNALD_SOCKET;
#[doc(inline)]
pub use lifecycle::{LIFECYCLE_TARGET, LifecycleLogger};
#[doc(inline)]
pub use logger::{BoxSubscriber, init_logger, set_log_level};
#[doc(inline)]
pub use timezone::{
    DEFAULT_TIMEZONE_SYNC_PERIOD, TIMEZONE_SYNC_SLOT, timezone_sync, timezone_sync_every,
};
