//! Agent start-up time and idle memory: starts the real `agentd-http` binary 10 times and
//! reports the time from `exec` to the start-up line and the resident set size after one
//! second idle. Then writes a state store holding 100,000 terminal tasks (one finished run
//! each; `SOLTI_BENCH_STORED` to change it) and starts the agent on it 3 times: the time to
//! the start-up line with every task loaded, and the resident set. Run with
//! `cargo bench -p agentd-http --bench startup`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench code")]

use std::{path::Path, time::Instant};

use agentd_kit::testing::AgentProcess;
use solti_core::{DiskStore, StateConfig, StateStore as _, store::RunEnd};
use solti_model::{
    ObjectMeta, SubprocessSpec, Task, TaskId, TaskKind, TaskPhase, TaskSpec, TaskStatus,
};
use solti_runner::now_ms;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn main() {
    let bin = Path::new(env!("CARGO_BIN_EXE_agentd-http"));
    let scratch = std::env::temp_dir().join(format!("agentd-startup-bench-{}", std::process::id()));
    let mut ready_ms = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let agent = AgentProcess::start(bin, &scratch, &[]).unwrap();
        ready_ms.push(start.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(std::time::Duration::from_secs(1));
        rss.push(rss_kib(agent.pid()));
        drop(agent);
    }
    ready_ms.sort_by(f64::total_cmp);
    rss.sort_unstable();
    println!(
        "agentd-http start to ready: median {:.1} ms, max {:.1} ms (10 starts)",
        ready_ms[ready_ms.len() / 2],
        ready_ms[ready_ms.len() - 1]
    );
    println!(
        "agentd-http idle RSS after 1 s: median {:.1} MiB, max {:.1} MiB",
        rss[rss.len() / 2] as f64 / 1024.0,
        rss[rss.len() - 1] as f64 / 1024.0
    );
    let _ = std::fs::remove_dir_all(&scratch);
    stored_start(bin);
}

/// Start-up of the real agent on a store holding many terminal tasks.
fn stored_start(bin: &Path) {
    let stored: usize = std::env::var("SOLTI_BENCH_STORED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = std::env::temp_dir().join(format!("agentd-startup-stored-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("agentd-http.tasks.redb");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = DiskStore::open(&file, &StateConfig::default().with_max_tasks(stored)).unwrap();
        for i in 0..stored {
            let kind = TaskKind::Subprocess(SubprocessSpec::command("echo", [format!("task {i}")]));
            let spec = TaskSpec::builder(format!("stored-{i}"), kind, 30_000u64)
                .build()
                .unwrap();
            let task = Task::new(
                ObjectMeta::new(TaskId::generate(), now_ms()),
                spec,
                TaskStatus::new(TaskPhase::Pending),
            );
            let id = task.metadata.id.clone();
            store.create(task, true).unwrap();
            store.run_started(&id, 1, now_ms());
            let end = || RunEnd::new(TaskPhase::Succeeded, now_ms(), None);
            store.run_finished(&id, 1, end());
            store.finish(&id, end(), TaskPhase::Canceled);
            if i % 10_000 == 9_999 {
                store.sync().await.unwrap();
            }
        }
        store.sync().await.unwrap();
        store.close();
    });
    let bytes = std::fs::metadata(&file).unwrap().len();
    let mut ready_ms = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let max = stored.to_string();
        let mut agent = AgentProcess::start_with_state(bin, &dir, &["--max-tasks", &max]).unwrap();
        ready_ms.push(start.elapsed().as_secs_f64() * 1000.0);
        rss.push(rss_kib(agent.pid()));
        assert!(
            agent
                .terminate(std::time::Duration::from_secs(30))
                .unwrap()
                .success()
        );
    }
    ready_ms.sort_by(f64::total_cmp);
    println!(
        "agentd-http start to ready with {stored} stored terminal tasks ({bytes} bytes, {:.0} bytes per \
         task): median {:.0} ms, max {:.0} ms (3 starts); RSS when ready: {:.1} MiB",
        bytes as f64 / stored as f64,
        ready_ms[ready_ms.len() / 2],
        ready_ms[ready_ms.len() - 1],
        rss[rss.len() / 2] as f64 / 1024.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}
