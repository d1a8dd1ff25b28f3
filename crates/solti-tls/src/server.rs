//! Server side: certificate chain + private key, optional mandatory client certificates.

use std::{fmt, path::PathBuf, sync::Arc};

use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

use crate::{
    TlsError, alpn,
    pem::{self, PemSource, RedactedSource},
};

/// A validated server TLS configuration: the server's identity, whether client certificates
/// are required (mTLS), and the ALPN protocols offered.
///
/// Built with [`ServerTlsConfig::builder`]; once built it cannot fail. Cloning is cheap (the
/// rustls config and the PEM material are shared). `Debug` never shows the private key.
///
/// ```no_run
/// use solti_tls::ServerTlsConfig;
///
/// let server = ServerTlsConfig::builder()
///     .cert_pem_file("/etc/solti/tls/server.crt")
///     .key_pem_file("/etc/solti/tls/server.key")
///     .require_client_ca_pem_file("/etc/solti/tls/clients-ca.crt") // omit for plain TLS
///     .with_alpn(["h2"])
///     .build()?;
/// let acceptor = server.acceptor(); // tokio_rustls::TlsAcceptor
/// # let _ = acceptor;
/// # Ok::<(), solti_tls::TlsError>(())
/// ```
#[derive(Clone)]
pub struct ServerTlsConfig {
    pub(crate) rustls: Arc<rustls::ServerConfig>,
    pub(crate) cert_pem: Arc<[u8]>,
    #[cfg_attr(
        not(feature = "tonic"),
        expect(dead_code, reason = "kept only for the tonic conversion")
    )]
    pub(crate) key_pem: Arc<[u8]>,
    pub(crate) client_ca_pem: Option<Arc<[u8]>>,
}

impl ServerTlsConfig {
    /// Starts a builder. A certificate chain and its private key are required; everything
    /// else has a safe default (no client authentication, ALPN `h2`, `http/1.1`).
    pub fn builder() -> ServerTlsConfigBuilder {
        ServerTlsConfigBuilder::default()
    }

    /// The rustls configuration, shared. Use it with any rustls-based server
    /// (`tokio_rustls::TlsAcceptor`, `axum-server`, `hyper-rustls`).
    #[must_use]
    pub fn rustls_config(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.rustls)
    }

    /// Consumes the config and returns the rustls configuration.
    #[must_use]
    pub fn into_rustls_config(self) -> Arc<rustls::ServerConfig> {
        self.rustls
    }

    /// A tokio-rustls acceptor: `acceptor.accept(tcp_stream).await` runs the handshake.
    #[must_use]
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.rustls_config())
    }

    /// Whether clients must present a certificate signed by the configured client CA.
    #[must_use]
    pub fn requires_client_auth(&self) -> bool {
        self.client_ca_pem.is_some()
    }

    /// The ALPN protocols offered, in preference order.
    #[must_use]
    pub fn alpn_protocols(&self) -> &[Vec<u8>] {
        &self.rustls.alpn_protocols
    }

    /// The server certificate chain as given (PEM). Public material, e.g. for publishing
    /// the certificate to clients that pin it.
    #[must_use]
    pub fn cert_chain_pem(&self) -> &[u8] {
        &self.cert_pem
    }
}

impl fmt::Debug for ServerTlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTlsConfig")
            .field("requires_client_auth", &self.requires_client_auth())
            .field("alpn", &alpn::AlpnDebug(self.alpn_protocols()))
            .finish_non_exhaustive()
    }
}

// === impl ServerTlsConfigBuilder ===

/// Builder for [`ServerTlsConfig`]; see [`ServerTlsConfig::builder`].
///
/// Setters only record where the material comes from; files are read, and everything is
/// parsed and cross-checked, in [`build`](Self::build). Setting the same input twice keeps
/// the last value.
#[must_use]
#[derive(Clone, Default)]
pub struct ServerTlsConfigBuilder {
    cert: Option<PemSource>,
    key: Option<PemSource>,
    client_ca: Option<PemSource>,
    alpn: Option<Vec<Vec<u8>>>,
}

