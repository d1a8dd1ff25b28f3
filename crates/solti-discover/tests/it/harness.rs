//! Control-plane doubles (axum for HTTP, tonic for gRPC) on 127.0.0.1:0, and a runner for
//! the discovery task through its public API.
//!
//! The timing tests (`http`, `grpc`) run on paused time over the real sockets: a
//! [`ManualClock`] pauses tokio's clock and keeps it from auto-advancing (a paused clock
//! that jumps to the next timer while a request is on the wire would fire request timeouts
//! spuriously), and [`step_until`] moves it forward one timer tick at a time, letting the
//! sockets and tasks settle after each tick. A sync is thus recorded at the virtual instant
//! it was due, and no assertion depends on the speed of the machine. Listeners are bound
//! once on 127.0.0.1:0 and kept.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use solti_discover::{DiscoverConfig, DiscoverConfigBuilder, DiscoveryTransport, pb};
use solti_model::AgentId;
use taskvisor::{TaskContext, TaskError};
use tokio::{net::TcpListener, sync::Notify, task::JoinHandle, time::Instant};

/// How the HTTP double answers one request.
#[derive(Clone, Debug)]
pub(crate) enum HttpAnswer {
    /// Status, optional `Retry-After`, body.
    Reply(u16, Option<&'static str>, String),
    /// Never answers.
    Hang,
}

impl HttpAnswer {
    pub(crate) fn ok(body: &str) -> Self {
        Self::Reply(200, None, body.to_owned())
    }

    pub(crate) fn status(code: u16) -> Self {
        Self::Reply(code, None, format!("status {code}"))
    }
}

/// One request as the double saw it.
#[derive(Clone, Debug)]
pub(crate) struct Seen<T> {
    pub(crate) at: Instant,
    pub(crate) authorization: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) body: T,
}

/// What both doubles share: the recorded requests and the script of answers.
pub(crate) struct Recorder<T, A> {
    seen: Mutex<Vec<Seen<T>>>,
    script: Mutex<VecDeque<A>>,
    notify: Notify,
}

impl<T: Clone, A> Recorder<T, A> {
    fn new(script: impl IntoIterator<Item = A>) -> Arc<Self> {
        Arc::new(Self {
            seen: Mutex::default(),
            script: Mutex::new(script.into_iter().collect()),
            notify: Notify::new(),
        })
    }

    fn record(&self, seen: Seen<T>) -> Option<A> {
        self.seen.lock().unwrap().push(seen);
        self.notify.notify_waiters();
        self.script.lock().unwrap().pop_front()
    }

    pub(crate) fn seen(&self) -> Vec<Seen<T>> {
        self.seen.lock().unwrap().clone()
    }

    /// Steps paused time (see [`step_until`]) until `n` requests arrived, for at most
    /// `within` of virtual time.
    pub(crate) async fn step_to(&self, n: usize, within: Duration) -> Vec<Seen<T>> {
        step_until(within, || self.seen().len() >= n).await;
        self.seen()
    }

    /// Waits (real time, bounded) until `n` requests arrived.
    pub(crate) async fn wait_for(&self, n: usize, within: Duration) -> Vec<Seen<T>> {
        let deadline = Instant::now() + within;
        loop {
            let notified = self.notify.notified();
            let seen = self.seen();
            if seen.len() >= n {
                return seen;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "expected {n} requests within {within:?}, got {}",
                    self.seen().len()
                );
            }
        }
    }
}

/// A running double; dropping it stops the server.
pub(crate) struct Double<T, A> {
    pub(crate) addr: SocketAddr,
    pub(crate) recorder: Arc<Recorder<T, A>>,
    server: JoinHandle<()>,
}

