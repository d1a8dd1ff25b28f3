//! Serving a router over a listener the caller bound, until the caller's shutdown fires.
//!
//! One accept loop serves every transport: hyper-util's auto connection builder speaks
//! HTTP/1.1 and HTTP/2 (gRPC needs HTTP/2; plain-text HTTP/2 is prior-knowledge h2c), over a
//! plain [`TcpListener`] or a [`TlsListener`](crate::TlsListener).
//!
//! Hardening: a connection must send its first bytes (enough to tell HTTP/1 from the HTTP/2
//! preface) and an HTTP/1 request head within
//! [`header_read_timeout`](ServeConfig::header_read_timeout); HTTP/2 connections are pinged
//! and closed when the peer stops answering; any connection with no request in progress for
//! [`idle_timeout`](ServeConfig::idle_timeout) is closed (an HTTP/2 peer that answers pings
//! is not kept forever); at most [`max_connections`](ServeConfig::max_connections) are open
//! (derived from `RLIMIT_NOFILE`, leaving descriptors for spawning tasks), pending TLS
//! handshakes included, and at the cap the oldest idle connection (or pending handshake)
//! makes room for the new one; on shutdown the loop stops accepting,
//! asks every connection to finish, and drops whatever is still open after
//! [`shutdown_grace`](ServeConfig::shutdown_grace) (live log streams never finish by
//! themselves).

mod io;
mod slots;
#[cfg(feature = "tls")]
mod tls;

use std::{
    convert::Infallible, error::Error as StdError, future::Future, sync::Arc, time::Duration,
};

use futures_util::future::BoxFuture;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
    sync::{OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;
use tower::Service;

#[cfg(feature = "tls")]
pub use tls::{TlsListener, TlsReloader};

/// A source of accepted connections: a [`TcpListener`], a `tokio::net::UnixListener`, or
/// a [`TlsListener`](crate::TlsListener).
pub trait Listener: Send + 'static {
    /// The connection type.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The next connection. Errors are logged by the accept loop, which keeps going after a
    /// short pause (e.g. when the process is out of file descriptors).
    ///
    /// Return quickly: work a peer could stall (a TLS handshake) belongs in
    /// [`Accepted::handshake`], which the accept loop runs under the connection's slot, so
    /// pending handshakes count against the connection cap.
    fn accept(&mut self) -> impl Future<Output = std::io::Result<Accepted<Self::Io>>> + Send;
}

/// A connection just accepted: ready to serve, or with a handshake still to do.
#[must_use]
pub struct Accepted<I>(AcceptedInner<I>);

enum AcceptedInner<I> {
    Ready(I),
    Handshake(BoxFuture<'static, std::io::Result<I>>),
}

impl<I> Accepted<I> {
    /// A connection ready to serve.
    pub fn ready(io: I) -> Self {
        Self(AcceptedInner::Ready(io))
    }

    /// A connection that becomes ready when `handshake` completes. The accept loop runs it
    /// on the connection's own task, holding one of the
    /// [`max_connections`](ServeConfig::max_connections) slots and counted as idle (so at
    /// the cap the oldest pending handshake can be closed to make room). `handshake` must
    /// bound its own duration; an error drops the connection.
    pub fn handshake(handshake: impl Future<Output = std::io::Result<I>> + Send + 'static) -> Self {
        Self(AcceptedInner::Handshake(Box::pin(handshake)))
    }

    async fn established(self) -> std::io::Result<I> {
        match self.0 {
            AcceptedInner::Ready(io) => Ok(io),
            AcceptedInner::Handshake(handshake) => handshake.await,
        }
    }
}

impl<I> std::fmt::Debug for Accepted<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            AcceptedInner::Ready(_) => "Accepted::Ready",
            AcceptedInner::Handshake(_) => "Accepted::Handshake",
        })
    }
}

impl Listener for TcpListener {
    type Io = tokio::net::TcpStream;

    async fn accept(&mut self) -> std::io::Result<Accepted<Self::Io>> {
        let (stream, _) = Self::accept(self).await?;
        // Small writes (SSE events, gRPC frames) should leave at once.
        let _ = stream.set_nodelay(true);
        Ok(Accepted::ready(stream))
    }
}

/// A Unix-domain socket: local clients only, restricted by the socket file's mode and
/// owner (the reference agents create it `0600`).
#[cfg(unix)]
impl Listener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;

    async fn accept(&mut self) -> std::io::Result<Accepted<Self::Io>> {
        let (stream, _) = Self::accept(self).await?;
        Ok(Accepted::ready(stream))
    }
}

/// Limits and timeouts of the accept loop.
#[derive(Clone, Debug)]
#[must_use]
pub struct ServeConfig {
    header_read_timeout: Duration,
    http2_keep_alive_interval: Duration,
    http2_keep_alive_timeout: Duration,
    idle_timeout: Duration,
    max_connections: usize,
    shutdown_grace: Duration,
}

impl ServeConfig {
    /// The defaults listed on each setter.
    pub fn new() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            http2_keep_alive_interval: Duration::from_secs(30),
            http2_keep_alive_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(120),
            max_connections: slots::default_max_connections(),
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

