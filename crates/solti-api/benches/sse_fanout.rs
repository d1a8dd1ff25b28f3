//! 1,000 concurrent SSE subscribers on one busy task, over loopback.
//!
//! Run with `cargo bench -p solti-api --features http --bench sse_fanout`.
//!
//! One task publishes `RATE` lines per second for `DURATION`; `SUBSCRIBERS` HTTP/1.1 clients
//! (in this process) follow `GET /api/v1/tasks/{id}/logs` and count the events they receive.
//! Reports delivered chunk events, `lagged` events and skipped counts, and the process RSS
//! before the subscribers connect, once they are all subscribed, and at the end.
#![expect(clippy::unwrap_used, reason = "a benchmark aborts on setup failure")]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use solti_api::{HttpApi, SupervisorApiAdapter, serve_http};
use solti_core::{StateConfig, SupervisorApi};
use solti_model::TaskSpec;
use solti_runner::{
    Attempt, AttemptEnd, AttemptFn, BuildContext, Runner, RunnerError, RunnerRouter,
};
use taskvisor::{ControllerConfig, SupervisorConfig, TaskRef};
use tokio::{net::TcpStream, sync::Notify};

const SUBSCRIBERS: usize = 1000;
const RATE: u64 = 1000;
const DURATION: Duration = Duration::from_secs(3);

/// Waits for `go`, then prints `RATE` lines per second for `DURATION`.
struct Busy {
    go: Arc<Notify>,
}

impl Runner for Busy {
    fn name(&self) -> &str {
        "busy"
    }
    fn supports(&self, _spec: &TaskSpec) -> bool {
        true
    }
    fn build_task(&self, _spec: &TaskSpec, ctx: &BuildContext) -> Result<TaskRef, RunnerError> {
        let go = Arc::clone(&self.go);
        Ok(AttemptFn::arc(ctx.output(), move |attempt: Attempt| {
            let go = Arc::clone(&go);
            async move {
                let sink = attempt.output();
                go.notified().await;
                let started = Instant::now();
                let mut tick = tokio::time::interval(Duration::from_millis(10));
                let mut n = 0u64;
                while started.elapsed() < DURATION {
                    tick.tick().await;
                    for _ in 0..RATE / 100 {
                        sink.stdout_line(Bytes::from(format!(
                            "line {n} of the busy task, some padding to look real"
                        )));
                        n += 1;
                    }
                }
                AttemptEnd::success()
            }
        }))
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let go = Arc::new(Notify::new());
    let mut router = RunnerRouter::new();
    router
        .register(Busy {
            go: Arc::clone(&go),
        })
        .unwrap();
    let sup = SupervisorApi::new(
        SupervisorConfig::default(),
        ControllerConfig::default(),
        vec![],
        router,
        StateConfig::default(),
    )
    .await
    .unwrap();
    let handler = Arc::new(SupervisorApiAdapter::new(Arc::new(sup)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve_http(
        listener,
        HttpApi::new(handler).router(),
        std::future::pending(),
    ));

    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let driver = tokio::spawn(conn);
    let body = r#"{"spec":{"slot":"busy","kind":{"subprocess":{"command":{"command":"x"}}},"timeoutMs":60000,"restart":"RESTART_STRATEGY_NEVER","admission":"ADMISSION_STRATEGY_DROP_IF_RUNNING"}}"#;
    let req = http::Request::post("/api/v1/tasks")
        .header("host", "b")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(Bytes::from(body)))
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    let created = res.into_body().collect().await.unwrap().to_bytes();
    let id = serde_json::from_slice::<serde_json::Value>(&created).unwrap()["taskId"]
        .as_str()
        .unwrap()
        .to_owned();
    driver.abort();

    let rss_before = rss_kib();
    let chunks = Arc::new(AtomicU64::new(0));
    let lagged = Arc::new(AtomicU64::new(0));
    let subscribed = Arc::new(tokio::sync::Barrier::new(SUBSCRIBERS + 1));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..SUBSCRIBERS {
        let (chunks, lagged, subscribed, path) = (
            Arc::clone(&chunks),
            Arc::clone(&lagged),
            Arc::clone(&subscribed),
            format!("/api/v1/tasks/{id}/logs"),
        );
        clients.spawn(async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .unwrap();
            let driver = tokio::spawn(conn);
            let req = http::Request::get(path)
                .header("host", "b")
                .body(Empty::<Bytes>::new())
                .unwrap();
            let res = sender.send_request(req).await.unwrap();
            subscribed.wait().await;
            let mut body = res.into_body();
            let mut carry = Vec::new();
            while let Some(Ok(frame)) = body.frame().await {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                carry.extend_from_slice(&data);
                // Count whole events; keep a partial one for the next frame.
                while let Some(end) = carry.windows(2).position(|w| w == b"\n\n") {
                    let event = carry.drain(..end + 2).collect::<Vec<u8>>();
                    if event.starts_with(b"event: chunk") {
                        chunks.fetch_add(1, Ordering::Relaxed);
                    } else if event.starts_with(b"event: lagged") {
                        lagged.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            driver.abort();
        });
    }
    subscribed.wait().await;
    let rss_subscribed = rss_kib();
    let started = Instant::now();
    go.notify_one();
    while clients.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let rss_end = rss_kib();
    server.abort();

    let published = RATE * DURATION.as_secs();
    let delivered = chunks.load(Ordering::Relaxed);
    println!(
        "subscribers: {SUBSCRIBERS}, lines published: ~{published} over {DURATION:?}, streams ended after {elapsed:.2?}"
    );
    println!(
        "chunk events delivered: {delivered} ({:.1}% of {}), lagged events: {}",
        delivered as f64 * 100.0 / (published * SUBSCRIBERS as u64) as f64,
        published * SUBSCRIBERS as u64,
        lagged.load(Ordering::Relaxed)
    );
    println!(
        "RSS: {} MiB before, {} MiB with {SUBSCRIBERS} subscribed (+{} KiB/subscriber), {} MiB at the end",
        rss_before / 1024,
        rss_subscribed / 1024,
        rss_subscribed.saturating_sub(rss_before) / SUBSCRIBERS as u64,
        rss_end / 1024
    );
}
