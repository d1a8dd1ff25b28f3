//! HTTP API throughput over loopback.
//!
//! Run with `cargo bench -p solti-api --features http --bench http_roundtrip`.
//!
//! Three numbers, each from the same Rust load generator (hyper HTTP/1.1 clients with
//! keep-alive, `CONCURRENCY` connections, `DURATION` each):
//! 1. `submit+get`: `POST /api/v1/tasks` then `GET /api/v1/tasks/{id}` per iteration, against
//!    a real `SupervisorApi` whose runner finishes at once (the API and the supervisor are
//!    measured, not process spawning).
//! 2. `get`: `GET /api/v1/tasks/{id}` of one stored task.
//! 3. `bare`: a plain axum handler returning the same bytes as (2), for the overhead ratio.
#![expect(clippy::unwrap_used, reason = "a benchmark aborts on setup failure")]

use std::{
    future::Future,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Router, routing::get};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use solti_api::{HttpApi, SupervisorApiAdapter, serve_http};
use solti_core::{StateConfig, SupervisorApi};
use solti_model::TaskSpec;
use solti_runner::{BuildContext, Runner, RunnerError, RunnerRouter};
use taskvisor::{ControllerConfig, SupervisorConfig, TaskContext, TaskError, TaskFn, TaskRef};
use tokio::net::{TcpListener, TcpStream};

const CONCURRENCY: usize = 16;
const DURATION: Duration = Duration::from_secs(3);

/// A runner whose tasks succeed at once.
struct Instant0;

impl Runner for Instant0 {
    fn name(&self) -> &str {
        "instant"
    }
    fn supports(&self, _spec: &TaskSpec) -> bool {
        true
    }
    fn build_task(&self, _spec: &TaskSpec, _ctx: &BuildContext) -> Result<TaskRef, RunnerError> {
        Ok(TaskFn::arc(|_ctx: TaskContext| async {
            Ok::<(), TaskError>(())
        }))
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let mut router = RunnerRouter::new();
    router.register(Instant0).unwrap();
    // Enough room for every task the submit loop creates.
    let state = StateConfig::default().with_max_tasks(5_000_000);
    let sup = SupervisorApi::new(
        SupervisorConfig::default(),
        ControllerConfig::default(),
        vec![],
        router,
        state,
    )
    .await
    .unwrap();
    let handler = Arc::new(SupervisorApiAdapter::new(Arc::new(sup)));
    let api = start(HttpApi::new(handler).router()).await;

    let body = r#"{"spec":{"slot":"bench","kind":{"subprocess":{"command":{"command":"true"}}},"timeoutMs":1000,"restart":"RESTART_STRATEGY_NEVER","admission":"ADMISSION_STRATEGY_DROP_IF_RUNNING"}}"#;
    let (n, secs) = load(api, move |mut c| async move {
        let created = c.request("POST", "/api/v1/tasks", Some(body)).await;
        let id = serde_json::from_slice::<serde_json::Value>(&created).unwrap()["taskId"]
            .as_str()
            .unwrap()
            .to_owned();
        c.request("GET", &format!("/api/v1/tasks/{id}"), None).await;
        c
    })
    .await;
    println!(
        "submit+get: {:>8.0} round trips/s ({n} in {secs:.2} s, {CONCURRENCY} connections)",
        n as f64 / secs
    );

    // One stored task, fetched over and over, against a bare handler with the same bytes.
    let mut c = Client::connect(api).await;
    let created = c
        .request("POST", "/api/v1/tasks", Some(&body.replace("bench", "one")))
        .await;
    let id = serde_json::from_slice::<serde_json::Value>(&created).unwrap()["taskId"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/tasks/{id}");
    let bytes = Bytes::from(c.request("GET", &path, None).await);
    let bare = start(Router::new().route(
        "/api/v1/tasks/{id}",
        get(move || {
            let bytes = bytes.clone();
            async move { ([("content-type", "application/json")], bytes) }
        }),
    ))
    .await;
    let get_path = path.clone();
    let (n_api, s_api) = load(api, move |mut c| {
        let p = get_path.clone();
        async move {
            c.request("GET", &p, None).await;
            c
        }
    })
    .await;
    let (n_bare, s_bare) = load(bare, move |mut c| {
        let p = path.clone();
        async move {
            c.request("GET", &p, None).await;
            c
        }
    })
    .await;
    let api_rate = n_api as f64 / s_api;
    let bare_rate = n_bare as f64 / s_bare;
    println!("get:        {api_rate:>8.0} req/s");
    println!("bare axum:  {bare_rate:>8.0} req/s");
    println!("ratio get/bare: {:.2}", api_rate / bare_rate);
}

async fn start(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The server runs until the benchmark process exits.
    drop(tokio::spawn(serve_http(
        listener,
        app,
        std::future::pending(),
    )));
    addr
}

/// Runs `step` in a loop on `CONCURRENCY` connections for `DURATION`.
async fn load<F, Fut>(addr: SocketAddr, step: F) -> (u64, f64)
where
    F: Fn(Client) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Client> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let step = step.clone();
        let done = Arc::clone(&done);
        workers.spawn(async move {
            let mut c = Client::connect(addr).await;
            while started.elapsed() < DURATION {
                c = step(c).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while workers.join_next().await.is_some() {}
    (
        done.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
    )
}

/// One keep-alive HTTP/1.1 connection.
struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let tcp = TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        drop(tokio::spawn(conn));
        Self { sender }
    }

    async fn request(&mut self, method: &str, path: &str, body: Option<&str>) -> Vec<u8> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
            .unwrap();
        // The connection task may not have run yet (a fresh connection).
        self.sender.ready().await.unwrap();
        let res = self.sender.send_request(req).await.unwrap();
        assert!(res.status().is_success(), "{}", res.status());
        res.into_body().collect().await.unwrap().to_bytes().to_vec()
    }
}
