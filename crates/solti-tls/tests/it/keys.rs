//! Key encodings and certificate chains that must be accepted.

use rcgen::KeyPair;
use solti_tls::{ClientTlsConfig, ServerTlsConfig};

use crate::{
    harness::exchange,
    pki::{self, Pki},
};

#[tokio::test]
async fn pkcs1_rsa_server_key_is_accepted() {
    let pki = Pki::new();
    let rsa = pki::rsa_key();
    let identity = pki::server_cert(&pki.ca, &rsa);
    let pkcs1 = pki::pkcs8_to_inner_pem(&rsa, "RSA PRIVATE KEY");
    assert!(identity.key.starts_with("-----BEGIN PRIVATE KEY-----"));

    let server = ServerTlsConfig::builder()
        .cert_pem_bytes(identity.cert)
        .key_pem_bytes(pkcs1)
        .build()
        .unwrap();
    let client = ClientTlsConfig::builder()
        .ca_pem_bytes(pki.ca_pem())
        .build()
        .unwrap();
    exchange(&server, &client, "localhost").await.ok();
}

#[tokio::test]
async fn pkcs8_rsa_server_key_is_accepted() {
    let pki = Pki::new();
    let identity = pki::server_cert(&pki.ca, &pki::rsa_key());
    let server = ServerTlsConfig::builder()
        .cert_pem_bytes(identity.cert)
        .key_pem_bytes(identity.key)
        .build()
        .unwrap();
    let client = ClientTlsConfig::builder()
        .ca_pem_bytes(pki.ca_pem())
        .build()
        .unwrap();
    exchange(&server, &client, "127.0.0.1").await.ok();
}

#[tokio::test]
async fn sec1_ec_keys_are_accepted_on_both_sides() {
    let pki = Pki::new();
    let server_key = KeyPair::generate().unwrap();
    let server_sec1 = pki::pkcs8_to_inner_pem(&server_key, "EC PRIVATE KEY");
    let server_identity = pki::server_cert(&pki.ca, &server_key);
    let client_key = KeyPair::from_pem(&pki.client.key).unwrap();
    let client_sec1 = pki::pkcs8_to_inner_pem(&client_key, "EC PRIVATE KEY");

    let server = ServerTlsConfig::builder()
        .cert_pem_bytes(server_identity.cert)
        .key_pem_bytes(server_sec1)
        .require_client_ca_pem_bytes(pki.ca_pem())
        .build()
        .unwrap();
    let client = ClientTlsConfig::builder()
        .ca_pem_bytes(pki.ca_pem())
        .client_cert_pem_bytes(pki.client.cert.clone())
        .client_key_pem_bytes(client_sec1)
        .build()
        .unwrap();
    let (server_saw, _) = exchange(&server, &client, "localhost").await.ok();
    assert!(server_saw.peer_certs);
}

#[tokio::test]
async fn ed25519_keys_are_accepted() {
    let pki = Pki::new();
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let identity = pki::server_cert(&pki.ca, &key);
    let server = ServerTlsConfig::builder()
        .cert_pem_bytes(identity.cert)
        .key_pem_bytes(identity.key)
        .build()
        .unwrap();
    let client = ClientTlsConfig::builder()
        .ca_pem_bytes(pki.ca_pem())
        .build()
        .unwrap();
    exchange(&server, &client, "localhost").await.ok();
}

#[tokio::test]
async fn certificate_chains_with_an_intermediate_verify_on_both_sides() {
    let root = pki::ca("root");
    let server_ica = pki::intermediate(&root, "server issuing ca");
    let client_ica = pki::intermediate(&root, "client issuing ca");
    let server_leaf = pki::server_cert(&server_ica, &KeyPair::generate().unwrap());
    let client_leaf = pki::client_cert(&client_ica, "agent-7");

    // Leaf first, then the intermediate; peers trust only the root.
    let server = ServerTlsConfig::builder()
        .cert_pem_bytes(format!("{}{}", server_leaf.cert, server_ica.pem()))
        .key_pem_bytes(server_leaf.key)
        .require_client_ca_pem_bytes(root.pem())
        .build()
        .unwrap();
    let client = ClientTlsConfig::builder()
        .ca_pem_bytes(root.pem())
        .client_cert_pem_bytes(format!("{}{}", client_leaf.cert, client_ica.pem()))
        .client_key_pem_bytes(client_leaf.key)
        .build()
        .unwrap();
    let (server_saw, client_saw) = exchange(&server, &client, "localhost").await.ok();
    assert!(server_saw.peer_certs && client_saw.peer_certs);
}

#[tokio::test]
async fn a_ca_bundle_trusts_every_ca_in_it() {
    let pki = Pki::new();
    let bundle = format!("{}{}", pki.other_ca.pem(), pki.ca_pem());
    let server = ServerTlsConfig::builder()
        .cert_pem_bytes(pki.server.cert.clone())
        .key_pem_bytes(pki.server.key.clone())
        .require_client_ca_pem_bytes(bundle.clone())
        .build()
        .unwrap();
    for identity in [&pki.client, &pki.other_client] {
        let client = ClientTlsConfig::builder()
            .ca_pem_bytes(bundle.clone())
            .client_cert_pem_bytes(identity.cert.clone())
            .client_key_pem_bytes(identity.key.clone())
            .build()
            .unwrap();
        exchange(&server, &client, "localhost").await.ok();
    }
}
