//! The live log stream as Server-Sent Events (wire contract §3).
//!
//! Each event has a name and one line of readable JSON (numbers as numbers, `line` as UTF-8
//! with invalid bytes replaced):
//!
//! ```text
//! event: run-started
//! data: {"type":"runStarted","attempt":1,"startedAt":1712750400000}
//!
//! event: chunk
//! data: {"type":"chunk","attempt":1,"stream":"stdout","seq":0,"ts":1712750400123,"line":"hello world"}
//! ```

use std::{borrow::Cow, convert::Infallible, time::Duration};

use axum::response::{
    IntoResponse, Response,
    sse::{Event, KeepAlive, Sse},
};
use futures_util::StreamExt as _;
use serde::Serialize;
use solti_model::OutputEvent;

use crate::LogStream;

/// Interval of the `: keep-alive` comments that keep proxies from closing an idle stream.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The SSE response for a subscription. The body ends when the subscription ends; when the
/// client goes away hyper drops the body and with it the subscription.
pub(super) fn response(stream: LogStream) -> Response {
    let events =
        stream.filter_map(|event| std::future::ready(encode(&event).map(Ok::<_, Infallible>)));
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response()
}

/// One output event as an SSE event; `None` for kinds this API version does not carry.
pub(crate) fn encode(event: &OutputEvent) -> Option<Event> {
    let (name, data) = match event {
        OutputEvent::RunStarted {
            attempt,
            started_at,
        } => (
            "run-started",
            SseData::RunStarted {
                attempt: *attempt,
                started_at: *started_at,
            },
        ),
        OutputEvent::Chunk {
            attempt,
            stream,
            seq,
            ts,
            line,
        } => (
            "chunk",
            SseData::Chunk {
                attempt: *attempt,
                stream: stream.as_str(),
                seq: *seq,
                ts: *ts,
                line: String::from_utf8_lossy(line),
            },
        ),
        OutputEvent::RunFinished {
            attempt,
            exit_code,
            finished_at,
        } => (
            "run-finished",
            SseData::RunFinished {
                attempt: *attempt,
                exit_code: *exit_code,
                finished_at: *finished_at,
            },
        ),
        OutputEvent::Lagged { skipped } => ("lagged", SseData::Lagged { skipped: *skipped }),
        _ => return None,
    };
    // serde_json escapes every control character, so the data is always one line.
    let json = serde_json::to_string(&data).ok()?;
    Some(Event::default().event(name).data(json))
}

/// The JSON of one event, `type` first.
#[derive(Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
enum SseData<'a> {
    RunStarted {
        attempt: u32,
        started_at: i64,
    },
    Chunk {
        attempt: u32,
        stream: &'static str,
        seq: u64,
        ts: i64,
        line: Cow<'a, str>,
    },
    RunFinished {
        attempt: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        finished_at: i64,
    },
    Lagged {
        skipped: u64,
    },
}
