//! The `/metrics` endpoint: text exposition over HTTP/1.1 with axum, served by the API's
//! hardened accept loop (`solti_api::ServeConfig`) with the metrics server's own limits.

use std::{fmt::Write as _, future::Future, io, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::State,
    http::{Method, StatusCode, Uri, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
    routing::get,
};
use prometheus::{Encoder as _, Registry, TEXT_FORMAT, TextEncoder};
use solti_api::ServeConfig;
use solti_model::{MAX_DURATION_MS, RestartPolicy, TaskKind, TaskSpec};
use taskvisor::{TaskContext, TaskError, TaskFn, TaskRef};
use tokio::net::{TcpListener, TcpStream};

use crate::MetricsError;

/// The admission slot of the [`metrics_server`] task.
pub const METRICS_SLOT: &str = "solti-metrics";
/// The path the metrics are served on.
pub const METRICS_PATH: &str = "/metrics";

/// Gathers `registry` and encodes it in the Prometheus text exposition format (0.0.4).
///
/// ```
/// let registry = prometheus::Registry::new();
/// solti_prometheus::register_build_info(&registry, "my-agent", "1.2.3")?;
/// let text = solti_prometheus::encode_text(&registry)?;
/// assert!(text.contains(r#"solti_build_info{agent="my-agent",version="1.2.3"} 1"#));
/// # Ok::<(), solti_prometheus::MetricsError>(())
/// ```
///
/// # Errors
/// [`MetricsError::Encode`] when a collector produced an invalid family.
pub fn encode_text(registry: &Registry) -> Result<String, MetricsError> {
    let families = registry.gather();
    let mut buf = Vec::with_capacity(16 * 1024);
    TextEncoder::new()
        .encode(&families, &mut buf)
        .map_err(MetricsError::Encode)?;
    // The text encoder writes only UTF-8 (names, escaped label values, numbers).
    String::from_utf8(buf).map_err(|e| MetricsError::Encode(prometheus::Error::Msg(e.to_string())))
}

/// Connections the metrics server keeps open at once (a scraper needs one or two). At the
/// cap the oldest idle connection is closed to make room.
pub const METRICS_MAX_CONNECTIONS: usize = 32;
/// Time a metrics client has to send its first bytes and its request head.
pub const METRICS_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no request in progress for this long is closed (longer than common
/// scrape intervals, so a scraper's keep-alive connection is reused).
pub const METRICS_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long requests in progress may take to finish once the server is asked to stop.
pub const METRICS_SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// An axum router answering `GET /metrics` from `registry`, to mount in a server of your own.
/// Another method on `/metrics` gets 405 with `Allow: GET,HEAD` and a JSON error body
/// (`{"error":"MethodNotAllowed","message":…}`, the shape of the task API's errors).
pub fn metrics_router(registry: Registry) -> Router {
    Router::new()
        .route(METRICS_PATH, get(scrape))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(registry)
}

/// The accept loop of every metrics server here: the task API's hardened loop with the
/// metrics server's limits ([`METRICS_MAX_CONNECTIONS`], [`METRICS_HEADER_TIMEOUT`],
/// [`METRICS_IDLE_TIMEOUT`], [`METRICS_SHUTDOWN_GRACE`]).
pub fn metrics_serve_config() -> ServeConfig {
    ServeConfig::new()
        .max_connections(METRICS_MAX_CONNECTIONS)
        .header_read_timeout(METRICS_HEADER_TIMEOUT)
        .idle_timeout(METRICS_IDLE_TIMEOUT)
        .shutdown_grace(METRICS_SHUTDOWN_GRACE)
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes, then finishes the
/// requests in progress and returns. The caller binds the listener (rule: libraries never
/// bind ports).
///
/// The server resists floods like the task API: at most [`METRICS_MAX_CONNECTIONS`]
/// connections (the oldest idle one is closed to make room), the first bytes and request
/// head within [`METRICS_HEADER_TIMEOUT`], idle connections closed after
/// [`METRICS_IDLE_TIMEOUT`], request heads over 64 KiB refused.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = prometheus::Registry::new();
/// let metrics = solti_prometheus::SoltiMetrics::new(&registry)?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9090").await?;
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let server = tokio::spawn(solti_prometheus::serve_metrics(listener, registry, async {
///     let _ = stopped.await;
/// }));
/// // ... run the agent ...
/// let _ = stop.send(());
/// server.await??;
/// # drop(metrics);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// [`MetricsError::Serve`] when the server stops with an I/O error.
#[must_use = "the server does nothing until awaited"]
pub fn serve_metrics<F>(
    listener: TcpListener,
    registry: Registry,
    shutdown: F,
) -> impl Future<Output = Result<(), MetricsError>> + Send + 'static
where
    F: Future<Output = ()> + Send + 'static,
{
    serve_shared(Arc::new(listener), registry, Router::new(), shutdown)
}

/// [`serve_metrics`] that also serves the routes of `extra` on the same listener (say, the
/// agent's `/healthz` and `/readyz`, which must keep answering while the supervisor shuts
/// down, so this server is not one of its tasks).
///
/// # Errors
/// As [`serve_metrics`].
#[must_use = "the server does nothing until awaited"]
pub fn serve_metrics_with<F>(
    listener: TcpListener,
    registry: Registry,
    extra: Router,
    shutdown: F,
) -> impl Future<Output = Result<(), MetricsError>> + Send + 'static
where
    F: Future<Output = ()> + Send + 'static,
{
    serve_shared(Arc::new(listener), registry, extra, shutdown)
}

/// The `/metrics` server as an embedded task for the supervisor. Submit it with
/// `SupervisorApi::submit_with_task(task, &spec)`; it serves until the task is cancelled
/// (shutdown), then returns `TaskError::Canceled`.
///
/// The spec: slot `solti-metrics`, kind [`TaskKind::Embedded`], restart `OnFailure` (a
/// server that stops by itself is retried with backoff, on the same listener), and a
/// per-attempt timeout of [`MAX_DURATION_MS`].
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = prometheus::Registry::new();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9090").await?;
/// let (task, spec) = solti_prometheus::metrics_server(listener, registry);
/// assert_eq!(spec.slot().as_str(), "solti-metrics");
/// // api.submit_with_task(task, &spec).await?;
/// # drop(task);
/// # Ok(())
/// # }
/// ```
#[must_use]
pub fn metrics_server(listener: TcpListener, registry: Registry) -> (TaskRef, TaskSpec) {
    let listener = Arc::new(listener);
    let task: TaskRef = TaskFn::arc(move |ctx: TaskContext| {
        let listener = Arc::clone(&listener);
        let registry = registry.clone();
        async move {
            let stop = ctx.clone();
            let result = serve_shared(listener, registry, Router::new(), async move {
                stop.cancelled().await;
            })
            .await;
            if ctx.is_cancelled() {
                return Err(TaskError::Canceled);
            }
            Err(match result {
                Ok(()) => TaskError::fail("metrics server stopped"),
                Err(e) => TaskError::fail_from(e),
            })
        }
    });
    (task, spec())
}

fn serve_shared<F>(
    listener: Arc<TcpListener>,
    registry: Registry,
    extra: Router,
    shutdown: F,
) -> impl Future<Output = Result<(), MetricsError>> + Send + 'static
where
    F: Future<Output = ()> + Send + 'static,
{
    let router = metrics_router(registry).merge(extra);
    serve_router(SharedListener(listener), router, shutdown)
}

/// Serves `router` (built on [`metrics_router`], with routes or layers of your own: a
/// `Host` check, probes) on `listener` with the metrics server's limits
/// ([`metrics_serve_config`]) until `shutdown` completes.
///
/// # Errors
/// [`MetricsError::Serve`] when the server stops with an I/O error.
#[must_use = "the server does nothing until awaited"]
pub fn serve_metrics_router<F>(
    listener: TcpListener,
    router: Router,
    shutdown: F,
) -> impl Future<Output = Result<(), MetricsError>> + Send + 'static
where
    F: Future<Output = ()> + Send + 'static,
{
    serve_router(SharedListener(Arc::new(listener)), router, shutdown)
}

async fn serve_router<F>(
    listener: SharedListener,
    router: Router,
    shutdown: F,
) -> Result<(), MetricsError>
where
    F: Future<Output = ()> + Send + 'static,
{
    metrics_serve_config()
        .serve(listener, router, shutdown)
        .await
        .map_err(MetricsError::Serve)
}

/// `405` with the task API's JSON error shape (`Allow` is added by the router).
async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let path: String = uri.path().chars().take(256).collect();
    let body = format!(
        "{{\"error\":\"MethodNotAllowed\",\"message\":{}}}",
        json_string(&format!("method {method} is not allowed on {path}"))
    );
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

async fn scrape(State(registry): State<Registry>) -> Response {
    match encode_text(&registry) {
        Ok(body) => ([(CONTENT_TYPE, TEXT_FORMAT)], body).into_response(),
        Err(error) => {
            tracing::warn!(%error, "metrics scrape failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "failed to encode metrics\n",
            )
                .into_response()
        }
    }
}

fn spec() -> TaskSpec {
    // Constant inputs the model accepts (valid slot, its maximum timeout); pinned by a test.
    #[expect(clippy::expect_used, reason = "constant spec; covered by tests")]
    TaskSpec::builder(METRICS_SLOT, TaskKind::Embedded, MAX_DURATION_MS)
        .restart(RestartPolicy::OnFailure)
        .build()
        .expect("the metrics-server spec is valid")
}

/// A listener shared between attempts of the embedded task, so a restarted attempt serves on
/// the socket the caller bound.
struct SharedListener(Arc<TcpListener>);

impl solti_api::Listener for SharedListener {
    type Io = TcpStream;

    async fn accept(&mut self) -> io::Result<solti_api::Accepted<Self::Io>> {
        // Errors (say EMFILE) are logged by the accept loop, which pauses and retries.
        let (stream, _) = self.0.accept().await?;
        let _ = stream.set_nodelay(true);
        Ok(solti_api::Accepted::ready(stream))
    }
}
