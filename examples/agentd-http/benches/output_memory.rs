//! Memory of retained output: the real release agent at its default retention (1 MiB per
//! task, 256 MiB for all) runs 10,000 tasks that each print 2 MiB (16,384 lines of 127
//! bytes), then the agent's resident size is read after a `malloc_trim` pass and compared
//! with the global budget + 64 MiB. Run with
//! `cargo bench -p agentd-http --bench output_memory` (add `-- N` for another task count).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench code")]

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use agentd_kit::testing::AgentProcess;
use serde_json::{Value, json};

const BUDGET_MIB: u64 = 256;
const WORKERS: usize = 8;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

async fn retained_bytes(client: &reqwest::Client, metrics: &str) -> u64 {
    let text = client
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("solti_output_retained_bytes "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(-1.0) as u64
}

#[tokio::main]
async fn main() {
    let tasks: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let bin = Path::new(env!("CARGO_BIN_EXE_agentd-http"));
    let scratch = std::env::temp_dir().join(format!("agentd-output-mem-{}", std::process::id()));
    let agent = AgentProcess::start(
        bin,
        &scratch,
        &["--log-level", "warn", "--malloc-trim-ms", "1000"],
    )
    .unwrap();
    let pid = agent.pid();
    let base = format!("http://{}", agent.api_addr());
    let metrics = agent.metrics_url();
    let metrics = metrics
        .trim_end_matches('/')
        .trim_end_matches("/metrics")
        .to_owned();
    let client = reqwest::Client::new();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let start_rss = rss_kib(pid);

    // 127 characters + LF per line, 16,384 lines = 2 MiB per task.
    let line = "x".repeat(127);
    let script = format!("yes {line} | head -n 16384");
    let next = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (client, base, script, next, peak) = (
            client.clone(),
            base.clone(),
            script.clone(),
            Arc::clone(&next),
            Arc::clone(&peak),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= tasks {
                    return;
                }
                let body = json!({"spec": {
                    "slot": format!("mem-{w}"),
                    "kind": {"subprocess": {"command": {"command": "sh", "args": ["-c", &script]}}},
                    "timeoutMs": "60000",
                    "admission": "ADMISSION_STRATEGY_QUEUE"
                }});
                let resp = client
                    .post(format!("{base}/api/v1/tasks"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 201);
                let id = resp.json::<Value>().await.unwrap()["taskId"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                loop {
                    let task: Value = client
                        .get(format!("{base}/api/v1/tasks/{id}"))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    let phase = task["task"]["status"]["phase"].as_str().unwrap().to_owned();
                    if phase == "TASK_STATUS_SUCCEEDED" {
                        break;
                    }
                    assert!(
                        phase.ends_with("PENDING") || phase.ends_with("RUNNING"),
                        "{phase}"
                    );
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                if n % 500 == 0 {
                    peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let ran = started.elapsed();
    peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
    // Let at least two malloc_trim passes run.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let end_rss = rss_kib(pid);
    let retained = retained_bytes(&client, &metrics).await;
    let bound = (BUDGET_MIB + 64) * 1024;
    println!(
        "{tasks} finished tasks x 2 MiB of output (ran in {:.1}s): RSS at start {:.1} MiB, peak {:.1} MiB, \
         after trim {:.1} MiB; retained output {:.1} MiB (solti_output_retained_bytes); \
         bound = budget {BUDGET_MIB} MiB + 64 MiB = {} MiB: {}",
        ran.as_secs_f64(),
        start_rss as f64 / 1024.0,
        peak.load(Ordering::Relaxed) as f64 / 1024.0,
        end_rss as f64 / 1024.0,
        retained as f64 / (1024.0 * 1024.0),
        bound / 1024,
        if end_rss <= bound { "within" } else { "OVER" }
    );
    drop(agent);
    let _ = std::fs::remove_dir_all(&scratch);
}
