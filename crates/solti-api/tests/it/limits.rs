//! Listener hardening: the connection cap makes room by closing idle connections, and idle
//! connections (HTTP/2 ones that answer pings included) are closed.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use solti_api::{HttpApi, ServeConfig};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::oneshot,
};

use crate::harness::FakeHandler;

async fn start(
    config: ServeConfig,
) -> (
    std::net::SocketAddr,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let app = HttpApi::new(Arc::new(FakeHandler::default())).router();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(config.serve(tcp, app, async move {
        let _ = stopped.await;
    }));
    (addr, stop, task)
}

async fn get_tasks(addr: std::net::SocketAddr) -> String {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(b"GET /api/v1/tasks HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), sock.read_to_string(&mut out))
        .await
        .expect("an answer")
        .unwrap();
    out
}

#[tokio::test]
async fn idle_connections_cannot_lock_out_a_client() {
    let config = ServeConfig::new().max_connections(4);
    assert_eq!(config.connection_limit(), 4);
    let (addr, stop, task) = start(config).await;
    // Twelve clients connect and send nothing (the header timeout is 30 s).
    let mut idle = Vec::new();
    for _ in 0..12 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // A real client still gets its answer: the oldest idle connections made room.
    let out = get_tasks(addr).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    // At most four stay open at any time: at least eight of the twelve were closed.
    let mut closed = 0;
    for mut sock in idle {
        let mut buf = [0u8; 16];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(200), sock.read(&mut buf)).await
        {
            closed += 1;
        }
    }
    assert!(closed >= 8, "only {closed} idle connections were closed");
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_idle_http2_connection_that_answers_pings_is_closed() {
    let config = ServeConfig::new()
        .idle_timeout(Duration::from_millis(300))
        .http2_keep_alive(Duration::from_millis(50), Duration::from_secs(5));
    let (addr, stop, task) = start(config).await;
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    // The client answers pings for as long as the connection runs.
    let conn = tokio::spawn(conn);
    let req = http::Request::get("http://localhost/api/v1/tasks")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let _ = res.into_body().collect().await.unwrap();
    // Then nothing: the server closes the connection (GOAWAY) once it has been idle.
    tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("the idle HTTP/2 connection was not closed")
        .unwrap()
        .unwrap();
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
