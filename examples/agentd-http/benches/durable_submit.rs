//! Submission throughput of the real `agentd-http` with `--state disk` against
//! `--state memory`, same run: 32 concurrent HTTP clients submit `true` subprocess tasks until
//! every submission is acknowledged (`201`, durable with `--state disk`). Run with
//! `cargo bench -p agentd-http --bench durable_submit` (`SOLTI_BENCH_TASKS`, default 4000).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench code")]

use std::{path::Path, time::Instant};

use agentd_kit::testing::AgentProcess;
use serde_json::json;

const CLIENTS: usize = 32;

async fn round(state: &str, tasks: usize, scratch: &Path) -> f64 {
    let dir = scratch.join(state);
    let _ = std::fs::remove_dir_all(&dir);
    let bin = Path::new(env!("CARGO_BIN_EXE_agentd-http"));
    let mut agent = AgentProcess::start_with_state(bin, &dir, &["--state", state]).unwrap();
    let base = format!("http://{}", agent.api_addr());
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut joins = Vec::new();
    for c in 0..CLIENTS {
        let (client, base) = (client.clone(), base.clone());
        joins.push(tokio::spawn(async move {
            let mut i = c;
            while i < tasks {
                let body = json!({"spec": {
                    "slot": format!("b{i}"),
                    "kind": {"subprocess": {"command": {"command": "true", "args": []}}},
                    "timeoutMs": "30000"
                }});
                let resp = client
                    .post(format!("{base}/api/v1/tasks"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 201);
                i += CLIENTS;
            }
        }));
    }
    for j in joins {
        j.await.unwrap();
    }
    let rate = tasks as f64 / started.elapsed().as_secs_f64();
    agent.terminate(std::time::Duration::from_secs(60)).unwrap();
    rate
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tasks: usize = std::env::var("SOLTI_BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let scratch = std::env::temp_dir().join(format!("agentd-durable-bench-{}", std::process::id()));
    println!("agentd-http submissions, {CLIENTS} clients, {tasks} `true` tasks per round");
    let _ = round("memory", tasks / 4, &scratch).await;
    let (mut mem, mut disk) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        mem.push(round("memory", tasks, &scratch).await);
        disk.push(round("disk", tasks, &scratch).await);
    }
    mem.sort_by(f64::total_cmp);
    disk.sort_by(f64::total_cmp);
    println!(
        "  --state memory: median {:.0} submissions/s ({mem:.0?})",
        mem[1]
    );
    println!(
        "  --state disk:   median {:.0} submissions/s ({disk:.0?})",
        disk[1]
    );
    println!("  ratio disk/memory: {:.2}", disk[1] / mem[1]);
    let _ = std::fs::remove_dir_all(&scratch);
}
