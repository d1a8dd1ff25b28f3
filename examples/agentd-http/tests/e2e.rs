//! End-to-end: the real `agentd-http` binary on 127.0.0.1:0, driven over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::{path::Path, time::Duration};

use agentd_kit::testing::{AgentProcess, process_alive};
use serde_json::{Value, json};

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("agentd-http-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn start(name: &str, extra: &[&str]) -> AgentProcess {
    AgentProcess::start(
        Path::new(env!("CARGO_BIN_EXE_agentd-http")),
        &scratch(name),
        extra,
    )
    .unwrap()
}

fn sh_task(slot: &str, script: &str) -> Value {
    json!({"spec": {
        "slot": slot,
        "kind": {"subprocess": {"command": {"command": "sh", "args": ["-c", script]}, "failOnNonZero": true}},
        "timeoutMs": "30000",
        "restart": "RESTART_STRATEGY_NEVER",
        "admission": "ADMISSION_STRATEGY_REPLACE"
    }})
}

async fn submit(client: &reqwest::Client, base: &str, body: &Value) -> String {
    let resp = client
        .post(format!("{base}/api/v1/tasks"))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    v["taskId"].as_str().unwrap().to_owned()
}

/// Reads the whole SSE stream of a task (it ends when the task is terminal) as (event, data).
async fn tail(client: &reqwest::Client, base: &str, id: &str) -> Vec<(String, Value)> {
    let mut resp = client
        .get(format!("{base}/api/v1/tasks/{id}/logs"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut buf = String::new();
    let read = async {
        while let Some(chunk) = resp.chunk().await.unwrap() {
            buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("log stream ends");
    buf.split("\n\n")
        .filter_map(|block| {
            let event = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((event.to_owned(), serde_json::from_str(data).unwrap()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_tail_inspect_and_delete() {
    let agent = start("basic", &[]);
    let base = format!("http://{}", agent.api_addr());
    let client = reqwest::Client::new();

    let id = submit(
        &client,
        &base,
        &sh_task("hello", "echo one; echo two >&2; sleep 0.3; echo three"),
    )
    .await;
    let events = tail(&client, &base, &id).await;
    let names: Vec<_> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names.first(), Some(&"run-started"), "{events:?}");
    assert_eq!(names.last(), Some(&"run-finished"), "{events:?}");
    let lines: Vec<_> = events
        .iter()
        .filter(|(e, _)| e == "chunk")
        .map(|(_, d)| {
            (
                d["stream"].as_str().unwrap().to_owned(),
                d["line"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        lines.contains(&("stdout".into(), "one".into())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&("stderr".into(), "two".into())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&("stdout".into(), "three".into())),
        "{lines:?}"
    );
    assert_eq!(events.last().unwrap().1["exitCode"], 0);

    let task: Value = client
        .get(format!("{base}/api/v1/tasks/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        task["task"]["status"]["phase"], "TASK_STATUS_SUCCEEDED",
        "{task}"
    );
    assert_eq!(task["task"]["metadata"]["id"], id.as_str());
    let runs: Value = client
        .get(format!("{base}/api/v1/tasks/{id}/runs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(runs["runs"][0]["exitCode"], 0);

    let list: Value = client
        .get(format!("{base}/api/v1/tasks?status=succeeded"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 1, "{list}");

    let resp = client
        .delete(format!("{base}/api/v1/tasks/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = client
        .get(format!("{base}/api/v1/tasks/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"], "TaskNotFound");

    let metrics = client
        .get(agent.metrics_url())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for family in [
        "solti_build_info{agent=\"agentd-http\",",
        "solti_sv_tasks_by_phase",
        "solti_api_requests_total",
    ] {
        assert!(metrics.contains(family), "missing {family} in scrape");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_tasks_reaps_children_and_exits_zero() {
    let mut agent = start("shutdown", &["--shutdown-grace-ms", "8000"]);
    let base = format!("http://{}", agent.api_addr());
    let client = reqwest::Client::new();
    // A child that ignores SIGTERM, with a grandchild in the background.
    let id = submit(
        &client,
        &base,
        &sh_task("sleeper", "trap '' TERM; sleep 300 & echo $$ $!; wait"),
    )
    .await;
    let mut resp = client
        .get(format!("{base}/api/v1/tasks/{id}/logs"))
        .send()
        .await
        .unwrap();
    let mut buf = String::new();
    let pids: Vec<i32> = loop {
        let chunk = tokio::time::timeout(Duration::from_secs(20), resp.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(line) = buf.lines().find(|l| l.contains("\"type\":\"chunk\"")) {
            let data: Value = serde_json::from_str(line.trim_start_matches("data: ")).unwrap();
            break data["line"]
                .as_str()
                .unwrap()
                .split_whitespace()
                .map(|p| p.parse().unwrap())
                .collect();
        }
    };
    assert!(pids.iter().all(|&p| process_alive(p)));

    // The open log stream outlives the signal: the task is stopped (SIGTERM ignored, so
    // SIGKILL after the runner's 5 s grace), the stream carries `run-finished` and ends.
    agent.send_sigterm().unwrap();
    let rest = async {
        while let Some(chunk) = resp.chunk().await.unwrap() {
            buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(Duration::from_secs(20), rest)
        .await
        .expect("the log stream ends after SIGTERM");
    assert!(
        buf.contains("event: run-finished"),
        "no run-finished before the stream ended:\n{buf}"
    );
    let status = tokio::task::block_in_place(|| agent.wait_exit(Duration::from_secs(20))).unwrap();
    assert!(status.success(), "agent exit status {status:?}");
    for pid in pids {
        assert!(
            !process_alive(pid),
            "pid {pid} survived the agent's shutdown"
        );
    }
}

/// A connection that never sends a byte does not hold the agent's exit until the drain bound
/// (here 31 s: shutdown grace 30 s + 1 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_silent_connection_exits_promptly() {
    let mut agent = start("silent", &["--shutdown-grace-ms", "30000"]);
    let _silent = std::net::TcpStream::connect(agent.api_addr()).unwrap();
    // The agent has accepted it once a request on another connection is answered.
    let base = format!("http://{}", agent.api_addr());
    let resp = reqwest::get(format!("{base}/api/v1/tasks")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let started = std::time::Instant::now();
    agent.send_sigterm().unwrap();
    let status = tokio::task::block_in_place(|| agent.wait_exit(Duration::from_secs(60))).unwrap();
    assert!(status.success(), "agent exit status {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "exit took {:?}: the silent connection held the drain",
        started.elapsed()
    );
}

#[test]
fn agent_id_survives_restart_and_unsafe_listen_is_refused() {
    let dir = scratch("identity");
    let bin = Path::new(env!("CARGO_BIN_EXE_agentd-http"));
    let first = AgentProcess::start(bin, &dir, &[]).unwrap();
    let id = first.ready["agent-id"].clone();
    drop(first);
    let second = AgentProcess::start(bin, &dir, &[]).unwrap();
    assert_eq!(second.ready["agent-id"], id);
    drop(second);

    let out = std::process::Command::new(bin)
        .args([
            "--listen",
            "0.0.0.0:0",
            "--metrics-listen",
            "off",
            "--state-dir",
        ])
        .arg(dir.join("state"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("insecure"), "{stderr}");
}

/// A Podium double: records Sync requests, and on the first one pushes a task to the agent's
/// advertised endpoint with the agent's token, as the control plane does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_with_a_control_plane_that_then_pushes_a_task() {
    use axum::{Json, Router, extract::State, http::HeaderMap, routing::post};
    use tokio::sync::mpsc;

    let (tx, mut rx) = mpsc::unbounded_channel::<(HeaderMap, Value)>();
    let app = Router::new()
        .route(
            "/api/v1/discovery/sync",
            post(
                |State(tx): State<mpsc::UnboundedSender<(HeaderMap, Value)>>,
                 headers: HeaderMap,
                 Json(body): Json<Value>| async move {
                    let _ = tx.send((headers, body));
                    Json(json!({"success": true}))
                },
            ),
        )
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cp = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let agent = start(
        "podium",
        &[
            "--control-plane",
            &cp,
            "--heartbeat-ms",
            "1000",
            "--token",
            "podium-shared-token",
            "--agent-name",
            "e2e",
            "--metadata",
            "rack=r7",
            "--metadata",
            "zone=eu-1",
        ],
    );
    let (headers, body) = tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(headers["authorization"], "Bearer podium-shared-token");
    assert_eq!(body["id"], agent.ready["agent-id"].as_str());
    assert_eq!(body["name"], "e2e");
    assert_eq!(body["endpointType"], "ENDPOINT_TYPE_HTTP");
    assert_eq!(body["apiVersion"], 1);
    assert_eq!(body["heartbeatIntervalS"], 1);
    assert_eq!(body["platform"], std::env::consts::OS);
    assert_eq!(body["arch"], std::env::consts::ARCH);
    assert_eq!(body["metadata"], json!({"rack": "r7", "zone": "eu-1"}));
    // Derived from the registered runners: agentd-http registers the subprocess runner only.
    assert_eq!(body["capabilities"], json!(["subprocess"]));
    let endpoint = body["endpoint"].as_str().unwrap().to_owned();
    assert_eq!(endpoint, format!("http://{}", agent.api_addr()));

    // The control plane drives the agent through its own API at the advertised endpoint.
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{endpoint}/api/v1/tasks"))
        .bearer_auth("podium-shared-token")
        .json(&sh_task("from-podium", "echo pushed"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let unauth = client
        .get(format!("{endpoint}/api/v1/tasks"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), 401);

    // And the heartbeat keeps coming.
    let (_, second) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second["id"], body["id"]);
    server.abort();
}
