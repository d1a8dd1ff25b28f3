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
        let mut out = self.to_string();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(e) = cur {
            out.push_str(": ");
            out.push_str(&e.to_string());
            cur = e.source();
        }
        out
    }

    /// A short fixed label for [`MetricsBackend::runner_error`](solti_runner::MetricsBackend).
    pub(crate) fn metric_reason(&self) -> &'static str {
        match self {
            Self::ScriptWrite { .. } => "script_write",
            Self::Cgroup { .. } => "cgroup",
            Self::IsolationUnavailable { .. } => "isolation",
            Self::CommandNotFound { .. } => "not_found",
            Self::InvalidConfig { .. } | Self::Register(_) => "config",
            Self::InvalidSpec { .. } => "spec",
            Self::Nul { .. } | Self::Spawn { .. } | Self::Unsupported => "spawn",
        }
    }
}
