//! `load`: N short tasks from 64 concurrent clients; every one 201, terminal, in /runs; then
//! the same load against an agent with short retention, left to the real sweep
//! ([`load_sweep`](super::load_sweep)).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Result;
use hyper::Method;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::{Ctx, RssSampler, command_spec, poll, stop_agent};
use crate::{
    client::{Api, task_id_of},
    report::{Report, latency_summary, mib},
};

const CLIENTS: usize = 64;
const TERMINAL: &[&str] = &["succeeded", "failed", "timeout", "canceled", "exhausted"];

/// Memory readings of one round, in KiB.
struct RoundRss {
    peak: u64,
    terminal: u64,
    deleted: u64,
    /// Size of a `/metrics` scrape after the round, in bytes.
    metrics: usize,
}

/// Bytes of a `/metrics` scrape (0 when metrics are off or the scrape fails).
pub(super) async fn metrics_size(agent: &crate::agent::Agent) -> usize {
    let Some(addr) = agent.startup.metrics else {
        return 0;
    };
    Api::new(addr, None)
        .get("/metrics")
        .await
        .map_or(0, |r| r.body.len())
}

pub(super) async fn run(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let n: usize = ctx.size(1_000, 10_000);
    // Trim freed heap every second (the default is 10 s), so the RSS read 2 s after each
    // round's deletes reflects what the agent still holds, not when the last trim ran.
    let mut opts = ctx.opts("load")?;
    opts.args
        .extend(["--malloc-trim-ms".to_owned(), "1000".to_owned()]);
    let agent = crate::agent::Agent::start(&opts).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = agent.rss_kib();
    let metrics_before = metrics_size(&agent).await;
    let mut rounds = Vec::new();
    for round in 1..=ctx.load_rounds {
        let mut r = sweep(ctx, &agent, report, n, round).await?;
        r.metrics = metrics_size(&agent).await;
        rounds.push(r);
    }
    let per_round: Vec<String> = rounds
        .iter()
        .enumerate()
        .map(|(i, r)| {
            format!(
                "round {}: peak={} all-terminal={} all-deleted={} /metrics={}B",
                i + 1,
                mib(r.peak),
                mib(r.terminal),
                mib(r.deleted),
                r.metrics
            )
        })
        .collect();
    report.info(
        "rss",
        format!(
            "agent RSS before={} /metrics={metrics_before}B; {}",
            mib(rss_before),
            per_round.join("; ")
        ),
    );
    // Freed memory stays with the allocator; what matters is that later identical rounds
    // reuse it instead of growing.
    let first = rounds.first().map_or(0, |r| r.deleted);
    let last = rounds.last().map_or(0, |r| r.deleted);
    report.check(
        "rss-no-growth",
        last <= first + first / 4 + 8 * 1024,
        format!(
            "RSS after deleting every task: round 1 {} (+{} over the baseline), round {} {} (bound: round 1 + 25% + 8 MiB)",
            mib(first),
            mib(first.saturating_sub(rss_before)),
            rounds.len(),
            mib(last)
        ),
    );
    stop_agent(agent, report).await;
    super::load_sweep::run(ctx, report, n).await
}