impl<T, A> Drop for Double<T, A> {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl<T, A> Double<T, A> {
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

pub(crate) type HttpDouble = Double<serde_json::Value, HttpAnswer>;
pub(crate) type GrpcDouble = Double<pb::SyncRequest, Result<pb::SyncResponse, tonic::Status>>;

/// The HTTP double: `POST /api/v1/discovery/sync`, answers from `script`, then
/// `200 {"success":true}`.
pub(crate) async fn http_double(script: impl IntoIterator<Item = HttpAnswer>) -> HttpDouble {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_http(listener, script)
}

pub(crate) fn serve_http(
    listener: TcpListener,
    script: impl IntoIterator<Item = HttpAnswer>,
) -> HttpDouble {
    let addr = listener.local_addr().unwrap();
    serve_http_on(listener, addr, script)
}

/// The HTTP double on any axum listener (the TLS tests pass a TLS-terminating one).
pub(crate) fn serve_http_on<L>(
    listener: L,
    addr: SocketAddr,
    script: impl IntoIterator<Item = HttpAnswer>,
) -> HttpDouble
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let recorder = Recorder::new(script);
    let app = http_router(Arc::clone(&recorder));
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Double {
        addr,
        recorder,
        server,
    }
}

pub(crate) fn http_router(recorder: Arc<Recorder<serde_json::Value, HttpAnswer>>) -> Router {
    Router::new()
        .route("/api/v1/discovery/sync", post(http_sync))
        .with_state(recorder)
}

async fn http_sync(
    State(recorder): State<Arc<Recorder<serde_json::Value, HttpAnswer>>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    let seen = Seen {
        at: Instant::now(),
        authorization: header("authorization"),
        content_type: header("content-type"),
        body: serde_json::from_str(&body).expect("request body is JSON"),
    };
    match recorder.record(seen) {
        None => (StatusCode::OK, r#"{"success":true}"#).into_response(),
        Some(HttpAnswer::Hang) => std::future::pending().await,
        Some(HttpAnswer::Reply(code, retry_after, body)) => {
            let mut response = (StatusCode::from_u16(code).unwrap(), body).into_response();
            if let Some(v) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", v.parse().unwrap());
            }
            response
        }
    }
}

/// The gRPC double: answers from `script`, then `success = true`.
pub(crate) async fn grpc_double(
    script: impl IntoIterator<Item = Result<pb::SyncResponse, tonic::Status>>,
) -> GrpcDouble {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_grpc(listener, script, None)
}

pub(crate) fn serve_grpc(
    listener: TcpListener,
    script: impl IntoIterator<Item = Result<pb::SyncResponse, tonic::Status>>,
    tls: Option<tonic::transport::ServerTlsConfig>,
) -> GrpcDouble {
    let addr = listener.local_addr().unwrap();
    let recorder = Recorder::new(script);
    let service =
        pb::discover_service_server::DiscoverServiceServer::new(GrpcService(Arc::clone(&recorder)));
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls).unwrap();
    }
    let router = builder.add_service(service);
    let server = tokio::spawn(async move {
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        router.serve_with_incoming(incoming).await.unwrap();
    });
    Double {
        addr,
        recorder,
        server,
    }
}

struct GrpcService(Arc<Recorder<pb::SyncRequest, Result<pb::SyncResponse, tonic::Status>>>);

#[tonic::async_trait]
impl pb::discover_service_server::DiscoverService for GrpcService {
    async fn sync(
        &self,
        request: tonic::Request<pb::SyncRequest>,
    ) -> Result<tonic::Response<pb::SyncResponse>, tonic::Status> {
        let meta = |name: &str| {
            request
                .metadata()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let seen = Seen {
            at: Instant::now(),
            authorization: meta("authorization"),
            content_type: meta("content-type"),
            body: request.get_ref().clone(),
        };
        let answer = self.0.record(seen).unwrap_or_else(|| {
            Ok(pb::SyncResponse {
                success: true,
                ..Default::default()
            })
        });
        answer.map(tonic::Response::new)
    }
}

/// A builder for an agent `agent-1` at `10.0.0.5:<port>` syncing with `control_plane`
/// every 1 s, first Sync at once, quick backoff.
pub(crate) fn agent(transport: DiscoveryTransport, control_plane: &str) -> DiscoverConfigBuilder {
    DiscoverConfig::builder(
        AgentId::new("agent-1"),
        "worker",
        "http://10.0.0.5:8085",
        control_plane,
        transport,
        1_000,
        1,
    )
    .with_start_jitter(Duration::ZERO)
    .with_backoff(Duration::from_millis(50), Duration::from_millis(200))
}

/// The discovery task running on its own Tokio task, as the supervisor would run it.
pub(crate) struct Running {
    ctx: TaskContext,
    handle: JoinHandle<Result<(), TaskError>>,
}

impl Running {
    pub(crate) fn start(config: DiscoverConfig) -> Self {
        let (task, spec) = solti_discover::sync(config).unwrap();
        assert_eq!(spec.slot().as_str(), solti_discover::SLOT);
        let ctx = TaskContext::detached();
        let handle = tokio::spawn(task.spawn(ctx.clone()));
        Self { ctx, handle }
    }

