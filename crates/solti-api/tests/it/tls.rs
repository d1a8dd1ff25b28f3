//! HTTPS and gRPC over TLS/mTLS with `TlsListener`, handshake failures and timeouts, and the
//! plain-text header read timeout.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use solti_api::{GrpcApi, HttpApi, ServeConfig, TlsListener, pb, serve_grpc, serve_http};
use solti_tls::{ClientTlsConfig, ServerTlsConfig};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::oneshot,
    task::JoinHandle,
};
use tokio_rustls::{client::TlsStream, rustls::pki_types::ServerName};

use crate::harness::FakeHandler;

type Ca = CertifiedIssuer<'static, KeyPair>;

struct Pki {
    ca: Ca,
    server: (String, String),
    client: (String, String),
    stranger: (String, String),
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(issuer: &Ca, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![usage];
    (
        params.signed_by(&key, issuer).unwrap().pem(),
        key.serialize_pem(),
    )
}

impl Pki {
    fn new() -> Self {
        let main = ca("api test ca");
        let other = ca("other ca");
        Self {
            server: leaf(
                &main,
                &["localhost", "127.0.0.1"],
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            client: leaf(&main, &["agent"], ExtendedKeyUsagePurpose::ClientAuth),
            stranger: leaf(&other, &["stranger"], ExtendedKeyUsagePurpose::ClientAuth),
            ca: main,
        }
    }

    fn server_config(&self, mtls: bool, alpn: &[&str]) -> ServerTlsConfig {
        let mut b = ServerTlsConfig::builder()
            .cert_pem_bytes(self.server.0.clone())
            .key_pem_bytes(self.server.1.clone())
            .with_alpn(alpn.iter().map(|s| (*s).to_owned()));
        if mtls {
            b = b.require_client_ca_pem_bytes(self.ca.pem());
        }
        b.build().unwrap()
    }

    fn client_config(&self, identity: Option<&(String, String)>, alpn: &[&str]) -> ClientTlsConfig {
        let mut b = ClientTlsConfig::builder()
            .ca_pem_bytes(self.ca.pem())
            .with_alpn(alpn.iter().map(|s| (*s).to_owned()));
        if let Some((cert, key)) = identity {
            b = b
                .client_cert_pem_bytes(cert.clone())
                .client_key_pem_bytes(key.clone());
        }
        b.build().unwrap()
    }
}

struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

async fn start_https(tls: &ServerTlsConfig, handshake_timeout: Duration) -> Running {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener = TlsListener::new(tcp, tls).handshake_timeout(handshake_timeout);
    let addr = listener.local_addr().unwrap();
    let app = HttpApi::new(Arc::new(FakeHandler::default())).router();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_http(listener, app, async move {
        let _ = stopped.await;
    }));
    Running { addr, stop, task }
}

async fn tls_connect(
    addr: SocketAddr,
    client: &ClientTlsConfig,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    client
        .connector()
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// `GET /api/v1/tasks` over HTTP/1.1 on a TLS connection; the status, or the error text.
async fn https_get(addr: SocketAddr, client: &ClientTlsConfig) -> Result<u16, String> {
    let tls = tls_connect(addr, client).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let req = http::Request::get("/api/v1/tasks")
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    assert_eq!(&body[..], br#"{"tasks":[],"total":0}"#);
    driver.abort();
    Ok(status)
}

#[tokio::test]
async fn https_with_mtls_accepts_known_clients_only_and_keeps_accepting() {
    let pki = Pki::new();
    let server = start_https(
        &pki.server_config(true, &["http/1.1"]),
        Duration::from_secs(5),
    )
    .await;
    let good = pki.client_config(Some(&pki.client), &["http/1.1"]);
    assert_eq!(https_get(server.addr, &good).await, Ok(200));

    // No client certificate, or one from another CA: refused, and the listener carries on.
    let anonymous = pki.client_config(None, &["http/1.1"]);
    assert!(https_get(server.addr, &anonymous).await.is_err());
    let stranger = pki.client_config(Some(&pki.stranger), &["http/1.1"]);
    assert!(https_get(server.addr, &stranger).await.is_err());
    // Plain text on the TLS port.
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET /api/v1/tasks HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), plain.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert!(!String::from_utf8_lossy(&buf[..n]).contains("200 OK"));

    assert_eq!(https_get(server.addr, &good).await, Ok(200));
    server.stop().await;
}

#[tokio::test]
async fn a_stalled_handshake_times_out_without_blocking_others() {
    let pki = Pki::new();
    let server = start_https(
        &pki.server_config(false, &["http/1.1"]),
        Duration::from_millis(300),
    )
    .await;
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    // Another client completes while the first one stalls.
    let client = pki.client_config(None, &["http/1.1"]);
    assert_eq!(https_get(server.addr, &client).await, Ok(200));
    // The stalled one is closed once the handshake timeout passes.
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut buf))
        .await
        .expect("not closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
    server.stop().await;
}

/// Pending handshakes hold connection slots: with a cap of 4, a flood of silent TCP
/// connections to the TLS port cannot hold more than 4 descriptors, the oldest are closed to
/// make room, and a real client still gets through.
#[tokio::test]
async fn pending_handshakes_count_against_the_connection_cap() {
    let pki = Pki::new();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    // A long handshake timeout: only the cap can close the silent ones during the test.
    let listener = TlsListener::new(tcp, &pki.server_config(false, &["http/1.1"]))
        .handshake_timeout(Duration::from_secs(600));
    let addr = listener.local_addr().unwrap();
    let app = HttpApi::new(Arc::new(FakeHandler::default())).router();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(ServeConfig::new().max_connections(4).serve(
        listener,
        app,
        async move {
            let _ = stopped.await;
        },
    ));
    let mut silent = Vec::new();
    for _ in 0..12 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    let client = pki.client_config(None, &["http/1.1"]);
    assert_eq!(https_get(addr, &client).await, Ok(200));
    // The first silent connections were closed to make room (a hang guard, not a timing).
    let mut closed = 0;
    for sock in &mut silent[..8] {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(30), sock.read(&mut buf))
            .await
            .expect("a pending handshake outlived the connection cap")
            .unwrap_or(0);
        if n == 0 {
            closed += 1;
        }
    }
    assert_eq!(closed, 8);
    drop(silent);
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn plain_http_idle_connections_hit_the_header_read_timeout() {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let app = HttpApi::new(Arc::new(FakeHandler::default())).router();
    let (stop, stopped) = oneshot::channel::<()>();
    let serve = ServeConfig::new()
        .header_read_timeout(Duration::from_millis(300))
        .serve(tcp, app, async move {
            let _ = stopped.await;
        });
    let task = tokio::spawn(serve);
    for partial in [
        &b""[..],
        b"GET /api/v1/tasks HTTP/1.1\r\nhost",
        b"PRI * HTTP/2.0\r\n",
    ] {
        let mut sock = TcpStream::connect(addr).await.unwrap();
        sock.write_all(partial).await.unwrap();
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
            .await
            .expect("connection left open");
        // Closed, possibly after a 408 for the partial HTTP/1 head.
        let text = String::from_utf8_lossy(&buf[..read.unwrap_or(0)]).into_owned();
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 408"),
            "{text}"
        );
    }
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn oversized_request_heads_get_431() {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let app = HttpApi::new(Arc::new(FakeHandler::default())).router();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(ServeConfig::new().serve(tcp, app, async move {
        let _ = stopped.await;
    }));
    for (size, want) in [(32 * 1024, "HTTP/1.1 200"), (100 * 1024, "HTTP/1.1 431")] {
        let mut sock = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "GET /api/v1/tasks HTTP/1.1\r\nhost: localhost\r\nx-big: {}\r\nconnection: close\r\n\r\n",
            "a".repeat(size)
        );
        sock.write_all(head.as_bytes()).await.unwrap();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..read]).into_owned();
        assert!(text.starts_with(want), "{size} bytes: {text}");
    }
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn grpc_over_mtls() {
    let pki = Pki::new();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener = TlsListener::new(tcp, &pki.server_config(true, &["h2"]));
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let routes = GrpcApi::new(Arc::new(FakeHandler::default())).into_routes();
    let task = tokio::spawn(serve_grpc(listener, routes, async move {
        let _ = stopped.await;
    }));

    let connect = |client: ClientTlsConfig| async move {
        let connector = tower::service_fn(move |_uri: http::Uri| {
            let client = client.clone();
            async move { tls_connect(addr, &client).await.map(TokioIo::new) }
        });
        tonic::transport::Endpoint::from_static("http://localhost")
            .connect_with_connector(connector)
            .await
    };
    let channel = connect(pki.client_config(Some(&pki.client), &["h2"]))
        .await
        .unwrap();
    let mut client = pb::task_service_client::TaskServiceClient::new(channel);
    let res = client
        .list_tasks(pb::ListTasksRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.total, 0);

    // Without a client certificate the call fails.
    let refused = match connect(pki.client_config(None, &["h2"])).await {
        Err(_) => true,
        Ok(channel) => pb::task_service_client::TaskServiceClient::new(channel)
            .list_tasks(pb::ListTasksRequest::default())
            .await
            .is_err(),
    };
    assert!(refused);
    // The listener still serves the good client.
    client
        .list_tasks(pb::ListTasksRequest::default())
        .await
        .unwrap();
    drop(client);
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
