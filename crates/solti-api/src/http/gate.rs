//! Middleware around every route: observation, auth, and the JSON fallbacks.

use std::{sync::Arc, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{Method, Uri, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{ROUTE_CANCEL, ROUTE_LOGS, ROUTE_RUNS, ROUTE_TASK, ROUTE_TASKS, Shared};
use crate::{ApiError, ApiHandler, Transport, UNMATCHED_ROUTE};

/// Reports the request to the observer (outermost, so 401s and 413s are seen too).
pub(super) async fn observe<H: ApiHandler>(
    State(shared): State<Arc<Shared<H>>>,
    req: Request,
    next: Next,
) -> Response {
    let route = route_template(req.extensions().get::<MatchedPath>());
    // Only the methods of the contract become label values; anything a client invents is
    // `other`, so unauthenticated requests cannot mint new series.
    let method = method_label(req.method());
    let started = Instant::now();
    shared
        .observer
        .request_started(Transport::Http, method, route);
    let res = next.run(req).await;
    shared.observer.request_finished(
        Transport::Http,
        method,
        route,
        res.status().as_str(),
        started.elapsed(),
    );
    res
}

/// Checks the bearer token before anything else runs (including the log stream and the
/// fallbacks).
pub(super) async fn auth<H: ApiHandler>(
    State(shared): State<Arc<Shared<H>>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(token) = &shared.auth {
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        if !token.matches(header) {
            return ApiError::Unauthenticated.into_response();
        }
    }
    next.run(req).await
}

/// `404 NotFound` with the JSON error body for paths no route matches.
pub(super) async fn route_not_found(method: Method, uri: Uri) -> Response {
    ApiError::RouteNotFound {
        method: method.to_string(),
        path: short_path(&uri),
    }
    .into_response()
}

/// `405 MethodNotAllowed` with the JSON error body.
pub(super) async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: short_path(&uri),
    }
    .into_response()
}

/// The method as a metric label: one of the standard methods, or `other`.
pub(super) fn method_label(method: &Method) -> &'static str {
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

/// The static route template for a matched path (never the concrete id).
fn route_template(matched: Option<&MatchedPath>) -> &'static str {
    match matched.map(MatchedPath::as_str) {
        Some(ROUTE_TASKS) => ROUTE_TASKS,
        Some(ROUTE_TASK) => ROUTE_TASK,
        Some(ROUTE_RUNS) => ROUTE_RUNS,
        Some(ROUTE_LOGS) => ROUTE_LOGS,
        Some(ROUTE_CANCEL) => ROUTE_CANCEL,
        _ => UNMATCHED_ROUTE,
    }
}

fn short_path(uri: &Uri) -> String {
    uri.path().chars().take(256).collect()
}
