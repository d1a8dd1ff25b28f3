//! The HTTP/JSON transport: `/api/v1` with the proto3 JSON mapping (the pbjson `serde` impls
//! of `solti_api::pb`), the SSE log stream, `/healthz` and `/readyz`.

use std::time::Duration;

use bytes::{Buf as _, Bytes, BytesMut};
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{body::Incoming, client::conn::http1};
use serde_json::Value;
use solti_api::pb;
use tokio::task::JoinHandle;

use crate::{
    client::{LogEvent, LogOptions, Readiness, Tail, not_found},
    conn::Connector,
    error::{Error, Result},
};

/// The largest response body read (a full list page is at most 4 MiB).
const MAX_BODY: usize = 8 << 20;
/// The largest SSE event accepted (one output line plus its framing).
const MAX_EVENT: usize = 4 << 20;
/// Unary requests end within this time.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// One HTTP/1.1 connection, opened on first use and reused; reopened when the agent closed it.
#[derive(Debug)]
pub(crate) struct HttpClient {
    conn: Connector,
    auth: Option<HeaderValue>,
    open: Option<Open>,
}

/// A connection and the task driving it (aborted when dropped).
#[derive(Debug)]
struct Open {
    sender: http1::SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl HttpClient {
    pub(crate) fn new(conn: Connector, auth: Option<HeaderValue>) -> Self {
        Self {
            conn,
            auth,
            open: None,
        }
    }

    async fn connect(&self) -> Result<Open> {
        let io = self.conn.connect().await?;
        let (sender, connection) = http1::handshake(io).await.map_err(|e| {
            Error::failed(format!(
                "cannot talk HTTP to the agent at {}: {e}",
                self.conn.target()
            ))
        })?;
        let driver = tokio::spawn(async move {
            // The connection ends when the agent closes it or the sender is dropped.
            let _ = connection.await;
        });
        Ok(Open { sender, driver })
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Request<Full<Bytes>>> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.conn.target().authority())
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                concat!("solti/", env!("CARGO_PKG_VERSION")),
            );
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(auth) = &self.auth {
            req = req.header(header::AUTHORIZATION, auth.clone());
        }
        req.body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Error::usage(format!("cannot build the request for {path}: {e}")))
    }

    /// Sends a request on the shared connection (opening it when needed) and reads the whole
    /// response.
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes)> {
        let target = self.conn.target().clone();
        let work = async {
            let (mut open, reused) = match self.open.take() {
                Some(open) if !open.sender.is_closed() => (open, true),
                _ => (self.connect().await?, false),
            };
            if open.sender.ready().await.is_err() {
                open = self.connect().await?;
            }
            let req = self.request(method.clone(), path, body.clone())?;
            let resp = match open.sender.send_request(req).await {
                Ok(resp) => resp,
                // A kept-alive connection the agent closed meanwhile: once more on a new one
                // (only for requests that are safe to repeat).
                Err(_) if reused && matches!(method, Method::GET | Method::DELETE) => {
                    open = self.connect().await?;
                    let req = self.request(method, path, body)?;
                    open.sender
                        .send_request(req)
                        .await
                        .map_err(|e| closed(&target, &e))?
                }
                Err(e) => {
                    return Err(closed(&target, &e));
                }
            };
            let status = resp.status();
            let content_type = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| {
                    Error::failed(format!("reading the answer of the agent at {target}: {e}"))
                })?
                .to_bytes();
            self.open = Some(open);
            if content_type.starts_with("application/grpc")
                || (!body.is_empty() && !content_type.starts_with("application/json"))
            {
                return Err(wrong_api(&target, &content_type));
            }
            Ok((status, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, work)
            .await
            .map_err(|_| {
                Error::failed(format!("the agent at {target} did not answer within 60s"))
            })?
    }

    fn fail(&self, status: StatusCode, body: &[u8]) -> Error {
        error_from(self.conn.target(), self.auth.is_some(), status, body)
    }

    pub(crate) async fn submit(&mut self, spec: pb::CreateSpec, apply: bool) -> Result<String> {
        let body = serde_json::to_vec(&pb::SubmitTaskRequest { spec: Some(spec) })
            .map_err(|e| Error::failed(format!("encode the spec: {e}")))?;
        let method = if apply { Method::PUT } else { Method::POST };
        let (status, body) = self.call(method, "/api/v1/tasks", Some(body)).await?;
        if !status.is_success() {
            return Err(self.fail(status, &body));
        }
        let resp: pb::SubmitTaskResponse = decode(self.conn.target(), &body)?;
        Ok(resp.task_id)
    }

    pub(crate) async fn get(&mut self, id: &str) -> Result<Option<pb::TaskData>> {
        let (status, body) = self
            .call(Method::GET, &format!("/api/v1/tasks/{id}"), None)
            .await?;
        if status == StatusCode::NOT_FOUND && label(&body) == Some("TaskNotFound") {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(self.fail(status, &body));
        }
        let resp: pb::GetTaskStatusResponse = decode(self.conn.target(), &body)?;
        Ok(resp.task)
    }

    pub(crate) async fn list(
        &mut self,
        slot: Option<&str>,
        phase: Option<pb::TaskStatus>,
        limit: u32,
        offset: u32,
    ) -> Result<pb::ListTasksResponse> {
        let mut query = format!("/api/v1/tasks?limit={limit}&offset={offset}");
        if let Some(slot) = slot {
            query.push_str("&slot=");
            query.push_str(&percent_encode(slot));
        }
        if let Some(phase) = phase {
            query.push_str("&status=");
            query.push_str(phase.as_str_name());
        }
        let (status, body) = self.call(Method::GET, &query, None).await?;
        if !status.is_success() {
            return Err(self.fail(status, &body));
        }
        decode(self.conn.target(), &body)
    }

    pub(crate) async fn runs(&mut self, id: &str) -> Result<Vec<pb::TaskRunInfo>> {
        let (status, body) = self
            .call(Method::GET, &format!("/api/v1/tasks/{id}/runs"), None)
            .await?;
        if status == StatusCode::NOT_FOUND && label(&body) == Some("TaskNotFound") {
            return Err(not_found(id));
        }
        if !status.is_success() {
            return Err(self.fail(status, &body));
        }
        let resp: pb::ListTaskRunsResponse = decode(self.conn.target(), &body)?;
        Ok(resp.runs)
    }

    pub(crate) async fn delete(&mut self, id: &str) -> Result<()> {
        let (status, body) = self
            .call(Method::DELETE, &format!("/api/v1/tasks/{id}"), None)
            .await?;
        if !status.is_success() {
            return Err(self.fail(status, &body));
        }
        Ok(())
    }

    pub(crate) async fn cancel(&mut self, id: &str) -> Result<pb::TaskData> {
        let (status, body) = self
            .call(
                Method::POST,
                &format!("/api/v1/tasks/{id}/cancel"),
                Some(Vec::new()),
            )
            .await?;
        match (status, label(&body)) {
            (StatusCode::NOT_FOUND, Some("TaskNotFound")) => return Err(not_found(id)),
            (StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED, _) => {
                return Err(Error::failed(format!(
                    "the agent at {} has no cancel endpoint (POST /api/v1/tasks/{{id}}/cancel; an older agent): use `solti rm` to stop and forget the task",
                    self.conn.target()
                )));
            }
            (s, _) if !s.is_success() => return Err(self.fail(status, &body)),
            _ => {}
        }
        // The contract answers the task itself; accept `{"task": …}` as well.
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| Error::failed(format!("the agent's answer is not JSON: {e}")))?;
        let task = value.get("task").cloned().unwrap_or(value);
        serde_json::from_value(task)
            .map_err(|e| Error::failed(format!("the agent's answer is not a task: {e}")))
    }

    pub(crate) async fn readiness(&mut self) -> Result<Readiness> {
        let (live, live_body) = self.call(Method::GET, "/healthz", None).await?;
        if live == StatusCode::NOT_FOUND {
            // An older agent: no health routes. The task API answering is the best sign.
            self.list(None, None, 1, 0).await?;
            return Ok(Readiness::NoHealthEndpoint);
        }
        if !live.is_success() {
            return Err(self.fail(live, &live_body));
        }
        let (ready, body) = self.call(Method::GET, "/readyz", None).await?;
        let detail = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("status").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| ready.to_string());
        Ok(if ready.is_success() {
            Readiness::Ready(detail)
        } else {
            Readiness::NotReady(detail)
        })
    }

    /// Opens the SSE log stream on a connection of its own.
    pub(crate) async fn logs(&mut self, id: &str, opts: &LogOptions) -> Result<SseStream> {
        let mut path = format!("/api/v1/tasks/{id}/logs?follow={}", opts.follow);
        match opts.tail {
            Some(Tail::All) => path.push_str("&tail=all"),
            Some(Tail::Lines(n)) => path.push_str(&format!("&tail={n}")),
            None => {}
        }
        if let Some(since) = opts.since_ms {
            path.push_str(&format!("&since={since}"));
        }
        let mut open = self.connect().await?;
        let mut req = self.request(Method::GET, &path, None)?;
        req.headers_mut().insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        let target = self.conn.target().clone();
        let resp = open
            .sender
            .send_request(req)
            .await
            .map_err(|e| closed(&target, &e))?;
        let status = resp.status();
        if !status.is_success() {
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .unwrap_or_default();
            if status == StatusCode::NOT_FOUND && label(&body) == Some("TaskNotFound") {
                return Err(not_found(id));
            }
            return Err(self.fail(status, &body));
        }
        Ok(SseStream {
            body: resp.into_body(),
            buf: BytesMut::new(),
            _open: open,
            target,
        })
    }
}

