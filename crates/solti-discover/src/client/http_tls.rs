//! TLS for the HTTP transport: the solti-tls client config, with ALPN pinned to
//! `http/1.1` (this transport speaks HTTP/1.1 only, whatever the config offers).

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream, rustls::pki_types::ServerName};

use super::Failure;
use crate::{DiscoverConfig, DiscoverError, metrics::reason};

/// Connector plus the name the server certificate must match.
pub(super) struct TlsDialer {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl TlsDialer {
    pub(super) fn new(config: &DiscoverConfig) -> Result<Self, DiscoverError> {
        let client_err = |e: Box<dyn std::error::Error + Send + Sync>| DiscoverError::Client {
            transport: "http",
            source: e,
        };
        let tls = config
            .tls
            .as_ref()
            .ok_or_else(|| client_err("https:// control plane without a TLS config".into()))?;
        let mut rustls = (*tls.rustls_config()).clone();
        rustls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let server_name = ServerName::try_from(config.control_plane.host_name().to_owned())
            .map_err(|e| client_err(Box::new(e)))?;
        Ok(Self {
            connector: TlsConnector::from(Arc::new(rustls)),
            server_name,
        })
    }

    pub(super) async fn handshake(&self, tcp: TcpStream) -> Result<TlsStream<TcpStream>, Failure> {
        self.connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| Failure::retry(reason::TRANSPORT, format!("TLS handshake: {e}")))
    }
}
