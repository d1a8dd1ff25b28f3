//! SIGTERM / ctrl-c handling: the first signal starts a graceful shutdown, a second one
//! forces the process to exit at once.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Waits for SIGTERM or SIGINT, then cancels `shutdown`. A second signal exits the process with
/// status 130 without waiting for the graceful path.
///
/// # Errors
/// When the signal handlers cannot be installed.
pub async fn shutdown_on_signals(shutdown: CancellationToken) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutting down gracefully; send again to force"),
        _ = int.recv() => tracing::info!(signal = "SIGINT", "shutting down gracefully; send again to force"),
        () = shutdown.cancelled() => return Ok(()),
    }
    shutdown.cancel();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::warn!("second signal: exiting without waiting for tasks");
    std::process::exit(130);
}
