//! End-to-end start-up order of the real `agentd-http`: every listener is bound before the
//! supervisor (and the tasks recovered from the durable store) starts; a failure after the
//! supervisor started stops it cleanly; a failed start leaves no socket file behind.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use agentd_kit::testing::{AgentProcess, process_alive, refused_start};
use serde_json::{Value, json};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_agentd-http"))
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("agentd-http-startup-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The pids the task wrote to `file`, one per attempt.
fn attempts(file: &Path) -> Vec<i32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

async fn wait_attempts(file: &Path, n: usize) -> Vec<i32> {
    for _ in 0..1200 {
        let seen = attempts(file);
        if seen.len() >= n {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{} never reached {n} attempts", file.display());
}

/// Starts an agent on `scratch/state` with a durable task that records each attempt's pid in
/// `scratch/attempts` and then sleeps, and stops it (the task is kept for the next start).
async fn agent_with_a_stored_task(scratch: &Path) -> PathBuf {
    let log = scratch.join("attempts");
    let mut agent = AgentProcess::start(binary(), scratch, &[]).unwrap();
    let res = reqwest::Client::new()
        .post(format!("http://{}/api/v1/tasks", agent.api_addr()))
        .json(&json!({"spec": {
            "slot": "resumed",
            "kind": {"subprocess": {"command": {"command": "sh", "args": [
                "-c", format!("echo $$ >> {}; exec sleep 1000", log.display())
            ]}}},
            "timeoutMs": "600000",
            "restart": "RESTART_STRATEGY_ALWAYS",
            "admission": "ADMISSION_STRATEGY_DROP_IF_RUNNING"
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    wait_attempts(&log, 1).await;
    assert!(agent.terminate(Duration::from_secs(30)).unwrap().success());
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_stops_the_start_before_any_stored_task_runs() {
    let dir = scratch("taken");
    let log = agent_with_a_stored_task(&dir).await;
    assert_eq!(attempts(&log).len(), 1);

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let err = refused_start(
        binary(),
        &dir,
        &["--listen", &port, "--metrics-listen", "127.0.0.1:0"],
    )
    .unwrap();
    assert!(err.contains("--listen: cannot bind"), "{err}");
    // The supervisor never started: the stored task did not run again.
    assert_eq!(attempts(&log).len(), 1, "{err}");
    // Nor when the metrics port is the one taken.
    let err = refused_start(
        binary(),
        &dir,
        &["--listen", "127.0.0.1:0", "--metrics-listen", &port],
    )
    .unwrap();
    assert!(err.contains("--metrics-listen: cannot bind"), "{err}");
    assert_eq!(attempts(&log).len(), 1, "{err}");
    drop(taken);

    // The store is intact: the next start resumes the task.
    let mut agent = AgentProcess::start(binary(), &dir, &[]).unwrap();
    wait_attempts(&log, 2).await;
    assert!(agent.terminate(Duration::from_secs(30)).unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_the_supervisor_started_stops_it_cleanly() {
    let dir = scratch("late");
    let log = agent_with_a_stored_task(&dir).await;
    // The discovery configuration fails (unreadable CA) after the supervisor started.
    let missing = dir.join("no-such-ca.pem");
    let err = refused_start(
        binary(),
        &dir,
        &[
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--control-plane",
            "https://127.0.0.1:9",
            "--cp-ca",
            missing.to_str().unwrap(),
        ],
    )
    .unwrap();
    assert!(err.contains("--cp-ca"), "{err}");
    assert!(err.contains("stopping the supervisor"), "{err}");
    // Whatever attempt of the stored task started meanwhile was stopped with the agent.
    for pid in attempts(&log) {
        assert!(
            !process_alive(pid),
            "attempt {pid} outlived the failed start: {err}"
        );
    }
    // The store was closed with the task kept: the next start resumes it.
    let before = attempts(&log).len();
    let mut agent = AgentProcess::start(binary(), &dir, &[]).unwrap();
    let base = format!("http://{}", agent.api_addr());
    wait_attempts(&log, before + 1).await;
    let list: Value = reqwest::get(format!("{base}/api/v1/tasks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 1, "{list}");
    assert!(agent.terminate(Duration::from_secs(30)).unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_start_leaves_no_socket_file() {
    let dir = scratch("socket");
    let sock = dir.join("agent.sock");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let err = refused_start(
        binary(),
        &dir,
        &[
            "--listen",
            &format!("unix:{}", sock.display()),
            "--metrics-listen",
            &port,
        ],
    )
    .unwrap();
    assert!(err.contains("--metrics-listen: cannot bind"), "{err}");
    assert!(!sock.exists(), "the failed start left {}", sock.display());
    // Nothing else was left next to it either (the private bind directory).
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".solti"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
