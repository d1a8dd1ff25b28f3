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
//! - [`Runner::build_task`] is called once per submission and returns a `TaskRef`, usually
//!   an [`AttemptFn`]: a function called once per attempt with an [`Attempt`] (its number,
//!   its cancellation and its [`OutputSink`]) that returns an [`AttemptEnd`] (the result
//!   and the exit code to record). The function must return its future quickly; the work
//!   happens in the future. Publishing never blocks; slow readers lose events, not the
//!   runner.
//! - The supervisor starts each attempt with [`start_attempt`], which hands the attempt
//!   number to the task and returns its `AttemptEnd`; nothing else is shared between them.
//! - **Cancellation**: the attempt's context is cancelled on timeout, cancel, delete,
//!   replace and shutdown. Stop promptly and clean up (a subprocess runner terminates its
//!   process tree), then end with `Err(TaskError::Canceled)` or the attempt's real error.
//! - **Drop**: the future may be dropped without being polled again (force-abort after the
//!   supervisor's grace). Anything it owns must clean up in `Drop` (kill and reap children,
//!   remove temp files).
//! - End with `TaskError::Fail` for retryable failures and `TaskError::Fatal` for failures
//!   no retry can fix. Put a process's exit code in the `AttemptEnd`
//!   ([`AttemptEnd::with_exit_code`]), also when the attempt succeeds anyway.
//!
//! # Example
//! ```
//! use solti_model::{Labels, SubprocessSpec, TaskKind, TaskSpec, TaskId};
//! use solti_runner::{
//!     Attempt, AttemptEnd, AttemptFn, BuildContext, OutputPublisher, Runner, RunnerError,
//!     RunnerRouter, start_attempt,
//! };
//! use taskvisor::{TaskContext, TaskRef};
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
//!         let line = format!("would run slot {}", spec.slot());
//!         Ok(AttemptFn::arc(ctx.output(), move |attempt: Attempt| {
//!             let line = format!("{line} (attempt {})", attempt.number());
//!             async move {
//!                 attempt.output().stdout_line(line.into());
//!                 AttemptEnd::success().with_exit_code(0)
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
//! let ctx = router.context(OutputPublisher::discard(TaskId::generate()));
//! let (task, runner) = router.build(&spec, &ctx)?;
//! assert_eq!(runner, "dry-run");
//! // What the supervisor does for attempt 1:
//! let end = block_on(start_attempt(&task, 1, TaskContext::detached()));
//! assert_eq!(end.exit_code(), Some(0));
//! # fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//! This crate has no Cargo features.
#![forbid(unsafe_code)]
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod attempt;
mod context;
mod error;
mod lines;
mod metrics;
mod output;
mod router;

use solti_model::TaskSpec;
use taskvisor::TaskRef;

#[doc(inline)]
pub use attempt::{Attempt, AttemptEnd, AttemptFn, AttemptFuture, start_attempt};
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

    /// Builds the task the supervisor runs once per attempt (usually an [`AttemptFn`]).
    ///
    /// # Errors
    /// When the spec cannot be run by this runner; use [`RunnerError::build`].
    fn build_task(&self, spec: &TaskSpec, ctx: &BuildContext) -> Result<TaskRef, RunnerError>;
}