/// One round: submit n tasks, wait for all terminal, check their runs, delete them all.
async fn sweep(
    ctx: &Ctx,
    agent: &crate::agent::Agent,
    report: &mut Report,
    n: usize,
    round: usize,
) -> Result<RoundRss> {
    let api = agent.api();
    let sampler = RssSampler::start(agent.pid());

    let started = Instant::now();
    let ids = submit_all(&api, report, "all-201", n, round, &format!("load-{round}")).await?;

    // Wait until every task is terminal (sum of the status-filtered totals).
    let expected = ids.len() as u64;
    let settle = ctx.size(Duration::from_secs(60), Duration::from_secs(600));
    let done = poll(settle, Duration::from_millis(250), || {
        let api = api.clone();
        async move {
            let (total, _) = terminal_counts(&api).await.ok()?;
            (total >= expected).then_some(())
        }
    })
    .await
    .is_some();
    let (terminal, by_phase) = terminal_counts(&api).await?;
    report.check(
        "all-terminal",
        done && terminal == expected,
        format!("round {round}: {terminal}/{expected} terminal {:.1}s after the first submit ({by_phase})", started.elapsed().as_secs_f64()),
    );
    let succeeded = api.count("succeeded").await.unwrap_or(0);
    report.check(
        "all-succeeded",
        succeeded == expected,
        format!("round {round}: {succeeded}/{expected} succeeded"),
    );

    // Every task has its run in history.
    let runs_started = Instant::now();
    let ids = Arc::new(ids);
    let next = Arc::new(AtomicUsize::new(0));
    let mut checkers = JoinSet::new();
    for _ in 0..CLIENTS {
        let (api, ids, next) = (api.clone(), Arc::clone(&ids), Arc::clone(&next));
        checkers.spawn(runs_worker(api, ids, next));
    }
    let mut missing = Vec::new();
    while let Some(joined) = checkers.join_next().await {
        missing.extend(joined?);
    }
    report.check(
        "all-runs-recorded",
        missing.is_empty(),
        format!(
            "round {round}: {}/{} tasks have a finished run in /runs (checked in {:.1}s){}",
            ids.len() - missing.len(),
            ids.len(),
            runs_started.elapsed().as_secs_f64(),
            first_failures(&missing),
        ),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let terminal_rss = agent.rss_kib();

    // Delete every task (what the hourly sweep would do) and see what memory comes back.
    let del_started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut deleters = JoinSet::new();
    for _ in 0..CLIENTS {
        let (api, ids, next) = (api.clone(), Arc::clone(&ids), Arc::clone(&next));
        deleters.spawn(delete_worker(api, ids, next));
    }
    let mut del_failures = Vec::new();
    while let Some(joined) = deleters.join_next().await {
        del_failures.extend(joined?);
    }
    let left = api
        .get("/api/v1/tasks?limit=1")
        .await?
        .json()
        .get("total")
        .and_then(Value::as_u64);
    report.check(
        "delete-all",
        del_failures.is_empty() && left == Some(0),
        format!(
            "round {round}: {} DELETEs answered 204 in {:.1}s; tasks left: {left:?}{}",
            ids.len() - del_failures.len(),
            del_started.elapsed().as_secs_f64(),
            first_failures(&del_failures)
        ),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let peak = sampler.stop();
    Ok(RoundRss {
        peak,
        terminal: terminal_rss,
        deleted: agent.rss_kib(),
        metrics: 0,
    })
}

/// Submits `n` tasks (slots `{prefix}-{i}`) from 64 workers, each on its own keep-alive
/// connection, and checks (as `check`) that every one answered 201. Returns the task ids.
pub(super) async fn submit_all(
    api: &Api,
    report: &mut Report,
    check: &str,
    n: usize,
    round: usize,
    prefix: &str,
) -> Result<Vec<String>> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..CLIENTS {
        let (api, next) = (api.clone(), Arc::clone(&next));
        workers.spawn(submit_worker(api, next, n, prefix.to_owned()));
    }
    let (mut ids, mut latencies, mut failures) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::new());
    while let Some(joined) = workers.join_next().await {
        let w = joined?;
        ids.extend(w.ids);
        latencies.extend(w.latencies);
        failures.extend(w.failures);
    }
    let submit_time = started.elapsed();
    report.check(
        check,
        failures.is_empty() && ids.len() == n,
        format!(
            "round {round}: {}/{n} answered 201 in {:.1}s ({:.0} req/s, {CLIENTS} clients), latency {}{}",
            ids.len(),
            submit_time.as_secs_f64(),
            f64::from(u32::try_from(ids.len()).unwrap_or(u32::MAX)) / submit_time.as_secs_f64(),
            latency_summary(&mut latencies),
            first_failures(&failures),
        ),
    );
    Ok(ids)
}

struct Submitted {
    ids: Vec<String>,
    latencies: Vec<Duration>,
    failures: Vec<String>,
}

