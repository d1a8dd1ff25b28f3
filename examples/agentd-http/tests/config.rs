//! End-to-end: `--config agent.toml` with the real `agentd-http`: precedence flag > env >
//! file > default, `--print-config`, refusal of bad files, and a file setting reaching tasks.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::{path::Path, process::Command, time::Duration};

use agentd_kit::testing::AgentProcess;
use serde_json::{Value, json};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_agentd-http"))
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("agentd-http-config-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn precedence_and_print_config() {
    let dir = scratch("print");
    let file = dir.join("agent.toml");
    std::fs::write(
        &file,
        "heartbeat_ms = 5000\nrun_ttl_ms = 1000\nlog_level = \"warn\"\ntoken = \"file-secret-token\"\n",
    )
    .unwrap();
    let out = Command::new(binary())
        .arg("--config")
        .arg(&file)
        .args(["--log-level", "debug", "--print-config"])
        .env("SOLTI_HEARTBEAT_MS", "7000")
        .env_remove("SOLTI_RUN_TTL_MS")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for line in [
        "log_level = \"debug\"  # flag",
        "heartbeat_ms = 7000  # env",
        "run_ttl_ms = 1000  # file",
        "task_ttl_ms = 3600000  # default",
        "token = \"<redacted>\"  # file",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
    }
    assert!(!text.contains("file-secret-token"));
}

#[test]
fn a_bad_file_stops_the_agent_naming_the_key() {
    let dir = scratch("bad");
    let file = dir.join("agent.toml");
    std::fs::write(&file, "task_pids_max = 0\n").unwrap();
    let out = Command::new(binary())
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`task_pids_max` = \"0\""), "{err}");
    std::fs::write(&file, "listen_address = \"127.0.0.1:1\"\n").unwrap();
    let out = Command::new(binary())
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown key `listen_address`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_limit_from_the_file_reaches_the_task() {
    let dir = scratch("rlimit");
    let file = dir.join("agent.toml");
    std::fs::write(&file, "rlimit_nofile = 77\n").unwrap();
    let agent = AgentProcess::start(binary(), &dir, &["--config", file.to_str().unwrap()]).unwrap();
    let base = format!("http://{}", agent.api_addr());
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{base}/api/v1/tasks"))
        .json(&json!({"spec": {
            "slot": "ulimit",
            "kind": {"subprocess": {"command": {"command": "sh", "args": ["-c", "test \"$(ulimit -n)\" = 77"]}, "failOnNonZero": true}},
            "timeoutMs": "30000",
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
    let mut phase = Value::Null;
    for _ in 0..400 {
        let v: Value = client
            .get(format!("{base}/api/v1/tasks/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        phase = v["task"]["status"]["phase"].clone();
        if phase != "TASK_STATUS_PENDING" && phase != "TASK_STATUS_RUNNING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(phase, "TASK_STATUS_SUCCEEDED");
}
