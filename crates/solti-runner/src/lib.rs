//! The plugin boundary of the Solti SDK: the [`Runner`] trait, the label-based
//! [`RunnerRouter`], and the output and metrics interfaces runners report through.
//!
//! Place in the stack: depends on `solti-model` (and on `taskvisor` for [`taskvisor::TaskRef`],
//! the unit a runner hands the supervisor); used by `solti-exec` (the subprocess runner),
//! `solti-core` (which routes every spec), and `solti-prometheus` (which implements
//! [`MetricsBackend`]). A third-party runner (WASM, containers, in-process functions) needs
//! only this crate and `solti-model`.
//!
//! # The runner contract
//! - [`Runner::build_task`] is called once per submission and returns a `TaskRef`; the
//!   supervisor calls its `spawn` once per attempt. `spawn` must return quickly; the work
//!   happens in the returned future.
//! - Call [`OutputPublisher::sink`] inside `spawn` to get the [`OutputSink`] of that attempt.
//!   Publishing never blocks; slow readers lose events, not the runner.
//! - **Cancellation**: the attempt's `TaskContext` is cancelled on timeout, cancel, delete,
//!   replace and shutdown. Stop promptly and clean up (a subprocess runner terminates its
//!   process tree), then return `Err(TaskError::Canceled)` or the attempt's real error.
//! - **Drop**: the future may be dropped without being polled again (force-abort after the
//!   supervisor's grace). Anything it owns must clean up in `Drop` (kill and reap children,
//!   remove temp files).
//! - Return `TaskError::Fail` for retryable failures and `TaskError::Fatal` for failures no
//!   retry can fix; attach the exit code with `with_exit_code`.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//!
//! use solti_model::{Labels, SubprocessSpec, TaskKind, TaskSpec};
//! use solti_runner::{BuildContext, OutputPublisher, Runner, RunnerError, RunnerRouter};
//! use taskvisor::{TaskContext, TaskError, TaskFn, TaskRef};
//!
//! /// Prints the command line instead of running it.
//! struct DryRun;
//!
//! impl Runner for DryRun {
//!     fn name(&self) -> &str {
//!         "dry-run"
//!     }
//!     fn supports(&self, spec: &TaskSpec) -> bool {
//!         matches!(spec.kind(), TaskKind::Subprocess(_))
//!     }
//!     fn build_task(&self, spec: &TaskSpec, ctx: &BuildContext) -> Result<TaskRef, RunnerError> {
//!         let output = ctx.output().clone();
//!         let line = format!("would run slot {}", spec.slot());
//!         Ok(TaskFn::arc(move |_ctx: TaskContext| {
//!             let sink = output.sink();
//!             let line = line.clone();
//!             async move {
//!                 sink.stdout_line(line.into());
//!                 Ok::<(), TaskError>(())
//!             }
//!         }))
//!     }
//! }
//!
//! let mut router = RunnerRouter::new();
//! router.register_with_labels(DryRun, Labels::new().with("mode", "dry"))?;
//! let spec = TaskSpec::builder("demo", TaskKind::Subprocess(SubprocessSpec::command("true", Vec::<String>::new())), 1_000u64)
//!     .label("mode", "dry")
//!     .build()?;
//! assert_eq!(router.pick(&spec)?.name(), "dry-run");
//! let ctx = router.context(OutputPublisher::discard(solti_model::TaskId::generate()));
//! let (_task, runner) = router.build(&spec, &ctx)?;
//! assert_eq!(runner, "dry-run");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//! This crate has no Cargo features.
#![forbid(unsafe_code)]
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod context;
mod error;
mod lines;
mod metrics;
mod output;
mod router;

use solti_model::TaskSpec;
use taskvisor::TaskRef;

#[doc(inline)]
pub use context::{BuildContext, RunnerEnv};
#[doc(inline)]
pub use error::RunnerError;
#[doc(inline)]
pub use lines::{LineBatch, Lines};
#[doc(inline)]
pub use metrics::{AttemptOutcome, MetricsBackend, NoOpMetrics};
#[doc(inline)]
pub use output::{DiscardOutput, OutputPublisher, OutputSink, OutputTarget, now_ms};
#[doc(inline)]
pub use router::RunnerRouter;

/// Something that can execute task specs: a subprocess launcher, a WASM host, a container
/// engine. See the crate docs for the contract.
pub trait Runner: Send + Sync + 'static {
    /// A unique, stable name (`default`, `wasm`, …), used in metrics and errors.
    fn name(&self) -> &str;

    /// Whether this runner can execute `spec` (usually: by its kind).
    fn supports(&self, spec: &TaskSpec) -> bool;

    /// Builds the task the supervisor runs once per attempt.
    ///
    /// # Errors
    /// When the spec cannot be run by this runner; use [`RunnerError::build`].
    fn build_task(&self, spec: &TaskSpec, ctx: &BuildContext) -> Result<TaskRef, RunnerError>;
}
