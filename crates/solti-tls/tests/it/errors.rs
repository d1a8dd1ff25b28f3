//! Every `TlsError` variant, produced through the public API, with its exact message.

use std::{error::Error as _, fs, io};

use solti_tls::{ClientTlsConfig, ServerTlsConfig, TlsError};

use crate::pki::{self, Pki};

const GARBAGE_CERT: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
const GARBAGE_KEY: &str = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";

fn server_with(cert: &str, key: &str) -> TlsError {
    ServerTlsConfig::builder()
        .cert_pem_bytes(cert)
        .key_pem_bytes(key)
        .build()
        .unwrap_err()
}

#[test]
fn missing_field_names_the_setter() {
    let pki = Pki::new();
    let cases = [
        (
            ServerTlsConfig::builder()
                .key_pem_bytes(pki.server.key.clone())
                .build()
                .unwrap_err(),
            "cert_pem",
        ),
        (
            ServerTlsConfig::builder()
                .cert_pem_bytes(pki.server.cert.clone())
                .build()
                .unwrap_err(),
            "key_pem",
        ),
        (ClientTlsConfig::builder().build().unwrap_err(), "ca_pem"),
        (
            ClientTlsConfig::builder()
                .ca_pem_bytes(pki.ca_pem())
                .client_cert_pem_bytes(pki.client.cert.clone())
                .build()
                .unwrap_err(),
            "client_key_pem",
        ),
        (
            ClientTlsConfig::builder()
                .ca_pem_bytes(pki.ca_pem())
                .client_key_pem_bytes(pki.client.key)
                .build()
                .unwrap_err(),
            "client_cert_pem",
        ),
    ];
    for (err, field) in cases {
        assert!(
            matches!(err, TlsError::MissingField(f) if f == field),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("missing {field}: set it with {field}_file or {field}_bytes")
        );
    }
    assert_eq!(
        ServerTlsConfig::builder().build().unwrap_err().to_string(),
        "missing cert_pem: set it with cert_pem_file or cert_pem_bytes"
    );
}

#[test]
fn read_file_names_the_path_and_keeps_the_io_error() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.crt");

    let err = ServerTlsConfig::builder()
        .cert_pem_file(&missing)
        .key_pem_bytes(pki.server.key)
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cannot read tls file {}", missing.display())
    );
    let TlsError::ReadFile { path, source } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(path, &missing);
    assert_eq!(source.kind(), io::ErrorKind::NotFound);
    assert!(err.source().is_some());

    // A directory is not a PEM file either.
    let err = ClientTlsConfig::builder()
        .ca_pem_file(dir.path())
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cannot read tls file {}", dir.path().display())
    );

    // Files over 1 MiB are refused without reading them whole.
    let big = dir.path().join("big.crt");
    fs::write(&big, vec![b'A'; 1024 * 1024 + 1]).unwrap();
    let err = ClientTlsConfig::builder()
        .ca_pem_file(&big)
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cannot read tls file {}", big.display())
    );
    let TlsError::ReadFile { source, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(source.kind(), io::ErrorKind::InvalidData);
    assert_eq!(
        source.to_string(),
        "file is larger than the 1 MiB limit for pem files"
    );
}

