//! `Debug` never shows private keys; the types are cheap to share across tasks.

use std::{fs, sync::Arc};

use solti_tls::{ClientTlsConfig, ClientTlsConfigBuilder, ServerTlsConfig, ServerTlsConfigBuilder};

use crate::pki::Pki;

/// Lines of base64 key material in a PEM key (everything between the markers).
fn key_body_lines(key_pem: &str) -> Vec<&str> {
    key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect()
}

fn assert_no_key_material(debug: &str, key_pem: &str) {
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    for line in key_body_lines(key_pem) {
        assert!(
            !debug.contains(line),
            "key material in debug output: {debug}"
        );
    }
    // Nor as raw bytes (a derived Debug of Vec<u8> would print numbers).
    let first_bytes = format!("{:?}", &key_pem.as_bytes()[..8]);
    assert!(
        !debug.contains(first_bytes.trim_matches(['[', ']'])),
        "{debug}"
    );
}

#[test]
fn debug_of_configs_and_builders_has_no_key_material() {
    let pki = Pki::new();
    let server_builder = ServerTlsConfig::builder()
        .cert_pem_bytes(pki.server.cert.clone())
        .key_pem_bytes(pki.server.key.clone())
        .require_client_ca_pem_bytes(pki.ca_pem());
    let client_builder = ClientTlsConfig::builder()
        .ca_pem_bytes(pki.ca_pem())
        .client_cert_pem_bytes(pki.client.cert.clone())
        .client_key_pem_bytes(pki.client.key.clone());

    let debug = format!("{server_builder:?}");
    assert_no_key_material(&debug, &pki.server.key);
    assert!(debug.contains("key: Some(Bytes(<redacted>))"), "{debug}");
    let debug = format!("{client_builder:?}");
    assert_no_key_material(&debug, &pki.client.key);
    assert!(
        debug.contains("client_key: Some(Bytes(<redacted>))"),
        "{debug}"
    );

    let server = server_builder.build().unwrap();
    let client = client_builder.build().unwrap();
    let debug = format!("{server:?} {server:#?}");
    assert_no_key_material(&debug, &pki.server.key);
    assert_eq!(
        format!("{server:?}"),
        r#"ServerTlsConfig { requires_client_auth: true, alpn: ["h2", "http/1.1"], .. }"#
    );
    let debug = format!("{client:?} {client:#?}");
    assert_no_key_material(&debug, &pki.client.key);
    assert_eq!(
        format!("{client:?}"),
        "ClientTlsConfig { has_client_identity: true, alpn: [], .. }"
    );
}

#[test]
fn debug_of_file_builders_shows_paths_only() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("server.key");
    fs::write(&key, &pki.server.key).unwrap();
    let builder = ServerTlsConfig::builder().key_pem_file(&key);
    let debug = format!("{builder:?}");
    assert!(debug.contains(&format!("{key:?}")), "{debug}");
    assert_no_key_material(&debug, &pki.server.key);
}

#[test]
fn configs_are_clone_send_sync_and_share_the_rustls_config() {
    fn assert_traits<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    assert_traits::<ServerTlsConfig>();
    assert_traits::<ClientTlsConfig>();
    assert_traits::<ServerTlsConfigBuilder>();
    assert_traits::<ClientTlsConfigBuilder>();

    let pki = Pki::new();
    let server = ServerTlsConfig::builder()
        .cert_pem_bytes(pki.server.cert.clone())
        .key_pem_bytes(pki.server.key)
        .build()
        .unwrap();
    let copy = server.clone();
    assert!(Arc::ptr_eq(&server.rustls_config(), &copy.rustls_config()));
    assert!(Arc::ptr_eq(
        &server.rustls_config(),
        &copy.into_rustls_config()
    ));
}
