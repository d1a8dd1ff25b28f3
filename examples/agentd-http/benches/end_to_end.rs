//! End-to-end task throughput of the real agents next to raw process spawning, same run
//! (issue #21). Run with `cargo bench -p agentd-http --bench end_to_end`.
//!
//! Four release agents run for the whole bench: `agentd-http` and the gRPC agent, each with
//! `--state disk` (the default) and `--state memory`. The gRPC agent is this bench binary
//! started again with `SOLTI_E2E_ROLE=grpc-agent`, which calls `agentd_kit::main(Grpc)`:
//! exactly what `agentd-grpc`'s `main` does, built with the same (release) profile (a bench
//! of one package cannot name another package's binary).
//!
//! In each of `SOLTI_BENCH_ROUNDS` (default 5) rounds, alternating:
//! - **raw**: tokio `Command` spawn + wait of `/bin/true`, `TASKS` (default 2,000) times from
//!   8 workers (8 in flight);
//! - **agent**: `TASKS` `/bin/true` tasks (own slot each, restart NEVER, admission
//!   DROP_IF_RUNNING) submitted by 8 concurrent submitters (one keep-alive HTTP/1.1
//!   connection, or one gRPC channel, each), then waited for as an external client would:
//!   once every submission is acknowledged, one waiter asks the list endpoint for the number
//!   of succeeded tasks (`GET /api/v1/tasks?status=succeeded&limit=1` → `total`, or
//!   `ListTasks{status: SUCCEEDED, limit: 1}`) every millisecond until it reaches the number
//!   submitted so far. Timed from the first submission to that answer.
//!
//! Tasks per second and the ratio to the raw spawn of the same round; medians over rounds.
//! The agents run with their default flags apart from `--state` (so with the per-attempt
//! cgroup where the host allows one, and `info` logging: one line per finished task, written
//! to a file in the scratch directory).
//!
//! Then, on each `agentd-http` (`--state disk` and `--state memory` for the first, `--state
//! disk` for the second):
//! - **submit → running at idle**: 200 times, one `sleep 30` task is submitted, and the task
//!   is read (`GET /api/v1/tasks/{id}`) in a loop from the moment the `201` arrives until its
//!   phase is `RUNNING`; the time from sending the `POST` to receiving the first `RUNNING`
//!   answer (an upper bound: it includes the `201` and one `GET` round trip) and the time to
//!   the `201` alone, p50 and p90. The task is deleted and the next one follows 5 ms later.
//! - **GET vs bare axum**: `GET /api/v1/tasks/{id}` of one finished task from 16 keep-alive
//!   connections for 2 s, next to a bare axum handler returning the same bytes (in this
//!   process, on its own 2-worker tokio runtime, as the agent's), alternating, 3 rounds,
//!   medians. The same measure in process is `cargo bench -p solti-api --features http
//!   --bench http_roundtrip`.
//!
//! `SOLTI_BENCH_ONLY=http-disk|http-memory|grpc-disk|grpc-memory` runs the throughput rounds
//! against that agent alone (with raw rounds), for profiling; `SOLTI_BENCH_AGENT_ARGS` adds
//! flags to every agent (e.g. `--cgroup-parent /sys/fs/cgroup/unified/solti-bench`);
//! `SOLTI_BENCH_COMPARE=/path/to/agentd-http` adds that build of the HTTP agent (e.g. the one
//! before a change) as `cmp-http-disk` and `cmp-http-memory`, measured in the same rounds.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench code")]

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use agentd_kit::testing::AgentProcess;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use solti_api::pb::{
    self, CommandMode, CreateSpec, ListTasksRequest, SubmitTaskRequest, SubprocessTask, TaskKind,
    task_service_client::TaskServiceClient,
};
use tokio::net::TcpStream;
use tonic::transport::Channel;

const IN_FLIGHT: usize = 8;
const GET_CONNECTIONS: usize = 16;
const GET_DURATION: Duration = Duration::from_secs(2);
const LATENCY_SAMPLES: usize = 200;
const WAIT_LIMIT: Duration = Duration::from_secs(300);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    match std::env::var("SOLTI_E2E_ROLE").as_deref() {
        Ok("grpc-agent") => {
            agentd_kit::main(agentd_kit::TransportKind::Grpc).unwrap();
        }
        _ => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(bench());
        }
    }
}

/// Which API an agent serves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    Http,
    Grpc,
}

