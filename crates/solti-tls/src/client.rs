//! Client side: trust roots, optional client identity (mTLS), optional ALPN.

use std::{fmt, path::PathBuf, sync::Arc};

use tokio_rustls::TlsConnector;

use crate::{
    TlsError, alpn,
    pem::{self, PemSource, RedactedSource},
};

/// A validated client TLS configuration: which CAs to trust for the server, the optional
/// client identity presented for mTLS, and the optional ALPN protocols.
///
/// Built with [`ClientTlsConfig::builder`]; once built it cannot fail. Cloning is cheap.
/// `Debug` never shows the private key.
///
/// Only the given CA is trusted (no system roots): the control plane and agents use a
/// private PKI. The server name to verify is given per connection, e.g.
/// `connector.connect(ServerName::try_from("podium.internal")?, tcp)`, or taken from the URI
/// by tonic.
///
/// ```no_run
/// use solti_tls::ClientTlsConfig;
///
/// let client = ClientTlsConfig::builder()
///     .ca_pem_file("/etc/solti/tls/control-plane-ca.crt")
///     .client_cert_pem_file("/etc/solti/tls/agent.crt")
///     .client_key_pem_file("/etc/solti/tls/agent.key")
///     .build()?;
/// let connector = client.connector(); // tokio_rustls::TlsConnector
/// # let _ = connector;
/// # Ok::<(), solti_tls::TlsError>(())
/// ```
#[derive(Clone)]
pub struct ClientTlsConfig {
    pub(crate) rustls: Arc<rustls::ClientConfig>,
    pub(crate) ca_pem: Arc<[u8]>,
    pub(crate) identity: Option<ClientIdentityPem>,
}

/// Certificate chain and key of the client identity, as given (PEM).
#[cfg_attr(
    not(feature = "tonic"),
    expect(dead_code, reason = "read only by the tonic conversion")
)]
#[derive(Clone)]
pub(crate) struct ClientIdentityPem {
    pub(crate) cert_pem: Arc<[u8]>,
    pub(crate) key_pem: Arc<[u8]>,
}

impl ClientTlsConfig {
    /// Starts a builder. The CA (trust roots) is required; the client identity and ALPN are
    /// optional.
    pub fn builder() -> ClientTlsConfigBuilder {
        ClientTlsConfigBuilder::default()
    }

    /// The rustls configuration, shared. Use it with any rustls-based client
    /// (`tokio_rustls::TlsConnector`, `hyper-rustls`).
    #[must_use]
    pub fn rustls_config(&self) -> Arc<rustls::ClientConfig> {
        Arc::clone(&self.rustls)
    }

    /// Consumes the config and returns the rustls configuration.
    #[must_use]
    pub fn into_rustls_config(self) -> Arc<rustls::ClientConfig> {
        self.rustls
    }

    /// A tokio-rustls connector: `connector.connect(server_name, tcp_stream).await` runs
    /// the handshake and verifies the server certificate for `server_name`.
    #[must_use]
    pub fn connector(&self) -> TlsConnector {
        TlsConnector::from(self.rustls_config())
    }

    /// Whether a client certificate is presented when the server asks for one.
    #[must_use]
    pub fn has_client_identity(&self) -> bool {
        self.identity.is_some()
    }

    /// The ALPN protocols offered, in preference order (empty: no ALPN).
    #[must_use]
    pub fn alpn_protocols(&self) -> &[Vec<u8>] {
        &self.rustls.alpn_protocols
    }

    /// The trusted CA certificates as given (PEM).
    #[must_use]
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }
}

impl fmt::Debug for ClientTlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTlsConfig")
            .field("has_client_identity", &self.has_client_identity())
            .field("alpn", &alpn::AlpnDebug(self.alpn_protocols()))
            .finish_non_exhaustive()
    }
}

// === impl ClientTlsConfigBuilder ===

/// Builder for [`ClientTlsConfig`]; see [`ClientTlsConfig::builder`].
///
/// Setters only record where the material comes from; files are read, and everything is
/// parsed and cross-checked, in [`build`](Self::build). Setting the same input twice keeps
/// the last value.
#[must_use]
#[derive(Clone, Default)]
pub struct ClientTlsConfigBuilder {
    ca: Option<PemSource>,
    client_cert: Option<PemSource>,
    client_key: Option<PemSource>,
    alpn: Option<Vec<Vec<u8>>>,
}

