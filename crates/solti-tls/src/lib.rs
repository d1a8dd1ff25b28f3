//! One TLS / mTLS configuration shape for Solti servers and clients.
//!
//! [`ServerTlsConfig`] holds a server's certificate chain and key, and optionally a client CA
//! that turns on mutual TLS (client certificates become mandatory and are verified).
//! [`ClientTlsConfig`] holds the CA a client trusts and, optionally, the client certificate
//! it presents. Both are built from PEM files or in-memory PEM with a builder, are fully
//! parsed and cross-checked in `build()`, and then hand out rustls configs, tokio-rustls
//! acceptors / connectors and (feature `tonic`) tonic's TLS configs. Every problem is one
//! [`TlsError`] that says what is wrong with which input; private keys never appear in
//! `Debug` output or errors.
//!
//! # Place in the stack
//! A leaf: it depends on no other Solti crate (only rustls with the ring provider,
//! tokio-rustls and optionally tonic). `solti-api` uses [`ServerTlsConfig`] behind its `tls`
//! feature; `solti-discover` uses [`ClientTlsConfig`] behind its `tls` feature; the example
//! agents build both from command-line flags.
//!
//! # Example
//! Certificates generated in memory (any PEM from files works the same way with the
//! `_file` setters):
//! ```
//! use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
//! use solti_tls::{ClientTlsConfig, ServerTlsConfig};
//!
//! // A private CA, a server certificate for localhost and a client certificate.
//! let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
//! ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
//! let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
//! let server_key = KeyPair::generate()?;
//! let server_cert =
//!     CertificateParams::new(vec!["localhost".into()])?.signed_by(&server_key, &ca)?;
//! let agent_key = KeyPair::generate()?;
//! let agent_cert =
//!     CertificateParams::new(vec!["agent-1".into()])?.signed_by(&agent_key, &ca)?;
//!
//! // Server: identity + mandatory client certificates signed by the CA.
//! let server = ServerTlsConfig::builder()
//!     .cert_pem_bytes(server_cert.pem())
//!     .key_pem_bytes(server_key.serialize_pem())
//!     .require_client_ca_pem_bytes(ca.pem())
//!     .with_alpn(["h2"])
//!     .build()?;
//! assert!(server.requires_client_auth());
//!
//! // Client: trust the CA, present the agent certificate.
//! let client = ClientTlsConfig::builder()
//!     .ca_pem_bytes(ca.pem())
//!     .client_cert_pem_bytes(agent_cert.pem())
//!     .client_key_pem_bytes(agent_key.serialize_pem())
//!     .with_alpn(["h2"])
//!     .build()?;
//!
//! // `server.acceptor()` / `client.connector()` run handshakes with tokio-rustls;
//! // `rustls_config()` gives the rustls configs for any other rustls-based stack.
//! let _acceptor = server.acceptor();
//! let _connector = client.connector();
//!
//! // Debug output never contains key material.
//! assert!(!format!("{server:?}{client:?}").contains("PRIVATE KEY"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Errors are specific:
//! ```
//! use solti_tls::{ServerTlsConfig, TlsError};
//!
//! let err = ServerTlsConfig::builder()
//!     .cert_pem_file("/nonexistent/server.crt")
//!     .build()
//!     .unwrap_err();
//! assert!(matches!(err, TlsError::MissingField("key_pem")));
//! assert_eq!(err.to_string(), "missing key_pem: set it with key_pem_file or key_pem_bytes");
//! ```
//!
//! The guide in `docs/tls.md` of the repository covers making certificates with `openssl`,
//! serving TLS and mTLS, and the common errors; [`design`] explains the choices.
//!
//! # Features
//! | feature | default | adds |
//! |---|---|---|
//! | `tonic` | no | `ServerTlsConfig::to_tonic()` and `ClientTlsConfig::to_tonic()` (tonic's `ServerTlsConfig` / `ClientTlsConfig`) |
//!
//! The crypto provider is always rustls' `ring`; it is passed to every config explicitly, so
//! no process-wide default provider has to be installed.
#![forbid(unsafe_code)]
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod alpn;
mod client;
mod error;
mod pem;
mod server;
#[cfg(feature = "tonic")]
mod to_tonic;

pub mod design {
    #![doc = include_str!("docs/design.md")]
}

/// Compiles the Rust snippets of the crate README and of the repository's TLS guide.
#[cfg(doctest)]
mod doc_snippets {
    #[doc = include_str!("../README.md")]
    struct Readme;
    #[doc = include_str!("../../../docs/tls.md")]
    struct Guide;
}

#[doc(inline)]
pub use client::{ClientTlsConfig, ClientTlsConfigBuilder};
#[doc(inline)]
pub use error::TlsError;
#[doc(inline)]
pub use server::{ServerTlsConfig, ServerTlsConfigBuilder};