async fn submit_worker(api: Api, next: Arc<AtomicUsize>, n: usize, prefix: String) -> Submitted {
    let mut out = Submitted {
        ids: Vec::new(),
        latencies: Vec::new(),
        failures: Vec::new(),
    };
    let mut conn = None;
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            return out;
        }
        let spec = if i.is_multiple_of(2) {
            command_spec(
                &format!("{prefix}-{i}"),
                "true",
                &[],
                Duration::from_secs(60),
            )
        } else {
            command_spec(
                &format!("{prefix}-{i}"),
                "echo",
                &[&format!("task {i}")],
                Duration::from_secs(60),
            )
        };
        let body = json!({ "spec": spec });
        let t = Instant::now();
        let result = async {
            if conn.as_ref().is_none_or(crate::client::Conn::is_closed) {
                conn = Some(api.conn().await?);
            }
            let c = conn
                .as_mut()
                .ok_or_else(|| anyhow::anyhow!("no connection"))?;
            let res = c.send_json(Method::POST, "/api/v1/tasks", &body).await?;
            if res.status.as_u16() != 201 {
                anyhow::bail!("task {i}: {}", res.describe());
            }
            task_id_of(&res)
        }
        .await;
        out.latencies.push(t.elapsed());
        match result {
            Ok(id) => out.ids.push(id),
            Err(e) => {
                conn = None;
                out.failures.push(format!("{e:#}"));
            }
        }
    }
}

async fn delete_worker(api: Api, ids: Arc<Vec<String>>, next: Arc<AtomicUsize>) -> Vec<String> {
    let mut failures = Vec::new();
    let Ok(mut conn) = api.conn().await else {
        return vec!["could not connect".to_owned()];
    };
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(id) = ids.get(i) else {
            return failures;
        };
        match conn
            .send(Method::DELETE, &format!("/api/v1/tasks/{id}"), None, &[])
            .await
        {
            Ok(r) if r.status.as_u16() == 204 => {}
            Ok(r) => failures.push(format!("{id}: {}", r.describe())),
            Err(e) => {
                failures.push(format!("{id}: {e:#}"));
                match api.conn().await {
                    Ok(c) => conn = c,
                    Err(_) => return failures,
                }
            }
        }
    }
}

async fn runs_worker(api: Api, ids: Arc<Vec<String>>, next: Arc<AtomicUsize>) -> Vec<String> {
    let mut missing = Vec::new();
    let Ok(mut conn) = api.conn().await else {
        return vec!["could not connect".to_owned()];
    };
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(id) = ids.get(i) else { return missing };
        let res = match conn
            .send(Method::GET, &format!("/api/v1/tasks/{id}/runs"), None, &[])
            .await
        {
            Ok(r) => r,
            Err(e) => {
                missing.push(format!("{id}: {e:#}"));
                match api.conn().await {
                    Ok(c) => conn = c,
                    Err(_) => return missing,
                }
                continue;
            }
        };
        let runs = res
            .json()
            .get("runs")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let finished = runs.iter().any(|r| r.get("finishedAt").is_some());
        if res.status.as_u16() != 200 || !finished {
            missing.push(format!("{id}: {}", res.describe()));
        }
    }
}

/// Sum of the terminal-phase totals and a per-phase breakdown.
pub(super) async fn terminal_counts(api: &Api) -> Result<(u64, String)> {
    let mut sum = 0;
    let mut parts = Vec::new();
    for status in TERMINAL {
        let c = api.count(status).await?;
        sum += c;
        if c > 0 {
            parts.push(format!("{status}={c}"));
        }
    }
    for status in ["pending", "running"] {
        let c = api.count(status).await?;
        if c > 0 {
            parts.push(format!("{status}={c}"));
        }
    }
    Ok((sum, parts.join(" ")))
}

/// `; first failures: …` for up to three entries.
pub(super) fn first_failures(list: &[String]) -> String {
    if list.is_empty() {
        return String::new();
    }
    format!(
        "; {} failures, first: {}",
        list.len(),
        list.iter().take(3).cloned().collect::<Vec<_>>().join(" | ")
    )
}
