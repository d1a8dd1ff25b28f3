//! TLS and mTLS to the control plane, with an rcgen PKI, over both transports.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use solti_discover::{DiscoverError, DiscoveryTransport};
use solti_tls::{ClientTlsConfig, ServerTlsConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

use crate::harness::{HttpDouble, Running, agent, serve_grpc, serve_http_on};

const WAIT: Duration = Duration::from_secs(5);

type Ca = CertifiedIssuer<'static, KeyPair>;

struct Pki {
    ca: Ca,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(ca: &Ca, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![usage];
    (
        params.signed_by(&key, ca).unwrap().pem(),
        key.serialize_pem(),
    )
}

impl Pki {
    fn new() -> Self {
        let ca = ca("podium test ca");
        let (server_cert, server_key) = leaf(
            &ca,
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) =
            leaf(&ca, &["agent-1"], ExtendedKeyUsagePurpose::ClientAuth);
        Self {
            ca,
            server_cert,
            server_key,
            client_cert,
            client_key,
        }
    }

    fn server(&self, mtls: bool) -> ServerTlsConfig {
        let b = ServerTlsConfig::builder()
            .cert_pem_bytes(self.server_cert.clone())
            .key_pem_bytes(self.server_key.clone());
        let b = if mtls {
            b.require_client_ca_pem_bytes(self.ca.pem())
        } else {
            b
        };
        b.build().unwrap()
    }

    fn client(&self, identity: bool) -> ClientTlsConfig {
        let b = ClientTlsConfig::builder().ca_pem_bytes(self.ca.pem());
        let b = if identity {
            b.client_cert_pem_bytes(self.client_cert.clone())
                .client_key_pem_bytes(self.client_key.clone())
        } else {
            b
        };
        b.build().unwrap()
    }
}

/// Terminates TLS for the axum double; failed handshakes are counted and dropped.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    failed: Arc<AtomicUsize>,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            match self.acceptor.accept(tcp).await {
                Ok(tls) => return (tls, addr),
                Err(_) => {
                    self.failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

async fn https_double(server: &ServerTlsConfig) -> (HttpDouble, Arc<AtomicUsize>) {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let failed = Arc::new(AtomicUsize::new(0));
    let listener = TlsListener {
        tcp,
        acceptor: server.acceptor(),
        failed: Arc::clone(&failed),
    };
    (serve_http_on(listener, addr, []), failed)
}

fn https_url(addr: SocketAddr) -> String {
    format!("https://127.0.0.1:{}", addr.port())
}

#[tokio::test]
async fn https_control_plane_with_a_private_ca() {
    let pki = Pki::new();
    let (cp, _) = https_double(&pki.server(false)).await;
    let config = agent(DiscoveryTransport::Http, &https_url(cp.addr))
        .with_tls(pki.client(false))
        .build()
        .unwrap();
    let run = Running::start(config);
    let seen = cp.recorder.wait_for(1, WAIT).await;
    run.cancel().await;
    assert_eq!(seen[0].body["id"], "agent-1");
}

#[tokio::test]
async fn https_mtls_needs_the_client_identity() {
    let pki = Pki::new();
    let (cp, failed) = https_double(&pki.server(true)).await;
    let url = https_url(cp.addr);

    // Without a client certificate the handshake fails; the agent keeps retrying.
    let run = Running::start(
        agent(DiscoveryTransport::Http, &url)
            .with_tls(pki.client(false))
            .build()
            .unwrap(),
    );
    tokio::time::timeout(WAIT, async {
        while failed.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the agent retries the handshake");
    assert!(run.is_running());
    run.cancel().await;
    assert!(cp.recorder.seen().is_empty());

    // With it, the agent registers.
    let run = Running::start(
        agent(DiscoveryTransport::Http, &url)
            .with_tls(pki.client(true))
            .build()
            .unwrap(),
    );
    cp.recorder.wait_for(1, WAIT).await;
    run.cancel().await;
}

#[tokio::test]
async fn untrusted_server_certificate_is_never_sent_the_payload() {
    let pki = Pki::new();
    let stranger = Pki::new();
    let (cp, failed) = https_double(&pki.server(false)).await;
    let config = agent(DiscoveryTransport::Http, &https_url(cp.addr))
        .with_tls(stranger.client(false))
        .build()
        .unwrap();
    let run = Running::start(config);
    tokio::time::timeout(WAIT, async {
        while failed.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the agent retries");
    assert!(run.is_running());
    run.cancel().await;
    assert!(cp.recorder.seen().is_empty());
}

#[tokio::test]
async fn grpc_over_mtls() {
    let pki = Pki::new();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cp = serve_grpc(tcp, [], Some(pki.server(true).to_tonic()));
    let config = agent(DiscoveryTransport::Grpc, &https_url(cp.addr))
        .with_tls(pki.client(true))
        .build()
        .unwrap();
    let run = Running::start(config);
    let seen = cp.recorder.wait_for(1, WAIT).await;
    run.cancel().await;
    assert_eq!(seen[0].body.id, "agent-1");
}

#[test]
fn tls_and_scheme_must_agree() {
    let pki = Pki::new();
    let err = agent(DiscoveryTransport::Http, "http://127.0.0.1:1")
        .with_tls(pki.client(false))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            DiscoverError::Config {
                field: "control_plane_endpoint",
                ..
            }
        ),
        "{err}"
    );
}
