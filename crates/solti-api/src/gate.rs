//! The gate in front of both transports: one tower [`Layer`] that, before any handler runs,
//! refuses browser-shaped requests ([`crate::guard`]), checks the bearer token in constant
//! time, and reports every request to the [`ApiObserver`].
//!
//! Both transports are axum routers ([`HttpApi::router`](crate::HttpApi::router), and
//! tonic's [`Routes`](tonic::service::Routes) for gRPC), so the same layer is mounted on
//! each with `Router::layer`; only the labels, the refusal's encoding and (on gRPC) the
//! message frame check depend on the transport. The probes (`GET /healthz`, `/readyz`,
//! gRPC `grpc.health.v1.Health/Check`) get the browser checks only: no token, no metrics.

use std::{
    convert::Infallible,
    fmt,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

#[cfg(feature = "http")]
use axum::http::Method;
use axum::{body::HttpBody as _, extract::Request, response::Response};
use futures_util::future::BoxFuture;
use http::header;
use tower::{Layer, Service};

use crate::{
    ApiError, ApiObserver, HostPolicy, SharedToken, Transport, UNMATCHED_ROUTE,
    guard::{self, BodyType},
};

/// The gate for one transport (see the module docs).
#[derive(Clone)]
pub(crate) struct GateLayer {
    config: Arc<Config>,
}

struct Config {
    transport: Transport,
    auth: Option<SharedToken>,
    observer: Arc<dyn ApiObserver>,
    host_policy: HostPolicy,
}

impl GateLayer {
    pub(crate) fn new(
        transport: Transport,
        auth: Option<SharedToken>,
        observer: Arc<dyn ApiObserver>,
        host_policy: HostPolicy,
    ) -> Self {
        Self {
            config: Arc::new(Config {
                transport,
                auth,
                observer,
                host_policy,
            }),
        }
    }
}

impl<S> Layer<S> for GateLayer {
    type Service = Gate<S>;

    fn layer(&self, inner: S) -> Gate<S> {
        Gate {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`GateLayer`] wraps around a route.
#[derive(Clone)]
pub(crate) struct Gate<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Service<Request> for Gate<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // `poll_ready` readied this instance: call it, and keep a fresh clone for the next.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        Box::pin(async move { Ok(config.run(inner, req).await) })
    }
}

impl Config {
    async fn run<S>(&self, mut inner: S, req: Request) -> Response
    where
        S: Service<Request, Response = Response, Error = Infallible>,
    {
        let path = req.uri().path();
        let open = match self.transport {
            #[cfg(feature = "http")]
            Transport::Http => OPEN_HTTP.contains(&path),
            _ => path == OPEN_GRPC,
        };
        // Labels come from fixed tables, so a client (authenticated or not) cannot mint
        // new series.
        let (method, route) = self.labels(&req);
        let started = Instant::now();
        if !open {
            self.observer.request_started(self.transport, method, route);
        }
        let res = match self.admit(open, req).await {
            Ok(req) => match inner.call(req).await {
                Ok(res) => res,
                Err(never) => match never {},
            },
            Err(refused) => self.refusal(refused),
        };
        if !open {
            let status = res.status();
            let status = match self.transport {
                Transport::Http => status.as_str(),
                Transport::Grpc => grpc_status_label(&res),
            };
            self.observer.request_finished(
                self.transport,
                method,
                route,
                status,
                started.elapsed(),
            );
        }
        res
    }

    /// The browser defences, then the token (except on the probes), then on gRPC the
    /// message frame of a task service call.
    async fn admit(&self, open: bool, req: Request) -> Result<Request, ApiError> {
        let body_type = match self.transport {
            Transport::Http => BodyType::Json,
            Transport::Grpc => BodyType::Grpc,
        };
        let has_body = !req.body().is_end_stream() && req.body().size_hint().exact() != Some(0);
        guard::check(
            self.host_policy,
            body_type,
            req.method(),
            req.uri(),
            req.headers(),
            has_body,
        )?;
        if !open
            && let Some(token) = &self.auth
            && !token.matches(
                req.headers()
                    .get(header::AUTHORIZATION)
                    .map(|v| v.as_bytes()),
            )
        {
            return Err(ApiError::Unauthenticated);
        }
        match self.transport {
            #[cfg(feature = "grpc")]
            Transport::Grpc => match grpc_rpc(req.uri().path()) {
                Some((rpc, _)) => crate::grpc::frame::read(req, rpc).await,
                None => Ok(req),
            },
            _ => Ok(req),
        }
    }

    /// The refusal in the transport's encoding.
    fn refusal(&self, err: ApiError) -> Response {
        match self.transport {
            #[cfg(feature = "http")]
            Transport::Http => axum::response::IntoResponse::into_response(err),
            #[cfg(feature = "grpc")]
            Transport::Grpc => tonic::Status::from(err).into_http(),
            // A gate is built only by the transports this build has.
            #[cfg(not(all(feature = "http", feature = "grpc")))]
            _ => Response::new(axum::body::Body::empty()),
        }
    }

    /// The `(method, route)` labels of a request.
    fn labels(&self, req: &Request) -> (&'static str, &'static str) {
        match self.transport {
            #[cfg(feature = "http")]
            Transport::Http => {
                let matched = req
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map(axum::extract::MatchedPath::as_str);
                let route = HTTP_ROUTES
                    .into_iter()
                    .find(|r| Some(*r) == matched)
                    .unwrap_or(UNMATCHED_ROUTE);
                (method_label(req.method()), route)
            }
            _ => grpc_rpc(req.uri().path()).unwrap_or(("unknown", UNMATCHED_ROUTE)),
        }
    }
}

/// The routes without token or metrics: the probes.
#[cfg(feature = "http")]
const OPEN_HTTP: [&str; 2] = [crate::http::ROUTE_HEALTHZ, crate::http::ROUTE_READYZ];
const OPEN_GRPC: &str = "/grpc.health.v1.Health/Check";

/// The route templates of `/api/v1` (the `route` label; never a concrete id).
#[cfg(feature = "http")]
const HTTP_ROUTES: [&str; 5] = {
    use crate::http::{ROUTE_CANCEL, ROUTE_LOGS, ROUTE_RUNS, ROUTE_TASK, ROUTE_TASKS};
    [
        ROUTE_TASKS,
        ROUTE_TASK,
        ROUTE_RUNS,
        ROUTE_LOGS,
        ROUTE_CANCEL,
    ]
};

/// The RPCs of `solti.task.v1.TaskService`: `(method label, route label = path)`.
const GRPC_RPCS: [(&str, &str); 8] = [
    ("SubmitTask", "/solti.task.v1.TaskService/SubmitTask"),
    ("ApplyTask", "/solti.task.v1.TaskService/ApplyTask"),
    ("GetTaskStatus", "/solti.task.v1.TaskService/GetTaskStatus"),
    ("ListTasks", "/solti.task.v1.TaskService/ListTasks"),
    ("ListTaskRuns", "/solti.task.v1.TaskService/ListTaskRuns"),
    ("DeleteTask", "/solti.task.v1.TaskService/DeleteTask"),
    ("CancelTask", "/solti.task.v1.TaskService/CancelTask"),
    (
        "StreamTaskLogs",
        "/solti.task.v1.TaskService/StreamTaskLogs",
    ),
];

fn grpc_rpc(path: &str) -> Option<(&'static str, &'static str)> {
    GRPC_RPCS.into_iter().find(|(_, route)| *route == path)
}

/// The method as a metric label: one of the standard methods, or `other`.
#[cfg(feature = "http")]
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// The gRPC status code number of a response head as the `status` label (`0` when the
/// status comes later in trailers, as for every answer that is not refused up front).
fn grpc_status_label(res: &Response) -> &'static str {
    const CODES: [&str; 17] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    ];
    res.headers().get("grpc-status").map_or(CODES[0], |v| {
        CODES
            .into_iter()
            .find(|c| c.as_bytes() == v.as_bytes())
            .unwrap_or(CODES[2])
    })
}

impl fmt::Debug for GateLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GateLayer")
            .field("transport", &self.config.transport)
            .field("auth", &self.config.auth.is_some())
            .finish_non_exhaustive()
    }
}