/// The SSE log stream of one task, parsed into [`LogEvent`]s.
#[derive(Debug)]
pub(crate) struct SseStream {
    body: Incoming,
    buf: BytesMut,
    _open: Open,
    target: crate::target::Target,
}

impl SseStream {
    /// The next event, or `None` when the stream ended.
    pub(crate) async fn next(&mut self) -> Result<Option<LogEvent>> {
        loop {
            if let Some(block) = self.take_block() {
                if let Some(event) = parse_sse_block(&block)? {
                    return Ok(Some(event));
                }
                continue;
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(Error::failed(format!(
                        "the log stream from {} broke: {e}",
                        self.target
                    )));
                }
                Some(Ok(frame)) => {
                    if let Ok(mut data) = frame.into_data() {
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            self.buf.extend_from_slice(chunk);
                            let n = chunk.len();
                            data.advance(n);
                        }
                    }
                    if self.buf.len() > MAX_EVENT {
                        return Err(Error::failed(format!(
                            "the log stream from {} sent an event over {MAX_EVENT} bytes",
                            self.target
                        )));
                    }
                }
            }
        }
    }

    /// Splits off one complete event block (up to a blank line), if there is one.
    fn take_block(&mut self) -> Option<String> {
        let text = &self.buf[..];
        let end = text.windows(2).position(|w| w == b"\n\n")?;
        let block = self.buf.split_to(end + 2);
        Some(String::from_utf8_lossy(&block[..end]).replace('\r', ""))
    }
}

