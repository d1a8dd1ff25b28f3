//! Serving a router over a listener the caller bound, until the caller's shutdown fires.
//!
//! One accept loop serves every transport: hyper-util's auto connection builder speaks
//! HTTP/1.1 and HTTP/2 (gRPC needs HTTP/2; plain-text HTTP/2 is prior-knowledge h2c), over a
//! plain [`TcpListener`] or a [`TlsListener`](crate::TlsListener).
//!
//! Hardening: a connection must send its first bytes (enough to tell HTTP/1 from the HTTP/2
//! preface) and an HTTP/1 request head within
//! [`header_read_timeout`](ServeConfig::header_read_timeout); HTTP/2 connections are pinged
//! and closed when the peer stops answering; on shutdown the loop stops accepting, asks every
//! connection to finish, and drops whatever is still open after
//! [`shutdown_grace`](ServeConfig::shutdown_grace) (live log streams never finish by
//! themselves).

mod io;
#[cfg(feature = "tls")]
mod tls;

use std::{
    convert::Infallible, error::Error as StdError, future::Future, sync::Arc, time::Duration,
};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{
        conn::auto,
        graceful::{GracefulShutdown, Watcher},
    },
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;
use tower::Service;

#[cfg(feature = "tls")]
pub use tls::{TlsListener, TlsReloader};

/// A source of accepted connections: a [`TcpListener`] or a
/// [`TlsListener`](crate::TlsListener).
pub trait Listener: Send + 'static {
    /// The connection type.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The next connection. Errors are logged by the accept loop, which keeps going after a
    /// short pause (e.g. when the process is out of file descriptors).
    fn accept(&mut self) -> impl Future<Output = std::io::Result<Self::Io>> + Send;
}

impl Listener for TcpListener {
    type Io = tokio::net::TcpStream;

    async fn accept(&mut self) -> std::io::Result<Self::Io> {
        let (stream, _) = Self::accept(self).await?;
        // Small writes (SSE events, gRPC frames) should leave at once.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

/// Timeouts of the accept loop.
#[derive(Clone, Debug)]
#[must_use]
pub struct ServeConfig {
    header_read_timeout: Duration,
    http2_keep_alive_interval: Duration,
    http2_keep_alive_timeout: Duration,
    shutdown_grace: Duration,
}

impl ServeConfig {
    /// The defaults listed on each setter.
    pub fn new() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            http2_keep_alive_interval: Duration::from_secs(30),
            http2_keep_alive_timeout: Duration::from_secs(20),
            shutdown_grace: Duration::from_secs(10),
        }
    }

    /// Time a connection has to send its first bytes and (HTTP/1) a complete request head.
    ///
    /// # Default
    /// 30 s.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Interval of HTTP/2 keep-alive pings, and how long an answer may take before the
    /// connection is closed.
    ///
    /// # Default
    /// Every 30 s, answer within 20 s.
    pub fn http2_keep_alive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.http2_keep_alive_interval = interval;
        self.http2_keep_alive_timeout = timeout;
        self
    }

    /// How long open connections may take to finish after shutdown before they are dropped.
    ///
    /// # Default
    /// 10 s.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Serves `service` (an [`axum::Router`], a `tonic::service::Routes`, any tower service
    /// of HTTP requests) on `listener` until `shutdown` completes, then drains connections.
    ///
    /// # Errors
    /// None today; accept errors are logged and retried. The `Result` leaves room for
    /// listener failures that cannot be retried.
    pub async fn serve<L, S, B>(
        self,
        mut listener: L,
        service: S,
        shutdown: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()>
    where
        L: Listener,
        S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let builder = Arc::new(self.builder());
        let graceful = GracefulShutdown::new();
        // Cancelled when accepting stops: a connection that has not sent its first bytes
        // yet is closed then, instead of holding the graceful shutdown until its timeout.
        let stopping = CancellationToken::new();
        let mut conns = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok(io) => {
                        let conn = serve_connection(
                            Arc::clone(&builder),
                            io,
                            service.clone(),
                            self.header_read_timeout,
                            graceful.watcher(),
                            stopping.clone(),
                        );
                        conns.spawn(conn);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed; retrying shortly");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                },
            }
        }
        drop(listener);
        stopping.cancel();
        // Ask every connection to finish its in-flight requests, then cut the rest.
        if tokio::time::timeout(self.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::debug!(
                open = conns.len(),
                "shutdown grace elapsed; dropping open connections"
            );
        }
        conns.shutdown().await;
        Ok(())
    }

    fn builder(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            // Request heads larger than this are refused with 431 (hyper's default is ~400 KiB).
            .max_buf_size(MAX_HEADER_BYTES);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(self.http2_keep_alive_interval)
            .keep_alive_timeout(self.http2_keep_alive_timeout)
            .max_header_list_size(MAX_HEADER_BYTES_U32);
        builder
    }
}

/// Largest request head (request line and headers) accepted, on HTTP/1 and HTTP/2: 64 KiB.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
#[expect(clippy::cast_possible_truncation, reason = "64 KiB fits in u32")]
const MAX_HEADER_BYTES_U32: u32 = MAX_HEADER_BYTES as u32;

impl Default for ServeConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// One connection: read the protocol preface under the header timeout, then hand it to hyper.
async fn serve_connection<I, S, B>(
    builder: Arc<auto::Builder<TokioExecutor>>,
    io: I,
    service: S,
    first_bytes: Duration,
    watcher: Watcher,
    stopping: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let preface = tokio::select! {
        biased;
        () = stopping.cancelled() => {
            tracing::debug!("shutting down; closing a connection that sent nothing yet");
            return;
        }
        preface = tokio::time::timeout(first_bytes, io::Prefixed::read_preface(io)) => preface,
    };
    let io = match preface {
        Ok(Ok(io)) => io,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "connection failed before its first request");
            return;
        }
        Err(_) => {
            tracing::debug!("connection sent no request in time; closing");
            return;
        }
    };
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
