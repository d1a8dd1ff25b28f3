//! The journald layer (Linux only; elsewhere a clear error).

#[cfg(not(target_os = "linux"))]
pub(crate) use fallback::layer;
#[cfg(target_os = "linux")]
pub(crate) use imp::layer;

/// The socket systemd-journald listens on.
pub const JOURNALD_SOCKET: &str = "/run/systemd/journal/socket";

#[cfg(target_os = "linux")]
mod imp {
    use std::path::Path;

    use super::JOURNALD_SOCKET;
    use crate::ObserveError;

    /// Connects to journald, checking for its socket first so a host without journald gets a
    /// clear error instead of a bare `ENOENT`.
    pub(crate) fn layer() -> Result<tracing_journald::Layer, ObserveError> {
        let socket = Path::new(JOURNALD_SOCKET);
        if !socket.exists() {
            return Err(ObserveError::JournaldUnavailable {
                socket: socket.to_owned(),
                source: None,
            });
        }
        tracing_journald::layer().map_err(|e| ObserveError::JournaldUnavailable {
            socket: socket.to_owned(),
            source: Some(e),
        })
    }
}

#[cfg(not(target_os = "linux"))]
mod fallback {
    use crate::ObserveError;

    /// Journald exists only on Linux.
    pub(crate) fn layer() -> Result<tracing_subscriber::layer::Identity, ObserveError> {
        Err(ObserveError::JournaldUnsupported)
    }
}
