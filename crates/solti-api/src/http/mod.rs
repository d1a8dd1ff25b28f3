//! The HTTP/JSON binding (`/api/v1`) on axum, with SSE live logs.

mod health;
mod log_query;
mod reply;
mod routes;
mod shape;
mod sse;

use std::{fmt, future::Future, sync::Arc};

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};
use solti_model::Token;

pub use health::{ROUTE_HEALTHZ, ROUTE_READYZ, health_router};

use crate::{
    ApiHandler, ApiObserver, Health, HostPolicy, Listener, NoOpApiObserver, ServeConfig,
    SharedToken, Transport, gate::GateLayer,
};

/// Largest accepted request body: 4 MiB. Larger bodies get `413 PayloadTooLarge`.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Route template of `POST|PUT|GET /api/v1/tasks`.
pub const ROUTE_TASKS: &str = "/api/v1/tasks";
/// Route template of `GET|DELETE /api/v1/tasks/{id}`.
pub const ROUTE_TASK: &str = "/api/v1/tasks/{id}";
/// Route template of `GET /api/v1/tasks/{id}/runs`.
pub const ROUTE_RUNS: &str = "/api/v1/tasks/{id}/runs";
/// Route template of `GET /api/v1/tasks/{id}/logs` (SSE).
pub const ROUTE_LOGS: &str = "/api/v1/tasks/{id}/logs";
/// Route template of `POST /api/v1/tasks/{id}/cancel`.
pub const ROUTE_CANCEL: &str = "/api/v1/tasks/{id}/cancel";

/// Builds the HTTP/JSON API as an [`axum::Router`].
///
/// Every route of the wire contract §2 (see `api_v1.md`): bodies are proto3 JSON, errors are
/// `{"error":"<Label>","message":"…"}` (also for unknown routes, wrong methods, bad JSON and
/// oversized bodies), the body limit is [`MAX_BODY_BYTES`], browser-shaped requests are
/// refused before anything else (a cross-site `Origin` or `Sec-Fetch-Site`: 403; a body not
/// declared `application/json`: 415; a `Host` that is not loopback, see
/// [`with_host_policy`](Self::with_host_policy): 421), and with
/// [`with_auth`](Self::with_auth) every request, including the log stream and unknown routes,
/// must carry `Authorization: Bearer <token>`; only the probes `GET /healthz` and
/// `GET /readyz` ([`with_health`](Self::with_health)) answer without it.
///
/// ```no_run
/// # async fn demo(supervisor: solti_core::SupervisorApi) -> std::io::Result<()> {
/// use std::sync::Arc;
///
/// use solti_api::{HttpApi, SupervisorApiAdapter};
///
/// let handler = Arc::new(SupervisorApiAdapter::new(Arc::new(supervisor)));
/// let app = HttpApi::new(handler).router();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8085").await?;
/// axum::serve(listener, app).await?;
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct HttpApi<H> {
    handler: Arc<H>,
    auth: Option<SharedToken>,
    observer: Arc<dyn ApiObserver>,
    host_policy: HostPolicy,
    health: Health,
}

impl<H: ApiHandler> HttpApi<H> {
    /// An API over `handler`, without auth and with a no-op observer.
    pub fn new(handler: Arc<H>) -> Self {
        Self {
            handler,
            auth: None,
            observer: Arc::new(NoOpApiObserver),
            host_policy: HostPolicy::default(),
            health: Health::ready(),
        }
    }

    /// Which `Host` values are accepted; the other browser defences (`Origin`,
    /// `Sec-Fetch-Site`, `Content-Type`) always apply. See [`HostPolicy`].
    ///
    /// # Default
    /// [`HostPolicy::Loopback`]: only `localhost` or a loopback IP. Serving on another
    /// address, pass [`HostPolicy::for_listen_addr`] of the bound address.
    pub fn with_host_policy(mut self, policy: HostPolicy) -> Self {
        self.host_policy = policy;
        self
    }

    /// Answers `GET /healthz` and `GET /readyz` from `health` (see [`health_router`]).
    /// These two routes need no token and are not reported to the observer.
    ///
    /// # Default
    /// [`Health::ready`]: `/readyz` answers 200 whenever the router serves.
    pub fn with_health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// Requires `Authorization: Bearer <token>` on every request (compared in constant time).
    ///
    /// # Default
    /// No auth.
    pub fn with_auth(mut self, token: Token) -> Self {
        self.auth = Some(SharedToken::new(token));
        self
    }

    /// As [`with_auth`](Self::with_auth) with a token that can be replaced while serving.
    ///
    /// # Default
    /// No auth.
    pub fn with_shared_auth(mut self, token: SharedToken) -> Self {
        self.auth = Some(token);
        self
    }

    /// Reports every request to `observer`.
    ///
    /// # Default
    /// [`NoOpApiObserver`].
    pub fn with_observer(mut self, observer: Arc<dyn ApiObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// The router. Serve it with [`axum::serve()`], [`serve_http`] or nest
    /// it into a larger router.
    pub fn router(self) -> Router {
        let api = Router::new()
            .route(
                ROUTE_TASKS,
                post(routes::submit::<H>)
                    .put(routes::apply::<H>)
                    .get(routes::list::<H>),
            )
            .route(
                ROUTE_TASK,
                get(routes::get_task::<H>).delete(routes::delete_task::<H>),
            )
            .route(ROUTE_RUNS, get(routes::runs::<H>))
            .route(ROUTE_LOGS, get(routes::logs::<H>))
            .route(ROUTE_CANCEL, post(routes::cancel::<H>))
            .fallback(routes::route_not_found)
            .method_not_allowed_fallback(routes::method_not_allowed)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self.handler);
        // One gate in front of every route: browser defences, then the token and the
        // observer (the probes get the browser defences only).
        let gate = GateLayer::new(Transport::Http, self.auth, self.observer, self.host_policy);
        health_router(self.health).merge(api).layer(gate)
    }
}

impl<H> fmt::Debug for HttpApi<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpApi")
            .field("auth", &self.auth.is_some())
            .finish_non_exhaustive()
    }
}

/// Serves `router` (from [`HttpApi::router`]) on `listener` until `shutdown` completes, with
/// the default [`ServeConfig`] (header read timeout, HTTP/2 keep-alive, shutdown grace).
///
/// `listener` is a bound [`tokio::net::TcpListener`] or, with the `tls` feature, a
/// [`TlsListener`](crate::TlsListener).
///
/// # Errors
/// As [`ServeConfig::serve`].
pub async fn serve_http<L: Listener>(
    listener: L,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    ServeConfig::new().serve(listener, router, shutdown).await
}