    /// How long a connection (HTTP/1 keep-alive or HTTP/2, even one that answers every ping)
    /// may stay open with no request in progress before it is closed gracefully. A streaming
    /// response (a log stream) counts as in progress until it ends.
    ///
    /// # Default
    /// 120 s.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Most connections open at once. At the cap, the oldest connection with no request in
    /// progress is closed to make room for the next one; when every connection is busy,
    /// further clients wait in the kernel's accept backlog.
    ///
    /// # Default
    /// Derived from the soft `RLIMIT_NOFILE` when the config is created: the limit minus a
    /// quarter of it (at least 64, at most 1024 descriptors), kept for spawning tasks and
    /// opening files; at most 4096 (768 under the common soft limit of 1024).
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
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

    /// The connection cap in effect (see [`max_connections`](Self::max_connections)).
    #[must_use]
    pub const fn connection_limit(&self) -> usize {
        self.max_connections
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
        // Cancelled when accepting stops: connections finish their requests and close; one
        // that has not sent its first bytes yet is closed at once.
        let stopping = CancellationToken::new();
        let slots = Arc::new(Semaphore::new(self.max_connections));
        let idle = Arc::new(slots::Idle::default());
        let limits = ConnLimits {
            first_bytes: self.header_read_timeout,
            idle: self.idle_timeout,
        };
        let mut conns = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let mut warned_full = false;
        'accept: loop {
            // A free slot first: at the cap, make room by closing the oldest idle
            // connection, or wait for a busy one to end.
            let permit = loop {
                if let Ok(permit) = Arc::clone(&slots).try_acquire_owned() {
                    break permit;
                }
                if !idle.evict_oldest() && !warned_full {
                    warned_full = true;
                    tracing::warn!(
                        limit = self.max_connections,
                        "connection limit reached with every connection busy; new clients wait"
                    );
                }
                tokio::select! {
                    () = &mut shutdown => break 'accept,
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                    acquired = Arc::clone(&slots).acquire_owned() => match acquired {
                        Ok(permit) => break permit,
                        Err(_) => break 'accept,
                    },
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => {
                        warned_full = false;
                        let conn = serve_connection(
                            Arc::clone(&builder),
                            accepted,
                            service.clone(),
                            limits,
                            Arc::clone(&idle),
                            stopping.clone(),
                            permit,
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
        // Every connection finishes its in-flight requests, then the rest are cut.
        let drained = tokio::time::timeout(self.shutdown_grace, async {
            while conns.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
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

/// Per-connection timeouts.
#[derive(Clone, Copy)]
struct ConnLimits {
    first_bytes: Duration,
    idle: Duration,
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

/// One connection: read the protocol preface under the header timeout, then hand it to
/// hyper; closed gracefully when idle for too long or on shutdown, and at once when the
/// accept loop evicts it to make room.
async fn serve_connection<I, S, B>(
    builder: Arc<auto::Builder<TokioExecutor>>,
    accepted: Accepted<I>,
    service: S,
    limits: ConnLimits,
    idle: Arc<slots::Idle>,
    stopping: CancellationToken,
    permit: OwnedSemaphorePermit,
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
    let (id, close) = idle.register();
    let _slot = SlotGuard {
        idle: Arc::clone(&idle),
        id,
        _permit: permit,
    };
    // The handshake (TLS) and the first bytes, all under this connection's slot: a peer
    // that never finishes either is closed at its deadline, on shutdown, or at the cap.
    let establish = async move {
        let io = accepted.established().await?;
        tokio::time::timeout(limits.first_bytes, io::Prefixed::read_preface(io))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request in time"))?
    };
    let preface = tokio::select! {
        biased;
        () = stopping.cancelled() => {
            tracing::debug!("shutting down; closing a connection that sent nothing yet");
            return;
        }
        () = close.cancelled() => {
            tracing::debug!("connection limit reached; closing a connection that sent nothing yet");
            return;
        }
        preface = establish => preface,
    };
    let io = match preface {
        Ok(io) => io,
        Err(e) => {
            tracing::debug!(error = %e, "connection failed before its first request");
            return;
        }
    };
    let (active, mut requests) = slots::Active::new();
    let counted = Counted {
        inner: service,
        active: active.clone(),
    };
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(counted));
    let mut conn = std::pin::pin!(conn);
    let mut draining = false;
    let mut idle_since = Some(tokio::time::Instant::now());
    loop {
        let idle_deadline = idle_since.map(|t| t + limits.idle);
        tokio::select! {
            biased;
            () = close.cancelled() => {
                tracing::debug!("connection limit reached; closing the oldest idle connection");
                break;
            }
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            () = stopping.cancelled(), if !draining => {
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
            changed = requests.changed() => {
                if changed.is_err() {
                    break; // unreachable while `active` lives
                }
                let now_idle = *requests.borrow_and_update() == 0;
                idle.set(id, now_idle, &close);
                idle_since = now_idle.then(tokio::time::Instant::now);
            }
            () = sleep_until_opt(idle_deadline), if !draining => {
                tracing::debug!("connection idle too long; closing");
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    }
    drop(active);
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Frees a connection's slot and forgets it when its task ends (however it ends).
struct SlotGuard {
    idle: Arc<slots::Idle>,
    id: u64,
    _permit: OwnedSemaphorePermit,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.idle.remove(self.id);
    }
}

/// The served service, counting the requests in progress on its connection (a request
/// lasts until its response body is dropped).
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    active: slots::Active,
}

impl<S, B> Service<Request<Incoming>> for Counted<S>
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<slots::Tracked<B>>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let guard = self.active.enter();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await?;
            Ok(res.map(|body| slots::Tracked::new(body, guard)))
        })
    }
}

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
