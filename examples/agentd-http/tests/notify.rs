//! End-to-end: the real `agentd-http` tells systemd `READY=1`, `WATCHDOG=1` and `STOPPING=1`
//! over the socket in `NOTIFY_SOCKET` (a path, or an abstract `@name`).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::{
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    time::Duration,
};

use agentd_kit::testing::AgentProcess;

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("agentd-http-notify-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_agentd-http"))
}

/// The next datagram, as text (the socket has a read timeout).
fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let len = sock
        .recv(&mut buf)
        .expect("a notification within the timeout");
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

#[test]
fn ready_watchdog_stopping_on_a_path_socket() {
    let dir = scratch("path");
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut agent = AgentProcess::start_with_env(
        binary(),
        &dir.join("state"),
        &[],
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            // 200 ms: a ping every 100 ms.
            ("WATCHDOG_USEC", "200000"),
        ],
    )
    .unwrap();
    let ready = recv(&sock);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert!(
        ready.contains("STATUS=serving http://127.0.0.1:"),
        "{ready:?}"
    );
    // Two watchdog pings in a row (nothing else is sent while the agent idles).
    assert_eq!(recv(&sock), "WATCHDOG=1");
    assert_eq!(recv(&sock), "WATCHDOG=1");
    agent.send_sigterm().unwrap();
    let stopping = loop {
        let msg = recv(&sock);
        if msg != "WATCHDOG=1" {
            break msg;
        }
    };
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    assert!(agent.wait_exit(Duration::from_secs(30)).unwrap().success());
}

#[test]
fn ready_on_an_abstract_socket_and_no_watchdog_without_watchdog_usec() {
    use std::os::{linux::net::SocketAddrExt as _, unix::net::SocketAddr};
    let dir = scratch("abstract");
    let name = format!("solti-notify-e2e-{}", std::process::id());
    let sock =
        UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let target = format!("@{name}");
    let mut agent = AgentProcess::start_with_env(
        binary(),
        &dir.join("state"),
        &[],
        &[("NOTIFY_SOCKET", target.as_str())],
    )
    .unwrap();
    let ready = recv(&sock);
    assert!(ready.starts_with("READY=1\n"), "{ready:?}");
    agent.send_sigterm().unwrap();
    // No WATCHDOG_USEC: the next message is the shutdown.
    let stopping = recv(&sock);
    assert!(stopping.starts_with("STOPPING=1"), "{stopping:?}");
    assert!(agent.wait_exit(Duration::from_secs(30)).unwrap().success());
}
