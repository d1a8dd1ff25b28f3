//! Agent start-up time and idle memory: starts the real `agentd-http` binary 10 times and
//! reports the time from `exec` to the start-up line and the resident set size after one
//! second idle. Run with `cargo bench -p agentd-http --bench startup`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench code")]

use std::{path::Path, time::Instant};

use agentd_kit::testing::AgentProcess;

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
}
