//! Domain types of the Solti task-orchestration SDK: task specs, policies, selectors,
//! identifiers, status and live-output events.
//!
//! This is the bottom layer. It is pure data with `serde` support: no async runtime, no
//! protobuf; its only I/O is loading a [`Token`] (from a file or the environment) and reading
//! the clock and the OS random source to generate ids and tokens. Every other Solti crate depends on it;
//! a third-party runner needs only this crate and `solti-runner`.
//!
//! Values are validated when built ([`TaskSpec::builder`], [`Slot::try_new`], …); every
//! failure is a [`ModelError`] that names the field and the rule, e.g.
//! `slot: must be 1..=64 chars of [A-Za-z0-9._-], got 65`.
//!
//! # Example
//! ```
//! use solti_model::{
//!     AdmissionPolicy, Flag, RestartPolicy, SubprocessMode, SubprocessSpec, TaskEnv, TaskKind,
//!     TaskSpec,
//! };
//!
//! let kind = TaskKind::Subprocess(SubprocessSpec {
//!     mode: SubprocessMode::Command { command: "echo".into(), args: vec!["hello world".into()] },
//!     env: TaskEnv::new(),
//!     cwd: None,
//!     fail_on_non_zero: Flag::enabled(),
//! });
//! let spec = TaskSpec::builder("hello", kind, 30_000u64)
//!     .restart(RestartPolicy::Never)
//!     .admission(AdmissionPolicy::Replace)
//!     .build()?;
//! assert_eq!(spec.slot().as_str(), "hello");
//!
//! // Policies parse from human input.
//! let restart: RestartPolicy = "on-failure".parse()?;
//! assert_eq!(restart, RestartPolicy::OnFailure);
//! # Ok::<(), solti_model::ModelError>(())
//! ```
//!
//! # Features
//! This crate has no Cargo features.
#![forbid(unsafe_code)]
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod env;
mod error;
mod id;
mod output;
mod policy;
mod selector;
mod spec;
mod status;
mod token;

#[doc(inline)]
pub use env::{Flag, TaskEnv};
#[doc(inline)]
pub use error::{ModelError, error_chain};
#[doc(inline)]
pub use id::{AgentId, MAX_AGENT_ID_LEN, MAX_SLOT_LEN, MAX_TASK_ID_LEN, Slot, TaskId};
#[doc(inline)]
pub use output::{OutputEvent, OutputStream};
#[doc(inline)]
pub use policy::{AdmissionPolicy, BackoffPolicy, JitterPolicy, RestartPolicy};
#[doc(inline)]
pub use selector::{
    Labels, MAX_LABEL_KEY_LEN, MAX_LABEL_VALUE_LEN, MAX_LABELS, MAX_SELECTOR_VALUES,
    RunnerSelector, SelectorOperator, SelectorRequirement,
};
#[doc(inline)]
pub use spec::{
    ContainerSpec, MAX_ARGS, MAX_ARGS_BYTES, MAX_DURATION_MS, MAX_ENV_BYTES, MAX_ENV_ENTRIES,
    MAX_SCRIPT_BYTES, MAX_STRING_BYTES, Runtime, SubprocessMode, SubprocessSpec, TaskKind,
    TaskSpec, TaskSpecBuilder, WasmSpec, decode_script,
};
#[doc(inline)]
pub use status::{
    DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, ObjectMeta, Task, TaskPage, TaskPhase, TaskQuery, TaskRun,
    TaskStatus,
};
#[doc(inline)]
pub use token::{MAX_TOKEN_LEN, Token};
