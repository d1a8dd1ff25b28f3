//! Live-log throughput of the real agent over SSE: a task runs `seq 1 1000000` and one
//! client reads `GET /api/v1/tasks/{id}/logs` to its end, counting `chunk` events (and
//! checking their `seq`s), next to `seq 1 1000000` read straight from a pipe. Timed from the
//! first line to the last; 5 rounds, medians. Two agents: the default retention (1 MiB per
//! task: a reader slower than `seq` falls out of the window and gets `lagged`, because the
//! runner never waits for it), and 16 MiB per task (the whole output fits, so every line is
//! delivered). Run with `cargo bench -p agentd-http --bench sse_throughput`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench code")]

use std::{
    path::Path,
    time::{Duration, Instant},
};

use agentd_kit::testing::AgentProcess;
use serde_json::json;
use tokio::io::AsyncBufReadExt as _;

const LINES: u64 = 1_000_000;
const ROUNDS: usize = 5;

/// Chunk events per second through the agent, from the first to the last, with the events
/// received and the `lagged` events.
async fn sse_round(base: &str, client: &reqwest::Client, round: usize) -> (f64, u64, u64) {
    // The task waits a moment so the subscription is open before its first line.
    let body = json!({"spec": {
        "slot": format!("seq-{round}"),
        "kind": {"subprocess": {"command": {"command": "sh",
            "args": ["-c", format!("sleep 0.2; exec seq 1 {LINES}")]}}},
        "timeoutMs": "60000",
        "restart": "RESTART_STRATEGY_NEVER",
        "admission": "ADMISSION_STRATEGY_DROP_IF_RUNNING"
    }});
    let resp = client
        .post(format!("{base}/api/v1/tasks"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<serde_json::Value>().await.unwrap()["taskId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut resp = client
        .get(format!("{base}/api/v1/tasks/{id}/logs"))
        .send()
        .await
        .unwrap();
    let (mut chunks, mut lagged) = (0u64, 0u64);
    let mut start = None;
    let mut carry = Vec::new();
    while let Some(bytes) = resp.chunk().await.unwrap() {
        carry.extend_from_slice(&bytes);
        // Count complete `event: chunk` lines; keep a partial line for the next read.
        let end = carry.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        for line in carry[..end].split(|&b| b == b'\n') {
            if line == b"event: chunk" {
                start.get_or_insert_with(Instant::now);
                chunks += 1;
            } else if line == b"event: lagged" {
                lagged += 1;
            }
        }
        carry.drain(..end);
    }
    let elapsed = start.map_or(Duration::ZERO, |s| s.elapsed());
    client
        .delete(format!("{base}/api/v1/tasks/{id}"))
        .send()
        .await
        .unwrap();
    (chunks as f64 / elapsed.as_secs_f64(), chunks, lagged)
}

/// Lines per second of `seq` read straight from a pipe, line by line.
async fn raw_round() -> f64 {
    let mut child = tokio::process::Command::new("seq")
        .args(["1", &LINES.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, child.stdout.take().unwrap());
    let (mut buf, mut count, mut start) = (Vec::new(), 0u64, None);
    while reader.read_until(b'\n', &mut buf).await.unwrap() > 0 {
        start.get_or_insert_with(Instant::now);
        buf.clear();
        count += 1;
    }
    child.wait().await.unwrap();
    count as f64 / start.unwrap().elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    for (label, extra) in [
        ("default retention (1 MiB per task)", &[][..]),
        (
            "--log-retention-bytes 16777216",
            &["--log-retention-bytes", "16777216"][..],
        ),
    ] {
        agent_rounds(label, extra).await;
    }
}

async fn agent_rounds(label: &str, extra: &[&str]) {
    let bin = Path::new(env!("CARGO_BIN_EXE_agentd-http"));
    let scratch = std::env::temp_dir().join(format!("agentd-sse-bench-{}", std::process::id()));
    let mut args = vec!["--log-level", "warn"];
    args.extend_from_slice(extra);
    let agent = AgentProcess::start(bin, &scratch, &args).unwrap();
    let base = format!("http://{}", agent.api_addr());
    let client = reqwest::Client::new();
    let (mut sse, mut raw) = (Vec::new(), Vec::new());
    let (mut min_chunks, mut max_lagged) = (u64::MAX, 0u64);
    for round in 0..ROUNDS {
        raw.push(raw_round().await);
        let (rate, chunks, lagged) = sse_round(&base, &client, round).await;
        sse.push(rate);
        min_chunks = min_chunks.min(chunks);
        max_lagged = max_lagged.max(lagged);
        println!(
            "round {round}: raw pipe {:.0} lines/s, SSE {rate:.0} chunk events/s ({chunks} chunks, {lagged} lagged events)",
            raw[round]
        );
    }
    let (raw, sse) = (median(raw), median(sse));
    println!(
        "{LINES} lines, one SSE client, {label}: median {:.2} M events/s; raw pipe reader {:.2} M lines/s; ratio {:.2}; fewest chunks delivered {min_chunks}, most lagged events {max_lagged}",
        sse / 1e6,
        raw / 1e6,
        sse / raw
    );
    drop(agent);
    let _ = std::fs::remove_dir_all(&scratch);
}
