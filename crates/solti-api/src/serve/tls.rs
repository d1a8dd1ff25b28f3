//! A listener that yields TLS (or mTLS) connections whose handshake completed.

use std::{
    fmt,
    net::SocketAddr,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use solti_tls::ServerTlsConfig;
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinSet,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

use super::Listener;

/// Most handshakes in flight at once; further TCP connections wait in the kernel backlog.
/// Kept small: each holds a descriptor outside the accept loop's connection cap, and a
/// legitimate handshake takes milliseconds.
const MAX_PENDING_HANDSHAKES: usize = 64;

/// Accepts TCP connections and performs TLS handshakes concurrently, each under a timeout.
///
/// A failed or timed-out handshake (wrong CA, missing client certificate under mTLS,
/// plain-text client, a peer that never finishes) is logged at DEBUG and dropped; it never
/// stops the listener. Client certificates are verified by the rustls config from
/// `solti-tls` (mandatory when it was built with `require_client_ca_*`).
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: Arc<RwLock<TlsAcceptor>>,
    handshake_timeout: Duration,
    handshakes: JoinSet<Option<TlsStream<TcpStream>>>,
}

impl TlsListener {
    /// Wraps a bound listener with the server TLS config.
    #[must_use]
    pub fn new(tcp: TcpListener, tls: &ServerTlsConfig) -> Self {
        Self {
            tcp,
            acceptor: Arc::new(RwLock::new(tls.acceptor())),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            handshakes: JoinSet::new(),
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

    async fn accept(&mut self) -> std::io::Result<Self::Io> {
        loop {
            let can_start = self.handshakes.len() < MAX_PENDING_HANDSHAKES;
            tokio::select! {
                accepted = self.tcp.accept(), if can_start => {
                    let (stream, peer) = accepted?;
                    let _ = stream.set_nodelay(true);
                    let acceptor = self
                        .acceptor
                        .read()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone();
                    let timeout = self.handshake_timeout;
                    self.handshakes.spawn(async move {
                        match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => Some(tls),
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                None
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                None
                            }
                        }
                    });
                }
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(tls)) = done {
                        return Ok(tls);
                    }
                }
            }
        }
    }
}

impl fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListener")
            .field("local_addr", &self.tcp.local_addr().ok())
            .field("handshake_timeout", &self.handshake_timeout)
            .field("pending_handshakes", &self.handshakes.len())
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
