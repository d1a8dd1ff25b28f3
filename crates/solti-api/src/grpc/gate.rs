//! The tower service around the generated server: auth, observation, limit mapping.

use std::{
    convert::Infallible,
    fmt,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use futures_util::future::BoxFuture;
use http::{HeaderValue, Request, Response, header};
use tonic::{Code, Status, body::Body, server::NamedService};
use tower::Service;

use super::{MAX_MESSAGE_BYTES, service::TaskServiceImpl};
use crate::{
    ApiError, ApiObserver, HostPolicy, SharedToken, Transport, UNMATCHED_ROUTE,
    guard::{self, BodyType},
    pb::task_service_server::TaskServiceServer,
};

/// The `solti.task.v1.TaskService` tower service built by
/// [`GrpcApi::into_service`](super::GrpcApi::into_service).
pub struct GrpcService<H> {
    inner: TaskServiceServer<TaskServiceImpl<H>>,
    auth: Option<SharedToken>,
    observer: Arc<dyn ApiObserver>,
    host_policy: HostPolicy,
}

impl<H> GrpcService<H> {
    pub(super) fn new(
        inner: TaskServiceServer<TaskServiceImpl<H>>,
        auth: Option<SharedToken>,
        observer: Arc<dyn ApiObserver>,
        host_policy: HostPolicy,
    ) -> Self {
        Self {
            inner,
            auth,
            observer,
            host_policy,
        }
    }
}

impl<H: crate::ApiHandler> Service<Request<Body>> for GrpcService<H> {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The generated server is always ready; each call works on its own clone.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let (method, route) = method_of(req.uri().path());
        let observer = Arc::clone(&self.observer);
        let started = Instant::now();
        observer.request_started(Transport::Grpc, method, route);
        // Browser defences first (a page can POST HTTP/1.1 to this port too), then auth.
        let refused = guard::check(
            self.host_policy,
            BodyType::Grpc,
            req.method(),
            req.uri(),
            req.headers(),
            !hyper::body::Body::is_end_stream(req.body()),
        )
        .err();
        let authorized = self.auth.as_ref().is_none_or(|token| {
            token.matches(
                req.headers()
                    .get(header::AUTHORIZATION)
                    .map(HeaderValue::as_bytes),
            )
        });
        let mut inner = self.inner.clone();
        Box::pin(async move {
            let mut res = if let Some(e) = refused {
                Status::from(e).into_http()
            } else if authorized {
                let req = if matches!(method, "SubmitTask" | "ApplyTask") {
                    prescan(req).await
                } else {
                    Ok(req)
                };
                match req {
                    Ok(req) => match inner.call(req).await {
                        Ok(res) => res,
                        Err(never) => match never {},
                    },
                    Err(status) => status.into_http(),
                }
            } else {
                Status::new(Code::Unauthenticated, ApiError::Unauthenticated.to_string())
                    .into_http()
            };
            let code = normalize_status(&mut res);
            observer.request_finished(
                Transport::Grpc,
                method,
                route,
                code_number(code),
                started.elapsed(),
            );
            Ok(res)
        })
    }
}

impl<H> NamedService for GrpcService<H> {
    const NAME: &'static str = crate::pb::task_service_server::SERVICE_NAME;
}

impl<H> Clone for GrpcService<H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            auth: self.auth.clone(),
            observer: Arc::clone(&self.observer),
            host_policy: self.host_policy,
        }
    }
}

impl<H> fmt::Debug for GrpcService<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcService")
            .field("auth", &self.auth.is_some())
            .finish_non_exhaustive()
    }
}

/// Reads a `SubmitTask` / `ApplyTask` request (one message, at most the message limit) and
/// refuses it when a list in the spec is over its limit, before prost decodes it; the request
/// goes on with the same bytes otherwise. Compressed or malformed frames are left to tonic.
async fn prescan(req: Request<Body>) -> Result<Request<Body>, Status> {
    use http_body_util::BodyExt as _;

    let (parts, body) = req.into_parts();
    let collected = http_body_util::Limited::new(body, MAX_MESSAGE_BYTES + 5)
        .collect()
        .await;
    let bytes = match collected {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Status::resource_exhausted(format!(
                "message must be at most {MAX_MESSAGE_BYTES} bytes"
            )));
        }
        Err(e) => {
            return Err(Status::invalid_argument(format!(
                "could not read the request: {e}"
            )));
        }
    };
    if let [0, a, b, c, d, rest @ ..] = &bytes[..] {
        let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
        if let Some(message) = rest.get(..len) {
            super::shape::check(message).map_err(Status::from)?;
        }
    }
    Ok(Request::from_parts(
        parts,
        Body::new(http_body_util::Full::new(bytes)),
    ))
}

