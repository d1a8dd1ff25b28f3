//! One error type for the whole client: a one-line message and the process exit code.

use std::fmt;

/// Exit code: the command did what was asked.
pub(crate) const EXIT_OK: u8 = 0;
/// Exit code: the agent refused or failed, the task was not found, the agent was unreachable;
/// under `--wait` / `wait`, the task failed without an exit code or was cancelled.
pub(crate) const EXIT_FAILED: u8 = 1;
/// Exit code: the command line (a flag, a value, a file it names) is wrong; nothing was sent.
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code under `--wait` / `wait`: the task timed out.
pub(crate) const EXIT_TIMEOUT: u8 = 124;
/// Exit code after Ctrl-C while following or waiting (the task goes on).
pub(crate) const EXIT_INTERRUPTED: u8 = 130;
/// Exit code under `--wait` / `wait`: solti itself failed (so it is not mistaken for the
/// task's own exit code).
pub(crate) const EXIT_WAIT_ERROR: u8 = 125;

/// A failure to report: printed as `solti: <message>` on one line.
#[derive(Debug)]
pub(crate) struct Error {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl Error {
    /// The command line is wrong (exit 2).
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// The operation failed (exit 1).
    pub(crate) fn failed(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_FAILED,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever the agent or the OS put in the message.
        let one_line = self.message.replace(['\n', '\r'], " ");
        f.write_str(one_line.trim())
    }
}

/// Results of the client.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;
