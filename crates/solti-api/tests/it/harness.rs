//! Shared setup: a real supervisor with the subprocess runner, request helpers, and a fake
//! handler for the cases a real supervisor cannot produce on demand.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    http::{Request, Response, StatusCode},
};
use futures_util::Stream;
use http_body_util::BodyExt as _;
use serde_json::Value;
use solti_api::{ApiError, ApiHandler, ApiObserver, LogStream, SupervisorApiAdapter, Transport};
use solti_core::{StateConfig, SupervisorApi};
use solti_model::{OutputEvent, Task, TaskId, TaskPage, TaskQuery, TaskRun, TaskSpec};
use solti_runner::RunnerRouter;
use taskvisor::{ControllerConfig, SupervisorConfig};
use tower::ServiceExt as _;

/// A supervisor with the subprocess runner registered as `default`.
pub(crate) async fn supervisor() -> Arc<SupervisorApi> {
    let mut router = RunnerRouter::new();
    solti_exec::subprocess::register_subprocess_runner(&mut router, "default").unwrap();
    let api = SupervisorApi::new(
        SupervisorConfig::default().with_grace(Duration::from_secs(2)),
        ControllerConfig::default(),
        vec![],
        router,
        StateConfig::default(),
    )
    .await
    .unwrap();
    Arc::new(api)
}

/// A supervisor and its adapter.
pub(crate) async fn adapter() -> (Arc<SupervisorApi>, Arc<SupervisorApiAdapter>) {
    let sup = supervisor().await;
    let adapter = Arc::new(SupervisorApiAdapter::new(Arc::clone(&sup)));
    (sup, adapter)
}

/// Waits until the task is terminal (its output subscription ends), without sleeping.
pub(crate) async fn wait_terminal(sup: &SupervisorApi, id: &str) {
    let id = TaskId::try_new(id).unwrap();
    if let Some(mut sub) = sup
        .subscribe_output(&id, solti_core::OutputStart::Live)
        .await
        .unwrap()
    {
        tokio::time::timeout(Duration::from_secs(20), async {
            while sub.recv().await.is_some() {}
        })
        .await
        .expect("task did not finish in 20 s");
    }
}

/// A request with an optional JSON body and bearer token.
pub(crate) fn request(
    method: &str,
    uri: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(body.map_or_else(Body::empty, |s| Body::from(s.to_owned())))
        .unwrap()
}

