//! The one place where wire types (`pb`) and domain types (`solti_model`) meet.
//!
//! Decoding validates and names the offending field by its wire (JSON) path, e.g.
//! `spec.timeoutMs: must be 1..=31536000000 ms, got 0`; encoding is infallible.

mod spec;

use solti_model::{
    AdmissionPolicy, MAX_PAGE_LIMIT, Slot, Task, TaskId, TaskPage, TaskPhase, TaskQuery, TaskRun,
    TaskSpec,
};

use crate::{ApiError, pb};

pub(crate) use spec::{spec_from_pb, spec_to_pb};

/// Words a JSON decoding error of a request body. `path` is where it happened
/// (`spec.restart`, `.` for the whole body), with the client's key spelling.
///
/// A strict enum of the spec that holds an unknown name, an out-of-range number or `null`
/// gets the same message as an unset one ([`spec::StrictEnum::refusal`]), so both transports
/// answer alike; anything else is `invalid JSON body: <serde's text> (at <path>)`.
#[cfg(feature = "http")]
pub(crate) fn json_error(path: &str, err: &serde_json::Error) -> ApiError {
    let path = camel_case_path(path);
    if err.is_data()
        && let Some(strict) = spec::StrictEnum::at_json_path(&path)
    {
        return strict.refusal(&path);
    }
    if path == "." || path.is_empty() || !err.is_data() {
        ApiError::invalid("invalid JSON body", err.to_string())
    } else {
        ApiError::invalid("invalid JSON body", format!("{err} (at {path})"))
    }
}

