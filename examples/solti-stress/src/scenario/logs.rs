//! `logs`: K tasks printing L lines each, S subscribers that keep up (every line, in order,
//! stream ends) and one deliberately slow subscriber (gets `lagged`); memory stays bounded.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use tokio::task::JoinSet;

use super::{
    Ctx, RssSampler, WAIT_FOR_GATE, bash_spec, open_gate, paced_lines_script, shell_spec,
    stop_agent,
};
use crate::{
    client::{Api, SseStream, is_terminal, phase_of},
    report::{Report, mib},
    sse::{LogEvent, SseItem},
};

/// Lines per `seq` burst: below the agent's 256-event channel buffer, so a reader that keeps
/// up between bursts never lags.
const BATCH: u64 = 100;
/// RSS growth above which the agent's memory is not considered bounded.
const RSS_BOUND_KIB: u64 = 256 * 1024;

pub(super) async fn run(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let (tasks, lines, subscribers): (usize, u64, usize) =
        ctx.size((10, 10_000, 10), (100, 100_000, 50));
    // The agent keeps 1 MiB of output per task (each line charged its bytes + 16, each batch 128 more), so a
    // reader lags only once it is more than that behind: the burst must be larger.
    let burst_lines: u64 = ctx.size(200_000, 500_000);
    // Short: 10 tasks at 5,000 lines/s each. Long: 100 tasks at 400 lines/s each (40,000
    // lines/s in all, about what a 2-core box sustains with 50 subscribers decoding them).
    let pause = ctx.size("0.02", "0.25");
    let agent = ctx.agent("logs").await?;
    let api = agent.api();
    let gate = ctx.dir("logs-gate")?.join("go");
    let gate_s = gate.to_string_lossy().into_owned();
    let timeout = Duration::from_secs(3600);

    let script = paced_lines_script(lines, BATCH, pause);
    let mut ids = Vec::new();
    for k in 0..tasks {
        ids.push(
            api.submit(&bash_spec(
                &format!("logs-{k}"),
                &script,
                &[("GATE", &gate_s)],
                timeout,
            ))
            .await?,
        );
    }
    let burst_script = format!("{WAIT_FOR_GATE}seq 0 {}", burst_lines - 1);
    let burst_id = api
        .submit(&shell_spec(
            "logs-burst",
            &burst_script,
            &[("GATE", &gate_s)],
            timeout,
        ))
        .await?;

    // Subscribe everyone before any line is printed.
    let rss_before = agent.rss_kib();
    let sampler = RssSampler::start(agent.pid());
    let mut streams = Vec::new();
    for s in 0..subscribers {
        let id = &ids[s % tasks];
        streams.push((
            s,
            id.clone(),
            api.logs(id)
                .await
                .with_context(|| format!("subscriber {s}"))?,
        ));
    }
    let slow = SseStream::open(
        api.addr,
        api.token.as_deref(),
        &format!("/api/v1/tasks/{burst_id}/logs"),
        Some(4096),
    )
    .await?;
    let started = Instant::now();
    open_gate(&gate)?;

    let mut readers = JoinSet::new();
    for (s, id, stream) in streams {
        readers.spawn(async move { (s, id, follow(stream).await) });
    }
    let slow_reader = tokio::spawn(slow_follow(slow, api.clone(), burst_id.clone()));

    let mut bad = Vec::new();
    let mut delivered = 0u64;
    let mut lagged_fast = 0;
    while let Some(joined) = readers.join_next().await {
        let (s, id, seen) = joined?;
        delivered += seen.chunks;
        lagged_fast += seen.lagged;
        if let Some(problem) = seen.problem(lines) {
            bad.push(format!("subscriber {s} (task {id}): {problem}"));
        }
    }
    let took = started.elapsed();
    #[expect(clippy::cast_precision_loss, reason = "display only")]
    let rate = delivered as f64 / took.as_secs_f64();
    report.check(
        "keep-up-subscribers",
        bad.is_empty(),
        format!(
            "{}/{subscribers} subscribers got all {lines} lines in order and saw the stream end; {delivered} lines \
             delivered in {:.1}s ({rate:.0} lines/s); lagged events among them: {lagged_fast}{}",
            subscribers - bad.len(),
            took.as_secs_f64(),
            super::load::first_failures(&bad),
        ),
    );

    match slow_reader.await? {
        Ok(seen) => {
            let ok = seen.lagged > 0 && seen.ended && seen.order_error.is_none();
            report.check(
                "slow-subscriber-lagged",
                ok,
                format!(
                    "slow subscriber (4 KiB receive buffer, paused until the {burst_lines}-line task ended): {} lagged \
                     events skipping {} lines, {} lines received, seq strictly increasing: {}, stream ended: {}",
                    seen.lagged,
                    seen.skipped,
                    seen.chunks,
                    seen.order_error.as_deref().unwrap_or("yes"),
                    seen.ended
                ),
            );
        }
        Err(e) => {
            report.check("slow-subscriber-lagged", false, format!("{e:#}"));
        }
    }

    let mut phases: HashMap<String, usize> = HashMap::new();
    for id in ids.iter().chain(std::iter::once(&burst_id)) {
        *phases
            .entry(
                api.task(id)
                    .await
                    .map(|t| phase_of(&t))
                    .unwrap_or_else(|e| format!("{e:#}")),
            )
            .or_default() += 1;
    }
    let all_ok = phases.get("TASK_STATUS_SUCCEEDED") == Some(&(tasks + 1));
    report.check("tasks-succeeded", all_ok, format!("{phases:?}"));

    let peak = sampler.stop();
    let after = agent.rss_kib();
    report.check(
        "rss-bounded",
        peak.saturating_sub(rss_before) < RSS_BOUND_KIB,
        format!(
            "agent RSS before={} peak={} after={} (bound: +{})",
            mib(rss_before),
            mib(peak),
            mib(after),
            mib(RSS_BOUND_KIB)
        ),
    );
    stop_agent(agent, report).await;
    Ok(())
}

