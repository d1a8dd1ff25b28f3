//! The log stream as Server-Sent Events (wire contract §3 and §5).
//!
//! Each event has a name, its per-task offset as the SSE `id` (a client resumes with
//! `Last-Event-ID`), and one line of readable JSON (numbers as numbers, `line` as UTF-8
//! with invalid bytes replaced):
//!
//! ```text
//! event: run-started
//! id: 0
//! data: {"type":"runStarted","attempt":1,"startedAt":1712750400000}
//!
//! event: chunk
//! id: 1
//! data: {"type":"chunk","attempt":1,"stream":"stdout","seq":0,"ts":1712750400123,"line":"hello world"}
//! ```

use std::{borrow::Cow, convert::Infallible, time::Duration};

use axum::{
    body::Body,
    http::header,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use serde::Serialize;
use solti_core::OutputBatch;
use solti_model::OutputEvent;

use crate::LogStream;

/// Interval of the `: keep-alive` comments that keep proxies from closing an idle stream.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The comment sent when nothing else was sent for [`KEEP_ALIVE`].
const KEEP_ALIVE_FRAME: &[u8] = b": keep-alive\n\n";

/// The SSE response for a subscription. The body ends when the subscription ends; when the
/// client goes away hyper drops the body and with it the subscription.
///
/// Each batch of the subscription (one event, or the lines a runner read together) becomes
/// one body frame holding all its SSE events, so a fast task costs one write per batch,
/// not one per line.
pub(super) fn response(stream: LogStream) -> Response {
    let frames = futures_util::stream::unfold(stream, |mut stream| async move {
        loop {
            let next = std::future::poll_fn(|cx| stream.poll_next_batch(cx));
            match tokio::time::timeout(KEEP_ALIVE, next).await {
                Ok(Some(batch)) => {
                    let frame = encode_batch(&batch);
                    if !frame.is_empty() {
                        return Some((Ok::<_, Infallible>(frame), stream));
                    }
                }
                Ok(None) => return None,
                Err(_) => return Some((Ok(Bytes::from_static(KEEP_ALIVE_FRAME)), stream)),
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(frames),
    )
        .into_response()
}

/// The SSE events of one batch, concatenated; empty for kinds this API version does not
/// carry.
pub(crate) fn encode_batch(batch: &OutputBatch) -> Bytes {
    let mut buf = Vec::new();
    match batch {
        OutputBatch::Event { offset, event } => encode(*offset, event, &mut buf),
        OutputBatch::Lines { offset, lines } => {
            // About 90 bytes of SSE framing and JSON around each line.
            buf.reserve(lines.lines().line_bytes() + lines.len() * 96);
            let stream = lines.stream().as_str();
            for (i, line) in lines.lines().slices().enumerate() {
                let data = SseData::Chunk {
                    attempt: lines.attempt(),
                    stream,
                    seq: lines.first_seq() + i as u64,
                    ts: lines.ts(),
                    line: String::from_utf8_lossy(line),
                };
                write_event(&mut buf, "chunk", offset + i as u64, &data);
            }
        }
        _ => {}
    }
    Bytes::from(buf)
}

/// Appends one output event as an SSE event with `id: offset` to `buf` (nothing for kinds
/// this API version does not carry).
pub(crate) fn encode(offset: u64, event: &OutputEvent, buf: &mut Vec<u8>) {
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
        _ => return,
    };
    write_event(buf, name, offset, &data);
}

/// `event: <name>\nid: <offset>\ndata: <json>\n\n`. serde_json escapes every control
/// character, so the data is always one line.
fn write_event(buf: &mut Vec<u8>, name: &str, offset: u64, data: &SseData<'_>) {
    use std::io::Write as _;
    let start = buf.len();
    buf.extend_from_slice(b"event: ");
    buf.extend_from_slice(name.as_bytes());
    // Writing to a Vec cannot fail.
    let _ = write!(buf, "\nid: {offset}\ndata: ");
    if serde_json::to_writer(&mut *buf, data).is_err() {
        // Not reachable for these plain types; never send half an event.
        buf.truncate(start);
        return;
    }
    buf.extend_from_slice(b"\n\n");
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

#[cfg(test)]
mod tests {
    use solti_model::OutputStream;
    use solti_runner::{LineBatch, Lines};

    use super::*;

    #[test]
    fn a_batch_of_lines_encodes_like_its_events_one_by_one() {
        let mut lines = Lines::new(Bytes::from_static(b"hello world\nbad \xff\x1b[0m\n"));
        assert!(lines.push(0..11));
        assert!(lines.push(12..21));
        let batch = LineBatch::new(2, OutputStream::Stderr, 7, 1_712_750_400_123, lines);
        let mut one_by_one = Vec::new();
        for (i, event) in batch.clone().into_events().enumerate() {
            encode(40 + i as u64, &event, &mut one_by_one);
        }
        let together = encode_batch(&OutputBatch::Lines {
            offset: 40,
            lines: batch,
        });
        assert_eq!(together, one_by_one);
        assert_eq!(
            std::str::from_utf8(&together).unwrap(),
            "event: chunk\nid: 40\ndata: {\"type\":\"chunk\",\"attempt\":2,\"stream\":\"stderr\",\"seq\":7,\"ts\":1712750400123,\"line\":\"hello world\"}\n\n\
             event: chunk\nid: 41\ndata: {\"type\":\"chunk\",\"attempt\":2,\"stream\":\"stderr\",\"seq\":8,\"ts\":1712750400123,\"line\":\"bad \u{fffd}\\u001b[0m\"}\n\n"
        );
    }

    #[test]
    fn run_markers_encode_as_single_events() {
        let frame = encode_batch(&OutputBatch::Event {
            offset: 3,
            event: OutputEvent::RunFinished {
                attempt: 1,
                exit_code: None,
                finished_at: 5,
            },
        });
        assert_eq!(
            &frame[..],
            b"event: run-finished\nid: 3\ndata: {\"type\":\"runFinished\",\"attempt\":1,\"finishedAt\":5}\n\n"
        );
    }
}
