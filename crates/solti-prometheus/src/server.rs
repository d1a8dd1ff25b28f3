//! The `/metrics` endpoint: text exposition over HTTP/1.1 with axum.

use std::{future::Future, io, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
    routing::get,
};
use prometheus::{Encoder as _, Registry, TEXT_FORMAT, TextEncoder};
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

/// An axum router answering `GET /metrics` from `registry`, to mount in a server of your own.
pub fn metrics_router(registry: Registry) -> Router {
    Router::new()
        .route(METRICS_PATH, get(scrape))
        .with_state(registry)
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes, then finishes the
/// requests in progress and returns. The caller binds the listener (rule: libraries never
/// bind ports).
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
    async move {
        axum::serve(SharedListener(listener), router)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(MetricsError::Serve)
    }
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

impl axum::serve::Listener for SharedListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok(conn) => return conn,
                Err(e) if is_connection_error(&e) => {}
                Err(error) => {
                    // Typically EMFILE: wait for descriptors to free up instead of spinning.
                    tracing::warn!(%error, "metrics listener accept failed; retrying in 1s");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Pause after an accept error that is not about one connection.
const ACCEPT_RETRY: Duration = Duration::from_secs(1);