/// The status a response head carries (`OK` when the status comes later in trailers),
/// after mapping tonic's request-decoding failures onto the contract:
///
/// - a message over the limit is `OUT_OF_RANGE` in tonic, `RESOURCE_EXHAUSTED` here;
/// - bytes that are not a valid message (bad protobuf, bad framing, a missing message) are
///   `INTERNAL` in tonic, `INVALID_ARGUMENT` here: the client sent them, nothing failed inside.
fn normalize_status(res: &mut Response<Body>) -> Code {
    let Some(status) = Status::from_header_map(res.headers()) else {
        return Code::Ok;
    };
    let replaced = match status.code() {
        Code::OutOfRange if status.message().contains("message length too large") => Status::new(
            Code::ResourceExhausted,
            format!(
                "message must be at most {MAX_MESSAGE_BYTES} bytes ({})",
                status.message()
            ),
        ),
        Code::Internal
            if DECODE_FAILURES
                .iter()
                .any(|p| status.message().starts_with(p)) =>
        {
            Status::new(
                Code::InvalidArgument,
                format!("invalid request message: {}", status.message()),
            )
        }
        code => return code,
    };
    let code = replaced.code();
    let head = replaced.into_http::<Body>();
    for name in ["grpc-status", "grpc-message"] {
        res.headers_mut().remove(name);
        if let Some(v) = head.headers().get(name) {
            res.headers_mut().insert(name, v.clone());
        }
    }
    code
}

/// Message prefixes of tonic's request-decoding failures (all reported as `INTERNAL`).
const DECODE_FAILURES: [&str; 5] = [
    "failed to decode Protobuf message",
    "protocol error:",
    "Unexpected EOF decoding stream",
    "Error decompressing",
    "Missing request message",
];

/// The RPC name and route template of a request path.
fn method_of(path: &str) -> (&'static str, &'static str) {
    const ROUTES: [(&str, &str); 8] = [
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
    ROUTES
        .iter()
        .find(|(_, route)| *route == path)
        .copied()
        .unwrap_or(("unknown", UNMATCHED_ROUTE))
}

/// The gRPC status code as its decimal number (`"0"` for OK, `"5"` for NOT_FOUND, …), the
/// form the `status` metric label takes.
pub(crate) const fn code_number(code: Code) -> &'static str {
    match code {
        Code::Ok => "0",
        Code::Cancelled => "1",
        Code::Unknown => "2",
        Code::InvalidArgument => "3",
        Code::DeadlineExceeded => "4",
        Code::NotFound => "5",
        Code::AlreadyExists => "6",
        Code::PermissionDenied => "7",
        Code::ResourceExhausted => "8",
        Code::FailedPrecondition => "9",
        Code::Aborted => "10",
        Code::OutOfRange => "11",
        Code::Unimplemented => "12",
        Code::Internal => "13",
        Code::Unavailable => "14",
        Code::DataLoss => "15",
        Code::Unauthenticated => "16",
    }
}

/// The standard services next to the task service (`grpc.health.v1`, reflection) behind the
/// same browser defences, and behind the token except for the unary health `Check`: a probe
/// needs no credential, while the long-lived streams (`Watch`, reflection) would otherwise let
/// an unauthenticated client hold connection slots for as long as it likes.
pub(super) struct Guarded<S> {
    inner: S,
    auth: Option<SharedToken>,
    host_policy: HostPolicy,
}

impl<S> Guarded<S> {
    pub(super) const fn new(inner: S, auth: Option<SharedToken>, host_policy: HostPolicy) -> Self {
        Self {
            inner,
            auth,
            host_policy,
        }
    }
}

/// The one call served without a token.
const OPEN_PATH: &str = "/grpc.health.v1.Health/Check";

impl<S> Service<Request<Body>> for Guarded<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let refused = guard::check(
            self.host_policy,
            BodyType::Grpc,
            req.method(),
            req.uri(),
            req.headers(),
            !hyper::body::Body::is_end_stream(req.body()),
        )
        .err();
        let authorized = req.uri().path() == OPEN_PATH
            || self.auth.as_ref().is_none_or(|token| {
                token.matches(
                    req.headers()
                        .get(header::AUTHORIZATION)
                        .map(HeaderValue::as_bytes),
                )
            });
        // `poll_ready` readied this instance: call it, and keep a fresh clone for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            if let Some(e) = refused {
                return Ok(Status::from(e).into_http());
            }
            if !authorized {
                return Ok(Status::new(
                    Code::Unauthenticated,
                    ApiError::Unauthenticated.to_string(),
                )
                .into_http());
            }
            inner.call(req).await
        })
    }
}

impl<S: NamedService> NamedService for Guarded<S> {
    const NAME: &'static str = S::NAME;
}

impl<S: Clone> Clone for Guarded<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            auth: self.auth.clone(),
            host_policy: self.host_policy,
        }
    }
}

impl<S> fmt::Debug for Guarded<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded")
            .field("auth", &self.auth.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods() {
        assert_eq!(
            method_of("/solti.task.v1.TaskService/ListTasks"),
            ("ListTasks", "/solti.task.v1.TaskService/ListTasks")
        );
        assert_eq!(method_of("/x/y"), ("unknown", UNMATCHED_ROUTE));
    }
}