/// `spec.runner_selector.match_expressions[0].operator` →
/// `spec.runnerSelector.matchExpressions[0].operator` (proto3 JSON accepts both spellings;
/// messages use the canonical one). Keys are the client's, so the result is cut at 256
/// characters.
#[cfg(feature = "http")]
fn camel_case_path(path: &str) -> String {
    const MAX_PATH_CHARS: usize = 256;
    let mut out = String::new();
    let mut upper = false;
    for c in path.chars().take(MAX_PATH_CHARS) {
        match c {
            '_' => upper = true,
            c if upper => {
                out.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

/// Decodes the spec of an `ApplyTask`: like [`spec_from_pb`], then admission is forced to
/// `Replace`.
pub(crate) fn apply_spec_from_pb(spec: Option<pb::CreateSpec>) -> Result<TaskSpec, ApiError> {
    let spec = spec_from_pb(spec)?;
    if spec.admission() == AdmissionPolicy::Replace {
        return Ok(spec);
    }
    spec.to_builder()
        .admission(AdmissionPolicy::Replace)
        .build()
        .map_err(|e| ApiError::from_spec_error(&e))
}

/// Parses a task id from a request (`field` names it: `taskId` or the path segment `id`).
pub(crate) fn task_id(field: &str, raw: &str) -> Result<TaskId, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::invalid(field, "required"));
    }
    TaskId::try_new(raw).map_err(|e| match e {
        solti_model::ModelError::Invalid { rule, .. } => ApiError::invalid(field, rule),
        other => ApiError::invalid(field, other.to_string()),
    })
}

/// The byte budget of a listed page: one response (HTTP body or gRPC message) is 4 MiB.
pub(crate) const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// The page guard of both transports: the `ListTasks` response for `page`, or
/// [`ApiError::PageTooLarge`] when it would not fit in one response (the store stopped at
/// the byte budget, or the encoded page is larger). Pages of tasks carrying large scripts
/// can be huge: a refusal with advice beats a response of hundreds of megabytes (the
/// protobuf size is a lower bound of the JSON size).
pub(crate) fn list_response(
    query: &TaskQuery,
    page: &TaskPage<Task>,
) -> Result<pb::ListTasksResponse, ApiError> {
    let too_large = |bytes| ApiError::PageTooLarge {
        bytes,
        limit: MAX_PAGE_BYTES,
    };
    if (page.items.len() as u64) < query.expected_items(page.total) {
        return Err(too_large(MAX_PAGE_BYTES));
    }
    let res = pb::ListTasksResponse {
        tasks: page.items.iter().map(task_to_pb).collect(),
        total: u32::try_from(page.total).unwrap_or(u32::MAX),
    };
    let len = prost::Message::encoded_len(&res);
    if len > MAX_PAGE_BYTES {
        return Err(too_large(len));
    }
    Ok(res)
}

/// Builds a query from list parameters; an empty `slot` means no slot filter.
pub(crate) fn query(
    slot: Option<&str>,
    phase: Option<TaskPhase>,
    limit: u32,
    offset: u32,
) -> Result<TaskQuery, ApiError> {
    if limit > MAX_PAGE_LIMIT {
        return Err(ApiError::invalid(
            "limit",
            format!("must be at most {MAX_PAGE_LIMIT}, got {limit}"),
        ));
    }
    // The store stops copying specs past what one response may carry (see the handlers).
    let mut q = TaskQuery::new()
        .with_max_bytes(MAX_PAGE_BYTES as u64)
        .with_offset(offset)
        .with_limit(limit)
        .map_err(ApiError::from_model)?;
    if let Some(slot) = slot.filter(|s| !s.is_empty()) {
        let slot = Slot::try_new(slot).map_err(ApiError::from_model)?;
        q = q.with_slot(slot);
    }
    if let Some(phase) = phase {
        q = q.with_phase(phase);
    }
    Ok(q)
}

/// `ListTasksRequest.status`: absent or `UNSPECIFIED` = no filter.
pub(crate) fn phase_from_pb(status: Option<i32>) -> Result<Option<TaskPhase>, ApiError> {
    let Some(n) = status else { return Ok(None) };
    let phase = match pb::TaskStatus::try_from(n) {
        Ok(pb::TaskStatus::Unspecified) => return Ok(None),
        Ok(pb::TaskStatus::Pending) => TaskPhase::Pending,
        Ok(pb::TaskStatus::Running) => TaskPhase::Running,
        Ok(pb::TaskStatus::Succeeded) => TaskPhase::Succeeded,
        Ok(pb::TaskStatus::Failed) => TaskPhase::Failed,
        Ok(pb::TaskStatus::Timeout) => TaskPhase::Timeout,
        Ok(pb::TaskStatus::Canceled) => TaskPhase::Canceled,
        Ok(pb::TaskStatus::Exhausted) => TaskPhase::Exhausted,
        Err(_) => {
            return Err(ApiError::invalid(
                "status",
                format!("unknown enum value {n}"),
            ));
        }
    };
    Ok(Some(phase))
}

/// `TaskPhase` → `pb::TaskStatus` (as the wire's `i32`).
pub(crate) fn phase_to_pb(phase: TaskPhase) -> i32 {
    match phase {
        TaskPhase::Pending => pb::TaskStatus::Pending,
        TaskPhase::Running => pb::TaskStatus::Running,
        TaskPhase::Succeeded => pb::TaskStatus::Succeeded,
        TaskPhase::Failed => pb::TaskStatus::Failed,
        TaskPhase::Timeout => pb::TaskStatus::Timeout,
        TaskPhase::Canceled => pb::TaskStatus::Canceled,
        TaskPhase::Exhausted => pb::TaskStatus::Exhausted,
        _ => pb::TaskStatus::Unspecified,
    }
    .into()
}

/// `Task` → `TaskData`.
pub(crate) fn task_to_pb(task: &Task) -> pb::TaskData {
    pb::TaskData {
        metadata: Some(pb::ObjectMeta {
            id: task.metadata.id.as_str().to_owned(),
            created_at: task.metadata.created_at,
            updated_at: task.metadata.updated_at,
            resource_version: task.metadata.resource_version,
        }),
        spec: Some(spec_to_pb(&task.spec)),
        status: Some(pb::TaskStatusInfo {
            phase: phase_to_pb(task.status.phase),
            attempt: task.status.attempt,
            error: task.status.error.clone(),
            exit_code: task.status.exit_code,
        }),
    }
}

/// `TaskRun` → `TaskRunInfo`.
pub(crate) fn run_to_pb(run: &TaskRun) -> pb::TaskRunInfo {
    pb::TaskRunInfo {
        attempt: run.attempt,
        status: phase_to_pb(run.phase),
        started_at: run.started_at,
        finished_at: run.finished_at,
        error: run.error.clone(),
        exit_code: run.exit_code,
    }
}

/// `OutputEvent` → one `StreamTaskLogsResponse` (gRPC; SSE has its own readable JSON); `None` for event kinds this API version
/// does not carry.
#[cfg(feature = "grpc")]
pub(crate) fn event_to_pb(
    offset: u64,
    event: solti_model::OutputEvent,
) -> Option<pb::StreamTaskLogsResponse> {
    use pb::stream_task_logs_response::Kind;
    use solti_model::{OutputEvent, OutputStream};
    let kind = match event {
        OutputEvent::Chunk {
            attempt,
            stream,
            seq,
            ts,
            line,
        } => Kind::Chunk(pb::OutputChunk {
            attempt,
            stream: match stream {
                OutputStream::Stdout => pb::OutputStreamKind::Stdout,
                OutputStream::Stderr => pb::OutputStreamKind::Stderr,
            }
            .into(),
            seq,
            ts,
            line,
        }),
        OutputEvent::RunStarted {
            attempt,
            started_at,
        } => Kind::RunStarted(pb::RunStarted {
            attempt,
            started_at,
        }),
        OutputEvent::RunFinished {
            attempt,
            exit_code,
            finished_at,
        } => Kind::RunFinished(pb::RunFinished {
            attempt,
            exit_code,
            finished_at,
        }),
        OutputEvent::Lagged { skipped } => Kind::Lagged(pb::Lagged { skipped }),
        _ => return None,
    };
    Some(pb::StreamTaskLogsResponse {
        kind: Some(kind),
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_queries() {
        assert_eq!(
            task_id("taskId", "").unwrap_err().to_string(),
            "taskId: required"
        );
        assert!(
            task_id("taskId", "a/b")
                .unwrap_err()
                .to_string()
                .starts_with("taskId: must be 1..=256 chars")
        );
        assert!(task_id("taskId", "tsk_1").is_ok());
        assert_eq!(
            query(None, None, 1001, 0).unwrap_err().to_string(),
            "limit: must be at most 1000, got 1001"
        );
        assert_eq!(query(Some(""), None, 0, 0).unwrap().limit, 100);
        assert!(
            query(Some("a b"), None, 0, 0)
                .unwrap_err()
                .to_string()
                .starts_with("slot:")
        );
        assert_eq!(phase_from_pb(Some(0)).unwrap(), None);
        assert_eq!(phase_from_pb(Some(7)).unwrap(), Some(TaskPhase::Exhausted));
        assert_eq!(
            phase_from_pb(Some(8)).unwrap_err().to_string(),
            "status: unknown enum value 8"
        );
        for p in TaskPhase::ALL {
            assert_eq!(phase_from_pb(Some(phase_to_pb(p))).unwrap(), Some(p));
        }
    }
}

/// The subscription a `StreamTaskLogsRequest` asks for (wire contract §5): `after_offset`
/// wins (resume); `tail_all`, `tail` and `since_ms` pick the start (one at most);
/// `no_follow` ends the stream after the retained events.
#[cfg_attr(
    not(feature = "grpc"),
    allow(dead_code, reason = "only the gRPC transport reads it")
)]
pub(crate) fn log_query_from_pb(
    req: &pb::StreamTaskLogsRequest,
) -> Result<solti_core::OutputQuery, ApiError> {
    use solti_core::{OutputQuery, OutputStart};
    let start = match (req.after_offset, req.tail_all, req.tail, req.since_ms) {
        (Some(after), ..) => OutputStart::After(after),
        (None, true, Some(_), _) => {
            return Err(ApiError::invalid("tail", "cannot be combined with tailAll"));
        }
        (None, true, None, Some(_)) | (None, false, Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "sinceMs",
                "cannot be combined with tail or tailAll (use one of them)",
            ));
        }
        (None, true, None, None) => OutputStart::All,
        (None, false, Some(n), None) => OutputStart::Tail(u64::from(n)),
        (None, false, None, Some(ms)) => OutputStart::Since(ms),
        (None, false, None, None) => OutputStart::Live,
    };
    Ok(OutputQuery::new(start).follow(!req.no_follow))
}

