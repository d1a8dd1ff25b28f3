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