/// What one subscriber saw.
#[derive(Debug, Default)]
pub(super) struct Seen {
    pub(super) chunks: u64,
    pub(super) lagged: u64,
    pub(super) skipped: u64,
    pub(super) finished: Vec<(u32, Option<i32>)>,
    pub(super) started: Vec<u32>,
    pub(super) ended: bool,
    pub(super) order_error: Option<String>,
    pub(super) error: Option<String>,
}

impl Seen {
    /// Why this keep-up subscriber failed, if it did.
    fn problem(&self, lines: u64) -> Option<String> {
        if let Some(e) = &self.error {
            return Some(e.clone());
        }
        if let Some(e) = &self.order_error {
            return Some(e.clone());
        }
        if self.lagged > 0 {
            return Some(format!(
                "lagged {} times ({} skipped)",
                self.lagged, self.skipped
            ));
        }
        if self.chunks != lines {
            return Some(format!("{} of {lines} lines", self.chunks));
        }
        if self.finished.is_empty() {
            return Some("no run-finished".to_owned());
        }
        (!self.ended).then(|| "stream did not end".to_owned())
    }
}

/// Reads a subscription to its end, checking that each (attempt, stream) has contiguous
/// `seq` from 0 and that each line's text is its `seq` (what `seq` printed).
pub(super) async fn follow(mut stream: SseStream) -> Seen {
    let mut seen = Seen::default();
    let mut next: HashMap<(u32, String), u64> = HashMap::new();
    loop {
        match stream.next().await {
            Ok(None) => {
                seen.ended = true;
                return seen;
            }
            Ok(Some(SseItem::Comment(_))) => {}
            Ok(Some(SseItem::Event { name, data })) => match LogEvent::decode(&name, &data) {
                Ok(LogEvent::Chunk {
                    attempt,
                    stream,
                    seq,
                    line,
                }) => {
                    seen.chunks += 1;
                    let expected = next.entry((attempt, stream.clone())).or_insert(0);
                    if seen.order_error.is_none()
                        && seen.lagged == 0
                        && (seq != *expected || line != seq.to_string())
                    {
                        seen.order_error = Some(format!(
                            "attempt {attempt} {stream}: expected seq {expected}, got seq {seq} line {line:?}"
                        ));
                    }
                    *expected = seq + 1;
                }
                Ok(LogEvent::Lagged { skipped }) => {
                    seen.lagged += 1;
                    seen.skipped += skipped;
                }
                Ok(LogEvent::RunStarted { attempt }) => seen.started.push(attempt),
                Ok(LogEvent::RunFinished { attempt, exit_code }) => {
                    seen.finished.push((attempt, exit_code))
                }
                Err(e) => {
                    seen.error.get_or_insert(e);
                }
            },
            Err(e) => {
                seen.error = Some(format!("{e:#}"));
                return seen;
            }
        }
    }
}

/// The slow subscriber: reads nothing until the burst task is terminal, then drains,
/// checking that seq only increases.
async fn slow_follow(mut stream: SseStream, api: Api, id: String) -> Result<Seen> {
    let terminal = super::poll(Duration::from_secs(300), Duration::from_millis(200), || {
        let (api, id) = (api.clone(), id.clone());
        async move {
            api.task(&id)
                .await
                .ok()
                .filter(|t| is_terminal(&phase_of(t)))
        }
    })
    .await;
    terminal.context("burst task never became terminal")?;
    let mut seen = Seen::default();
    let mut last: Option<u64> = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(120), stream.next())
            .await
            .context("slow subscriber: stream stalled")?
        {
            Ok(None) => {
                seen.ended = true;
                return Ok(seen);
            }
            Ok(Some(SseItem::Event { name, data })) => match LogEvent::decode(&name, &data) {
                Ok(LogEvent::Chunk { seq, .. }) => {
                    seen.chunks += 1;
                    if last.is_some_and(|l| seq <= l) && seen.order_error.is_none() {
                        seen.order_error = Some(format!("seq {seq} after {last:?}"));
                    }
                    last = Some(seq);
                }
                Ok(LogEvent::Lagged { skipped }) => {
                    seen.lagged += 1;
                    seen.skipped += skipped;
                }
                Ok(_) => {}
                Err(e) => seen.error = Some(e),
            },
            Ok(Some(SseItem::Comment(_))) => {}
            Err(e) => return Err(e),
        }
    }
}
