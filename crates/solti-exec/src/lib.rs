//! The subprocess runner of the Solti SDK: runs [`TaskKind::Subprocess`] specs as OS
//! processes, streams their output line by line, and makes sure that every process an
//! attempt started is gone when the attempt ends, optionally under cgroup v2 limits,
//! reduced capabilities and rlimits.
//!
//! Place in the stack: depends on `solti-runner` (it implements [`Runner`]) and
//! `solti-model`; registered into a [`RunnerRouter`] by agent binaries, which hand the
//! router to `solti-core`'s `SupervisorApi`. It is the only Solti crate with `unsafe` code
//! (the `clone`/`execve` spawner and the syscalls around it, each block with a `SAFETY`
//! note).
//!
//! # Example
//! ```no_run
//! use std::time::Duration;
//!
//! use solti_exec::{SubprocessBackendConfig, subprocess};
//! use solti_runner::RunnerRouter;
//!
//! let mut router = RunnerRouter::new();
//! subprocess::register_subprocess_runner(&mut router, "default")?;
//! subprocess::register_subprocess_runner_with_backend(
//!     &mut router,
//!     "sandboxed",
//!     SubprocessBackendConfig::new()
//!         .kill_grace(Duration::from_secs(2))
//!         .cgroup_parent("/sys/fs/cgroup/solti")
//!         .memory_max(256 << 20)
//!         .pids_max(128)
//!         .drop_all_capabilities(true)
//!         .no_new_privs(true)
//!         .rlimit_nofile(1024)
//!         .rlimit_core(0),
//! )?;
//! // A duplicate name is refused.
//! assert!(subprocess::register_subprocess_runner(&mut router, "default").is_err());
//! # Ok::<(), solti_exec::ExecError>(())
//! ```
//!
//! # Behaviour
//! - **Modes**: command mode execs `command args` (looked up in the task's `PATH` unless it
//!   contains `/`); script mode writes the decoded body to a private 0600 temp file and runs
//!   `<interpreter> [flag] <file> <args>`; the file is removed when the attempt ends (also
//!   when its future is dropped).
//! - **Environment**: a clean one by default: the agent's `PATH`, `HOME`, `LANG` and `TZ`,
//!   then the runner env, then the task env on top
//!   ([`inherit_env(true)`](SubprocessBackendConfig::inherit_env) starts from the agent's
//!   whole environment instead); the agent's `SOLTI_*` variables never reach a task. `cwd`
//!   from the spec. stdin is `/dev/null`.
//! - **Task user**: [`run_as`](SubprocessBackendConfig::run_as) runs every process as
//!   another user and group (supplementary groups cleared); the task then cannot write the
//!   cgroup files that bound it.
//! - **Output**: stdout and stderr are read on their own tasks, split at LF (a CR before the
//!   LF is dropped, invalid UTF-8 is kept), published to the attempt's `OutputSink` as
//!   `Bytes`, and emitted as DEBUG tracing events with control characters escaped. A line
//!   longer than [`max_line_bytes`](SubprocessBackendConfig::max_line_bytes) is cut to that
//!   many bytes, [`CUT_MARKER`] is appended, and the rest up to the next LF is skipped.
//! - **Exit**: exit 0 is success. A non-zero exit is `TaskError::Fail` with the exit code
//!   when `fail_on_non_zero` is on, success otherwise; either way the attempt's
//!   `AttemptEnd` carries the code. Death by a signal fails with the signal named and no
//!   exit code. A spawn failure (command not found, bad `cwd`, script write error,
//!   isolation required but missing) is `TaskError::Fatal` with a reason naming the cause,
//!   except transient ones ([`ExecError::is_retryable`]: `EMFILE`, `ENFILE`, `EAGAIN`, a
//!   start slower than [`spawn_timeout`](SubprocessBackendConfig::spawn_timeout)), which
//!   are `TaskError::Fail` so the restart policy applies. Program lookup, `cwd` and `execve`
//!   never block the async runtime (they run on the runner's spawner threads).
//! - **Process lifetime**: the child leads its own process group and, when cgroup v2 is
//!   writable, its own cgroup. On cancel, delete, replace or shutdown the tree gets SIGTERM,
//!   then SIGKILL (`cgroup.kill`) after the [kill grace](SubprocessBackendConfig::kill_grace),
//!   and is always reaped. When taskvisor drops the attempt future (timeout), a drop guard
//!   sends SIGTERM at once and a reaper owned by the runner finishes the job. Processes left
//!   behind by a main process that exited normally are killed too. If the agent itself is
//!   killed (SIGKILL, crash), its direct children die with it (`PR_SET_PDEATHSIG`), and the
//!   next [`SubprocessRunner::new`] kills and removes the attempt cgroups of the dead agent
//!   process, background jobs included. See [`docs::lifetime`].
//! - **Isolation** (Linux, all optional): see [`SubprocessBackendConfig`] and
//!   [`docs::isolation`].
//!
//! # Features
//! This crate has no Cargo features.
#![cfg_attr(docsrs, feature(doc_cfg))]
// The spawner needs raw syscalls between clone and execve; every block is justified.
#![expect(
    unsafe_code,
    reason = "the clone/execve spawner and its syscalls; each unsafe block has a SAFETY note"
)]

mod config;
pub mod docs;
mod error;
mod lines;
pub mod subprocess;
mod sys;

#[doc(inline)]
pub use config::{
    DEFAULT_KILL_GRACE, DEFAULT_MAX_LINE_BYTES, DEFAULT_SPAWN_TIMEOUT, SubprocessBackendConfig,
};
#[doc(inline)]
pub use error::ExecError;
#[doc(inline)]
pub use lines::CUT_MARKER;
#[doc(inline)]
pub use subprocess::{
    SubprocessRunner, register_subprocess_runner, register_subprocess_runner_with_backend,
};

#[cfg(doc)]
use solti_model::TaskKind;
#[cfg(doc)]
use solti_runner::{Runner, RunnerRouter};