/// One SSE block into an event; comments and unknown events give `None`.
fn parse_sse_block(block: &str) -> Result<Option<LogEvent>> {
    let mut data = None;
    let mut offset = None;
    for line in block.lines() {
        if let Some(d) = line.strip_prefix("data:") {
            data = Some(d.trim_start());
        } else if let Some(id) = line.strip_prefix("id:") {
            offset = id.trim().parse::<u64>().ok();
        }
    }
    let Some(data) = data else { return Ok(None) };
    let v: Value = serde_json::from_str(data).map_err(|e| {
        Error::failed(format!(
            "the log stream sent an event that is not JSON: {e}"
        ))
    })?;
    let int = |k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
    let uint = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let attempt = u32::try_from(uint("attempt")).unwrap_or(u32::MAX);
    use pb::stream_task_logs_response::Kind;
    let kind = match v.get("type").and_then(Value::as_str) {
        Some("chunk") => Kind::Chunk(pb::OutputChunk {
            attempt,
            stream: match v.get("stream").and_then(Value::as_str) {
                Some("stderr") => pb::OutputStreamKind::Stderr,
                _ => pb::OutputStreamKind::Stdout,
            } as i32,
            seq: uint("seq"),
            ts: int("ts"),
            line: Bytes::copy_from_slice(
                v.get("line")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .as_bytes(),
            ),
        }),
        Some("runStarted") => Kind::RunStarted(pb::RunStarted {
            attempt,
            started_at: int("startedAt"),
        }),
        Some("runFinished") => Kind::RunFinished(pb::RunFinished {
            attempt,
            exit_code: v
                .get("exitCode")
                .and_then(Value::as_i64)
                .and_then(|c| i32::try_from(c).ok()),
            finished_at: int("finishedAt"),
        }),
        Some("lagged") => Kind::Lagged(pb::Lagged {
            skipped: uint("skipped"),
        }),
        _ => return Ok(None),
    };
    Ok(Some(LogEvent { kind, offset }))
}

