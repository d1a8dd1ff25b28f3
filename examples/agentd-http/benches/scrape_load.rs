//! Does scraping `/metrics` every 100 ms slow a 1,000-task run? Starts the real release
//! `agentd-http`, runs 1,000 `true` tasks (32 submitters, unique slots) until all are
//! terminal, with and without a concurrent scraper, alternating, 3 rounds each; prints the
//! medians and the slowdown. Run with `cargo bench -p agentd-http --bench scrape_load`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench code")]

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use agentd_kit::testing::AgentProcess;
use serde_json::{Value, json};

const TASKS: usize = 1_000;
const SUBMITTERS: usize = 32;

async fn run_once(base: &str, round: &str, client: &reqwest::Client) -> Duration {
    let start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..SUBMITTERS {
        let (client, base, next, round) = (
            client.clone(),
            base.to_owned(),
            Arc::clone(&next),
            round.to_owned(),
        );
        set.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= TASKS {
                    break;
                }
                let body = json!({"spec": {
                    "slot": format!("{round}-{n}"),
                    "kind": {"subprocess": {"command": {"command": "true"}, "failOnNonZero": true}},
                    "timeoutMs": "30000",
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
            }
        });
    }
    while set.join_next().await.is_some() {}
    // Wait until every task of this round is terminal.
    loop {
        let url = format!("{base}/api/v1/tasks?status=succeeded&limit=1");
        let page: Value = client.get(url).send().await.unwrap().json().await.unwrap();
        let done = page["total"].as_u64().unwrap();
        if done as usize >= TASKS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed();
    // Clear the round so the next one starts from an empty store.
    let page: Value = client
        .get(format!("{base}/api/v1/tasks?limit=1000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for task in page["tasks"].as_array().unwrap() {
        let id = task["metadata"]["id"].as_str().unwrap();
        client
            .delete(format!("{base}/api/v1/tasks/{id}"))
            .send()
            .await
            .unwrap();
    }
    elapsed
}

#[tokio::main]
async fn main() {
    let bin = Path::new(env!("CARGO_BIN_EXE_agentd-http"));
    let scratch = std::env::temp_dir().join(format!("agentd-scrape-bench-{}", std::process::id()));
    let agent = AgentProcess::start(bin, &scratch, &["--log-level", "warn"]).unwrap();
    let base = format!("http://{}", agent.api_addr());
    let metrics = agent.metrics_url();
    let client = reqwest::Client::new();
    let (mut plain, mut scraped) = (Vec::new(), Vec::new());
    for round in 0..3 {
        plain.push(run_once(&base, &format!("p{round}"), &client).await);
        let stop = Arc::new(AtomicBool::new(false));
        let scraper = {
            let (client, metrics, stop) = (client.clone(), metrics.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut scrapes = 0u32;
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let body = client
                        .get(&metrics)
                        .send()
                        .await
                        .unwrap()
                        .text()
                        .await
                        .unwrap();
                    assert!(body.contains("solti_sv_tasks_by_phase"));
                    scrapes += 1;
                }
                scrapes
            })
        };
        scraped.push(run_once(&base, &format!("s{round}"), &client).await);
        stop.store(true, Ordering::Relaxed);
        let scrapes = scraper.await.unwrap();
        println!(
            "round {round}: plain {:?}, scraped {:?} ({scrapes} scrapes)",
            plain[round], scraped[round]
        );
    }
    plain.sort();
    scraped.sort();
    let (p, s) = (plain[1].as_secs_f64(), scraped[1].as_secs_f64());
    println!(
        "1,000 tasks: median {:.0} ms without scraping, {:.0} ms with a scrape every 100 ms: {:+.1} %",
        p * 1000.0,
        s * 1000.0,
        (s / p - 1.0) * 100.0
    );
    drop(agent);
    let _ = std::fs::remove_dir_all(&scratch);
}
