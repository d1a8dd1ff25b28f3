//! Live output events of a task.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Which pipe a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[expect(
    clippy::exhaustive_enums,
    reason = "a process has exactly two output pipes"
)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl OutputStream {
    /// `stdout` or `stderr`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// One event on a task's live output channel. One channel spans all attempts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    tag = "type",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum OutputEvent {
    /// One line of output (without its line ending).
    Chunk {
        /// Attempt that printed it (1-based).
        attempt: u32,
        /// Pipe.
        stream: OutputStream,
        /// Per stream and attempt, from 0.
        seq: u64,
        /// When it was read, Unix ms.
        ts: i64,
        /// The bytes of the line (may be invalid UTF-8); shared, not copied, per subscriber.
        line: Bytes,
    },
    /// An attempt started.
    RunStarted {
        /// Attempt number.
        attempt: u32,
        /// Unix ms.
        started_at: i64,
    },
    /// An attempt ended.
    RunFinished {
        /// Attempt number.
        attempt: u32,
        /// Exit code when the process exited by itself.
        exit_code: Option<i32>,
        /// Unix ms.
        finished_at: i64,
    },
    /// This subscriber fell behind and `skipped` events were dropped for it.
    Lagged {
        /// How many events were lost.
        skipped: u64,
    },
}
