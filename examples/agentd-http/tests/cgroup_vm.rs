//! End-to-end under real cgroup v2 limits: a configuration FILE gives every task a memory
//! limit, and a memory hog submitted through the real agent's HTTP API is OOM-killed (the
//! task FAILED, the kill in its run's error); with a task user from the same file, a task
//! cannot lift its own limits.
//!
//! Needs root and a pure cgroup v2 host with the memory controller (`/sys/fs/cgroup`): it
//! runs in the throw-away VM of `../shared/tools/run-in-vm.sh` (`.ci/run` does, see
//! docs/subprocess-isolation.md), and prints `SKIPPED` and passes anywhere else (this
//! sandbox mounts cgroups in hybrid mode). The agent binary is `AGENTD_HTTP_BIN` when set,
//! else the one cargo built (copy it into the VM at the same path with `CGVM_FILES`).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use agentd_kit::testing::AgentProcess;
use serde_json::{Value, json};

/// Whether this host can run the test; prints why not.
fn cgroup_v2_memory_or_skip(what: &str) -> bool {
    let controllers = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers");
    let root = nix::unistd::geteuid().is_root();
    match controllers {
        Ok(c) if root && c.split_whitespace().any(|w| w == "memory") => {
            // A fresh VM's loopback interface is down; the agent listens on 127.0.0.1.
            let _ = std::process::Command::new("ip")
                .args(["link", "set", "lo", "up"])
                .status();
            true
        }
        Ok(_) if !root => {
            eprintln!("SKIPPED {what}: needs root (run it with ../shared/tools/run-in-vm.sh)");
            false
        }
        _ => {
            eprintln!(
                "SKIPPED {what}: /sys/fs/cgroup is not a cgroup v2 root with the memory \
                 controller on this host (run it with ../shared/tools/run-in-vm.sh)"
            );
            false
        }
    }
}

