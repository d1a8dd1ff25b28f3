//! End-to-end: SIGHUP to the real `agentd-http` with a task running and a changed token file:
//! the old token is refused, the new one accepted, and the task runs on untouched.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::{path::Path, time::Duration};

use agentd_kit::testing::{AgentProcess, process_alive};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

const OLD: &str = "old-token-0123456789abcdef";
const NEW: &str = "new-token-fedcba9876543210";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_the_token_and_keeps_the_running_task() {
    let dir = std::env::temp_dir().join(format!("agentd-http-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, OLD).unwrap();
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "token_file = {:?}\nheartbeat_ms = 5000\n",
            token_file.to_str().unwrap()
        ),
    )
    .unwrap();
    let log = dir.join("agent.log");
    let agent = AgentProcess::start_custom(
        Path::new(env!("CARGO_BIN_EXE_agentd-http")),
        &dir.join("state"),
        &["--config", config.to_str().unwrap()],
        &[],
        Some(std::fs::File::create(&log).unwrap()),
    )
    .unwrap();
    let base = format!("http://{}", agent.api_addr());
    let client = reqwest::Client::new();
    let get = |token: &'static str, path: String| {
        let client = client.clone();
        async move { client.get(path).bearer_auth(token).send().await.unwrap() }
    };

    let res = client
        .post(format!("{base}/api/v1/tasks"))
        .bearer_auth(OLD)
        .json(&json!({"spec": {
            "slot": "long",
            "kind": {"subprocess": {"command": {"command": "sh", "args": ["-c", "echo $$; while :; do sleep 0.2; done"]}}},
            "timeoutMs": "120000",
            "restart": "RESTART_STRATEGY_NEVER",
            "admission": "ADMISSION_STRATEGY_DROP_IF_RUNNING"
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["taskId"]
        .as_str()
        .unwrap()
        .to_owned();
    let task_url = format!("{base}/api/v1/tasks/{id}");
    let mut running = false;
    for _ in 0..400 {
        let v: Value = get(OLD, task_url.clone()).await.json().await.unwrap();
        if v["task"]["status"]["phase"] == "TASK_STATUS_RUNNING" {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(running);

    // A new token in the file, a config change that needs a restart, then SIGHUP.
    std::fs::write(&token_file, NEW).unwrap();
    std::fs::write(
        &config,
        format!(
            "token_file = {:?}\nheartbeat_ms = 6000\nlog_level = \"debug\"\n",
            token_file.to_str().unwrap()
        ),
    )
    .unwrap();
    agent.signal(Signal::SIGHUP).unwrap();
    let mut swapped = false;
    for _ in 0..400 {
        if get(OLD, task_url.clone()).await.status() == 401 {
            swapped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(swapped, "the old token is still accepted after SIGHUP");
    let res = get(NEW, task_url.clone()).await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["task"]["status"]["phase"], "TASK_STATUS_RUNNING", "{v}");
    assert_eq!(v["task"]["status"]["attempt"], 1, "{v}");
    let runs: Value = get(NEW, format!("{task_url}/runs"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
    assert!(runs["runs"][0].get("finishedAt").is_none(), "{runs}");
    assert!(process_alive(i32::try_from(agent.pid()).unwrap()));

    // The agent still serves and stops cleanly.
    let mut agent = agent;
    assert!(agent.terminate(Duration::from_secs(30)).unwrap().success());
    // The log says what was applied and what waits for a restart.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("log level changed"), "{text}");
    assert!(
        text.contains("reload done; running tasks untouched"),
        "{text}"
    );
    let ignored: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("takes effect at the next restart"))
        .collect();
    assert!(
        ignored.len() == 1 && ignored[0].contains("key=heartbeat_ms"),
        "{ignored:?}"
    );
}

/// `SOLTI_AGENT_TOKEN` beats the configuration file's `token` at start and after SIGHUP
/// (the agent removes the variable from its environment at start, and a reload used to
/// fall back to the file's token then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_keeps_the_env_token_over_the_files() {
    const ENV: &str = "env-token-0123456789abcdef";
    const FILE: &str = "file-token-0123456789abcdef";
    const FILE2: &str = "file-token-2-0123456789abcdef";
    let dir = std::env::temp_dir().join(format!("agentd-http-reload-env-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("agent.toml");
    std::fs::write(&config, format!("token = {FILE:?}\n")).unwrap();
    let log = dir.join("agent.log");
    let agent = AgentProcess::start_custom(
        Path::new(env!("CARGO_BIN_EXE_agentd-http")),
        &dir.join("state"),
        &["--config", config.to_str().unwrap()],
        &[("SOLTI_AGENT_TOKEN", ENV)],
        Some(std::fs::File::create(&log).unwrap()),
    )
    .unwrap();
    let url = format!("http://{}/api/v1/tasks", agent.api_addr());
    let client = reqwest::Client::new();
    let status = |token: &'static str| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(ENV).await, 200);
    assert_eq!(status(FILE).await, 401);

    std::fs::write(&config, format!("token = {FILE2:?}\n")).unwrap();
    agent.signal(Signal::SIGHUP).unwrap();
    let mut reloaded = false;
    for _ in 0..400 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("reload done") {
            reloaded = true;
            break;
        }
        assert!(!text.contains("reload failed"), "{text}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(reloaded, "no reload logged");
    assert_eq!(
        status(ENV).await,
        200,
        "the env token was replaced on reload"
    );
    assert_eq!(status(FILE).await, 401);
    assert_eq!(status(FILE2).await, 401);

    let mut agent = agent;
    assert!(agent.terminate(Duration::from_secs(30)).unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}
