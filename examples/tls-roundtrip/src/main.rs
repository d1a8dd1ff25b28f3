//! `tls-roundtrip`: proves a mutual-TLS round trip over both Solti transports, with nothing on
//! disk.
//!
//! Run with `cargo run -p tls-roundtrip`. It generates a CA, a server certificate for
//! 127.0.0.1 and a client certificate in memory (rcgen), serves the task API over HTTPS on
//! 127.0.0.1:18443 and over gRPC on 127.0.0.1:18444 (any free port if those are taken), both
//! requiring client certificates, then:
//! 1. lists tasks over HTTPS with the client certificate;
//! 2. lists tasks over gRPC with the client certificate;
//! 3. shows that a client without a certificate is refused;
//!
//! prints each result and exits 0 (non-zero if any step does not behave as stated).

use std::{sync::Arc, time::Duration};

use anyhow::{Context as _, Result, bail, ensure};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use solti_api::{
    GrpcApi, HttpApi, ServeConfig, SupervisorApiAdapter, TlsListener,
    pb::{ListTasksRequest, task_service_client::TaskServiceClient},
};
use solti_core::{StateConfig, SupervisorApi};
use solti_runner::RunnerRouter;
use solti_tls::{ClientTlsConfig, ServerTlsConfig};
use taskvisor::{ControllerConfig, SupervisorConfig};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

#[tokio::main]
async fn main() -> Result<()> {
    let pki = Pki::generate()?;
    let server_tls = |alpn: &[&str]| {
        ServerTlsConfig::builder()
            .cert_pem_bytes(pki.server_cert.clone())
            .key_pem_bytes(pki.server_key.clone())
            .require_client_ca_pem_bytes(pki.ca_cert.clone())
            .with_alpn(alpn.iter().copied())
            .build()
    };
    let https_tls = server_tls(&["http/1.1"])?;
    let grpc_tls = server_tls(&["h2"])?;

    let supervisor = Arc::new(
        SupervisorApi::new(
            SupervisorConfig::default(),
            ControllerConfig::default(),
            vec![],
            RunnerRouter::new(),
            StateConfig::default(),
        )
        .await?,
    );
    let handler = Arc::new(SupervisorApiAdapter::new(Arc::clone(&supervisor)));
    let shutdown = CancellationToken::new();

    let https = bind(18443).await?;
    let grpc = bind(18444).await?;
    let https_addr = https.local_addr()?;
    let grpc_addr = grpc.local_addr()?;
    let mut servers = tokio::task::JoinSet::new();
    let stop = shutdown.clone();
    let router = HttpApi::new(Arc::clone(&handler)).router();
    servers.spawn(async move {
        ServeConfig::new()
            .serve(
                TlsListener::new(https, &https_tls),
                router,
                stop.cancelled_owned(),
            )
            .await
    });
    let stop = shutdown.clone();
    let routes = GrpcApi::new(handler).into_routes();
    servers.spawn(async move {
        ServeConfig::new()
            .serve(
                TlsListener::new(grpc, &grpc_tls),
                routes,
                stop.cancelled_owned(),
            )
            .await
    });
    println!("serving HTTPS on {https_addr} and gRPC on {grpc_addr}, client certificates required");

    let client = ClientTlsConfig::builder()
        .ca_pem_bytes(pki.ca_cert.clone())
        .client_cert_pem_bytes(pki.client_cert.clone())
        .client_key_pem_bytes(pki.client_key.clone());

    // 1. HTTPS with the client certificate.
    let http_client = client.clone().with_alpn(["http/1.1"]).build()?;
    let response = https_get(&http_client, https_addr, "/api/v1/tasks").await?;
    let status_line = response.lines().next().unwrap_or_default().to_owned();
    ensure!(
        status_line.starts_with("HTTP/1.1 200"),
        "HTTPS request failed: {status_line}"
    );
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    println!("[ok] HTTPS  GET /api/v1/tasks with client certificate -> {status_line}; body {body}");

    // 2. gRPC with the client certificate.
    let grpc_client = client.with_alpn(["h2"]).build()?;
    let channel = Channel::from_shared(format!("https://{grpc_addr}"))?
        .tls_config(grpc_client.to_tonic().domain_name("127.0.0.1"))?
        .connect()
        .await
        .context("gRPC TLS connect")?;
    let reply = TaskServiceClient::new(channel)
        .list_tasks(ListTasksRequest::default())
        .await?
        .into_inner();
    println!(
        "[ok] gRPC   TaskService/ListTasks with client certificate -> OK, total={}",
        reply.total
    );

    // 3. The same HTTPS request without a client certificate is refused in the handshake.
    let anonymous = ClientTlsConfig::builder()
        .ca_pem_bytes(pki.ca_cert.clone())
        .with_alpn(["http/1.1"])
        .build()?;
    match https_get(&anonymous, https_addr, "/api/v1/tasks").await {
        Ok(response) => bail!(
            "a client without a certificate was served: {}",
            response.lines().next().unwrap_or("")
        ),
        Err(e) => println!("[ok] HTTPS  without client certificate -> refused ({e:#})"),
    }

    shutdown.cancel();
    while let Some(joined) = servers.join_next().await {
        joined??;
    }
    supervisor.shutdown().await?;
    println!("mTLS round trip over HTTPS and gRPC: success");
    Ok(())
}

/// Binds the brief's port on loopback, or any free port when it is taken.
async fn bind(port: u16) -> Result<TcpListener> {
    match TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => Ok(l),
        Err(_) => TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("bind a loopback port"),
    }
}

/// One HTTP/1.1 GET over TLS; returns the raw response.
async fn https_get(
    tls: &ClientTlsConfig,
    addr: std::net::SocketAddr,
    path: &str,
) -> Result<String> {
    let tcp = TcpStream::connect(addr).await?;
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1")?;
    let mut stream =
        tokio::time::timeout(Duration::from_secs(10), tls.connector().connect(name, tcp))
            .await
            .context("TLS handshake timed out")?
            .context("TLS handshake")?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    // With TLS 1.3 the server checks the client certificate after the client's handshake
    // ends, so a refusal shows up here, as an alert instead of a response.
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .context("response timed out")?
        .context("read the response")?;
    ensure!(!response.is_empty(), "connection closed without a response");
    Ok(String::from_utf8_lossy(&response).into_owned())
}

/// The in-memory PKI: a CA, a server certificate for 127.0.0.1 and a client certificate.
struct Pki {
    ca_cert: Vec<u8>,
    server_cert: Vec<u8>,
    server_key: Vec<u8>,
    client_cert: Vec<u8>,
    client_key: Vec<u8>,
}

impl Pki {
    fn generate() -> Result<Self> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "solti roundtrip CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

        let server_key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = params.signed_by(&server_key, &ca)?;

        let client_key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec!["roundtrip-client".to_owned()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, "roundtrip-client");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = params.signed_by(&client_key, &ca)?;

        Ok(Self {
            ca_cert: ca.pem().into_bytes(),
            server_cert: server.pem().into_bytes(),
            server_key: server_key.serialize_pem().into_bytes(),
            client_cert: client.pem().into_bytes(),
            client_key: client_key.serialize_pem().into_bytes(),
        })
    }
}
