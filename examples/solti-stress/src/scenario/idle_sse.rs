//! `idle-sse`: M idle SSE connections to one long-running task all stay open and get
//! keep-alives; the agent keeps answering; deleting the task ends every stream.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Result;
use tokio::{sync::Semaphore, task::JoinSet};

use super::{Ctx, command_spec, poll, stop_agent};
use crate::{
    client::{is_terminal, phase_of},
    report::{Report, latency_summary, mib},
    sse::SseItem,
};

/// The agent's keep-alive interval is 15 s; wait a little longer for the first one.
const KEEP_ALIVE_WAIT: Duration = Duration::from_secs(20);

pub(super) async fn run(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let m: usize = ctx.size(200, 1_000);
    let agent = ctx.agent("idle-sse").await?;
    let api = agent.api();
    let id = api
        .submit(&command_spec(
            "idle-sse",
            "sleep",
            &["3600"],
            Duration::from_secs(7200),
        ))
        .await?;
    let running = poll(Duration::from_secs(20), Duration::from_millis(100), || {
        let (api, id) = (api.clone(), id.clone());
        async move {
            api.task(&id)
                .await
                .ok()
                .filter(|t| phase_of(t) == "TASK_STATUS_RUNNING")
        }
    })
    .await;
    report.check(
        "task-running",
        running.is_some(),
        format!("task {id} running"),
    );
    let rss_before = agent.rss_kib();

    // Open M subscriptions, 50 at a time; each counts keep-alives until its stream ends.
    let keepalive_conns = Arc::new(AtomicUsize::new(0));
    let opened = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(50));
    let open_started = Instant::now();
    let mut subs = JoinSet::new();
    for _ in 0..m {
        let (api, id, gate, ka, opened) = (
            api.clone(),
            id.clone(),
            Arc::clone(&gate),
            Arc::clone(&keepalive_conns),
            Arc::clone(&opened),
        );
        subs.spawn(async move {
            let permit = gate.acquire_owned().await;
            let mut stream = api.logs(&id).await?;
            opened.fetch_add(1, Ordering::Relaxed);
            drop(permit);
            let mut got_keepalive = false;
            let mut events = 0usize;
            loop {
                match stream.next().await? {
                    None => return Ok::<_, anyhow::Error>((got_keepalive, events)),
                    Some(SseItem::Comment(_)) => {
                        if !got_keepalive {
                            got_keepalive = true;
                            ka.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Some(SseItem::Event { .. }) => events += 1,
                }
            }
        });
    }
    let all_open = poll(Duration::from_secs(60), Duration::from_millis(100), || {
        let opened = Arc::clone(&opened);
        async move { (opened.load(Ordering::Relaxed) == m).then_some(()) }
    })
    .await;
    report.check(
        "all-open",
        all_open.is_some(),
        format!(
            "{}/{m} subscriptions answered 200 text/event-stream in {:.1}s",
            opened.load(Ordering::Relaxed),
            open_started.elapsed().as_secs_f64()
        ),
    );
    let rss_open = agent.rss_kib();

    // While they idle, the agent must keep answering others.
    let mut latencies = Vec::new();
    let mut errors = 0;
    for _ in 0..20 {
        let t = Instant::now();
        match api.get("/api/v1/tasks?limit=10").await {
            Ok(r) if r.status.as_u16() == 200 => latencies.push(t.elapsed()),
            _ => errors += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let max = latencies.iter().max().copied().unwrap_or(Duration::MAX);
    report.check(
        "api-responsive",
        errors == 0 && max < Duration::from_secs(1),
        format!(
            "20 GET /api/v1/tasks with {m} idle streams open: {} errors, {}",
            errors,
            latency_summary(&mut latencies)
        ),
    );

    let ka = poll(KEEP_ALIVE_WAIT, Duration::from_millis(250), || {
        let k = Arc::clone(&keepalive_conns);
        async move { (k.load(Ordering::Relaxed) >= m).then_some(()) }
    })
    .await;
    let finished_early = subs.len() < m;
    report.check(
        "keep-alives",
        ka.is_some() && !finished_early,
        format!(
            "{}/{m} streams received a keep-alive comment within {}s of opening; {} streams ended early",
            keepalive_conns.load(Ordering::Relaxed),
            open_started.elapsed().as_secs(),
            m - subs.len()
        ),
    );

    // Deleting the task ends every stream.
    let deleted = api.delete(&id).await?;
    let end_started = Instant::now();
    let mut ended_ok = 0;
    let mut errs = Vec::new();
    let drained = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(joined) = subs.join_next().await {
            match joined {
                Ok(Ok(_)) => ended_ok += 1,
                Ok(Err(e)) => errs.push(format!("{e:#}")),
                Err(e) => errs.push(e.to_string()),
            }
        }
    })
    .await;
    report.check(
        "streams-end-on-delete",
        drained.is_ok() && ended_ok == m,
        format!(
            "DELETE -> {}; {ended_ok}/{m} streams ended cleanly within {:.1}s{}",
            deleted.as_u16(),
            end_started.elapsed().as_secs_f64(),
            super::load::first_failures(&errs)
        ),
    );
    subs.abort_all();
    let after = api.get(&format!("/api/v1/tasks/{id}")).await?;
    let phase = phase_of(after.json().get("task").unwrap_or(&serde_json::Value::Null));
    report.check(
        "task-gone-after-delete",
        after.status.as_u16() == 404 || is_terminal(&phase),
        format!("GET task after DELETE -> {} {phase}", after.status.as_u16()),
    );
    report.info(
        "rss",
        format!(
            "agent RSS before={} with {m} streams={}",
            mib(rss_before),
            mib(rss_open)
        ),
    );
    stop_agent(agent, report).await;
    Ok(())
}
