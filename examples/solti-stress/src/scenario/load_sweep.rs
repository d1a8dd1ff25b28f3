//! `load`, second part: the same rounds of short tasks against an agent with short retention
//! (`--run-ttl-ms 1000 --task-ttl-ms 1000 --sweep-interval-ms 500 --malloc-trim-ms 500`),
//! never deleting anything: the agent's own sweep must remove every task, and the resident
//! size must come back to its start-up baseline.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::Value;

use super::{Ctx, RssSampler, poll, stop_agent};
use crate::{
    agent::Agent,
    client::Api,
    report::{Report, mib},
};

/// Retention of the agent under test: runs and terminal tasks kept 1 s each, swept every
/// 500 ms, freed heap handed back every 500 ms.
const RETENTION: &[&str] = &[
    "--run-ttl-ms",
    "1000",
    "--task-ttl-ms",
    "1000",
    "--sweep-interval-ms",
    "500",
    "--malloc-trim-ms",
    "500",
];

/// How far above its start-up RSS the agent may stay once the sweep has removed everything.
/// Measured on the 2-core box (debug build, 2026-11-27): +3.8 to +5.0 MiB after rounds of
/// 1,000 tasks, +6.7 to +6.9 MiB after rounds of 10,000, the same from round to round. What
/// stays is not task state (the list is empty, the store's maps have shrunk): about 1.9 MiB
/// resident in each tokio worker thread's glibc arena that `malloc_trim` does not return
/// (fragments, and runtime and connection caches kept for reuse), plus code pages of the
/// binary touched for the first time. The bound is about 1.7 times the measured value and
/// fixed per size, not per round: a leak of 200 bytes per task would exceed it by round 3
/// of the long run.
fn allowance_kib(n: usize) -> u64 {
    if n > 1_000 { 12 * 1024 } else { 8 * 1024 }
}

pub(super) async fn run(ctx: &Ctx, report: &mut Report, n: usize) -> Result<()> {
    let mut opts = ctx.opts("load-sweep")?;
    opts.args.extend(RETENTION.iter().map(|s| (*s).to_owned()));
    let agent = Agent::start(&opts).await?;
    // Let start-up settle and a trim pass run before taking the baseline.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let baseline = agent.rss_kib();
    let api = agent.api();
    let allowance = allowance_kib(n);
    let mut rows = Vec::new();
    let mut worst = 0;
    for round in 1..=ctx.load_rounds {
        let sampler = RssSampler::start(agent.pid());
        let succeeded_before = succeeded_attempts(&agent).await;
        let started = Instant::now();
        let ids = super::load::submit_all(
            &api,
            report,
            "sweep-all-201",
            n,
            round,
            &format!("sweep-{round}"),
        )
        .await?;
        let submitted = started.elapsed();
        // Nothing is deleted: the list empties only through the sweep.
        let within = ctx.size(Duration::from_secs(60), Duration::from_secs(600));
        let emptied = poll(within, Duration::from_millis(100), || {
            let api = api.clone();
            async move { (listed(&api).await? == 0).then_some(()) }
        })
        .await
        .is_some();
        let swept_after = started.elapsed();
        let succeeded = succeeded_attempts(&agent)
            .await
            .saturating_sub(succeeded_before);
        report.check(
            "swept-all",
            emptied && succeeded == ids.len() as u64,
            format!(
                "round {round}: {} tasks submitted in {:.1}s, no DELETE sent; list empty {:.1}s after the first \
                 submit (emptied by the sweep: {emptied}); {succeeded}/{} attempts ended `success` \
                 (solti_runner_tasks_completed_total)",
                ids.len(),
                submitted.as_secs_f64(),
                swept_after.as_secs_f64(),
                ids.len()
            ),
        );
        // Three trim passes (500 ms each) after the last sweep.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let after = agent.rss_kib();
        worst = worst.max(after);
        rows.push(format!(
            "round {round}: peak={} after-sweep={} (+{})",
            mib(sampler.stop()),
            mib(after),
            mib(after.saturating_sub(baseline))
        ));
    }
    report.check(
        "rss-after-sweep",
        worst <= baseline + allowance,
        format!(
            "agent with {}: RSS at start {}; {}; bound: start + {} for {n} tasks per round",
            RETENTION.join(" "),
            mib(baseline),
            rows.join("; "),
            mib(allowance)
        ),
    );
    stop_agent(agent, report).await;
    Ok(())
}

/// `total` of the unfiltered task list.
async fn listed(api: &Api) -> Option<u64> {
    api.get("/api/v1/tasks?limit=1")
        .await
        .ok()?
        .json()
        .get("total")
        .and_then(Value::as_u64)
}

/// Sum of `solti_runner_tasks_completed_total{runner="default",outcome="success"}` (0 when
/// unreadable): the internal embedded tasks (the sweep itself, the trim) count apart, under
/// their own runner.
async fn succeeded_attempts(agent: &Agent) -> u64 {
    let Some(addr) = agent.startup.metrics else {
        return 0;
    };
    let Ok(res) = Api::new(addr, None).get("/metrics").await else {
        return 0;
    };
    let text = String::from_utf8_lossy(&res.body).into_owned();
    text.lines()
        .filter(|l| {
            l.starts_with("solti_runner_tasks_completed_total{")
                && l.contains("runner=\"default\"")
                && l.contains("outcome=\"success\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| {
            // Counters are integral; the float form is Prometheus' text format.
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "a non-negative integral counter"
            )]
            let v = v as u64;
            v
        })
        .sum()
}
