//! The route handlers of `/api/v1`.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{
        Path, Query, State,
        rejection::{BytesRejection, PathRejection, QueryRejection},
    },
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use solti_model::TaskPhase;

use super::{
    Shared, log_query,
    reply::{decode, json, path_error},
    sse,
};
use crate::{ApiError, ApiHandler, convert, pb};

type Body = Result<Bytes, BytesRejection>;
type IdPath = Result<Path<String>, PathRejection>;

/// `POST /api/v1/tasks` → `201 {"taskId":…}`.
pub(super) async fn submit<H: ApiHandler>(
    State(s): State<Arc<Shared<H>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let run = async {
        let req: pb::SubmitTaskRequest = decode(&headers, body)?;
        let spec = convert::spec_from_pb(req.spec)?;
        let id = s.handler.submit(spec).await?;
        Ok(json(
            StatusCode::CREATED,
            &pb::SubmitTaskResponse {
                task_id: id.as_str().to_owned(),
            },
        ))
    };
    respond(run.await)
}

/// `PUT /api/v1/tasks` → `200 {"taskId":…}`; admission forced to `Replace`.
pub(super) async fn apply<H: ApiHandler>(
    State(s): State<Arc<Shared<H>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let run = async {
        let req: pb::ApplyTaskRequest = decode(&headers, body)?;
        let spec = convert::apply_spec_from_pb(req.spec)?;
        let id = s.handler.apply(spec).await?;
        Ok(json(
            StatusCode::OK,
            &pb::ApplyTaskResponse {
                task_id: id.as_str().to_owned(),
            },
        ))
    };
    respond(run.await)
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
    State(s): State<Arc<Shared<H>>>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Response {
    let run = async {
        let Query(p) = params.map_err(|e| {
            ApiError::InvalidRequest(format!("invalid query string: {}", e.body_text()))
        })?;
        let phase = parse_status(p.status.as_deref())?;
        let limit = parse_u32("limit", p.limit.as_deref(), "an integer 0..=1000")?;
        let offset = parse_u32(
            "offset",
            p.offset.as_deref(),
            "a non-negative 32-bit integer",
        )?;
        let query = convert::query(p.slot.as_deref(), phase, limit, offset)?;
        let page = s.handler.list(query.clone()).await?;
        if convert::page_cut_short(&query, &page) {
            return Err(ApiError::InvalidRequest(format!(
                "limit: the page would be over {} bytes, more than a response may carry; request a smaller page",
                convert::MAX_PAGE_BYTES
            )));
        }
        let res = pb::ListTasksResponse {
            tasks: page.items.iter().map(convert::task_to_pb).collect(),
            total: u32::try_from(page.total).unwrap_or(u32::MAX),
        };
        // Pages of tasks carrying large scripts can be huge: refuse with advice rather than
        // build a response of hundreds of megabytes (the protobuf size is a lower bound of
        // the JSON size).
        let len = prost::Message::encoded_len(&res);
        if len > super::MAX_BODY_BYTES {
            return Err(ApiError::InvalidRequest(format!(
                "limit: the page would be over {len} bytes, more than the {} bytes a response may carry; request a smaller page",
                super::MAX_BODY_BYTES
            )));
        }
        Ok(json(StatusCode::OK, &res))
    };
    respond(run.await)
}

/// `GET /api/v1/tasks/{id}` → `200 {"task":…}` or `404`.
pub(super) async fn get_task<H: ApiHandler>(
    State(s): State<Arc<Shared<H>>>,
    id: IdPath,
) -> Response {
    let run = async {
        let id = path_id(id)?;
        let task = s
            .handler
            .get(id.clone())
            .await?
            .ok_or_else(|| ApiError::TaskNotFound(id.to_string()))?;
        Ok(json(
            StatusCode::OK,
            &pb::GetTaskStatusResponse {
                task: Some(convert::task_to_pb(&task)),
            },
        ))
    };
    respond(run.await)
}

/// `GET /api/v1/tasks/{id}/runs` → `200 ListTaskRunsResponse` or `404`.
pub(super) async fn runs<H: ApiHandler>(State(s): State<Arc<Shared<H>>>, id: IdPath) -> Response {
    let run = async {
        let id = path_id(id)?;
        let runs = s
            .handler
            .runs(id.clone())
            .await?
            .ok_or_else(|| ApiError::TaskNotFound(id.to_string()))?;
        Ok(json(
            StatusCode::OK,
            &pb::ListTaskRunsResponse {
                runs: runs.iter().map(convert::run_to_pb).collect(),
            },
        ))
    };
    respond(run.await)
}

/// `DELETE /api/v1/tasks/{id}` → `204`, also when the task is already gone.
pub(super) async fn delete_task<H: ApiHandler>(
    State(s): State<Arc<Shared<H>>>,
    id: IdPath,
) -> Response {
    let run = async {
        let id = path_id(id)?;
        s.handler.delete(id).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    };
    respond(run.await)
}

/// `POST /api/v1/tasks/{id}/cancel` (empty body) → `200 {"task":…}` or `404`. The task is
/// stopped and kept: it ends `CANCELED`; a terminal task is returned unchanged.
pub(super) async fn cancel<H: ApiHandler>(State(s): State<Arc<Shared<H>>>, id: IdPath) -> Response {
    let run = async {
        let id = path_id(id)?;
        let task = s
            .handler
            .cancel(id.clone(), HTTP_CANCEL_REASON)
            .await?
            .ok_or_else(|| ApiError::TaskNotFound(id.to_string()))?;
        Ok(json(
            StatusCode::OK,
            &pb::GetTaskStatusResponse {
                task: Some(convert::task_to_pb(&task)),
            },
        ))
    };
    respond(run.await)
}

/// The error text of a task cancelled over HTTP.
pub(crate) const HTTP_CANCEL_REASON: &str =
    "canceled by an API client (HTTP POST /api/v1/tasks/{id}/cancel)";

/// `GET /api/v1/tasks/{id}/logs?tail=N|all&follow=false&since=<ms>` (and `Last-Event-ID`)
/// → `200 text/event-stream`, `400` naming a bad parameter, or `404`.
pub(super) async fn logs<H: ApiHandler>(
    State(s): State<Arc<Shared<H>>>,
    id: IdPath,
    params: Result<Query<log_query::LogParams>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let run = async {
        let id = path_id(id)?;
        let Query(params) = params.map_err(|e| {
            ApiError::InvalidRequest(format!("invalid query string: {}", e.body_text()))
        })?;
        let query = log_query::parse(&params, &headers)?;
        let stream = s
            .handler
            .stream_logs(id.clone(), query)
            .await
            .map_err(log_query::rename_offset)?
            .ok_or_else(|| ApiError::TaskNotFound(id.to_string()))?;
        Ok(sse::response(stream))
    };
    respond(run.await)
}

fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

fn path_id(id: IdPath) -> Result<solti_model::TaskId, ApiError> {
    let Path(raw) = id.map_err(|e| path_error(&e))?;
    convert::task_id("id", &raw)
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