struct Agent {
    name: &'static str,
    api: Api,
    process: AgentProcess,
    addr: SocketAddr,
    /// Tasks submitted to it so far (all succeed).
    submitted: usize,
    rates: Vec<f64>,
    ratios: Vec<f64>,
}

fn start_agent(
    name: &'static str,
    api: Api,
    state: &str,
    bin: Option<PathBuf>,
    scratch: &Path,
) -> Agent {
    let dir = scratch.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Default flags apart from the state backend: the log (one `info` line per finished task)
    // goes to a file, as it would to journald or a log file.
    let mut args = vec!["--state", state];
    let extra = std::env::var("SOLTI_BENCH_AGENT_ARGS").unwrap_or_default();
    args.extend(extra.split_whitespace());
    let log = std::fs::File::create(dir.join("agent.log")).unwrap();
    let (bin, env): (PathBuf, &[(&str, &str)]) = match api {
        Api::Http => (
            bin.unwrap_or_else(|| env!("CARGO_BIN_EXE_agentd-http").into()),
            &[],
        ),
        Api::Grpc => (
            std::env::current_exe().unwrap(),
            &[("SOLTI_E2E_ROLE", "grpc-agent")],
        ),
    };
    let process =
        AgentProcess::start_custom(&bin, &dir.join("state"), &args, env, Some(log)).unwrap();
    let addr = process.api_addr().parse().unwrap();
    Agent {
        name,
        api,
        process,
        addr,
        submitted: 0,
        rates: Vec::new(),
        ratios: Vec::new(),
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn bench() {
    let tasks = env_usize("SOLTI_BENCH_TASKS", 2_000);
    let rounds = env_usize("SOLTI_BENCH_ROUNDS", 5);
    let only = std::env::var("SOLTI_BENCH_ONLY").ok();
    let scratch: PathBuf =
        std::env::temp_dir().join(format!("agentd-e2e-bench-{}", std::process::id()));
    let mut agents = Vec::new();
    let other = std::env::var_os("SOLTI_BENCH_COMPARE").map(PathBuf::from);
    for (name, api, state, bin) in [
        ("http-disk", Api::Http, "disk", None),
        ("http-memory", Api::Http, "memory", None),
        ("grpc-disk", Api::Grpc, "disk", None),
        ("grpc-memory", Api::Grpc, "memory", None),
        ("cmp-http-disk", Api::Http, "disk", other.clone()),
        ("cmp-http-memory", Api::Http, "memory", other.clone()),
    ] {
        if name.starts_with("cmp-") && other.is_none() {
            continue;
        }
        if only.as_deref().is_none_or(|o| o == name) {
            agents.push(start_agent(name, api, state, bin, &scratch));
        }
    }
    println!(
        "end to end: {tasks} `/bin/true` tasks per round, {IN_FLIGHT} submitters / {IN_FLIGHT} in flight, {rounds} rounds"
    );
    // Warm-up: caches, connections, the agents' first allocations.
    let _ = raw_round(tasks / 4).await;
    for agent in &mut agents {
        let _ = agent_round(agent, tasks / 4, "w").await;
    }
    let mut raw = Vec::new();
    for round in 0..rounds {
        let mut line = format!("round {round}:");
        for agent in &mut agents {
            let base = raw_round(tasks).await;
            let rate = agent_round(agent, tasks, &format!("r{round}")).await;
            agent.rates.push(rate);
            agent.ratios.push(rate / base);
            raw.push(base);
            line += &format!(
                " raw {base:.0}/s {} {rate:.0}/s ({:.2});",
                agent.name,
                rate / base
            );
        }
        println!("{line}");
    }
    println!("raw spawn+wait median {:.0}/s", median(&raw));
    for agent in &agents {
        println!(
            "  {:<12} median {:>6.0} tasks/s, ratio to raw (same round) median {:.2} ({:.2?})",
            agent.name,
            median(&agent.rates),
            median(&agent.ratios),
            agent.ratios
        );
    }
    if only.is_none() {
        for agent in agents.iter().filter(|a| a.api == Api::Http) {
            submit_to_running(agent).await;
        }
        for agent in agents.iter().filter(|a| a.name.ends_with("http-disk")) {
            get_vs_bare(agent).await;
        }
    }
    for mut agent in agents {
        agent.process.terminate(Duration::from_secs(60)).unwrap();
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// Spawns and waits for `/bin/true` `tasks` times, `IN_FLIGHT` at a time; spawns per second.
async fn raw_round(tasks: usize) -> f64 {
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..IN_FLIGHT {
        workers.spawn(async move {
            let mut i = w;
            while i < tasks {
                let status = tokio::process::Command::new("/bin/true")
                    .status()
                    .await
                    .unwrap();
                assert!(status.success());
                i += IN_FLIGHT;
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        r.unwrap();
    }
    tasks as f64 / started.elapsed().as_secs_f64()
}

fn http_body(slot: &str, command: &str, args: &str) -> String {
    format!(
        r#"{{"spec":{{"slot":"{slot}","kind":{{"subprocess":{{"command":{{"command":"{command}","args":[{args}]}}}}}},"timeoutMs":"60000","restart":"RESTART_STRATEGY_NEVER","admission":"ADMISSION_STRATEGY_DROP_IF_RUNNING"}}}}"#
    )
}

fn grpc_spec(slot: String) -> CreateSpec {
    CreateSpec {
        slot,
        kind: Some(TaskKind {
            kind: Some(pb::task_kind::Kind::Subprocess(SubprocessTask {
                mode: Some(pb::subprocess_task::Mode::Command(CommandMode {
                    command: "/bin/true".into(),
                    args: vec![],
                })),
                ..Default::default()
            })),
        }),
        timeout_ms: 60_000,
        restart: pb::RestartStrategy::Never as i32,
        admission: pb::AdmissionStrategy::DropIfRunning as i32,
        ..Default::default()
    }
}

/// Submits `tasks` tasks from `IN_FLIGHT` submitters and waits until all succeeded; tasks per
/// second from the first submission to the answer that shows all of them done.
async fn agent_round(agent: &mut Agent, tasks: usize, tag: &str) -> f64 {
    let target = agent.submitted + tasks;
    let addr = agent.addr;
    let started = Instant::now();
    let mut submitters = tokio::task::JoinSet::new();
    for w in 0..IN_FLIGHT {
        let tag = format!("{tag}-{w}");
        match agent.api {
            Api::Http => submitters.spawn(async move {
                let mut c = Client::connect(addr).await;
                let mut i = w;
                while i < tasks {
                    let body = http_body(&format!("{tag}-{i}"), "/bin/true", "");
                    let (status, _) = c.request("POST", "/api/v1/tasks", Some(body)).await;
                    assert_eq!(status, 201);
                    i += IN_FLIGHT;
                }
            }),
            Api::Grpc => submitters.spawn(async move {
                let mut c = grpc_client(addr).await;
                let mut i = w;
                while i < tasks {
                    let spec = grpc_spec(format!("{tag}-{i}"));
                    c.submit_task(SubmitTaskRequest { spec: Some(spec) })
                        .await
                        .unwrap();
                    i += IN_FLIGHT;
                }
            }),
        };
    }
    while let Some(r) = submitters.join_next().await {
        r.unwrap();
    }
    match agent.api {
        Api::Http => {
            let mut c = Client::connect(addr).await;
            loop {
                let (status, body) = c
                    .request("GET", "/api/v1/tasks?status=succeeded&limit=1", None)
                    .await;
                assert_eq!(status, 200);
                let total = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["total"]
                    .as_u64()
                    .unwrap();
                if total as usize >= target {
                    break;
                }
                assert!(started.elapsed() < WAIT_LIMIT, "{total} of {target} done");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        Api::Grpc => {
            let mut c = grpc_client(addr).await;
            loop {
                let total = c
                    .list_tasks(ListTasksRequest {
                        status: Some(pb::TaskStatus::Succeeded as i32),
                        limit: 1,
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .total;
                if total as usize >= target {
                    break;
                }
                assert!(started.elapsed() < WAIT_LIMIT, "{total} of {target} done");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    agent.submitted = target;
    tasks as f64 / started.elapsed().as_secs_f64()
}

async fn grpc_client(addr: SocketAddr) -> TaskServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .tcp_nodelay(true)
        .connect()
        .await
        .unwrap();
    TaskServiceClient::new(channel)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Submit → running at idle, over HTTP.
async fn submit_to_running(agent: &Agent) {
    let mut c = Client::connect(agent.addr).await;
    let (mut running, mut created, mut polls) = (Vec::new(), Vec::new(), 0usize);
    for i in 0..LATENCY_SAMPLES {
        let body = http_body(&format!("lat-{i}"), "sleep", r#""30""#);
        let sent = Instant::now();
        let (status, resp) = c.request("POST", "/api/v1/tasks", Some(body)).await;
        created.push(sent.elapsed());
        assert_eq!(status, 201);
        let id = serde_json::from_slice::<serde_json::Value>(&resp).unwrap()["taskId"]
            .as_str()
            .unwrap()
            .to_owned();
        let path = format!("/api/v1/tasks/{id}");
        loop {
            let (_, task) = c.request("GET", &path, None).await;
            polls += 1;
            let task = serde_json::from_slice::<serde_json::Value>(&task).unwrap();
            if task["task"]["status"]["phase"] == "TASK_STATUS_RUNNING" {
                running.push(sent.elapsed());
                break;
            }
            assert!(sent.elapsed() < Duration::from_secs(10), "{task}");
        }
        let (status, _) = c.request("DELETE", &path, None).await;
        assert!(status == 200 || status == 204, "{status}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    running.sort();
    created.sort();
    println!(
        "submit -> running over HTTP at idle ({LATENCY_SAMPLES} samples, {}): p50 {:?}, p90 {:?} (POST -> 201 alone: p50 {:?}, p90 {:?}; {:.2} GETs per sample)",
        agent.name,
        percentile(&running, 0.5),
        percentile(&running, 0.9),
        percentile(&created, 0.5),
        percentile(&created, 0.9),
        polls as f64 / LATENCY_SAMPLES as f64
    );
}

/// `GET /api/v1/tasks/{id}` of the agent against a bare axum handler with the same bytes.
async fn get_vs_bare(agent: &Agent) {
    let mut c = Client::connect(agent.addr).await;
    let body = http_body("get-one", "/bin/true", "");
    let (_, resp) = c.request("POST", "/api/v1/tasks", Some(body)).await;
    let id = serde_json::from_slice::<serde_json::Value>(&resp).unwrap()["taskId"]
        .as_str()
        .unwrap()
        .to_owned();
    let path: Arc<str> = format!("/api/v1/tasks/{id}").into();
    let bytes = loop {
        let (_, task) = c.request("GET", &path, None).await;
        let v = serde_json::from_slice::<serde_json::Value>(&task).unwrap();
        if v["task"]["status"]["phase"] == "TASK_STATUS_SUCCEEDED" {
            break task;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // The bare server gets its own 2-worker runtime on its own threads, as the agent has.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = axum::Router::new().route(
                "/api/v1/tasks/{id}",
                axum::routing::get(move || {
                    let bytes = bytes.clone();
                    async move { ([("content-type", "application/json")], bytes) }
                }),
            );
            // Serves until the bench process exits.
            axum::serve(listener, app).await.unwrap();
        });
    });
    let bare_addr = rx.recv().unwrap();
    let (mut api, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        api.push(get_load(agent.addr, path.clone()).await);
        plain.push(get_load(bare_addr, path.clone()).await);
    }
    let (api, plain) = (median(&api), median(&plain));
    println!(
        "GET /api/v1/tasks/{{id}} ({GET_CONNECTIONS} connections, {}): agent {api:.0} req/s, bare axum same bytes {plain:.0} req/s, ratio {:.2}",
        agent.name,
        api / plain
    );
}

/// GETs of `path` per second from `GET_CONNECTIONS` keep-alive connections.
async fn get_load(addr: SocketAddr, path: Arc<str>) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..GET_CONNECTIONS {
        let (done, path) = (done.clone(), path.clone());
        workers.spawn(async move {
            let mut c = Client::connect(addr).await;
            while started.elapsed() < GET_DURATION {
                let (status, _) = c.request("GET", &path, None).await;
                assert_eq!(status, 200);
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while workers.join_next().await.is_some() {}
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// One keep-alive HTTP/1.1 connection (hyper, no pooling layer: the client's own cost stays
/// small next to the agent's on the shared cores).
struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let tcp = TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        drop(tokio::spawn(conn));
        Self {
            sender,
            host: addr.to_string(),
        }
    }

    async fn request(&mut self, method: &str, path: &str, body: Option<String>) -> (u16, Bytes) {
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        self.sender.ready().await.unwrap();
        let res = self.sender.send_request(req).await.unwrap();
        let status = res.status().as_u16();
        (status, res.into_body().collect().await.unwrap().to_bytes())
    }
}
