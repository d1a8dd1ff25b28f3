//! End-to-end security defaults of the real `agentd-http` binary: browser-shaped requests,
//! the Unix-socket listener, and the start-up refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::{os::unix::fs::PermissionsExt as _, path::Path};

use agentd_kit::testing::{AgentProcess, refused_start};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpStream, UnixStream},
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_agentd-http"))
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("agentd-http-sec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const SPEC: &str = r#"{"spec":{"slot":"sec","kind":{"subprocess":{"command":{"command":"true"}}},"timeoutMs":"10000","restart":"RESTART_STRATEGY_NEVER","admission":"ADMISSION_STRATEGY_DROP_IF_RUNNING"}}"#;

/// One HTTP/1.1 exchange on `io` (the request asks to close the connection).
async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut io: S,
    head: &str,
    body: &str,
) -> String {
    io.write_all(head.as_bytes()).await.unwrap();
    io.write_all(body.as_bytes()).await.unwrap();
    let mut out = String::new();
    io.read_to_string(&mut out).await.unwrap();
    out
}

fn post_head(host: &str, len: usize, extra: &str) -> String {
    format!(
        "POST /api/v1/tasks HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len}\r\n{extra}Connection: close\r\n\r\n"
    )
}

#[tokio::test]
async fn browser_shaped_requests_are_refused_by_the_agent() {
    let dir = scratch("browser");
    let agent = AgentProcess::start(bin(), &dir, &[]).unwrap();
    let addr = agent.api_addr();
    // fetch(url, {method: "POST", mode: "no-cors", body}) from https://evil.example.
    let no_cors = "Content-Type: text/plain;charset=UTF-8\r\nOrigin: https://evil.example\r\n\
                   Sec-Fetch-Mode: no-cors\r\nSec-Fetch-Site: cross-site\r\n";
    let out = exchange(
        TcpStream::connect(&addr).await.unwrap(),
        &post_head(&addr, SPEC.len(), no_cors),
        SPEC,
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 403 "), "{out}");
    assert!(
        out.contains(r#"{"error":"Forbidden","message":"Sec-Fetch-Site: "#),
        "{out}"
    );
    // No Content-Type, no browser headers: 415.
    let out = exchange(
        TcpStream::connect(&addr).await.unwrap(),
        &post_head(&addr, SPEC.len(), ""),
        SPEC,
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 415 "), "{out}");
    // DNS rebinding: a page on rebind.evil.example resolved to 127.0.0.1.
    let head =
        "GET /api/v1/tasks HTTP/1.1\r\nHost: rebind.evil.example:8085\r\nConnection: close\r\n\r\n";
    let out = exchange(TcpStream::connect(&addr).await.unwrap(), head, "").await;
    assert!(out.starts_with("HTTP/1.1 421 "), "{out}");
    assert!(out.contains(r#""error":"MisdirectedRequest""#), "{out}");
    // Nothing was submitted; a proper client still works.
    let ok = exchange(
        TcpStream::connect(&addr).await.unwrap(),
        &post_head(&addr, SPEC.len(), "Content-Type: application/json\r\n"),
        SPEC,
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 201 "), "{ok}");
    let head = format!("GET /api/v1/tasks HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let list = exchange(TcpStream::connect(&addr).await.unwrap(), &head, "").await;
    assert!(list.contains(r#""total":1"#), "{list}");
    // The metrics listener checks the Host too.
    let metrics = agent.metrics_url();
    let maddr = metrics
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_owned();
    let head = "GET /metrics HTTP/1.1\r\nHost: rebind.evil.example\r\nConnection: close\r\n\r\n";
    let out = exchange(TcpStream::connect(&maddr).await.unwrap(), head, "").await;
    assert!(out.starts_with("HTTP/1.1 421 "), "{out}");
    drop(agent);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn unix_socket_listener_with_mode_0600() {
    let dir = scratch("unix");
    let sock = dir.join("agent.sock");
    // A stale socket file from an earlier run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let listen = format!("unix:{}", sock.display());
    let mut agent = AgentProcess::start_args(
        bin(),
        &dir.join("state"),
        &["--listen", &listen, "--metrics-listen", "off"],
    )
    .unwrap();
    assert_eq!(agent.ready["api"], listen);
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let out = exchange(
        UnixStream::connect(&sock).await.unwrap(),
        &post_head(
            "localhost",
            SPEC.len(),
            "Content-Type: application/json\r\n",
        ),
        SPEC,
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 201 "), "{out}");
    let head = "GET /api/v1/tasks HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let out = exchange(UnixStream::connect(&sock).await.unwrap(), head, "").await;
    assert!(out.contains(r#""slot":"sec""#), "{out}");
    let status = agent.terminate(std::time::Duration::from_secs(30)).unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!sock.exists(), "the socket file is removed at shutdown");

    // A regular file at the path is never removed.
    std::fs::write(&sock, "keep").unwrap();
    let err = refused_start(
        bin(),
        &dir,
        &["--listen", &listen, "--metrics-listen", "off"],
    )
    .unwrap();
    assert!(err.contains("exists and is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&sock).unwrap(), "keep");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cleartext_and_ignored_flags_refuse_to_start() {
    let dir = scratch("refuse");
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "--listen",
                "0.0.0.0:0",
                "--token",
                "tok",
                "--metrics-listen",
                "off",
            ],
            "--insecure-allow-cleartext-token",
        ),
        (
            &[
                "--listen",
                "127.0.0.1:0",
                "--token",
                "tok",
                "--control-plane",
                "http://podium.example:8080",
                "--metrics-listen",
                "off",
            ],
            "clear text to control plane",
        ),
        (
            &[
                "--listen",
                "127.0.0.1:0",
                "--cp-client-cert",
                "c.pem",
                "--cp-client-key",
                "k.pem",
                "--metrics-listen",
                "off",
            ],
            "need --cp-ca",
        ),
        (
            &["--listen", "127.0.0.1:0", "--metrics-listen", "0.0.0.0:0"],
            "refusing to serve metrics on non-loopback",
        ),
        (
            &[
                "--listen",
                "unix:/tmp/x.sock",
                "--listen-mode",
                "888",
                "--metrics-listen",
                "off",
            ],
            "--listen-mode",
        ),
    ];
    for (args, want) in cases {
        let err = refused_start(bin(), &dir, args).unwrap();
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