/// Sends one request through the router.
pub(crate) async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Response<()>, String) {
    let res = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let status = parts.status;
    (
        status,
        Response::from_parts(parts, ()),
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// Sends a request and parses the JSON answer.
pub(crate) async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let (status, _, text) = send(app, request(method, uri, body, None)).await;
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// The JSON of a `SubmitTaskRequest` running `command args…` in `slot`.
pub(crate) fn submit_body(slot: &str, command: &str, args: &[&str]) -> String {
    serde_json::json!({
        "spec": {
            "slot": slot,
            "kind": { "subprocess": { "command": { "command": command, "args": args }, "failOnNonZero": true } },
            "timeoutMs": 10000,
            "restart": "RESTART_STRATEGY_NEVER",
            "admission": "ADMISSION_STRATEGY_DROP_IF_RUNNING"
        }
    })
    .to_string()
}

/// Asserts an error answer: status, label, and a message starting with `prefix`.
pub(crate) fn assert_error(
    status: StatusCode,
    body: &Value,
    want: StatusCode,
    label: &str,
    prefix: &str,
) {
    assert_eq!(status, want, "{body}");
    let obj = body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {body}"));
    assert_eq!(obj.len(), 2, "{body}");
    assert_eq!(obj["error"], label, "{body}");
    let msg = obj["message"].as_str().unwrap();
    assert!(
        msg.starts_with(prefix),
        "message {msg:?} does not start with {prefix:?}"
    );
}

// === FakeHandler ===

/// A handler that answers from canned values and records what it was asked.
#[derive(Default)]
pub(crate) struct FakeHandler {
    /// Error every call returns, if set.
    pub(crate) fail: Mutex<Option<ApiError>>,
    /// Events the log stream yields before staying open (or ending, see `end_stream`).
    pub(crate) events: Mutex<Vec<OutputEvent>>,
    /// Whether the log stream ends after its events.
    pub(crate) end_stream: AtomicBool,
    /// Set when a log stream handed out was dropped.
    pub(crate) dropped: Arc<AtomicBool>,
    /// Specs submitted or applied.
    pub(crate) specs: Mutex<Vec<TaskSpec>>,
    /// Tasks `list` returns.
    pub(crate) tasks: Mutex<Vec<Task>>,
}

impl FakeHandler {
    fn check(&self) -> Result<(), ApiError> {
        self.fail.lock().unwrap().clone().map_or(Ok(()), Err)
    }
}

impl ApiHandler for FakeHandler {
    async fn submit(&self, spec: TaskSpec) -> Result<TaskId, ApiError> {
        self.check()?;
        self.specs.lock().unwrap().push(spec);
        Ok(TaskId::try_new("tsk_fake").unwrap())
    }
    async fn apply(&self, spec: TaskSpec) -> Result<TaskId, ApiError> {
        self.submit(spec).await
    }
    async fn get(&self, _id: TaskId) -> Result<Option<Task>, ApiError> {
        self.check()?;
        Ok(None)
    }
    async fn list(&self, _q: TaskQuery) -> Result<TaskPage<Task>, ApiError> {
        self.check()?;
        let tasks = self.tasks.lock().unwrap().clone();
        let total = tasks.len() as u64;
        Ok(TaskPage::new(tasks, total))
    }
    async fn runs(&self, _id: TaskId) -> Result<Option<Vec<TaskRun>>, ApiError> {
        self.check()?;
        Ok(None)
    }
    async fn delete(&self, _id: TaskId) -> Result<bool, ApiError> {
        self.check()?;
        Ok(false)
    }
    async fn cancel(&self, _id: TaskId, _reason: &str) -> Result<Option<Task>, ApiError> {
        self.check()?;
        Ok(None)
    }
    async fn stream_logs(
        &self,
        _id: TaskId,
        _query: solti_core::OutputQuery,
    ) -> Result<Option<LogStream>, ApiError> {
        self.check()?;
        let events = self.events.lock().unwrap().clone();
        let tail: std::pin::Pin<Box<dyn Stream<Item = OutputEvent> + Send>> =
            if self.end_stream.load(Ordering::SeqCst) {
                Box::pin(futures_util::stream::empty())
            } else {
                Box::pin(futures_util::stream::pending())
            };
        let guard = DropFlag(Arc::clone(&self.dropped));
        let stream = futures_util::StreamExt::chain(futures_util::stream::iter(events), tail);
        Ok(Some(LogStream::new(futures_util::StreamExt::map(
            stream,
            move |e| {
                let _keep = &guard;
                e
            },
        ))))
    }
}

/// Sets its flag when dropped.
pub(crate) struct DropFlag(pub Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

// === RecordingObserver ===

/// Records `(transport, method, route, status)` of finished requests.
#[derive(Default)]
pub(crate) struct RecordingObserver {
    pub(crate) started: Mutex<Vec<(Transport, String, &'static str)>>,
    pub(crate) finished: Mutex<Vec<(Transport, String, &'static str, String)>>,
}

impl ApiObserver for RecordingObserver {
    fn request_started(&self, transport: Transport, method: &str, route: &'static str) {
        self.started
            .lock()
            .unwrap()
            .push((transport, method.to_owned(), route));
    }
    fn request_finished(
        &self,
        transport: Transport,
        method: &str,
        route: &'static str,
        status: &str,
        _d: Duration,
    ) {
        self.finished.lock().unwrap().push((
            transport,
            method.to_owned(),
            route,
            status.to_owned(),
        ));
    }
}

/// Polls `cond` every 10 ms for up to 5 s (for effects on other tasks, e.g. a dropped
/// connection being noticed).
pub(crate) async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}
