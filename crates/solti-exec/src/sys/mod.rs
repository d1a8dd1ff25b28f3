//! Platform layer: starting, signalling and reaping process trees, and isolation.
//!
//! Linux has the real implementation (`linux`); elsewhere every start fails with
//! [`ExecError::Unsupported`](crate::ExecError::Unsupported).

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::{Isolation, Running, start};

#[cfg(not(target_os = "linux"))]
mod unsupported;
#[cfg(not(target_os = "linux"))]
pub(crate) use unsupported::{Isolation, Running, start};

use std::path::PathBuf;

/// A fully resolved command line, environment and working directory for one attempt.
#[derive(Debug)]
pub(crate) struct CommandLine {
    /// The program as given (`echo`, `/bin/sh`), looked up in the env's `PATH` unless it
    /// contains a `/`.
    pub(crate) program: String,
    /// Arguments after the program name.
    pub(crate) args: Vec<String>,
    /// The complete environment of the child.
    pub(crate) env: Vec<(String, String)>,
    /// Working directory; `None` inherits the agent's.
    pub(crate) cwd: Option<PathBuf>,
}

/// Attempt cgroups of dead agent processes found when a runner was created.
#[derive(Debug, Default)]
pub(crate) struct Swept {
    /// Killed and removed.
    pub(crate) removed: usize,
    /// Could not be emptied or removed in time: `(cgroup, cause)`.
    pub(crate) left: Vec<(PathBuf, String)>,
}