/// The `StreamTaskLogsRequest` for a subscription: the client side of what the server
/// decodes (a `tail` above `u32::MAX` is sent as `u32::MAX`).
#[cfg(feature = "grpc")]
#[must_use]
pub fn log_query_to_pb(task_id: &str, query: solti_core::OutputQuery) -> pb::StreamTaskLogsRequest {
    use solti_core::OutputStart;
    let mut req = pb::StreamTaskLogsRequest {
        task_id: task_id.to_owned(),
        no_follow: !query.follow,
        ..Default::default()
    };
    match query.start {
        OutputStart::Tail(n) => req.tail = Some(u32::try_from(n).unwrap_or(u32::MAX)),
        OutputStart::All => req.tail_all = true,
        OutputStart::Since(ms) => req.since_ms = Some(ms),
        OutputStart::After(offset) => req.after_offset = Some(offset),
        _ => {}
    }
    req
}

/// The offset and event of a `StreamTaskLogsResponse`: the client side of what the server
/// encodes; `None` for an empty or unknown kind.
#[cfg(feature = "grpc")]
#[must_use]
pub fn event_from_pb(msg: pb::StreamTaskLogsResponse) -> Option<(u64, solti_model::OutputEvent)> {
    use pb::stream_task_logs_response::Kind;
    use solti_model::{OutputEvent, OutputStream};
    let event = match msg.kind? {
        Kind::Chunk(c) => OutputEvent::Chunk {
            attempt: c.attempt,
            stream: match pb::OutputStreamKind::try_from(c.stream) {
                Ok(pb::OutputStreamKind::Stderr) => OutputStream::Stderr,
                _ => OutputStream::Stdout,
            },
            seq: c.seq,
            ts: c.ts,
            line: c.line,
        },
        Kind::RunStarted(r) => OutputEvent::RunStarted {
            attempt: r.attempt,
            started_at: r.started_at,
        },
        Kind::RunFinished(r) => OutputEvent::RunFinished {
            attempt: r.attempt,
            exit_code: r.exit_code,
            finished_at: r.finished_at,
        },
        Kind::Lagged(l) => OutputEvent::Lagged { skipped: l.skipped },
    };
    Some((msg.offset, event))
}

