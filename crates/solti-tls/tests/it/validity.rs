//! Certificates that are out of date or self-signed are refused on both sides.

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, date_time_ymd};
use rustls::{CertificateError, Error as RustlsError};
use solti_tls::{ClientTlsConfig, ServerTlsConfig};

use crate::{
    harness::exchange,
    pki::{Identity, Pki},
};

/// A leaf certificate for `name`, valid only during 2020, signed by the test CA or self-signed.
fn leaf(pki: Option<&Pki>, name: &str, usage: ExtendedKeyUsagePurpose, expired: bool) -> Identity {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    if expired {
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2020, 12, 31);
    }
    let cert = match pki {
        Some(pki) => params.signed_by(&key, &pki.ca).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    Identity {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

fn server(identity: &Identity, client_ca: Option<String>) -> ServerTlsConfig {
    let mut b = ServerTlsConfig::builder()
        .cert_pem_bytes(identity.cert.clone())
        .key_pem_bytes(identity.key.clone());
    if let Some(ca) = client_ca {
        b = b.require_client_ca_pem_bytes(ca);
    }
    b.build().unwrap()
}

fn client(pki: &Pki, identity: Option<&Identity>) -> ClientTlsConfig {
    let mut b = ClientTlsConfig::builder().ca_pem_bytes(pki.ca_pem());
    if let Some(id) = identity {
        b = b
            .client_cert_pem_bytes(id.cert.clone())
            .client_key_pem_bytes(id.key.clone());
    }
    b.build().unwrap()
}

fn is_expired(err: &RustlsError) -> bool {
    matches!(
        err,
        RustlsError::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. }
        )
    )
}

#[tokio::test]
async fn an_expired_server_certificate_is_refused() {
    let pki = Pki::new();
    let expired = leaf(
        Some(&pki),
        "localhost",
        ExtendedKeyUsagePurpose::ServerAuth,
        true,
    );
    let outcome = exchange(&server(&expired, None), &client(&pki, None), "localhost").await;
    let err = outcome.client_error();
    assert!(is_expired(&err), "{err:?}");
}

#[tokio::test]
async fn an_expired_client_certificate_is_refused() {
    let pki = Pki::new();
    let expired = leaf(
        Some(&pki),
        "agent-1",
        ExtendedKeyUsagePurpose::ClientAuth,
        true,
    );
    let outcome = exchange(
        &server(&pki.server, Some(pki.ca_pem())),
        &client(&pki, Some(&expired)),
        "localhost",
    )
    .await;
    let err = outcome.server_error();
    assert!(is_expired(&err), "{err:?}");
}

#[tokio::test]
async fn a_self_signed_server_certificate_is_refused() {
    let pki = Pki::new();
    let self_signed = leaf(
        None,
        "localhost",
        ExtendedKeyUsagePurpose::ServerAuth,
        false,
    );
    let outcome = exchange(
        &server(&self_signed, None),
        &client(&pki, None),
        "localhost",
    )
    .await;
    assert_eq!(
        outcome.client_error(),
        RustlsError::InvalidCertificate(CertificateError::UnknownIssuer)
    );
}

#[tokio::test]
async fn a_self_signed_client_certificate_is_refused() {
    let pki = Pki::new();
    let self_signed = leaf(None, "agent-1", ExtendedKeyUsagePurpose::ClientAuth, false);
    let outcome = exchange(
        &server(&pki.server, Some(pki.ca_pem())),
        &client(&pki, Some(&self_signed)),
        "localhost",
    )
    .await;
    assert_eq!(
        outcome.server_error(),
        RustlsError::InvalidCertificate(CertificateError::UnknownIssuer)
    );
}
