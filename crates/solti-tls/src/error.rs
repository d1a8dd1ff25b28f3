//! The one error type of this crate.

use std::{error::Error as StdError, io, path::PathBuf};

/// Building a [`ServerTlsConfig`](crate::ServerTlsConfig) or
/// [`ClientTlsConfig`](crate::ClientTlsConfig) failed.
///
/// Every variant says what is wrong and, where it applies, with which input: `what` names the
/// input in words (`server certificate`, `client ca`, `client key`, …) and the file path is
/// kept for unreadable files. Lower-level causes (I/O, PEM syntax, rustls) are reachable
/// through [`std::error::Error::source`]; they are never interpolated into the message.
///
/// No variant ever contains private key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A required setting was not given. The value is the setter stem, e.g. `cert_pem`
    /// (set with `cert_pem_file` or `cert_pem_bytes`). A client identity needs both
    /// `client_cert_pem` and `client_key_pem`; giving one without the other reports the
    /// missing one.
    #[error("missing {0}: set it with {0}_file or {0}_bytes")]
    MissingField(&'static str),

    /// A PEM file could not be read (missing, unreadable, a directory, or larger than the
    /// 1 MiB limit for PEM files). The I/O error is the source.
    #[error("cannot read tls file {}", path.display())]
    ReadFile {
        /// The path that was given to the `_file` setter.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: io::Error,
    },

    /// The input is not well-formed PEM (bad base64, a missing `END` line, …). The PEM
    /// parser's error is the source.
    #[error("malformed pem in {what}")]
    InvalidPem {
        /// Which input, e.g. `server certificate`.
        what: &'static str,
        /// What the PEM parser rejected.
        #[source]
        source: rustls_pki_types::pem::Error,
    },

    /// The PEM input holds no `CERTIFICATE` block (it may be empty, DER instead of PEM, or
    /// a key file given where a certificate was expected).
    #[error("no certificate found in {what} (expected a -----BEGIN CERTIFICATE----- block)")]
    NoCertificate {
        /// Which input, e.g. `server certificate` or `client ca`.
        what: &'static str,
    },

    /// The PEM input holds no private key block (`PRIVATE KEY`, `RSA PRIVATE KEY` or
    /// `EC PRIVATE KEY`). Encrypted keys are not supported.
    #[error("no private key found in {what} (expected a pkcs#8, pkcs#1 or sec1 private key block)")]
    NoPrivateKey {
        /// Which input, e.g. `server key` or `client key`.
        what: &'static str,
    },

    /// A private key block was found but the key cannot be used: its encoding is broken or
    /// its algorithm or size is not supported (e.g. RSA below 2048 bits). The rustls error
    /// is the source; it never contains key bytes.
    #[error("unusable private key in {what}")]
    InvalidPrivateKey {
        /// Which input, e.g. `server key`.
        what: &'static str,
        /// Why the crypto provider refused the key.
        #[source]
        source: rustls::Error,
    },

    /// The first (end-entity) certificate of a chain cannot be parsed.
    #[error("unparsable end-entity certificate in {what}")]
    InvalidCertificate {
        /// Which input, e.g. `server certificate`.
        what: &'static str,
        /// What rustls/webpki rejected.
        #[source]
        source: rustls::Error,
    },

    /// The private key does not belong to the first certificate of the chain (the usual
    /// cause: certificate and key files from different issuances, or swapped paths between
    /// two identities).
    #[error("private key does not match the certificate")]
    KeyMismatch,

    /// A certificate in a trust-root PEM (the client CA of a server or the CA of a client)
    /// cannot be used as a trust anchor.
    #[error("invalid ca certificate in {what}")]
    InvalidCa {
        /// Which input: `client ca` or `ca`.
        what: &'static str,
        /// What rustls/webpki rejected.
        #[source]
        source: Box<dyn StdError + Send + Sync + 'static>,
    },

    /// An ALPN protocol name is empty or longer than 255 bytes (the TLS limit).
    #[error("invalid alpn protocol at index {index}: {len} bytes, must be 1 to 255")]
    InvalidAlpn {
        /// Position in the list given to `with_alpn`.
        index: usize,
        /// Its length in bytes.
        len: usize,
    },

    /// rustls refused the configuration for a reason not covered above. With the ring
    /// provider and the checks done before, this is not expected; it is reported instead
    /// of panicking.
    #[error("rustls rejected the configuration")]
    Rustls(#[source] rustls::Error),
}
