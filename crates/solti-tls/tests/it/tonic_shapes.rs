//! `to_tonic()` conversions drive real tonic servers and channels (feature `tonic`).

use std::{convert::Infallible, time::Duration};

use rustls::pki_types::ServerName;
use solti_tls::{ClientTlsConfig, ServerTlsConfig};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::oneshot,
    time::timeout,
};
use tonic::transport::{Endpoint, Server, server::TcpIncoming};

use crate::pki::Pki;

const LIMIT: Duration = Duration::from_secs(20);
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty HTTP/2 SETTINGS frame: length 0, type 4, flags 0, stream 0.
const EMPTY_SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];

/// Opens an HTTP/2 connection over TLS and waits for the server's first frame: it arrives
/// only if the server accepted the handshake (including the client certificate).
async fn h2_hello(client: &ClientTlsConfig, addr: std::net::SocketAddr) -> std::io::Result<u8> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = client.connector().connect(name, tcp).await?;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls.write_all(H2_PREFACE).await?;
    tls.write_all(&EMPTY_SETTINGS).await?;
    let mut header = [0u8; 9];
    tls.read_exact(&mut header).await?;
    Ok(header[3]) // frame type
}

#[tokio::test]
async fn tonic_server_keeps_mandatory_client_certificates() {
    let pki = Pki::new();
    let server = ServerTlsConfig::builder()
        .cert_pem_bytes(pki.server.cert.clone())
        .key_pem_bytes(pki.server.key.clone())
        .require_client_ca_pem_bytes(pki.ca_pem())
        .build()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = tower::service_fn(|_req: http::Request<tonic::body::Body>| async {
        Ok::<_, Infallible>(http::Response::new(tonic::body::Body::empty()))
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(
        Server::builder()
            .tls_config(server.to_tonic())
            .unwrap()
            .serve_with_incoming_shutdown(svc, TcpIncoming::from(listener), async move {
                let _ = stopped.await;
            }),
    );

    let agent = ClientTlsConfig::builder()
        .ca_pem_bytes(pki.ca_pem())
        .client_cert_pem_bytes(pki.client.cert.clone())
        .client_key_pem_bytes(pki.client.key.clone())
        .with_alpn(["h2"])
        .build()
        .unwrap();
    let frame_type = timeout(LIMIT, h2_hello(&agent, addr))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(frame_type, 4, "expected the server's SETTINGS frame");

    let anonymous = ClientTlsConfig::builder()
        .ca_pem_bytes(pki.ca_pem())
        .with_alpn(["h2"])
        .build()
        .unwrap();
    let refused = timeout(LIMIT, h2_hello(&anonymous, addr)).await.unwrap();
    assert!(
        refused.is_err(),
        "a client without certificate must be refused: {refused:?}"
    );

    stop.send(()).unwrap();
    timeout(LIMIT, serving).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn tonic_channel_presents_the_client_certificate_over_h2() {
    let pki = Pki::new();
    let server = ServerTlsConfig::builder()
        .cert_pem_bytes(pki.server.cert.clone())
        .key_pem_bytes(pki.server.key.clone())
        .require_client_ca_pem_bytes(pki.ca_pem())
        .build()
        .unwrap();
    let client = ClientTlsConfig::builder()
        .ca_pem_bytes(pki.ca_pem())
        .client_cert_pem_bytes(pki.client.cert.clone())
        .client_key_pem_bytes(pki.client.key.clone())
        .build()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();

    let endpoint = Endpoint::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(client.to_tonic())
        .unwrap();
    // The channel's own outcome does not matter: this server stops after the preface.
    let connecting = tokio::spawn(async move { endpoint.connect().await });

    let (tcp, _) = timeout(LIMIT, listener.accept()).await.unwrap().unwrap();
    let mut tls = timeout(LIMIT, server.acceptor().accept(tcp))
        .await
        .unwrap()
        .unwrap();
    let (_, conn) = tls.get_ref();
    assert_eq!(conn.alpn_protocol(), Some(&b"h2"[..]));
    assert!(conn.peer_certificates().is_some_and(|c| !c.is_empty()));
    let mut preface = [0u8; 24];
    timeout(LIMIT, tls.read_exact(&mut preface))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&preface[..], H2_PREFACE);

    connecting.abort();
    let _ = connecting.await;
}
