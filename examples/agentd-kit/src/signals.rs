//! SIGTERM / ctrl-c handling: the first signal starts a graceful shutdown, a second one
//! forces the process to exit at once.

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// SIGTERM and SIGINT handlers, installed when this is created. Create it before announcing
/// readiness: a signal that arrives before the handlers exist kills the process outright.
#[derive(Debug)]
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Installs the handlers.
    ///
    /// # Errors
    /// When the signal handlers cannot be installed.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for SIGTERM or SIGINT, then cancels `shutdown`. A second signal exits the process
    /// with status 130 without waiting for the graceful path.
    pub async fn shutdown_on_signal(mut self, shutdown: CancellationToken) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!(signal = "SIGTERM", "shutting down gracefully; send again to force"),
            _ = self.int.recv() => tracing::info!(signal = "SIGINT", "shutting down gracefully; send again to force"),
            () = shutdown.cancelled() => return,
        }
        shutdown.cancel();
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        tracing::warn!("second signal: exiting without waiting for tasks");
        std::process::exit(130);
    }
}
