//! The error type of solti-exec.

use std::{io, path::PathBuf};

use solti_runner::RunnerError;

/// Why the subprocess runner could not be registered, or an attempt could not start.
///
/// Attempt-time errors reach the supervisor as `TaskError::Fatal` with this error's text
/// (and its sources) as the reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// A [`SubprocessBackendConfig`](crate::SubprocessBackendConfig) value breaks a rule.
    #[error("invalid subprocess backend config: {field}: {reason}")]
    InvalidConfig {
        /// The setting, e.g. `cpu_max.quota_us`.
        field: &'static str,
        /// The rule it breaks.
        reason: String,
    },
    /// The task spec cannot be run by this runner (e.g. a mode this version does not know).
    #[error("cannot run this task spec: {field}: {reason}")]
    InvalidSpec {
        /// The spec field, e.g. `kind.subprocess.mode`.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The router refused the runner (duplicate or invalid name).
    #[error("cannot register the subprocess runner")]
    Register(#[source] RunnerError),
    /// `require_enforcement(true)` is set and some configured isolation cannot be applied.
    #[error("isolation is required but cannot be enforced: {missing}")]
    IsolationUnavailable {
        /// What is missing, one `setting (cause)` per item, `; `-separated.
        missing: String,
    },
    /// The program was not found (or is not executable) in the task's `PATH`.
    #[error("command {command:?} not found in PATH {path:?}")]
    CommandNotFound {
        /// The command as given in the spec.
        command: String,
        /// The `PATH` that was searched.
        path: String,
    },
    /// A string handed to the OS contains a NUL byte.
    #[error("{field} contains a NUL byte")]
    Nul {
        /// Which value (`argument`, `environment`, `cwd`, …).
        field: &'static str,
    },
    /// The temporary script file could not be written.
    #[error("failed to write the script file under {dir:?}")]
    ScriptWrite {
        /// The temp directory.
        dir: PathBuf,
        /// The cause (e.g. `ENOSPC`).
        #[source]
        source: io::Error,
    },
    /// The per-attempt cgroup could not be set up.
    #[error("failed to set up cgroup {path:?}")]
    Cgroup {
        /// The cgroup directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The process could not be started; `stage` is the step that failed (`execve`,
    /// `chdir`, `setrlimit`, `capabilities`, …).
    #[error("failed to start {program:?} ({stage})")]
    Spawn {
        /// The program.
        program: String,
        /// The step that failed.
        stage: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Starting the process took longer than
    /// [`spawn_timeout`](crate::SubprocessBackendConfig::spawn_timeout): a path it needs
    /// (the program, `cwd`) is probably on a hung mount. Retryable.
    #[error(
        "starting {program:?} took longer than {timeout:?} (is the program or cwd on a hung mount?)"
    )]
    SpawnTimeout {
        /// The program.
        program: String,
        /// The configured bound.
        timeout: std::time::Duration,
    },
    /// The task user cannot be set up (`run_as`).
    #[error("cannot run tasks as uid {uid} gid {gid}: {reason}")]
    RunAs {
        /// The configured uid.
        uid: u32,
        /// The configured gid.
        gid: u32,
        /// Why.
        reason: String,
    },
    /// This platform has no subprocess backend (solti-exec supports Linux).
    #[error("the subprocess runner is not supported on this platform (Linux only)")]
    Unsupported,
}

impl ExecError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            field,
            reason: reason.into(),
        }
    }

    /// This error and its sources as one line (`a: b: c`), used as a task failure reason.
    pub(crate) fn chain(&self) -> String {
        solti_model::error_chain(self)
    }

    /// Whether the cause is likely to pass, so the attempt fails retryably (`Fail`, the
    /// restart policy applies) instead of `Fatal`: the descriptor table is full (`EMFILE`,
    /// `ENFILE`), the kernel refused a new process for now (`EAGAIN`, `ENOMEM` from
    /// `clone`, or the user's `RLIMIT_NPROC`), or starting timed out.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        let transient = |e: &io::Error| {
            matches!(
                e.raw_os_error(),
                Some(libc::EMFILE | libc::ENFILE | libc::EAGAIN)
            )
        };
        match self {
            Self::SpawnTimeout { .. } => true,
            Self::Spawn { stage, source, .. } => {
                transient(source)
                    || (*stage == "clone" && source.raw_os_error() == Some(libc::ENOMEM))
            }
            Self::Cgroup { source, .. } | Self::ScriptWrite { source, .. } => transient(source),
            _ => false,
        }
    }

    /// A short fixed label for [`MetricsBackend::runner_error`](solti_runner::MetricsBackend).
    pub(crate) fn metric_reason(&self) -> &'static str {
        match self {
            Self::ScriptWrite { .. } => "script_write",
            Self::Cgroup { .. } => "cgroup",
            Self::IsolationUnavailable { .. } => "isolation",
            Self::CommandNotFound { .. } => "not_found",
            Self::InvalidConfig { .. } | Self::Register(_) | Self::RunAs { .. } => "config",
            Self::SpawnTimeout { .. } => "spawn_timeout",
            Self::InvalidSpec { .. } => "spec",
            Self::Nul { .. } | Self::Spawn { .. } | Self::Unsupported => "spawn",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawn_err(stage: &'static str, errno: i32) -> ExecError {
        ExecError::Spawn {
            program: "p".to_owned(),
            stage,
            source: io::Error::from_raw_os_error(errno),
        }
    }

    #[test]
    fn descriptor_and_process_exhaustion_are_retryable() {
        for errno in [libc::EMFILE, libc::ENFILE, libc::EAGAIN] {
            assert!(spawn_err("pipe", errno).is_retryable(), "{errno}");
            assert!(spawn_err("clone", errno).is_retryable(), "{errno}");
        }
        assert!(spawn_err("clone", libc::ENOMEM).is_retryable());
        let cgroup = ExecError::Cgroup {
            path: PathBuf::from("/x"),
            source: io::Error::from_raw_os_error(libc::EMFILE),
        };
        assert!(cgroup.is_retryable());
        let timeout = ExecError::SpawnTimeout {
            program: "p".to_owned(),
            timeout: std::time::Duration::from_secs(1),
        };
        assert!(timeout.is_retryable());
    }

    #[test]
    fn other_start_failures_are_not() {
        assert!(!spawn_err("execve", libc::ENOENT).is_retryable());
        assert!(!spawn_err("chdir", libc::EACCES).is_retryable());
        assert!(!spawn_err("execve", libc::ENOMEM).is_retryable());
        let nf = ExecError::CommandNotFound {
            command: "x".to_owned(),
            path: "/bin".to_owned(),
        };
        assert!(!nf.is_retryable());
    }
}
