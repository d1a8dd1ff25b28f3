//! The route handlers of `/api/v1`: each returns `Result<Response, ApiError>`, and its
//! extractors reject as [`ApiError`] too, so every failure gets the JSON error body.

use std::sync::Arc;

use axum::{
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use solti_model::TaskPhase;

use super::{
    log_query,
    reply::{IdPath, JsonBody, Params, json},
    sse,
};
use crate::{ApiError, ApiHandler, convert, pb};

type Handler<H> = State<Arc<H>>;
type Reply = Result<Response, ApiError>;

/// `POST /api/v1/tasks` → `201 {"taskId":…}`.
pub(super) async fn submit<H: ApiHandler>(
    State(h): Handler<H>,
    JsonBody(req): JsonBody<pb::SubmitTaskRequest>,
) -> Reply {
    let id = h.submit(convert::spec_from_pb(req.spec)?).await?;
    let task_id = id.as_str().to_owned();
    json(StatusCode::CREATED, &pb::SubmitTaskResponse { task_id })
}

/// `PUT /api/v1/tasks` → `200 {"taskId":…}`; admission forced to `Replace`.
pub(super) async fn apply<H: ApiHandler>(
    State(h): Handler<H>,
    JsonBody(req): JsonBody<pb::ApplyTaskRequest>,
) -> Reply {
    let id = h.apply(convert::apply_spec_from_pb(req.spec)?).await?;
    let task_id = id.as_str().to_owned();
    json(StatusCode::OK, &pb::ApplyTaskResponse { task_id })
}

/// Query parameters of `GET /api/v1/tasks`; unknown parameters are ignored.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListParams {
    slot: Option<String>,
    status: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

/// `GET /api/v1/tasks?slot=&status=&limit=&offset=` → `200 ListTasksResponse`.
pub(super) async fn list<H: ApiHandler>(
    State(h): Handler<H>,
    Params(p): Params<ListParams>,
) -> Reply {
    let phase = parse_status(p.status.as_deref())?;
    let limit = parse_u32("limit", p.limit.as_deref(), "an integer 0..=1000")?;
    let offset = parse_u32(
        "offset",
        p.offset.as_deref(),
        "a non-negative 32-bit integer",
    )?;
    let query = convert::query(p.slot.as_deref(), phase, limit, offset)?;
    let page = h.list(query.clone()).await?;
    json(StatusCode::OK, &convert::list_response(&query, &page)?)
}

/// `GET /api/v1/tasks/{id}` → `200 {"task":…}` or `404`.
pub(super) async fn get_task<H: ApiHandler>(State(h): Handler<H>, IdPath(id): IdPath) -> Reply {
    let task = h.get(id.clone()).await?.ok_or_else(|| not_found(&id))?;
    let task = Some(convert::task_to_pb(&task));
    json(StatusCode::OK, &pb::GetTaskStatusResponse { task })
}

/// `GET /api/v1/tasks/{id}/runs` → `200 ListTaskRunsResponse` or `404`.
pub(super) async fn runs<H: ApiHandler>(State(h): Handler<H>, IdPath(id): IdPath) -> Reply {
    let runs = h.runs(id.clone()).await?.ok_or_else(|| not_found(&id))?;
    let runs = runs.iter().map(convert::run_to_pb).collect();
    json(StatusCode::OK, &pb::ListTaskRunsResponse { runs })
}

/// `DELETE /api/v1/tasks/{id}` → `204`, also when the task is already gone.
pub(super) async fn delete_task<H: ApiHandler>(State(h): Handler<H>, IdPath(id): IdPath) -> Reply {
    h.delete(id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/tasks/{id}/cancel` (empty body) → `200 {"task":…}` or `404`. The task is
/// stopped and kept: it ends `CANCELED`; a terminal task is returned unchanged.
pub(super) async fn cancel<H: ApiHandler>(State(h): Handler<H>, IdPath(id): IdPath) -> Reply {
    let task = h
        .cancel(id.clone(), HTTP_CANCEL_REASON)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let task = Some(convert::task_to_pb(&task));
    json(StatusCode::OK, &pb::GetTaskStatusResponse { task })
}

/// The error text of a task cancelled over HTTP.
pub(crate) const HTTP_CANCEL_REASON: &str =
    "canceled by an API client (HTTP POST /api/v1/tasks/{id}/cancel)";

/// `GET /api/v1/tasks/{id}/logs?tail=N|all&follow=false&since=<ms>` (and `Last-Event-ID`)
/// → `200 text/event-stream`, `400` naming a bad parameter, or `404`.
pub(super) async fn logs<H: ApiHandler>(
    State(h): Handler<H>,
    IdPath(id): IdPath,
    Params(params): Params<log_query::LogParams>,
    headers: HeaderMap,
) -> Reply {
    let query = log_query::parse(&params, &headers)?;
    let stream = h
        .stream_logs(id.clone(), query)
        .await
        .map_err(|e| e.rename_field("after_offset", "Last-Event-ID"))?
        .ok_or_else(|| not_found(&id))?;
    Ok(sse::response(stream))
}

/// `404 NotFound` with the JSON error body for paths no route matches.
pub(super) async fn route_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::RouteNotFound {
        method: method.to_string(),
        path: short_path(&uri),
    }
}

/// `405 MethodNotAllowed` with the JSON error body.
pub(super) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: short_path(&uri),
    }
}

fn short_path(uri: &Uri) -> String {
    uri.path().chars().take(256).collect()
}

fn not_found(id: &solti_model::TaskId) -> ApiError {
    ApiError::TaskNotFound(id.to_string())
}

/// `status`: short names (`running`), enum names (`TASK_STATUS_RUNNING`) or numbers; empty
/// and `UNSPECIFIED` mean no filter.
fn parse_status(raw: Option<&str>) -> Result<Option<TaskPhase>, ApiError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if let Ok(n) = raw.parse::<i32>() {
        return convert::phase_from_pb(Some(n));
    }
    if raw.eq_ignore_ascii_case("TASK_STATUS_UNSPECIFIED")
        || raw.eq_ignore_ascii_case("unspecified")
    {
        return Ok(None);
    }
    raw.parse::<TaskPhase>()
        .map(Some)
        .map_err(|e| ApiError::invalid("status", e.to_string()))
}

fn parse_u32(field: &str, raw: Option<&str>, what: &str) -> Result<u32, ApiError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(0),
        Some(s) => s.parse::<u32>().map_err(|_| {
            ApiError::invalid(
                field,
                format!(
                    "must be {what}, got {:?}",
                    s.chars().take(32).collect::<String>()
                ),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_forms() {
        assert_eq!(
            parse_status(Some("running")).unwrap(),
            Some(TaskPhase::Running)
        );
        assert_eq!(
            parse_status(Some("TASK_STATUS_CANCELED")).unwrap(),
            Some(TaskPhase::Canceled)
        );
        assert_eq!(parse_status(Some("3")).unwrap(), Some(TaskPhase::Succeeded));
        assert_eq!(parse_status(Some("")).unwrap(), None);
        assert_eq!(parse_status(Some("TASK_STATUS_UNSPECIFIED")).unwrap(), None);
        assert!(
            parse_status(Some("done"))
                .unwrap_err()
                .to_string()
                .starts_with("status: unknown task phase")
        );
        assert_eq!(parse_u32("limit", Some("12"), "x").unwrap(), 12);
        assert_eq!(
            parse_u32("limit", Some("-1"), "an integer")
                .unwrap_err()
                .to_string(),
            "limit: must be an integer, got \"-1\""
        );
    }
}
