//! The `_file` setters read PEM from disk at build time.

use std::fs;

use solti_tls::{ClientTlsConfig, ServerTlsConfig};

use crate::{harness::exchange, pki::Pki};

#[tokio::test]
async fn file_setters_build_working_mtls_configs() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    fs::write(path("server.crt"), &pki.server.cert).unwrap();
    fs::write(path("server.key"), &pki.server.key).unwrap();
    fs::write(path("ca.crt"), pki.ca_pem()).unwrap();
    fs::write(path("agent.crt"), &pki.client.cert).unwrap();
    fs::write(path("agent.key"), &pki.client.key).unwrap();

    let server = ServerTlsConfig::builder()
        .cert_pem_file(path("server.crt"))
        .key_pem_file(path("server.key"))
        .require_client_ca_pem_file(path("ca.crt"))
        .with_alpn(["h2"])
        .build()
        .unwrap();
    let client = ClientTlsConfig::builder()
        .ca_pem_file(path("ca.crt"))
        .client_cert_pem_file(path("agent.crt"))
        .client_key_pem_file(path("agent.key"))
        .with_alpn(["h2"])
        .build()
        .unwrap();
    assert_eq!(server.cert_chain_pem(), pki.server.cert.as_bytes());
    assert_eq!(client.ca_pem(), pki.ca_pem().as_bytes());

    let (server_saw, client_saw) = exchange(&server, &client, "localhost").await.ok();
    assert!(server_saw.peer_certs);
    assert_eq!(client_saw.alpn.as_deref(), Some(&b"h2"[..]));
}

#[tokio::test]
async fn one_combined_pem_file_can_hold_certificate_and_key() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let combined = dir.path().join("server.pem");
    fs::write(&combined, format!("{}{}", pki.server.key, pki.server.cert)).unwrap();

    let server = ServerTlsConfig::builder()
        .cert_pem_file(&combined)
        .key_pem_file(&combined)
        .build()
        .unwrap();
    let client = ClientTlsConfig::builder()
        .ca_pem_bytes(pki.ca_pem())
        .build()
        .unwrap();
    exchange(&server, &client, "localhost").await.ok();
}

#[test]
fn files_are_read_at_build_time_not_when_set() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.crt");
    let builder = ClientTlsConfig::builder().ca_pem_file(&ca);
    fs::write(&ca, pki.ca_pem()).unwrap();
    builder.build().unwrap();
}

#[test]
fn the_last_setter_wins() {
    let pki = Pki::new();
    let config = ClientTlsConfig::builder()
        .ca_pem_file("/nonexistent/ca.crt")
        .ca_pem_bytes(pki.ca_pem())
        .build()
        .unwrap();
    assert_eq!(config.ca_pem(), pki.ca_pem().as_bytes());
}
