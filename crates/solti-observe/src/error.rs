//! The crate's error type.

use std::{io, path::PathBuf};

/// Why setting up logging failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObserveError {
    /// The `level` filter expression is empty or does not parse as an `EnvFilter` directive
    /// list (for example `info,solti_core=debug`).
    #[error(
        "invalid log level filter {filter:?} (field `level`): expected an env-filter \
         expression such as \"info\" or \"warn,solti_core=debug\""
    )]
    InvalidFilter {
        /// The expression as given.
        filter: String,
        /// The parser's error; absent when the expression was empty.
        #[source]
        source: Option<tracing_subscriber::filter::ParseError>,
    },
    /// A global logger (a `tracing` subscriber or a `log` logger) is already installed:
    /// [`init_logger`](crate::init_logger) may be called once per process.
    #[error("a global logger is already installed; init_logger may be called once per process")]
    AlreadyInitialized {
        /// The installer's error, when the conflict was detected by `tracing` itself.
        #[source]
        source: Option<tracing_subscriber::util::TryInitError>,
    },
    /// The journald format was chosen, but the journald socket does not exist or does not
    /// accept datagrams (no systemd-journald on this host, or a container without the socket).
    #[error("journald logging is not available: cannot send to the journald socket {}", socket.display())]
    JournaldUnavailable {
        /// The socket path that was checked.
        socket: PathBuf,
        /// The I/O error, absent when the socket file does not exist.
        #[source]
        source: Option<io::Error>,
    },
    /// The journald format was chosen on a platform other than Linux.
    #[error("journald logging is only supported on linux")]
    JournaldUnsupported,
    /// The system's UTC offset could not be read.
    #[error("cannot determine the local utc offset")]
    LocalOffset(#[source] time::error::IndeterminateOffset),
}