impl ServerTlsConfigBuilder {
    /// The server certificate chain, PEM, read from `path` at build time: the end-entity
    /// certificate first, then any intermediates.
    ///
    /// # Default
    /// None; required.
    pub fn cert_pem_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.cert = Some(PemSource::File(path.into()));
        self
    }

    /// The server certificate chain as in-memory PEM; see
    /// [`cert_pem_file`](Self::cert_pem_file).
    ///
    /// # Default
    /// None; required.
    pub fn cert_pem_bytes(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.cert = Some(PemSource::Bytes(pem.into().into()));
        self
    }

    /// The server private key, PEM (PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY` or SEC1
    /// `EC PRIVATE KEY`; unencrypted), read from `path` at build time. It must match the
    /// first certificate of the chain.
    ///
    /// # Default
    /// None; required.
    pub fn key_pem_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.key = Some(PemSource::File(path.into()));
        self
    }

    /// The server private key as in-memory PEM; see [`key_pem_file`](Self::key_pem_file).
    ///
    /// # Default
    /// None; required.
    pub fn key_pem_bytes(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.key = Some(PemSource::Bytes(pem.into().into()));
        self
    }

    /// Turns on mTLS: every client must present a certificate chain that verifies against
    /// one of the CA certificates in this PEM file, or the handshake fails.
    ///
    /// # Default
    /// Off: no client certificate is requested (plain TLS).
    pub fn require_client_ca_pem_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.client_ca = Some(PemSource::File(path.into()));
        self
    }

    /// Turns on mTLS with in-memory CA PEM; see
    /// [`require_client_ca_pem_file`](Self::require_client_ca_pem_file).
    ///
    /// # Default
    /// Off: no client certificate is requested (plain TLS).
    pub fn require_client_ca_pem_bytes(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.client_ca = Some(PemSource::Bytes(pem.into().into()));
        self
    }

    /// The ALPN protocols to offer, in preference order, e.g. `["h2"]` for a gRPC-only
    /// server. Each name must be 1 to 255 bytes. An empty list turns ALPN off.
    ///
    /// # Default
    /// `["h2", "http/1.1"]`.
    pub fn with_alpn<I>(mut self, protocols: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.alpn = Some(alpn::collect(protocols));
        self
    }

    /// Reads the files, parses and checks everything, and builds the rustls configuration
    /// (ring provider, TLS 1.2 and 1.3).
    ///
    /// This does blocking file I/O (a few small files); call it at startup or from
    /// `spawn_blocking`.
    ///
    /// # Errors
    /// [`TlsError::MissingField`] without a certificate or key, [`TlsError::InvalidAlpn`],
    /// [`TlsError::ReadFile`], [`TlsError::InvalidPem`], [`TlsError::NoCertificate`],
    /// [`TlsError::NoPrivateKey`], [`TlsError::InvalidPrivateKey`],
    /// [`TlsError::InvalidCertificate`], [`TlsError::KeyMismatch`] and, for the client CA,
    /// [`TlsError::InvalidCa`].
    pub fn build(self) -> Result<ServerTlsConfig, TlsError> {
        let cert = self.cert.ok_or(TlsError::MissingField("cert_pem"))?;
        let key = self.key.ok_or(TlsError::MissingField("key_pem"))?;
        let alpn_protocols = self.alpn.unwrap_or_else(alpn::server_default);
        alpn::validate(&alpn_protocols)?;

        let cert_pem = cert.load()?;
        let key_pem = key.load()?;
        let chain = pem::certificates(&cert_pem, CERT)?;
        let key_der = pem::private_key(&key_pem, KEY)?;
        let provider = pem::provider();
        pem::check_identity(&chain, &key_der, &provider, CERT, KEY)?;

        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Rustls)?;
        let (builder, client_ca_pem) = match self.client_ca {
            None => (builder.with_no_client_auth(), None),
            Some(source) => {
                let ca_pem = source.load()?;
                let roots = pem::root_store(&ca_pem, CLIENT_CA)?;
                // Mandatory: no `allow_unauthenticated()`. Anonymous clients fail the handshake.
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|source| TlsError::InvalidCa {
                            what: CLIENT_CA,
                            source: Box::new(source),
                        })?;
                (builder.with_client_cert_verifier(verifier), Some(ca_pem))
            }
        };
        let mut config = builder
            .with_single_cert(chain, key_der)
            .map_err(TlsError::Rustls)?;
        config.alpn_protocols = alpn_protocols;

        Ok(ServerTlsConfig {
            rustls: Arc::new(config),
            cert_pem,
            key_pem,
            client_ca_pem,
        })
    }
}

impl fmt::Debug for ServerTlsConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTlsConfigBuilder")
            .field("cert", &self.cert)
            .field("key", &self.key.as_ref().map(RedactedSource))
            .field("client_ca", &self.client_ca)
            .field("alpn", &self.alpn.as_deref().map(alpn::AlpnDebug))
            .finish()
    }
}

const CERT: &str = "server certificate";
const KEY: &str = "server key";
const CLIENT_CA: &str = "client ca";