/// The `error` label of an error body.
fn label(body: &[u8]) -> Option<&'static str> {
    let v: Value = serde_json::from_slice(body).ok()?;
    match v.get("error")?.as_str()? {
        "TaskNotFound" => Some("TaskNotFound"),
        "NotFound" => Some("NotFound"),
        "MethodNotAllowed" => Some("MethodNotAllowed"),
        _ => None,
    }
}

/// A failed status and its `{"error","message"}` body as one line naming what to fix.
pub(crate) fn error_from(
    target: &crate::target::Target,
    sent_token: bool,
    status: StatusCode,
    body: &[u8],
) -> Error {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("message"))
        .and_then(Value::as_str)
        .map_or_else(
            || String::from_utf8_lossy(body).trim().to_owned(),
            str::to_owned,
        );
    match status.as_u16() {
        401 if sent_token => Error::failed(format!(
            "token rejected by the agent at {target} (check --token-file, SOLTI_TOKEN_FILE or SOLTI_TOKEN)"
        )),
        401 => Error::failed(format!(
            "the agent at {target} requires a token: give --token-file, SOLTI_TOKEN_FILE or SOLTI_TOKEN"
        )),
        400 => Error::failed(format!("the agent refused the request: {message}")),
        403 => Error::failed(format!(
            "the agent at {target} refused the request (403): {message}"
        )),
        413 => Error::failed(format!("too large for the agent: {message}")),
        503 => Error::failed(format!(
            "the agent at {target} is unavailable (shutting down or at capacity), try again: {message}"
        )),
        code => Error::failed(format!("the agent at {target} answered {code}: {message}")),
    }
}

/// The agent ended the connection before answering: say why as far as the error chain tells.
pub(crate) fn closed(
    target: &crate::target::Target,
    e: &(dyn std::error::Error + 'static),
) -> Error {
    let mut why = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        why = format!("{why}: {s}");
        source = s.source();
    }
    let hint = if why.contains("Certificate") || why.contains("certificate") {
        " (does the agent require a client certificate? --cert, --key)"
    } else if target.tls {
        " (if the agent requires a client certificate: --cert, --key)"
    } else {
        ""
    };
    Error::failed(format!(
        "the agent at {target} closed the connection: {why}{hint}"
    ))
}

fn wrong_api(target: &crate::target::Target, content_type: &str) -> Error {
    if content_type.starts_with("application/grpc") {
        Error::failed(format!(
            "the agent at {target} serves gRPC, not HTTP/JSON: use --addr grpc://{}",
            target.authority()
        ))
    } else {
        Error::failed(format!(
            "the agent at {target} did not answer with JSON (content type {content_type:?}): is this a Solti HTTP agent?"
        ))
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    target: &crate::target::Target,
    body: &[u8],
) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        Error::failed(format!(
            "the answer of the agent at {target} is not what the API v1 defines: {e}"
        ))
    })
}

/// Percent-encodes a query value (everything but the unreserved characters).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_blocks_become_events() {
        let e = parse_sse_block(
            "id: 7\nevent: chunk\ndata: {\"type\":\"chunk\",\"attempt\":2,\"stream\":\"stderr\",\"seq\":3,\"ts\":5,\"line\":\"hé\"}",
        )
        .unwrap()
        .unwrap();
        assert_eq!(e.offset, Some(7));
        let pb::stream_task_logs_response::Kind::Chunk(c) = e.kind else {
            panic!("not a chunk")
        };
        assert_eq!((c.attempt, c.seq, c.ts), (2, 3, 5));
        assert_eq!(c.stream, pb::OutputStreamKind::Stderr as i32);
        assert_eq!(c.line, "hé".as_bytes());
        assert!(parse_sse_block(": keep-alive").unwrap().is_none());
        let f = parse_sse_block(
            "event: run-finished\ndata: {\"type\":\"runFinished\",\"attempt\":1,\"finishedAt\":9}",
        )
        .unwrap()
        .unwrap();
        let pb::stream_task_logs_response::Kind::RunFinished(f) = f.kind else {
            panic!("not run-finished")
        };
        assert_eq!(f.exit_code, None);
        assert!(parse_sse_block("data: {not json").is_err());
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(percent_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(percent_encode("web-1.x_y"), "web-1.x_y");
    }
}
