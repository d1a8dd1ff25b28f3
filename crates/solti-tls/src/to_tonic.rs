//! Conversions to tonic's TLS shapes (feature `tonic`).
//!
//! tonic builds its own rustls configs from PEM, so the conversions hand over the same PEM
//! material that [`ServerTlsConfig`] and [`ClientTlsConfig`] were built and validated from.
//! tonic negotiates ALPN `h2` by itself; the ALPN list of this crate is not used there.

use tonic::transport::{Certificate, Identity};

use crate::{ClientTlsConfig, ServerTlsConfig};

impl ServerTlsConfig {
    /// The same identity and client-CA requirement as tonic's server TLS config, for
    /// `tonic::transport::Server::builder().tls_config(server.to_tonic())?`.
    ///
    /// Client authentication stays mandatory when a client CA was set.
    ///
    /// tonic builds its server config with rustls' process-default crypto provider: if your
    /// dependency graph enables both the `ring` and `aws-lc-rs` rustls features, install one
    /// with `rustls::crypto::CryptoProvider::install_default` first. To serve gRPC with
    /// exactly this crate's rustls config instead, accept connections with
    /// [`acceptor`](Self::acceptor) and hand the TLS streams to tonic's
    /// `serve_with_incoming`.
    #[must_use]
    pub fn to_tonic(&self) -> tonic::transport::ServerTlsConfig {
        let config = tonic::transport::ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem));
        match &self.client_ca_pem {
            Some(ca) => config
                .client_ca_root(Certificate::from_pem(ca))
                .client_auth_optional(false),
            None => config,
        }
    }
}

impl ClientTlsConfig {
    /// The same trust roots and client identity as tonic's channel TLS config, for
    /// `Endpoint::from_shared(uri)?.tls_config(client.to_tonic())?`.
    ///
    /// The server name is taken from the endpoint URI; chain `.domain_name(..)` on the result
    /// to verify another name.
    #[must_use]
    pub fn to_tonic(&self) -> tonic::transport::ClientTlsConfig {
        let config = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem));
        match &self.identity {
            Some(id) => config.identity(Identity::from_pem(&id.cert_pem, &id.key_pem)),
            None => config,
        }
    }
}
