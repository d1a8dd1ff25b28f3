//! A small HTTP/1.1 client on hyper's connection API: one keep-alive connection per
//! [`Conn`], one-shot requests through [`Api`], and SSE subscriptions through [`SseStream`].

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context as _, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{
    Method, Request, StatusCode,
    body::Incoming,
    client::conn::http1::{self, SendRequest},
    header::{self, HeaderMap, HeaderValue},
};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::{net::TcpSocket, task::JoinHandle};

use crate::sse::{SseItem, SseParser};

/// How long one request (connect, send, read the whole body) may take.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A complete response.
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Resp {
    /// The body as JSON, `Value::Null` when it is not JSON.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// `error` label of a JSON error body, when the body is one.
    pub(crate) fn error_label(&self) -> Option<String> {
        self.json().get("error")?.as_str().map(str::to_owned)
    }

    /// `message` of a JSON error body (empty when absent).
    pub(crate) fn error_message(&self) -> String {
        self.json()
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    /// Whether the response is JSON with an `error` label and a `message`.
    pub(crate) fn is_json_error(&self) -> bool {
        let ct = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        ct.starts_with("application/json")
            && self.error_label().is_some()
            && self.json().get("message").is_some()
    }

    /// Short description for reports: status, label and the start of the body.
    pub(crate) fn describe(&self) -> String {
        let body: String = String::from_utf8_lossy(&self.body)
            .chars()
            .take(200)
            .collect();
        format!("{} {body}", self.status.as_u16())
    }
}

/// Opens a TCP connection to `addr`, optionally with a small receive buffer.
async fn tcp(addr: SocketAddr, recv_buffer: Option<u32>) -> Result<tokio::net::TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    let stream = tokio::time::timeout(Duration::from_secs(10), socket.connect(addr))
        .await
        .map_err(|_| anyhow!("connect to {addr} timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// One keep-alive HTTP/1.1 connection. The connection driver is aborted on drop.
#[derive(Debug)]
pub(crate) struct Conn {
    sender: SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
    token: Option<String>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Conn {
    /// Connects to `addr`; requests carry `Authorization: Bearer <token>` when given.
    pub(crate) async fn connect(addr: SocketAddr, token: Option<&str>) -> Result<Self> {
        Self::connect_with(addr, token, None).await
    }

    async fn connect_with(
        addr: SocketAddr,
        token: Option<&str>,
        recv_buffer: Option<u32>,
    ) -> Result<Self> {
        let stream = tcp(addr, recv_buffer).await?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .context("http1 handshake")?;
        let driver = tokio::spawn(async move {
            // The connection ends with the response or an I/O error; the caller sees either.
            let _ = conn.await;
        });
        Ok(Self {
            sender,
            driver,
            token: token.map(str::to_owned),
        })
    }

    /// Whether the server closed this connection.
    pub(crate) fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    fn build(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        extra: &[(&str, &str)],
    ) -> Result<Request<Full<Bytes>>> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "127.0.0.1");
        if let Some(t) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some()
            && !extra
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        for (k, v) in extra {
            req = req.header(*k, HeaderValue::from_str(v)?);
        }
        Ok(req.body(Full::new(body.unwrap_or_default()))?)
    }

    /// Sends one request and reads the whole response, within [`REQUEST_TIMEOUT`].
    pub(crate) async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        extra: &[(&str, &str)],
    ) -> Result<Resp> {
        let req = self.build(method.clone(), path, body, extra)?;
        let run = async {
            self.sender.ready().await.context("connection not ready")?;
            let res = self
                .sender
                .send_request(req)
                .await
                .context("send request")?;
            let (parts, body) = res.into_parts();
            let body = body
                .collect()
                .await
                .context("read response body")?
                .to_bytes();
            Ok::<_, anyhow::Error>(Resp {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, run)
            .await
            .map_err(|_| anyhow!("{method} {path}: no response within {REQUEST_TIMEOUT:?}"))?
    }

    /// Sends a JSON value.
    pub(crate) async fn send_json(
        &mut self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<Resp> {
        self.send(
            method,
            path,
            Some(Bytes::from(serde_json::to_vec(body)?)),
            &[],
        )
        .await
    }
}

/// One-shot requests to the agent's API, each on a fresh connection.
#[derive(Clone, Debug)]
pub(crate) struct Api {
    pub(crate) addr: SocketAddr,
    pub(crate) token: Option<String>,
}

impl Api {
    /// A client for `addr`.
    pub(crate) fn new(addr: SocketAddr, token: Option<String>) -> Self {
        Self { addr, token }
    }

    /// A new keep-alive connection.
    pub(crate) async fn conn(&self) -> Result<Conn> {
        Conn::connect(self.addr, self.token.as_deref()).await
    }

    /// Sends one request on a fresh connection.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        extra: &[(&str, &str)],
    ) -> Result<Resp> {
        self.conn().await?.send(method, path, body, extra).await
    }

    /// `GET path`.
    pub(crate) async fn get(&self, path: &str) -> Result<Resp> {
        self.send(Method::GET, path, None, &[]).await
    }

    /// `POST /api/v1/tasks` with `spec`; the task id on 201.
    pub(crate) async fn submit(&self, spec: &Value) -> Result<String> {
        let res = self
            .conn()
            .await?
            .send_json(
                Method::POST,
                "/api/v1/tasks",
                &serde_json::json!({ "spec": spec }),
            )
            .await?;
        task_id_of(&res)
    }

    /// `POST /api/v1/tasks` with `body` on a fresh connection; the whole response.
    pub(crate) async fn send_json_once(&self, body: &Value) -> Result<Resp> {
        self.conn()
            .await?
            .send_json(Method::POST, "/api/v1/tasks", body)
            .await
    }

    /// `GET /api/v1/tasks/{id}` → the `task` object.
    pub(crate) async fn task(&self, id: &str) -> Result<Value> {
        let res = self.get(&format!("/api/v1/tasks/{id}")).await?;
        if res.status != StatusCode::OK {
            bail!("GET task {id}: {}", res.describe());
        }
        res.json()
            .get("task")
            .cloned()
            .context("GET task: no `task`")
    }

    /// `GET /api/v1/tasks/{id}/runs` → the runs, oldest first.
    pub(crate) async fn runs(&self, id: &str) -> Result<Vec<Value>> {
        let res = self.get(&format!("/api/v1/tasks/{id}/runs")).await?;
        if res.status != StatusCode::OK {
            bail!("GET runs {id}: {}", res.describe());
        }
        Ok(res
            .json()
            .get("runs")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// `DELETE /api/v1/tasks/{id}`.
    pub(crate) async fn delete(&self, id: &str) -> Result<StatusCode> {
        Ok(self
            .send(Method::DELETE, &format!("/api/v1/tasks/{id}"), None, &[])
            .await?
            .status)
    }

    /// `total` of `GET /api/v1/tasks?status=…&limit=1`.
    pub(crate) async fn count(&self, status: &str) -> Result<u64> {
        let res = self
            .get(&format!("/api/v1/tasks?status={status}&limit=1"))
            .await?;
        if res.status != StatusCode::OK {
            bail!("list status={status}: {}", res.describe());
        }
        res.json()
            .get("total")
            .and_then(Value::as_u64)
            .context("list: no numeric `total`")
    }

    /// Subscribes to the live logs of `id`.
    pub(crate) async fn logs(&self, id: &str) -> Result<SseStream> {
        SseStream::open(
            self.addr,
            self.token.as_deref(),
            &format!("/api/v1/tasks/{id}/logs"),
            None,
        )
        .await
    }
}

/// The `taskId` of a 201/200 submit response.
pub(crate) fn task_id_of(res: &Resp) -> Result<String> {
    if !(res.status == StatusCode::CREATED || res.status == StatusCode::OK) {
        bail!("submit: {}", res.describe());
    }
    res.json()
        .get("taskId")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .context("submit: no taskId")
}

/// Phase of a task object (`status.phase`), e.g. `TASK_STATUS_SUCCEEDED`.
pub(crate) fn phase_of(task: &Value) -> String {
    task.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("TASK_STATUS_UNSPECIFIED")
        .to_owned()
}

/// Whether a phase name is terminal.
pub(crate) fn is_terminal(phase: &str) -> bool {
    matches!(
        phase,
        "TASK_STATUS_SUCCEEDED"
            | "TASK_STATUS_FAILED"
            | "TASK_STATUS_TIMEOUT"
            | "TASK_STATUS_CANCELED"
            | "TASK_STATUS_EXHAUSTED"
    )
}

/// A live SSE subscription on its own connection.
#[derive(Debug)]
pub(crate) struct SseStream {
    body: Incoming,
    parser: SseParser,
    pending: std::collections::VecDeque<SseItem>,
    _conn: Conn,
}

impl SseStream {
    /// Opens `GET path` and checks for `200 text/event-stream`. `recv_buffer` shrinks the
    /// socket's receive buffer (to make a slow reader fall behind quickly).
    pub(crate) async fn open(
        addr: SocketAddr,
        token: Option<&str>,
        path: &str,
        recv_buffer: Option<u32>,
    ) -> Result<Self> {
        let mut conn = Conn::connect_with(addr, token, recv_buffer).await?;
        let req = conn.build(Method::GET, path, None, &[("accept", "text/event-stream")])?;
        let res = tokio::time::timeout(REQUEST_TIMEOUT, async {
            conn.sender.ready().await?;
            conn.sender.send_request(req).await
        })
        .await
        .map_err(|_| anyhow!("GET {path}: no response headers within {REQUEST_TIMEOUT:?}"))??;
        let status = res.status();
        let ct = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if status != StatusCode::OK || !ct.starts_with("text/event-stream") {
            let body = res
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            bail!(
                "GET {path}: {} {ct} {}",
                status.as_u16(),
                String::from_utf8_lossy(&body)
            );
        }
        Ok(Self {
            body: res.into_body(),
            parser: SseParser::default(),
            pending: Default::default(),
            _conn: conn,
        })
    }

    /// The next item; `Ok(None)` when the server ended the stream.
    pub(crate) async fn next(&mut self) -> Result<Option<SseItem>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Ok(Some(item));
            }
            let Some(frame) = self.body.frame().await else {
                return Ok(None);
            };
            let frame = frame.context("SSE body")?;
            if let Ok(data) = frame.into_data() {
                self.pending
                    .extend(self.parser.feed(&data).map_err(|e| anyhow!(e))?);
            }
        }
    }
}
