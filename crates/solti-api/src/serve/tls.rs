//! A listener that yields TLS (or mTLS) connections whose handshake completed.

use std::{
    fmt,
    net::SocketAddr,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use solti_tls::ServerTlsConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

use super::{Accepted, Listener};

/// Accepts TCP connections and hands each to the accept loop with its TLS handshake still
/// to do ([`Accepted::handshake`]): handshakes run concurrently on the connections' own
/// tasks, each under a timeout, and every pending handshake holds one of the accept loop's
/// connection slots (a flood of handshakes that never finish cannot hold more descriptors
/// than the cap, and at the cap the oldest pending one is closed to make room).
///
/// A failed or timed-out handshake (wrong CA, missing client certificate under mTLS,
/// plain-text client, a peer that never finishes) is logged at DEBUG and dropped; it never
/// stops the listener. Client certificates are verified by the rustls config from
/// `solti-tls` (mandatory when it was built with `require_client_ca_*`).
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: Arc<RwLock<TlsAcceptor>>,
    handshake_timeout: Duration,
}

impl TlsListener {
    /// Wraps a bound listener with the server TLS config.
    #[must_use]
    pub fn new(tcp: TcpListener, tls: &ServerTlsConfig) -> Self {
        Self {
            tcp,
            acceptor: Arc::new(RwLock::new(tls.acceptor())),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Time a client has to complete the TLS handshake.
    ///
    /// # Default
    /// 5 s.
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// A handle that swaps the certificate (and client CA) of this listener while it serves:
    /// handshakes that start afterwards use the new configuration, open connections keep
    /// theirs.
    #[must_use]
    pub fn reloader(&self) -> TlsReloader {
        TlsReloader {
            acceptor: Arc::clone(&self.acceptor),
        }
    }

    /// The local address (to learn the port after binding `:0`).
    ///
    /// # Errors
    /// As [`TcpListener::local_addr`].
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;

    async fn accept(&mut self) -> std::io::Result<Accepted<Self::Io>> {
        let (stream, peer) = self.tcp.accept().await?;
        let _ = stream.set_nodelay(true);
        let acceptor = self
            .acceptor
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let timeout = self.handshake_timeout;
        Ok(Accepted::handshake(async move {
            match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => Ok(tls),
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    Err(e)
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "TLS handshake timed out",
                    ))
                }
            }
        }))
    }
}

impl fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListener")
            .field("local_addr", &self.tcp.local_addr().ok())
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

/// Default time a client has to complete the TLS handshake.
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Swaps the TLS configuration of a [`TlsListener`] (from [`TlsListener::reloader`]).
#[derive(Clone)]
pub struct TlsReloader {
    acceptor: Arc<RwLock<TlsAcceptor>>,
}

impl TlsReloader {
    /// Uses `tls` for every handshake from now on.
    pub fn reload(&self, tls: &ServerTlsConfig) {
        *self
            .acceptor
            .write()
            .unwrap_or_else(PoisonError::into_inner) = tls.acceptor();
    }
}

impl fmt::Debug for TlsReloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsReloader").finish_non_exhaustive()
    }
}