#[test]
fn invalid_pem_names_the_input() {
    let pki = Pki::new();
    let bad_base64 = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    let err = server_with(bad_base64, &pki.server.key);
    assert!(
        matches!(
            err,
            TlsError::InvalidPem {
                what: "server certificate",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "malformed pem in server certificate");
    assert!(err.source().is_some());

    let no_end = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n";
    let err = server_with(&pki.server.cert, no_end);
    assert_eq!(err.to_string(), "malformed pem in server key");
}

#[test]
fn no_certificate_names_the_input() {
    let pki = Pki::new();
    // Swapped inputs: a key where the certificate belongs.
    let err = server_with(&pki.server.key, &pki.server.key);
    assert!(
        matches!(
            err,
            TlsError::NoCertificate {
                what: "server certificate"
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "no certificate found in server certificate (expected a -----BEGIN CERTIFICATE----- block)"
    );

    let cases = [
        (
            ClientTlsConfig::builder()
                .ca_pem_bytes("")
                .build()
                .unwrap_err(),
            "ca",
        ),
        (
            ServerTlsConfig::builder()
                .cert_pem_bytes(pki.server.cert.clone())
                .key_pem_bytes(pki.server.key.clone())
                .require_client_ca_pem_bytes("not pem at all")
                .build()
                .unwrap_err(),
            "client ca",
        ),
        (
            ClientTlsConfig::builder()
                .ca_pem_bytes(pki.ca_pem())
                .client_cert_pem_bytes(pki.client.key.clone())
                .client_key_pem_bytes(pki.client.key)
                .build()
                .unwrap_err(),
            "client certificate",
        ),
    ];
    for (err, what) in cases {
        assert_eq!(
            err.to_string(),
            format!(
                "no certificate found in {what} (expected a -----BEGIN CERTIFICATE----- block)"
            )
        );
    }
}

#[test]
fn no_private_key_names_the_input() {
    let pki = Pki::new();
    let err = server_with(&pki.server.cert, &pki.server.cert);
    assert!(
        matches!(err, TlsError::NoPrivateKey { what: "server key" }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "no private key found in server key (expected a pkcs#8, pkcs#1 or sec1 private key block)"
    );

    let err = ClientTlsConfig::builder()
        .ca_pem_bytes(pki.ca_pem())
        .client_cert_pem_bytes(pki.client.cert)
        .client_key_pem_bytes(Vec::new())
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no private key found in client key (expected a pkcs#8, pkcs#1 or sec1 private key block)"
    );
}

#[test]
fn invalid_private_key_names_the_input() {
    let pki = Pki::new();
    let err = server_with(&pki.server.cert, GARBAGE_KEY);
    assert!(
        matches!(
            err,
            TlsError::InvalidPrivateKey {
                what: "server key",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "unusable private key in server key");
    assert!(err.source().is_some());

    // RSA keys below 2048 bits are refused by the ring provider.
    let weak = include_str!("fixtures/rsa-1024.pk8.pem");
    let err = ClientTlsConfig::builder()
        .ca_pem_bytes(pki.ca_pem())
        .client_cert_pem_bytes(pki.client.cert)
        .client_key_pem_bytes(weak)
        .build()
        .unwrap_err();
    assert_eq!(err.to_string(), "unusable private key in client key");
}

#[test]
fn invalid_certificate_names_the_input() {
    let pki = Pki::new();
    let err = server_with(GARBAGE_CERT, &pki.server.key);
    assert!(
        matches!(
            err,
            TlsError::InvalidCertificate {
                what: "server certificate",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "unparsable end-entity certificate in server certificate"
    );
    assert!(err.source().is_some());
}

#[test]
fn key_mismatch_is_detected_on_both_sides() {
    let pki = Pki::new();
    let err = server_with(&pki.server.cert, &pki.client.key);
    assert!(matches!(err, TlsError::KeyMismatch), "{err:?}");
    assert_eq!(
        err.to_string(),
        "private key does not match the certificate"
    );

    let err = ClientTlsConfig::builder()
        .ca_pem_bytes(pki.ca_pem())
        .client_cert_pem_bytes(pki.client.cert.clone())
        .client_key_pem_bytes(pki.other_client.key.clone())
        .build()
        .unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch), "{err:?}");

    // Different algorithms (RSA key, ECDSA certificate) are a mismatch too.
    let rsa = pki::rsa_key().serialize_pem();
    assert!(matches!(
        server_with(&pki.server.cert, &rsa),
        TlsError::KeyMismatch
    ));
}

#[test]
fn invalid_ca_names_the_input() {
    let pki = Pki::new();
    let err = ClientTlsConfig::builder()
        .ca_pem_bytes(GARBAGE_CERT)
        .build()
        .unwrap_err();
    assert!(
        matches!(err, TlsError::InvalidCa { what: "ca", .. }),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "invalid ca certificate in ca");
    assert!(err.source().is_some());

    // One bad certificate in a bundle spoils the bundle.
    let err = ServerTlsConfig::builder()
        .cert_pem_bytes(pki.server.cert.clone())
        .key_pem_bytes(pki.server.key.clone())
        .require_client_ca_pem_bytes(format!("{}{GARBAGE_CERT}", pki.ca_pem()))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::InvalidCa {
                what: "client ca",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "invalid ca certificate in client ca");
}

#[test]
fn invalid_alpn_names_the_index_and_length() {
    let pki = Pki::new();
    let err = ServerTlsConfig::builder()
        .cert_pem_bytes(pki.server.cert.clone())
        .key_pem_bytes(pki.server.key.clone())
        .with_alpn(["h2", ""])
        .build()
        .unwrap_err();
    assert!(
        matches!(err, TlsError::InvalidAlpn { index: 1, len: 0 }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "invalid alpn protocol at index 1: 0 bytes, must be 1 to 255"
    );

    let err = ClientTlsConfig::builder()
        .ca_pem_bytes(pki.ca_pem())
        .with_alpn([vec![b'x'; 256]])
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid alpn protocol at index 0: 256 bytes, must be 1 to 255"
    );
}

/// `Rustls` is the fallback for rustls refusing a config after all the checks above. With
/// the ring provider no input reaches it, so its message and source are checked directly.
#[test]
fn rustls_error_keeps_its_source_out_of_the_message() {
    let err = TlsError::Rustls(rustls::Error::General("inner detail".to_owned()));
    assert_eq!(err.to_string(), "rustls rejected the configuration");
    assert_eq!(
        err.source().unwrap().to_string(),
        "unexpected error: inner detail"
    );
}

#[test]
fn errors_are_send_sync_and_static() {
    fn assert_traits<T: std::error::Error + Send + Sync + 'static>() {}
    assert_traits::<TlsError>();
}
