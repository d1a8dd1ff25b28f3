//! systemd's readiness protocol (`sd_notify`): `READY=1` once serving, `STOPPING=1` on
//! shutdown, `RELOADING=1` around a reload, and `WATCHDOG=1` at half of `WATCHDOG_USEC`.
//!
//! A few lines over a Unix datagram socket: `NOTIFY_SOCKET` names a path or, with a leading
//! `@`, an abstract socket. Without `NOTIFY_SOCKET` every call does nothing. Sending never
//! blocks and a failure is logged once at debug level: the agent runs the same without
//! systemd.

use std::{os::unix::net::UnixDatagram, sync::OnceLock, time::Duration};

/// Where to send notifications, and the watchdog interval, read once from the environment.
#[derive(Debug)]
pub(crate) struct Notifier {
    socket: Option<(UnixDatagram, String)>,
    watchdog: Option<Duration>,
}

static NOTIFIER: OnceLock<Notifier> = OnceLock::new();

impl Notifier {
    fn from_env() -> Self {
        let target = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|s| s.len() > 1 && (s.starts_with('/') || s.starts_with('@')));
        let socket = target.and_then(|t| match UnixDatagram::unbound() {
            Ok(sock) => {
                let _ = sock.set_nonblocking(true);
                Some((sock, t))
            }
            Err(e) => {
                tracing::warn!(error = %e, "NOTIFY_SOCKET is set but no datagram socket could be opened");
                None
            }
        });
        // WATCHDOG_PID, when set, names the process the watchdog is meant for.
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .is_none_or(|pid| pid.trim() == std::process::id().to_string());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&usec| usec > 0 && for_us)
            .map(Duration::from_micros);
        Self { socket, watchdog }
    }

    /// Sends `msg` (newline-separated `KEY=VALUE` assignments).
    pub(crate) fn send(&self, msg: &str) {
        let Some((sock, target)) = &self.socket else {
            return;
        };
        let sent = if let Some(name) = target.strip_prefix('@') {
            send_abstract(sock, name.as_bytes(), msg.as_bytes())
        } else {
            sock.send_to(msg.as_bytes(), target).map(drop)
        };
        if let Err(e) = sent {
            tracing::debug!(error = %e, socket = %target, "sd_notify failed");
        }
    }

    /// The watchdog ping interval: half of `WATCHDOG_USEC`, when systemd asked for one.
    pub(crate) fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|d| d / 2)
    }
}

#[cfg(target_os = "linux")]
fn send_abstract(sock: &UnixDatagram, name: &[u8], msg: &[u8]) -> std::io::Result<()> {
    use std::os::{linux::net::SocketAddrExt as _, unix::net::SocketAddr};
    let addr = SocketAddr::from_abstract_name(name)?;
    sock.send_to_addr(msg, &addr).map(drop)
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &[u8]) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "abstract sockets exist on Linux only",
    ))
}

/// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` and removes them from the
/// environment, so tasks cannot impersonate the agent towards systemd. Call while the
/// process is single-threaded (from `main`).
pub(crate) fn take_from_env() {
    let _ = NOTIFIER.get_or_init(Notifier::from_env);
    #[expect(
        unsafe_code,
        reason = "remove_var is unsafe only because of concurrent readers; none exist yet"
    )]
    // SAFETY: called from `main` before the tokio runtime or any other thread starts.
    unsafe {
        for var in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            std::env::remove_var(var);
        }
    }
}

/// The process's notifier (read from the environment on first use when `main` did not).
pub(crate) fn notifier() -> &'static Notifier {
    NOTIFIER.get_or_init(Notifier::from_env)
}

/// Sends `WATCHDOG=1` every `every` until `stop` is cancelled.
pub(crate) async fn watchdog(every: Duration, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => notifier().send("WATCHDOG=1"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            socket: Some((
                UnixDatagram::unbound().unwrap(),
                path.to_string_lossy().into_owned(),
            )),
            watchdog: Some(Duration::from_secs(10)),
        };
        n.send("READY=1\nSTATUS=up");
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=up");
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(5)));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::{linux::net::SocketAddrExt as _, unix::net::SocketAddr};
        let name = format!("solti-notify-unit-{}", std::process::id());
        let server =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let n = Notifier {
            socket: Some((UnixDatagram::unbound().unwrap(), format!("@{name}"))),
            watchdog: None,
        };
        n.send("STOPPING=1");
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STOPPING=1");
        assert_eq!(n.watchdog_interval(), None);
    }

    #[test]
    fn no_socket_is_a_no_op() {
        let n = Notifier {
            socket: None,
            watchdog: None,
        };
        n.send("READY=1");
    }
}
