//! End-to-end durable state: the real `agentd-http` binary killed (SIGKILL) or stopped
//! (SIGTERM) and started again on the same `--state-dir` (docs/state.md).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use agentd_kit::testing::AgentProcess;
use serde_json::{Value, json};

const REASON: &str = "agent restarted during the run";

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_agentd-http"))
}

fn state_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("agentd-http-durable-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("state")
}

fn task(slot: &str, script: &str, restart: &str) -> Value {
    json!({"spec": {
        "slot": slot,
        "kind": {"subprocess": {"command": {"command": "sh", "args": ["-c", script]}, "failOnNonZero": true}},
        "timeoutMs": "60000",
        "restart": restart,
        "admission": "ADMISSION_STRATEGY_QUEUE"
    }})
}

/// Every listed task, by pages of 1000, in list order.
async fn list_all(client: &reqwest::Client, base: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let page: Value = client
            .get(format!(
                "{base}/api/v1/tasks?limit=1000&offset={}",
                out.len()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = page["tasks"].as_array().unwrap().clone();
        let total: usize = page["total"].as_u64().unwrap().try_into().unwrap();
        let empty = items.is_empty();
        out.extend(items);
        if empty || out.len() >= total {
            return out;
        }
    }
}

async fn get(client: &reqwest::Client, base: &str, path: &str) -> Value {
    client
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls until `check` holds (each poll reads the agent again); the deadline is generous.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..600 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_task_and_resumes_by_policy() {
    let dir = state_dir("kill");
    let agent = AgentProcess::start_with_state(binary(), &dir, &[]).unwrap();
    let base = format!("http://{}", agent.api_addr());
    let client = reqwest::Client::new();

    // 32 clients submit a mix: long ALWAYS and NEVER tasks, and quick ones.
    let mut kinds: HashMap<String, &'static str> = HashMap::new();
    let acked = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for c in 0..32 {
        let (client, base, acked) = (client.clone(), base.clone(), Arc::clone(&acked));
        clients.push(tokio::spawn(async move {
            for i in 0..8 {
                let (body, kind) = match i {
                    0 => (
                        task(
                            &format!("always-{c}"),
                            "sleep 15",
                            "RESTART_STRATEGY_ALWAYS",
                        ),
                        "always",
                    ),
                    1 => (
                        task(&format!("never-{c}"), "sleep 15", "RESTART_STRATEGY_NEVER"),
                        "never",
                    ),
                    _ => (
                        task(&format!("quick-{c}-{i}"), "true", "RESTART_STRATEGY_NEVER"),
                        "quick",
                    ),
                };
                let resp = client
                    .post(format!("{base}/api/v1/tasks"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 201);
                let v: Value = resp.json().await.unwrap();
                acked
                    .lock()
                    .await
                    .push((v["taskId"].as_str().unwrap().to_owned(), kind));
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    for (id, kind) in acked.lock().await.iter() {
        kinds.insert(id.clone(), kind);
    }
    assert_eq!(kinds.len(), 256);
    // The long tasks have started (their runs are open when the agent dies).
    eventually("long tasks running", || async {
        let all = list_all(&client, &base).await;
        all.iter()
            .filter(|t| t["status"]["phase"] == "TASK_STATUS_RUNNING")
            .count()
            == 64
    })
    .await;

    let pid = nix::unistd::Pid::from_raw(i32::try_from(agent.pid()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let mut agent = agent;
    agent.wait_exit(Duration::from_secs(10)).unwrap();
    drop(agent);

    let again = AgentProcess::start_with_state(binary(), &dir, &[]).unwrap();
    let base = format!("http://{}", again.api_addr());
    let all = list_all(&client, &base).await;
    let ids: Vec<String> = all
        .iter()
        .map(|t| t["metadata"]["id"].as_str().unwrap().to_owned())
        .collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no task listed twice");
    for id in kinds.keys() {
        assert!(unique.contains(id), "acknowledged task {id} is listed");
    }
    for (id, kind) in &kinds {
        match *kind {
            "always" => {
                eventually("ALWAYS task running again", || async {
                    let t = get(&client, &base, &format!("/api/v1/tasks/{id}")).await;
                    t["task"]["status"]["phase"] == "TASK_STATUS_RUNNING"
                        && t["task"]["status"]["attempt"] == 2
                })
                .await;
                let runs = get(&client, &base, &format!("/api/v1/tasks/{id}/runs")).await;
                let first = &runs["runs"][0];
                assert_eq!(first["status"], "TASK_STATUS_FAILED", "{runs}");
                assert_eq!(first["error"], REASON, "{runs}");
            }
            "never" => {
                let t = get(&client, &base, &format!("/api/v1/tasks/{id}")).await;
                assert_eq!(t["task"]["status"]["phase"], "TASK_STATUS_FAILED", "{t}");
                assert_eq!(t["task"]["status"]["error"], REASON, "{t}");
                let runs = get(&client, &base, &format!("/api/v1/tasks/{id}/runs")).await;
                assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
            }
            _ => {}
        }
    }
    // Gracefully, so the restarted tasks are reaped (the first agent's children, orphaned
    // by the SIGKILL, end with their `sleep`).
    let mut again = again;
    assert!(again.terminate(Duration::from_secs(30)).unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_restart_lists_terminal_tasks_with_identical_json() {
    let dir = state_dir("term");
    let mut agent = AgentProcess::start_with_state(binary(), &dir, &[]).unwrap();
    let base = format!("http://{}", agent.api_addr());
    let client = reqwest::Client::new();
    for i in 0..50 {
        let script = if i % 5 == 0 { "exit 3" } else { "echo hi" };
        let resp = client
            .post(format!("{base}/api/v1/tasks"))
            .json(&task(&format!("t{i}"), script, "RESTART_STRATEGY_NEVER"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
    eventually("all terminal", || async {
        let all = list_all(&client, &base).await;
        all.len() == 50
            && all.iter().all(|t| {
                matches!(
                    t["status"]["phase"].as_str(),
                    Some("TASK_STATUS_SUCCEEDED" | "TASK_STATUS_FAILED")
                )
            })
    })
    .await;
    let before = list_all(&client, &base).await;
    let mut runs_before = Vec::new();
    for t in &before {
        let id = t["metadata"]["id"].as_str().unwrap();
        runs_before.push(get(&client, &base, &format!("/api/v1/tasks/{id}/runs")).await);
    }
    assert!(agent.terminate(Duration::from_secs(30)).unwrap().success());
    drop(agent);

    let again = AgentProcess::start_with_state(binary(), &dir, &[]).unwrap();
    let base = format!("http://{}", again.api_addr());
    assert_eq!(list_all(&client, &base).await, before);
    for (t, runs) in before.iter().zip(&runs_before) {
        let id = t["metadata"]["id"].as_str().unwrap();
        assert_eq!(
            &get(&client, &base, &format!("/api/v1/tasks/{id}/runs")).await,
            runs
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_store_stops_start_up_until_reset() {
    let dir = state_dir("corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("agentd-http.tasks.redb");
    std::fs::write(&file, vec![0x42_u8; 8192]).unwrap();
    let log = dir.with_file_name("agent.log");
    let err = AgentProcess::start_custom(
        binary(),
        &dir,
        &[],
        &[],
        Some(std::fs::File::create(&log).unwrap()),
    );
    assert!(err.is_err(), "start-up must fail on a corrupted store");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(&file.display().to_string()), "{text}");
    assert!(text.contains("--state-reset"), "{text}");

    let agent = AgentProcess::start_with_state(binary(), &dir, &["--state-reset"]).unwrap();
    let base = format!("http://{}", agent.api_addr());
    let client = reqwest::Client::new();
    assert!(list_all(&client, &base).await.is_empty());
    let aside = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().contains(".reset-"));
    assert!(aside, "the corrupted file was moved aside, not deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_state_forgets_tasks_on_restart() {
    let dir = state_dir("memory");
    let mut agent = AgentProcess::start_with_state(binary(), &dir, &["--state", "memory"]).unwrap();
    let base = format!("http://{}", agent.api_addr());
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{base}/api/v1/tasks"))
        .json(&task("m", "true", "RESTART_STRATEGY_NEVER"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert!(agent.terminate(Duration::from_secs(30)).unwrap().success());
    drop(agent);
    let again = AgentProcess::start_with_state(binary(), &dir, &["--state", "memory"]).unwrap();
    let base = format!("http://{}", again.api_addr());
    assert!(list_all(&client, &base).await.is_empty());
    assert!(!dir.join("agentd-http.tasks.redb").exists());
}
