//! The /metrics endpoint, plain and as an embedded task.

use std::{net::SocketAddr, time::Duration};

use prometheus::Registry;
use solti_model::{RestartPolicy, TaskKind};
use solti_prometheus::{SoltiMetrics, metrics_server, serve_metrics};
use taskvisor::{TaskContext, TaskError};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::exposition::parse;

/// A minimal HTTP/1.1 GET; returns (status line, headers + body).
async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    conn.read_to_string(&mut resp).await.unwrap();
    let (status, rest) = resp.split_once("\r\n").unwrap();
    (status.to_owned(), rest.to_owned())
}

async fn bound() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

#[tokio::test]
async fn serve_metrics_answers_until_shutdown() {
    let registry = Registry::new();
    let _metrics = SoltiMetrics::new(&registry).unwrap();
    let (listener, addr) = bound().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_metrics(listener, registry, async {
        let _ = stopped.await;
    }));

    let (status, rest) = get(addr, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let (headers, body) = rest.split_once("\r\n\r\n").unwrap();
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{headers}"
    );
    let scrape = parse(body);
    assert!(scrape.docs.contains_key("solti_build_info"));

    let (status, _) = get(addr, "/").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener closed after shutdown"
    );
}

#[tokio::test]
async fn embedded_task_serves_until_cancelled_and_restarts_on_the_same_listener() {
    let registry = Registry::new();
    let _metrics = SoltiMetrics::new(&registry).unwrap();
    let (listener, addr) = bound().await;
    let (task, spec) = metrics_server(listener, registry);
    assert_eq!(spec.slot().as_str(), "solti-metrics");
    assert_eq!(spec.kind(), &TaskKind::Embedded);
    assert_eq!(spec.restart(), RestartPolicy::OnFailure);

    for _attempt in 0..2 {
        let ctx = TaskContext::detached();
        let run = tokio::spawn(task.spawn(ctx.clone()));
        let (status, body) = get(addr, "/metrics").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(body.contains("solti_build_info"));
        ctx.cancellation_token().cancel();
        let result = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(result, Err(TaskError::Canceled)), "{result:?}");
    }
}

/// Starts `serve_metrics` on a fresh listener; the returned sender stops it.
async fn start_server() -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), solti_prometheus::MetricsError>>,
) {
    let registry = Registry::new();
    solti_prometheus::register_build_info(&registry, "t", "1").unwrap();
    let (listener, addr) = bound().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_metrics(listener, registry, async {
        let _ = stopped.await;
    }));
    (addr, stop, server)
}

#[tokio::test]
async fn idle_connections_cannot_lock_a_scraper_out() {
    let (addr, stop, server) = start_server().await;
    // More silent connections than the cap: the oldest are closed to make room.
    let flood = solti_prometheus::METRICS_MAX_CONNECTIONS + 8;
    let mut idle = Vec::with_capacity(flood);
    for _ in 0..flood {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let (status, _) = get(addr, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    // The oldest silent connection was closed by the server (a hang guard, not a timing).
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(30), idle[0].read(&mut buf))
        .await
        .expect("the oldest idle connection was never closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
    drop(idle);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let (addr, stop, server) = start_server().await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 1];
    // Paused time: the runtime jumps to the server's deadline while the client waits.
    let n = silent.read(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0, "the server answered a connection that sent nothing");
    assert!(started.elapsed() >= solti_prometheus::METRICS_HEADER_TIMEOUT);
    // A half-sent request head is cut the same way.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest).await;
    let text = String::from_utf8_lossy(&rest);
    assert!(!text.contains("200 OK"), "{text}");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn wrong_methods_get_405_with_allow_and_a_json_error() {
    let (addr, stop, server) = start_server().await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST /metrics HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    conn.read_to_string(&mut resp).await.unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("\r\nallow: get,head"), "{head}");
    assert!(lower.contains("content-type: application/json"), "{head}");
    assert_eq!(
        body,
        r#"{"error":"MethodNotAllowed","message":"method POST is not allowed on /metrics"}"#
    );
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
