//! The supervision engine of the Solti SDK: [`SupervisorApi`] runs tasks on
//! [`taskvisor`] with restart, backoff, timeout and per-slot admission policies,
//! keeps their state and run history in a bounded in-memory store, streams their live output,
//! and sweeps old state.
//!
//! Place in the stack: depends on `solti-model` (specs, status types), `solti-runner` (the
//! runners that turn a spec into a task) and taskvisor; used by `solti-api` (the network
//! API) and the agent binaries.
//!
//! # How a task runs
//! 1. [`SupervisorApi::submit`] routes the spec to a runner, wraps the runner's task in an
//!    attempt wrapper, stores the task as `Pending`, and hands it to taskvisor's controller
//!    under the spec's slot and admission policy (always watched).
//! 2. Each attempt's start and end are recorded by the wrapper (the run history is
//!    authoritative; taskvisor's events are not needed) and published on the task's output
//!    channel as `RunStarted` / `RunFinished` around the runner's lines.
//! 3. A finalizer awaits the watched outcome and writes the terminal phase once:
//!    `Succeeded`, `Failed`, `Timeout`, `Exhausted` or `Canceled`.
//!
//! Design notes: [`docs::shutdown`] (shutdown ordering), [`docs::limits`] (how taskvisor's
//! limits are set), [`docs::outcomes`] (outcome → phase mapping).
//!
//! # Example
//! ```
//! use std::sync::Arc;
//!
//! use solti_core::{OutputStart, StateConfig, SupervisorApi};
//! use solti_model::{TaskKind, TaskPhase, TaskSpec};
//! use solti_runner::RunnerRouter;
//! use taskvisor::{ControllerConfig, SupervisorConfig, TaskContext, TaskError, TaskFn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let supervisor = SupervisorApi::new(
//!     SupervisorConfig::default(),
//!     ControllerConfig::default(),
//!     vec![],
//!     RunnerRouter::new(),
//!     StateConfig::default(),
//! )
//! .await?;
//!
//! // An embedded task: the code comes with the submission.
//! let task = TaskFn::arc(|_ctx: TaskContext| async { Ok::<(), TaskError>(()) });
//! let spec = TaskSpec::builder("hello", TaskKind::Embedded, 5_000u64).build()?;
//! let id = supervisor.submit_with_task(task, &spec).await?;
//!
//! // Read everything it printed, from the start, until it is terminal: RunStarted,
//! // RunFinished, then the end.
//! if let Some(mut output) = supervisor.subscribe_output(&id, OutputStart::All).await? {
//!     while let Some(event) = output.recv().await {
//!         println!("{event:?}");
//!     }
//! }
//! let task = supervisor.get_task(&id).await?.expect("tasks are kept for an hour");
//! assert!(task.status.phase.is_terminal());
//! assert_eq!(supervisor.list_task_runs(&id).await?.map(|runs| runs.len()), Some(1));
//!
//! supervisor.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//! - `disk`: `store::DiskStore`, the durable state store (an embedded redb file, pure
//!   Rust). Without it the crate has only the in-memory [`MemoryStore`], the default.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod attempt;
mod config;
mod convert;
pub mod docs;
mod error;
mod limits;
mod output;
pub mod store;
mod supervisor;
mod sweep;

#[doc(inline)]
pub use config::StateConfig;
pub use convert::MIN_ALWAYS_INTERVAL;
#[doc(inline)]
pub use error::CoreError;
#[doc(inline)]
pub use output::{OutputBatch, OutputQuery, OutputStart, OutputSubscription};
#[cfg(feature = "disk")]
#[doc(inline)]
pub use store::{DiskStore, DiskStoreError};
#[doc(inline)]
pub use store::{MemoryStore, StateStore};
#[doc(inline)]
pub use supervisor::SupervisorApi;

/// How long [`SupervisorApi::shutdown`] may take beyond the supervisor's grace: after
/// taskvisor stops (or force-aborts) the tasks, it waits this long at most for their last
/// outcomes to be recorded, then ends every output stream. A server that keeps log streams
/// open during shutdown should let them drain for at least the grace plus this.
pub const SHUTDOWN_SLACK: std::time::Duration = supervisor::REQUEST_WAIT;
