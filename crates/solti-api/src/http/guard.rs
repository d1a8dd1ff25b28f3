//! The browser defences (see `crate::guard`) as an axum middleware.

use std::sync::Arc;

use axum::{
    body::HttpBody as _,
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::Shared;
use crate::{
    ApiHandler,
    guard::{self, BodyType},
};

/// Refuses browser-shaped requests before auth and before any handler runs (so `/healthz`
/// and friends, which need no token, are checked too).
pub(super) async fn browser<H: ApiHandler>(
    State(shared): State<Arc<Shared<H>>>,
    req: Request,
    next: Next,
) -> Response {
    let has_body = !req.body().is_end_stream() && req.body().size_hint().exact() != Some(0);
    if let Err(e) = guard::check(
        shared.host_policy,
        BodyType::Json,
        req.method(),
        req.uri(),
        req.headers(),
        has_body,
    ) {
        return e.into_response();
    }
    next.run(req).await
}