fn agent_bin() -> PathBuf {
    std::env::var_os("AGENTD_HTTP_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_agentd-http")),
        PathBuf::from,
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("agentd-http-vm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts the agent with only `--config FILE` (plus test-local listen addresses).
fn start_with_config(dir: &Path, toml: &str) -> AgentProcess {
    let config = dir.join("agent.toml");
    std::fs::write(&config, toml).unwrap();
    AgentProcess::start(&agent_bin(), dir, &["--config", config.to_str().unwrap()]).unwrap()
}

/// Submits a `/bin/sh -c script` task; returns its id.
async fn submit(client: &reqwest::Client, base: &str, slot: &str, script: &str) -> String {
    let res = client
        .post(format!("{base}/api/v1/tasks"))
        .json(&json!({"spec": {
            "slot": slot,
            "kind": {"subprocess": {
                "command": {"command": "/bin/sh", "args": ["-c", script]},
                "failOnNonZero": true
            }},
            "timeoutMs": "120000",
            "restart": "RESTART_STRATEGY_NEVER",
            "admission": "ADMISSION_STRATEGY_DROP_IF_RUNNING"
        }}))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body["taskId"].as_str().unwrap().to_owned()
}

/// Polls the task until it is terminal (a hang guard of two minutes, software-emulated VM).
async fn wait_terminal(client: &reqwest::Client, base: &str, id: &str) -> Value {
    for _ in 0..2400 {
        let v: Value = client
            .get(format!("{base}/api/v1/tasks/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let phase = v["task"]["status"]["phase"].as_str().unwrap_or_default();
        if [
            "TASK_STATUS_SUCCEEDED",
            "TASK_STATUS_FAILED",
            "TASK_STATUS_TIMEOUT",
            "TASK_STATUS_CANCELED",
        ]
        .contains(&phase)
        {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task {id} never finished");
}

async fn runs(client: &reqwest::Client, base: &str, id: &str) -> Value {
    client
        .get(format!("{base}/api/v1/tasks/{id}/runs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_limit_from_the_config_file_oom_kills_a_hog() {
    if !cgroup_v2_memory_or_skip("OOM through the config file") {
        return;
    }
    let dir = scratch("oom");
    let parent = "/sys/fs/cgroup/solti-vm-oom";
    let mut agent = start_with_config(
        &dir,
        &format!(
            "cgroup_parent = {parent:?}\ntask_memory_max = \"32M\"\ntask_pids_max = 64\n\
             require_isolation = true\n"
        ),
    );
    let base = format!("http://{}", agent.api_addr());
    let client = reqwest::Client::new();

    // The limit is the file's, seen from inside a task.
    let probe = submit(
        &client,
        &base,
        "probe",
        "read m < /sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/memory.max; \
         test \"$m\" = 33554432",
    )
    .await;
    let v = wait_terminal(&client, &base, &probe).await;
    assert_eq!(v["task"]["status"]["phase"], "TASK_STATUS_SUCCEEDED", "{v}");

    // The hog doubles a shell variable until the kernel kills it.
    let hog = submit(&client, &base, "hog", "a=x; while :; do a=$a$a; done").await;
    let v = wait_terminal(&client, &base, &hog).await;
    assert_eq!(v["task"]["status"]["phase"], "TASK_STATUS_FAILED", "{v}");
    let r = runs(&client, &base, &hog).await;
    let error = r["runs"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    eprintln!("hog run: {r}");
    assert!(
        error.contains("SIGKILL"),
        "the run does not show the kill: {r}"
    );
    // The kernel counted the OOM kill in the task's parent cgroup (its attempt cgroup is
    // already gone; its events are propagated upwards).
    let events = std::fs::read_to_string(format!("{parent}/memory.events")).unwrap();
    let oom_kills: u64 = events
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(oom_kills >= 1, "memory.events of {parent}: {events}");

    // The agent is unharmed and still runs tasks.
    let after = submit(&client, &base, "after", "true").await;
    let v = wait_terminal(&client, &base, &after).await;
    assert_eq!(v["task"]["status"]["phase"], "TASK_STATUS_SUCCEEDED", "{v}");
    assert!(agent.terminate(Duration::from_secs(60)).unwrap().success());
    let _ = std::fs::remove_dir(parent);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_user_from_the_config_file_cannot_lift_its_limits() {
    if !cgroup_v2_memory_or_skip("task user through the config file") {
        return;
    }
    let dir = scratch("user");
    let parent = "/sys/fs/cgroup/solti-vm-user";
    // `nobody` by number: the VM has no user database.
    let mut agent = start_with_config(
        &dir,
        &format!(
            "cgroup_parent = {parent:?}\ntask_memory_max = \"32M\"\ntask_pids_max = 64\n\
             task_user = \"65534\"\ntask_group = \"65534\"\nrequire_isolation = true\n"
        ),
    );
    let base = format!("http://{}", agent.api_addr());
    let client = reqwest::Client::new();
    // Exits 0 only if every write is refused and the limits stand.
    let script = "cg=/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup); \
        test \"$(id -u)\" = 65534 || exit 10; \
        echo max > $cg/memory.max 2>/dev/null && exit 11; \
        echo max > $cg/pids.max 2>/dev/null && exit 12; \
        echo $$ > /sys/fs/cgroup/cgroup.procs 2>/dev/null && exit 13; \
        read m < $cg/memory.max; test \"$m\" = 33554432 || exit 14; \
        read p < $cg/pids.max; test \"$p\" = 64 || exit 15";
    let id = submit(&client, &base, "lift", script).await;
    let v = wait_terminal(&client, &base, &id).await;
    assert_eq!(
        v["task"]["status"]["phase"],
        "TASK_STATUS_SUCCEEDED",
        "{v} {}",
        runs(&client, &base, &id).await
    );
    assert!(agent.terminate(Duration::from_secs(60)).unwrap().success());
    let _ = std::fs::remove_dir(parent);
    let _ = std::fs::remove_dir_all(&dir);
}
