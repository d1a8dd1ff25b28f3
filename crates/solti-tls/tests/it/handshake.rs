//! Real handshakes over 127.0.0.1: TLS, mTLS, refusals, server-name checks, ALPN.

use rustls::{CertificateError, Error as RustlsError};
use solti_tls::{ClientTlsConfig, ServerTlsConfig};

use crate::{harness::exchange, pki::Pki};

fn tls_server(pki: &Pki) -> ServerTlsConfig {
    ServerTlsConfig::builder()
        .cert_pem_bytes(pki.server.cert.clone())
        .key_pem_bytes(pki.server.key.clone())
        .build()
        .unwrap()
}

fn mtls_server(pki: &Pki) -> ServerTlsConfig {
    ServerTlsConfig::builder()
        .cert_pem_bytes(pki.server.cert.clone())
        .key_pem_bytes(pki.server.key.clone())
        .require_client_ca_pem_bytes(pki.ca_pem())
        .build()
        .unwrap()
}

fn anonymous_client(pki: &Pki) -> ClientTlsConfig {
    ClientTlsConfig::builder()
        .ca_pem_bytes(pki.ca_pem())
        .build()
        .unwrap()
}

fn agent_client(pki: &Pki) -> ClientTlsConfig {
    ClientTlsConfig::builder()
        .ca_pem_bytes(pki.ca_pem())
        .client_cert_pem_bytes(pki.client.cert.clone())
        .client_key_pem_bytes(pki.client.key.clone())
        .build()
        .unwrap()
}

#[tokio::test]
async fn tls_handshake_succeeds_for_dns_name_and_ip() {
    let pki = Pki::new();
    let server = tls_server(&pki);
    let client = anonymous_client(&pki);
    assert!(!server.requires_client_auth());
    assert!(!client.has_client_identity());

    for name in ["localhost", "127.0.0.1"] {
        let (server_saw, client_saw) = exchange(&server, &client, name).await.ok();
        assert!(
            !server_saw.peer_certs,
            "plain TLS must not ask for a client certificate"
        );
        assert!(client_saw.peer_certs);
    }
}

#[tokio::test]
async fn mtls_handshake_succeeds_with_a_client_certificate_from_the_ca() {
    let pki = Pki::new();
    let server = mtls_server(&pki);
    let client = agent_client(&pki);
    assert!(server.requires_client_auth());
    assert!(client.has_client_identity());

    let (server_saw, _) = exchange(&server, &client, "localhost").await.ok();
    assert!(
        server_saw.peer_certs,
        "the server must have seen the client certificate"
    );
}

#[tokio::test]
async fn mtls_refuses_a_client_without_certificate() {
    let pki = Pki::new();
    let outcome = exchange(&mtls_server(&pki), &anonymous_client(&pki), "localhost").await;
    assert_eq!(outcome.server_error(), RustlsError::NoCertificatesPresented);
    assert!(
        outcome.client.is_err(),
        "the client must not get a reply: {outcome:?}"
    );
}

#[tokio::test]
async fn mtls_refuses_a_client_certificate_signed_by_another_ca() {
    let pki = Pki::new();
    let intruder = ClientTlsConfig::builder()
        .ca_pem_bytes(pki.ca_pem())
        .client_cert_pem_bytes(pki.other_client.cert.clone())
        .client_key_pem_bytes(pki.other_client.key.clone())
        .build()
        .unwrap();
    let outcome = exchange(&mtls_server(&pki), &intruder, "localhost").await;
    assert_eq!(
        outcome.server_error(),
        RustlsError::InvalidCertificate(CertificateError::UnknownIssuer)
    );
    assert!(
        outcome.client.is_err(),
        "the client must not get a reply: {outcome:?}"
    );
}

#[tokio::test]
async fn client_refuses_a_server_certificate_for_another_name() {
    let pki = Pki::new();
    let outcome = exchange(&tls_server(&pki), &anonymous_client(&pki), "podium.example").await;
    assert!(
        matches!(
            outcome.client_error(),
            RustlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            )
        ),
        "{outcome:?}"
    );
    assert!(outcome.server.is_err());
}

#[tokio::test]
async fn client_refuses_a_server_certificate_from_an_untrusted_ca() {
    let pki = Pki::new();
    let client = ClientTlsConfig::builder()
        .ca_pem_bytes(pki.other_ca.pem())
        .build()
        .unwrap();
    let outcome = exchange(&tls_server(&pki), &client, "localhost").await;
    assert_eq!(
        outcome.client_error(),
        RustlsError::InvalidCertificate(CertificateError::UnknownIssuer)
    );
}

#[tokio::test]
async fn alpn_h2_is_negotiated_with_the_default_server_list() {
    let pki = Pki::new();
    let server = mtls_server(&pki);
    assert_eq!(
        server.alpn_protocols(),
        [b"h2".to_vec(), b"http/1.1".to_vec()]
    );
    let client = ClientTlsConfig::builder()
        .ca_pem_bytes(pki.ca_pem())
        .client_cert_pem_bytes(pki.client.cert.clone())
        .client_key_pem_bytes(pki.client.key.clone())
        .with_alpn(["h2"])
        .build()
        .unwrap();

    let (server_saw, client_saw) = exchange(&server, &client, "localhost").await.ok();
    assert_eq!(server_saw.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(client_saw.alpn.as_deref(), Some(&b"h2"[..]));
}

#[tokio::test]
async fn alpn_follows_the_server_list_and_refuses_no_overlap() {
    let pki = Pki::new();
    let http1_only = ServerTlsConfig::builder()
        .cert_pem_bytes(pki.server.cert.clone())
        .key_pem_bytes(pki.server.key.clone())
        .with_alpn(["http/1.1"])
        .build()
        .unwrap();
    let client = |alpn: &[&str]| {
        ClientTlsConfig::builder()
            .ca_pem_bytes(pki.ca_pem())
            .with_alpn(alpn)
            .build()
            .unwrap()
    };

    let (_, saw) = exchange(&http1_only, &client(&["h2", "http/1.1"]), "localhost")
        .await
        .ok();
    assert_eq!(saw.alpn.as_deref(), Some(&b"http/1.1"[..]));

    let outcome = exchange(&http1_only, &client(&["h2"]), "localhost").await;
    assert_eq!(outcome.server_error(), RustlsError::NoApplicationProtocol);

    // A client that sends no ALPN still connects; nothing is negotiated.
    let (server_saw, _) = exchange(&http1_only, &anonymous_client(&pki), "localhost")
        .await
        .ok();
    assert_eq!(server_saw.alpn, None);
}

#[tokio::test]
async fn an_empty_alpn_list_turns_alpn_off_on_the_server() {
    let pki = Pki::new();
    let server = ServerTlsConfig::builder()
        .cert_pem_bytes(pki.server.cert.clone())
        .key_pem_bytes(pki.server.key.clone())
        .with_alpn::<[&str; 0]>([])
        .build()
        .unwrap();
    assert!(server.alpn_protocols().is_empty());
    let client = ClientTlsConfig::builder()
        .ca_pem_bytes(pki.ca_pem())
        .with_alpn(["h2"])
        .build()
        .unwrap();
    let (server_saw, client_saw) = exchange(&server, &client, "localhost").await.ok();
    assert_eq!((server_saw.alpn, client_saw.alpn), (None, None));
}
