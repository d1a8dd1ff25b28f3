//! One real TLS exchange over 127.0.0.1: handshake, `ping` → `pong`, close.

use std::{io, time::Duration};

use rustls::pki_types::ServerName;
use solti_tls::{ClientTlsConfig, ServerTlsConfig};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    time::timeout,
};

/// Generous: only hit when something is broken, never part of a passing run.
const LIMIT: Duration = Duration::from_secs(20);

/// What each side saw.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The server side: accept, read `ping`, write `pong`.
    pub(crate) server: io::Result<Seen>,
    /// The client side: connect, write `ping`, read `pong`.
    pub(crate) client: io::Result<Seen>,
}

/// What a side learned from a successful exchange.
#[derive(Debug)]
pub(crate) struct Seen {
    pub(crate) alpn: Option<Vec<u8>>,
    /// Whether the peer presented a certificate chain.
    pub(crate) peer_certs: bool,
}

impl Outcome {
    /// Asserts both sides completed the exchange and returns what they saw.
    pub(crate) fn ok(self) -> (Seen, Seen) {
        match (self.server, self.client) {
            (Ok(s), Ok(c)) => (s, c),
            (s, c) => panic!("expected success, got server={s:?} client={c:?}"),
        }
    }

    /// The rustls error on the server side; panics if the server side succeeded.
    pub(crate) fn server_error(&self) -> rustls::Error {
        rustls_error(self.server.as_ref().expect_err("server side should fail"))
    }

    /// The rustls error on the client side; panics if the client side succeeded.
    pub(crate) fn client_error(&self) -> rustls::Error {
        rustls_error(self.client.as_ref().expect_err("client side should fail"))
    }
}

/// Runs one exchange where the client dials `server_name`.
pub(crate) async fn exchange(
    server: &ServerTlsConfig,
    client: &ClientTlsConfig,
    server_name: &str,
) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = server.acceptor();
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = acceptor.accept(tcp).await?;
        let (_, conn) = tls.get_ref();
        let seen = Seen {
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            peer_certs: conn.peer_certificates().is_some_and(|c| !c.is_empty()),
        };
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"ping");
        tls.write_all(b"pong").await?;
        tls.shutdown().await?;
        Ok::<_, io::Error>(seen)
    });

    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    let connector = client.connector();
    let client_side = async move {
        let tcp = TcpStream::connect(addr).await?;
        let mut tls = connector.connect(name, tcp).await?;
        let (_, conn) = tls.get_ref();
        let seen = Seen {
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            peer_certs: conn.peer_certificates().is_some_and(|c| !c.is_empty()),
        };
        // With TLS 1.3 a rejected client certificate only shows up on the first read.
        tls.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"pong");
        Ok::<_, io::Error>(seen)
    };
    let client = timeout(LIMIT, client_side).await.expect("client side hung");
    // The client has finished or dropped its socket, so the server side ends promptly.
    let server = timeout(LIMIT, server_task)
        .await
        .expect("server side hung")
        .unwrap();
    Outcome { server, client }
}

/// Digs the rustls error out of tokio-rustls' `io::Error`.
pub(crate) fn rustls_error(err: &io::Error) -> rustls::Error {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .unwrap_or_else(|| panic!("not a rustls error: {err:?}"))
        .clone()
}