    pub(crate) fn is_running(&self) -> bool {
        !self.handle.is_finished()
    }

    /// Steps paused time until the task ends by itself (at most `within` of virtual time).
    pub(crate) async fn stepped_to_end(self, within: Duration) -> Result<(), TaskError> {
        step_until(within, || self.handle.is_finished()).await;
        self.handle.await.unwrap()
    }

    /// Cancels and checks the task ends `Canceled` (no time passes on a paused clock).
    pub(crate) async fn cancel_now(self) {
        self.ctx.cancellation_token().cancel();
        let result = self.handle.await.unwrap();
        assert!(matches!(result, Err(TaskError::Canceled)), "{result:?}");
    }

    /// Cancels and returns how long the task took to stop.
    pub(crate) async fn cancel(self) -> Duration {
        let before = Instant::now();
        self.ctx.cancellation_token().cancel();
        let result = tokio::time::timeout(Duration::from_secs(2), self.handle)
            .await
            .expect("stops")
            .unwrap();
        assert!(matches!(result, Err(TaskError::Canceled)), "{result:?}");
        before.elapsed()
    }
}

/// Paused tokio time that moves only when [`step_until`] (or `tokio::time::advance`) moves
/// it. Create it first in a `#[tokio::test]` (current-thread runtime).
pub(crate) struct ManualClock {
    /// Dropping it ends the blocking task that inhibits auto-advance.
    _hold: std::sync::mpsc::Sender<()>,
}

impl ManualClock {
    pub(crate) fn start() -> Self {
        tokio::time::pause();
        // tokio does not auto-advance a paused clock while a blocking task runs.
        let (hold, released) = std::sync::mpsc::channel::<()>();
        drop(tokio::task::spawn_blocking(move || {
            let _ = released.recv();
        }));
        Self { _hold: hold }
    }
}

/// Moves paused time forward one [`TICK`] at a time until `done()`, letting sockets and
/// tasks settle after each tick ([`SETTLE_POLLS`] turns of the runtime, each polling the
/// I/O driver, and ending early once `done()`); panics when `limit` of virtual time passes
/// first.
pub(crate) async fn step_until(limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        for _ in 0..SETTLE_POLLS {
            if done() {
                return;
            }
            tokio::task::yield_now().await;
        }
        assert!(
            start.elapsed() < limit,
            "not done within {limit:?} of virtual time"
        );
        tokio::time::advance(TICK).await;
    }
}

/// tokio's timer resolution.
pub(crate) const TICK: Duration = Duration::from_millis(1);
/// Runtime turns per tick: a loopback round trip (connect, request, answer) takes a few.
const SETTLE_POLLS: usize = 64;
/// How late after its due instant a sync may be recorded (it is on the wire for a few
/// runtime turns; stepping never outruns it by more than this).
pub(crate) const LATE: Duration = Duration::from_millis(5);

/// Gaps between consecutive requests.
pub(crate) fn gaps<T>(seen: &[Seen<T>]) -> Vec<Duration> {
    seen.windows(2).map(|w| w[1].at - w[0].at).collect()
}
