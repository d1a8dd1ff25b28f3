//! What a task can see of the agent: environment and user, through the real `agentd-http`
//! binary on 127.0.0.1:0.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::{path::Path, time::Duration};

use agentd_kit::testing::AgentProcess;
use serde_json::{Value, json};

const AWS_SECRET: &str = "aws-secret-from-the-agent-env";
const TOKEN: &str = "token-from-the-agent-env";
static GO: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "agentd-http-task-env-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts the agent with a cloud credential and the API token in its environment.
fn start(name: &str, extra: &[&str], log: Option<std::fs::File>) -> AgentProcess {
    AgentProcess::start_custom(
        Path::new(env!("CARGO_BIN_EXE_agentd-http")),
        &scratch(name).join("state"),
        extra,
        &[
            ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
            ("SOLTI_AGENT_TOKEN", TOKEN),
        ],
        log,
    )
    .unwrap()
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    })
}

/// Runs `script` as a task and returns its stdout lines. The task waits for a go file that
/// is created once the log stream is open (logs are live), so no line is missed.
async fn task_output(agent: &AgentProcess, script: &str) -> Vec<String> {
    let base = format!("http://{}", agent.api_addr());
    let client = reqwest::Client::new();
    let go = agent.state_dir.with_file_name(format!(
        "go-{}",
        GO.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.01; done; {script}",
        go = go.display()
    );
    let body = json!({"spec": {
        "slot": "probe",
        "kind": {"subprocess": {"command": {"command": "sh", "args": ["-c", script]}, "failOnNonZero": true}},
        "timeoutMs": "30000",
        "restart": "RESTART_STRATEGY_NEVER",
        "admission": "ADMISSION_STRATEGY_REPLACE"
    }});
    let resp = client
        .post(format!("{base}/api/v1/tasks"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    let id = v["taskId"].as_str().unwrap().to_owned();
    let mut resp = client
        .get(format!("{base}/api/v1/tasks/{id}/logs"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    std::fs::write(&go, "").unwrap();
    let mut buf = String::new();
    let read = async {
        while let Some(chunk) = resp.chunk().await.unwrap() {
            buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("log stream ends");
    let mut lines = Vec::new();
    for block in buf.split("\n\n") {
        let event = block.lines().find_map(|l| l.strip_prefix("event: "));
        let data = block.lines().find_map(|l| l.strip_prefix("data: "));
        if let (Some("chunk"), Some(data)) = (event, data) {
            let d: Value = serde_json::from_str(data).unwrap();
            if d["stream"] == "stdout" {
                lines.push(d["line"].as_str().unwrap().to_owned());
            }
        }
        if event == Some("run-finished") {
            let d: Value = serde_json::from_str(data.unwrap()).unwrap();
            assert_eq!(d["exitCode"], 0, "{buf}");
        }
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_secrets_do_not_reach_tasks() {
    let agent = start("clean", &[], None);
    let env = task_output(&agent, "env").await;
    let all = env.join("\n");
    assert!(!all.contains("AWS_SECRET_ACCESS_KEY"), "{all}");
    assert!(!all.contains(AWS_SECRET), "{all}");
    assert!(!all.contains("SOLTI_"), "{all}");
    assert!(!all.contains(TOKEN), "{all}");
    assert!(env.iter().any(|l| l.starts_with("PATH=")), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inherit_env_is_opt_in_and_still_strips_agent_settings() {
    let agent = start("inherit", &["--inherit-env"], None);
    let env = task_output(&agent, "env").await;
    let all = env.join("\n");
    assert!(
        env.contains(&format!("AWS_SECRET_ACCESS_KEY={AWS_SECRET}")),
        "{all}"
    );
    assert!(!all.contains("SOLTI_"), "{all}");
    assert!(!all.contains(TOKEN), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_user_runs_tasks_as_that_user() {
    if !is_root() {
        eprintln!("SKIPPED task user test: switching users needs an agent running as root");
        return;
    }
    let agent = start(
        "user",
        &["--task-user", "65534", "--task-group", "65534"],
        None,
    );
    assert_eq!(task_output(&agent, "id -u").await, ["65534"]);
    assert_eq!(task_output(&agent, "id -G").await, ["65534"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_without_task_user_warns_at_start() {
    if !is_root() {
        eprintln!("SKIPPED root warning test: the agent does not run as root here");
        return;
    }
    let dir = scratch("warn-logs");
    let log = dir.join("agent.log");
    let mut agent = start(
        "warn",
        &["--log-format", "json"],
        Some(std::fs::File::create(&log).unwrap()),
    );
    agent.terminate(Duration::from_secs(30)).unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("the agent runs as root and tasks run as root too"),
        "{text}"
    );
    assert!(!text.contains(TOKEN), "the token was logged: {text}");

    let log = dir.join("agent-user.log");
    let mut agent = start(
        "warn-user",
        &["--task-user", "65534", "--task-group", "65534"],
        Some(std::fs::File::create(&log).unwrap()),
    );
    agent.terminate(Duration::from_secs(30)).unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("tasks run as root too"), "{text}");
    assert!(text.contains("tasks run as another user"), "{text}");
}

#[test]
fn unknown_task_user_is_refused_at_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agentd-http"))
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "off"])
        .arg("--state-dir")
        .arg(scratch("unknown").join("state"))
        .args(["--task-user", "solti-no-such-user"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--task-user / SOLTI_TASK_USER: no user named \"solti-no-such-user\""),
        "{err}"
    );
}