impl ClientTlsConfigBuilder {
    /// The CA certificates (PEM, one or more) that the server's certificate must chain to,
    /// read from `path` at build time. Only these are trusted.
    ///
    /// # Default
    /// None; required.
    pub fn ca_pem_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca = Some(PemSource::File(path.into()));
        self
    }

    /// The trusted CA certificates as in-memory PEM; see [`ca_pem_file`](Self::ca_pem_file).
    ///
    /// # Default
    /// None; required.
    pub fn ca_pem_bytes(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca = Some(PemSource::Bytes(pem.into().into()));
        self
    }

    /// The client certificate chain (PEM) presented to servers that require mTLS, read
    /// from `path` at build time. Needs [`client_key_pem_file`](Self::client_key_pem_file)
    /// or its `_bytes` twin.
    ///
    /// # Default
    /// None: no client certificate is presented.
    pub fn client_cert_pem_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.client_cert = Some(PemSource::File(path.into()));
        self
    }

    /// The client certificate chain as in-memory PEM; see
    /// [`client_cert_pem_file`](Self::client_cert_pem_file).
    ///
    /// # Default
    /// None: no client certificate is presented.
    pub fn client_cert_pem_bytes(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.client_cert = Some(PemSource::Bytes(pem.into().into()));
        self
    }

    /// The private key of the client certificate (PKCS#8, PKCS#1 or SEC1 PEM; unencrypted),
    /// read from `path` at build time. Needs a client certificate.
    ///
    /// # Default
    /// None: no client certificate is presented.
    pub fn client_key_pem_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.client_key = Some(PemSource::File(path.into()));
        self
    }

    /// The client private key as in-memory PEM; see
    /// [`client_key_pem_file`](Self::client_key_pem_file).
    ///
    /// # Default
    /// None: no client certificate is presented.
    pub fn client_key_pem_bytes(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.client_key = Some(PemSource::Bytes(pem.into().into()));
        self
    }

    /// The ALPN protocols to offer, in preference order, e.g. `["h2"]` for gRPC. Each name
    /// must be 1 to 255 bytes.
    ///
    /// # Default
    /// None: no ALPN extension is sent.
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
    /// [`TlsError::MissingField`] without a CA, or with only one half of the client
    /// identity; [`TlsError::InvalidAlpn`], [`TlsError::ReadFile`], [`TlsError::InvalidPem`],
    /// [`TlsError::NoCertificate`], [`TlsError::InvalidCa`] and, for the identity,
    /// [`TlsError::NoPrivateKey`], [`TlsError::InvalidPrivateKey`],
    /// [`TlsError::InvalidCertificate`] and [`TlsError::KeyMismatch`].
    pub fn build(self) -> Result<ClientTlsConfig, TlsError> {
        let ca = self.ca.ok_or(TlsError::MissingField("ca_pem"))?;
        let identity = match (self.client_cert, self.client_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some((cert, key)),
            (Some(_), None) => return Err(TlsError::MissingField("client_key_pem")),
            (None, Some(_)) => return Err(TlsError::MissingField("client_cert_pem")),
        };
        let alpn_protocols = self.alpn.unwrap_or_default();
        alpn::validate(&alpn_protocols)?;

        let ca_pem = ca.load()?;
        let roots = pem::root_store(&ca_pem, CA)?;
        let provider = pem::provider();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Rustls)?
            .with_root_certificates(roots);

        let (mut config, identity) = match identity {
            None => (builder.with_no_client_auth(), None),
            Some((cert, key)) => {
                let cert_pem = cert.load()?;
                let key_pem = key.load()?;
                let chain = pem::certificates(&cert_pem, CLIENT_CERT)?;
                let key_der = pem::private_key(&key_pem, CLIENT_KEY)?;
                pem::check_identity(&chain, &key_der, &provider, CLIENT_CERT, CLIENT_KEY)?;
                let config = builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(TlsError::Rustls)?;
                (config, Some(ClientIdentityPem { cert_pem, key_pem }))
            }
        };
        config.alpn_protocols = alpn_protocols;

        Ok(ClientTlsConfig {
            rustls: Arc::new(config),
            ca_pem,
            identity,
        })
    }
}

impl fmt::Debug for ClientTlsConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTlsConfigBuilder")
            .field("ca", &self.ca)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key.as_ref().map(RedactedSource))
            .field("alpn", &self.alpn.as_deref().map(alpn::AlpnDebug))
            .finish()
    }
}

impl fmt::Debug for ClientIdentityPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentityPem").finish_non_exhaustive()
    }
}

const CA: &str = "ca";
const CLIENT_CERT: &str = "client certificate";
const CLIENT_KEY: &str = "client key";