#[cfg(all(test, feature = "grpc"))]
mod log_tests {
    use solti_core::{OutputQuery, OutputStart};

    use super::*;

    #[test]
    fn log_queries_round_trip() {
        for q in [
            OutputQuery::live(),
            OutputQuery::new(OutputStart::Tail(3)).follow(false),
            OutputQuery::new(OutputStart::All),
            OutputQuery::new(OutputStart::Since(1_700_000_000_000)),
            OutputQuery::new(OutputStart::After(41)).follow(false),
        ] {
            assert_eq!(log_query_from_pb(&log_query_to_pb("t", q)).unwrap(), q);
        }
        let both = pb::StreamTaskLogsRequest {
            tail: Some(1),
            since_ms: Some(2),
            ..Default::default()
        };
        assert!(
            log_query_from_pb(&both)
                .unwrap_err()
                .to_string()
                .starts_with("sinceMs: ")
        );
    }

    #[test]
    fn events_round_trip_with_offsets() {
        let event = solti_model::OutputEvent::Chunk {
            attempt: 2,
            stream: solti_model::OutputStream::Stderr,
            seq: 7,
            ts: 9,
            line: bytes::Bytes::from_static(b"x"),
        };
        let msg = event_to_pb(12, event.clone()).unwrap();
        assert_eq!(msg.offset, 12);
        assert_eq!(event_from_pb(msg), Some((12, event)));
        let lagged = solti_model::OutputEvent::Lagged { skipped: 5 };
        assert_eq!(
            event_from_pb(event_to_pb(4, lagged.clone()).unwrap()),
            Some((4, lagged))
        );
    }
}
