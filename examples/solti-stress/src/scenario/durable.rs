//! `durable-kill`: `kill -9` of the agent in the middle of a submission burst, at random
//! points, and what must hold after each restart on the same `--state-dir` (issue 19,
//! docs/state.md): every acknowledged task is listed, none twice; `ALWAYS` tasks run again;
//! `NEVER` tasks that were running end `FAILED` saying why; every earlier task and its run
//! history come back unchanged.
//!
//! One agent state directory for every round, so round `r` also checks the history that
//! rounds `1..r` left: each restart must bring back every task listed before the burst with
//! identical JSON, and a sample of their run histories identical too.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use hyper::{Method, StatusCode};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use serde_json::{Value, json};

use super::{Ctx, command_spec, load::first_failures, poll, stop_agent};
use crate::{
    agent::Agent,
    client::{Api, is_terminal, phase_of, task_id_of},
    report::Report,
};

/// The error of a run (or a task) the agent stopped under by dying (docs/state.md).
pub(super) const REASON: &str = "agent restarted during the run";

/// Concurrent submitting clients.
const CLIENTS: usize = 32;

/// What a burst submits at index `i`: mostly quick tasks, every 50th a long `ALWAYS` task,
/// every 50th (shifted by 25) a long `NEVER` task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Always,
    Never,
    Quick,
}

impl Kind {
    /// The kind of a task of burst `round`, by its slot; `None` for other tasks.
    fn of_task(task: &Value, round: usize) -> Option<Self> {
        let rest = str_at(task, "/spec/slot").strip_prefix(&format!("dk{round}-"))?;
        let kind = rest.split('-').next()?;
        match kind {
            "always" => Some(Self::Always),
            "never" => Some(Self::Never),
            "quick" => Some(Self::Quick),
            _ => None,
        }
    }

    fn of(i: usize) -> Self {
        match i % 50 {
            0 => Self::Always,
            25 => Self::Never,
            _ => Self::Quick,
        }
    }
}

fn spec(round: usize, i: usize) -> Value {
    match Kind::of(i) {
        Kind::Always => {
            let mut s = command_spec(
                &format!("dk{round}-always-{i}"),
                "sleep",
                &["3600"],
                Duration::from_secs(7200),
            );
            s["restart"] = json!("RESTART_STRATEGY_ALWAYS");
            s
        }
        Kind::Never => command_spec(
            &format!("dk{round}-never-{i}"),
            "sleep",
            &["3600"],
            Duration::from_secs(7200),
        ),
        Kind::Quick => command_spec(
            &format!("dk{round}-quick-{i}"),
            "true",
            &[],
            Duration::from_secs(60),
        ),
    }
}

pub(super) async fn run(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let rounds = ctx.size(2, 10);
    let burst = ctx.size(600, 5_000);
    let sample = ctx.size(500, 2_000);
    let mut rng = fastrand::Rng::with_seed(ctx.seed);
    // Kill after a random count of acknowledgements, between 10 % and 90 % of the burst.
    let kill_points: Vec<usize> = (0..rounds)
        .map(|_| rng.usize(burst / 10..=burst * 9 / 10))
        .collect();
    report.info(
        "plan",
        format!(
            "seed {} (reproduce the kill points with --seed {}): {rounds} rounds of {burst} submissions \
             from {CLIENTS} clients, kill -9 after acknowledgement #{kill_points:?}",
            ctx.seed, ctx.seed
        ),
    );
    let opts = ctx.opts("durable-kill")?;
    let mut agent = Agent::start(&opts).await?;
    // Everything listed before the current burst, and the runs of a sample of it.
    let mut history: Vec<Value> = Vec::new();
    let mut history_runs: HashMap<String, Value> = HashMap::new();
    for (round, &kill_at) in kill_points.iter().enumerate() {
        let round = round + 1;
        let api = agent.api();
        let outcome = submit_and_kill(&api, agent.pid(), round, burst, kill_at).await;
        // Reap the agent (the SIGKILL was sent by the client that got acknowledgement #kill_at).
        agent.kill9().await?;
        let outcome = outcome?;
        let started = Instant::now();
        agent = Agent::start(&opts).await?;
        let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
        let api = agent.api();
        verify_round(
            &api,
            report,
            round,
            &outcome,
            ready_ms,
            &history,
            &history_runs,
        )
        .await?;
        // Settle the round: the tasks still running (the ALWAYS ones, acknowledged or not)
        // are cancelled, so every task is terminal and the next round can compare all of them.
        for t in list_all(&api).await? {
            if is_terminal(&phase_of(&t)) {
                continue;
            }
            cancel(&api, &task_id(&t)).await?;
        }
        let settled = poll(Duration::from_secs(60), Duration::from_millis(200), || {
            let api = api.clone();
            async move {
                let all = list_all(&api).await.ok()?;
                all.iter().all(|t| is_terminal(&phase_of(t))).then_some(all)
            }
        })
        .await;
        let Some(all) = settled else {
            report.check(
                &format!("round{round}-settled"),
                false,
                "tasks still not terminal 60 s after cancelling the ALWAYS tasks",
            );
            break;
        };
        history = all;
        let mut ids: Vec<String> = history.iter().map(task_id).collect();
        rng.shuffle(&mut ids);
        ids.truncate(sample);
        history_runs = fetch_runs(&api, &ids).await?;
    }
    stop_agent(agent, report).await;
    Ok(())
}

/// What one burst did before and at the kill.
#[derive(Debug, Default)]
struct Outcome {
    /// Acknowledged (201) task ids and the burst index each was submitted at.
    acked: HashMap<String, usize>,
    /// Requests sent but never answered (in flight at the kill, or sent just after it).
    unanswered: usize,
    /// Answers other than 201 before the kill.
    refused: Vec<String>,
    /// When the SIGKILL was sent, from the start of the burst.
    killed_after: Option<Duration>,
    /// Submissions done at the kill (acknowledged or not).
    sent_at_kill: usize,
    /// The acknowledgement after which the agent was killed.
    kill_at: usize,
}

/// `burst` submissions from [`CLIENTS`] keep-alive clients; the client that receives
/// acknowledgement number `kill_at` sends SIGKILL to the agent at once.
async fn submit_and_kill(
    api: &Api,
    pid: u32,
    round: usize,
    burst: usize,
    kill_at: usize,
) -> Result<Outcome> {
    let next = Arc::new(AtomicUsize::new(0));
    let acks = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let started = Instant::now();
    let pid = Pid::from_raw(i32::try_from(pid)?);
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (api, next, acks, killed, outcome) = (
            api.clone(),
            Arc::clone(&next),
            Arc::clone(&acks),
            Arc::clone(&killed),
            Arc::clone(&outcome),
        );
        clients.push(tokio::spawn(async move {
            let Ok(mut conn) = api.conn().await else {
                return;
            };
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= burst {
                    return;
                }
                let body = json!({ "spec": spec(round, i) });
                let res = conn.send_json(Method::POST, "/api/v1/tasks", &body).await;
                let mut out = outcome
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match res {
                    Ok(res) if res.status == StatusCode::CREATED => {
                        if let Ok(id) = task_id_of(&res) {
                            out.acked.insert(id, i);
                        }
                        if acks.fetch_add(1, Ordering::SeqCst) + 1 == kill_at
                            && !killed.swap(true, Ordering::SeqCst)
                        {
                            let _ = kill(pid, Signal::SIGKILL);
                            out.killed_after = Some(started.elapsed());
                            out.sent_at_kill = next.load(Ordering::SeqCst).min(burst);
                        }
                    }
                    Ok(res) => out.refused.push(format!("#{i}: {}", res.describe())),
                    Err(_) => {
                        out.unanswered += 1;
                        return;
                    }
                }
            }
        }));
    }
    for c in clients {
        c.await?;
    }
    let mut out = std::mem::take(
        &mut *outcome
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    out.kill_at = kill_at;
    if !killed.load(Ordering::SeqCst) {
        // Fewer acknowledgements than the kill point (errors): kill now, and say so.
        let _ = kill(pid, Signal::SIGKILL);
        out.killed_after = None;
    }
    Ok(out)
}

/// The checks after one restart.
async fn verify_round(
    api: &Api,
    report: &mut Report,
    round: usize,
    out: &Outcome,
    ready_ms: f64,
    history: &[Value],
    history_runs: &HashMap<String, Value>,
) -> Result<()> {
    let listed = list_all(api).await?;
    let ids: Vec<String> = listed.iter().map(task_id).collect();
    let unique: HashSet<&String> = ids.iter().collect();
    let duplicates = ids.len() - unique.len();
    let missing: Vec<&String> = out.acked.keys().filter(|id| !unique.contains(id)).collect();
    let before: HashSet<String> = history.iter().map(task_id).collect();
    let extra = unique
        .iter()
        .filter(|id| !before.contains(**id) && !out.acked.contains_key(**id))
        .count();
    let killed = out.killed_after.map_or_else(
        || "NOT at the planned point (too few acknowledgements)".to_owned(),
        |d| {
            format!(
                "{:.2} s into the burst, {} submissions sent",
                d.as_secs_f64(),
                out.sent_at_kill
            )
        },
    );
    report.check(
        &format!("round{round}-acknowledged-listed"),
        out.killed_after.is_some()
            && out.refused.is_empty()
            && duplicates == 0
            && missing.is_empty()
            && extra <= out.unanswered,
        format!(
            "kill -9 at acknowledgement #{} ({killed}; {} requests unanswered); restart ready in \
             {ready_ms:.0} ms; listed {} = {} from earlier rounds + {} acknowledged + {extra} committed \
             but unacknowledged; duplicates {duplicates}, acknowledged missing {}{}{}",
            out.kill_at,
            out.unanswered,
            ids.len(),
            before.len(),
            out.acked.len(),
            missing.len(),
            first_failures(&missing.iter().map(|s| (*s).clone()).collect::<Vec<_>>()),
            first_failures(&out.refused),
        ),
    );

    // Earlier rounds: identical JSON, and the sampled run histories identical.
    let by_id: HashMap<String, &Value> = listed.iter().map(|t| (task_id(t), t)).collect();
    let mut changed = Vec::new();
    for t in history {
        let id = task_id(t);
        match by_id.get(&id) {
            Some(now) if *now == t => {}
            Some(now) => changed.push(format!("{id}: was {t}, now {now}")),
            None => changed.push(format!("{id}: gone")),
        }
    }
    let sample: Vec<String> = history_runs.keys().cloned().collect();
    let runs_now = fetch_runs(api, &sample).await?;
    for (id, runs) in history_runs {
        if runs_now.get(id) != Some(runs) {
            changed.push(format!("{id} runs: was {runs}, now {:?}", runs_now.get(id)));
        }
    }
    report.check(
        &format!("round{round}-history-intact"),
        changed.is_empty(),
        format!(
            "{} tasks from earlier rounds listed with identical JSON, {} run histories compared{}",
            history.len() - changed.len().min(history.len()),
            history_runs.len(),
            first_failures(&changed)
        ),
    );

    // This round's tasks (acknowledged or committed without an answer, known by their slot),
    // once the restarted ones run and the others are done.
    let settled = poll(Duration::from_secs(60), Duration::from_millis(200), || {
        let api = api.clone();
        async move {
            let all = list_all(&api).await.ok()?;
            all.iter()
                .filter_map(|t| Kind::of_task(t, round).map(|k| (k, phase_of(t))))
                .all(|(kind, phase)| match kind {
                    Kind::Always => phase == "TASK_STATUS_RUNNING",
                    Kind::Never | Kind::Quick => is_terminal(&phase),
                })
                .then_some(all)
        }
    })
    .await;
    let Some(listed) = settled else {
        report.check(
            &format!("round{round}-settled"),
            false,
            "60 s after the restart, ALWAYS tasks not all running or other tasks not all terminal",
        );
        return Ok(());
    };
    let mine: Vec<(&Value, Kind)> = listed
        .iter()
        .filter_map(|t| Kind::of_task(t, round).map(|k| (t, k)))
        .collect();
    let ids: Vec<String> = mine.iter().map(|(t, _)| task_id(t)).collect();
    let runs = fetch_runs(api, &ids).await?;
    let mut tally = Tally::default();
    for (task, kind) in mine {
        let id = task_id(task);
        let runs = runs
            .get(&id)
            .and_then(|r| r.get("runs"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        tally.judge(&id, kind, task, &runs);
    }
    report.check(
        &format!("round{round}-always-running"),
        tally.bad_always.is_empty(),
        format!(
            "{} ALWAYS tasks of the burst, all running again: {} (of them, {} had a run open at the kill, \
             closed FAILED {REASON:?}, and run again as a new attempt){}",
            tally.always,
            tally.always - tally.bad_always.len(),
            tally.always_resumed,
            first_failures(&tally.bad_always)
        ),
    );
    report.check(
        &format!("round{round}-never-stopped"),
        tally.bad_never.is_empty(),
        format!(
            "{} NEVER tasks of the burst: all FAILED with {REASON:?}: {} ({} had a run open at the kill, \
             closed with that reason; the others had not started){}",
            tally.never,
            tally.never - tally.bad_never.len(),
            tally.never_ran,
            first_failures(&tally.bad_never)
        ),
    );
    report.check(
        &format!("round{round}-runs-consistent"),
        tally.bad.is_empty(),
        format!(
            "{} quick tasks of the burst: {} SUCCEEDED with one finished run (exit 0), {} FAILED with \
             {REASON:?} (pending or running at the kill as far as the store knew, any run closed with \
             that reason); every run history numbered 1..n with every run but a running task's last \
             one finished{}",
            tally.quick,
            tally.quick_ok,
            tally.quick_restarted,
            first_failures(&tally.bad)
        ),
    );
    Ok(())
}

/// Per-kind outcome of a round.
#[derive(Debug, Default)]
struct Tally {
    always: usize,
    always_resumed: usize,
    bad_always: Vec<String>,
    never: usize,
    never_ran: usize,
    bad_never: Vec<String>,
    quick: usize,
    quick_ok: usize,
    quick_restarted: usize,
    bad: Vec<String>,
}

impl Tally {
    fn judge(&mut self, id: &str, kind: Kind, task: &Value, runs: &[Value]) {
        let phase = phase_of(task);
        let error = str_at(task, "/status/error");
        let attempt = task
            .pointer("/status/attempt")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let numbered = runs
            .iter()
            .enumerate()
            .all(|(n, r)| r.get("attempt").and_then(Value::as_u64) == Some(n as u64 + 1));
        let finished = |r: &Value| r.get("finishedAt").is_some();
        let restarted_run = |r: &Value| {
            finished(r)
                && str_at(r, "/status") == "TASK_STATUS_FAILED"
                && str_at(r, "/error") == REASON
        };
        let describe = || {
            format!(
                "{id} ({kind:?}): phase {phase} error {error:?} attempt {attempt} runs {runs:?}"
            )
        };
        if !numbered {
            self.bad.push(describe());
        }
        match kind {
            Kind::Always => {
                self.always += 1;
                let ok = phase == "TASK_STATUS_RUNNING"
                    && runs.last().is_some_and(|r| !finished(r))
                    && runs[..runs.len().saturating_sub(1)]
                        .iter()
                        .all(restarted_run)
                    && attempt == runs.len() as u64;
                if runs.len() >= 2 {
                    self.always_resumed += 1;
                }
                if !ok {
                    self.bad_always.push(describe());
                }
            }
            Kind::Never => {
                self.never += 1;
                let ok = phase == "TASK_STATUS_FAILED"
                    && error == REASON
                    && runs.len() <= 1
                    && runs.iter().all(restarted_run);
                if runs.len() == 1 {
                    self.never_ran += 1;
                }
                if !ok {
                    self.bad_never.push(describe());
                }
            }
            Kind::Quick => {
                self.quick += 1;
                let succeeded = phase == "TASK_STATUS_SUCCEEDED"
                    && runs.len() == 1
                    && str_at(&runs[0], "/status") == "TASK_STATUS_SUCCEEDED"
                    && runs[0].get("exitCode").and_then(Value::as_i64) == Some(0);
                let stopped = phase == "TASK_STATUS_FAILED"
                    && error == REASON
                    && runs.len() <= 1
                    && runs.iter().all(restarted_run);
                if succeeded {
                    self.quick_ok += 1;
                } else if stopped {
                    self.quick_restarted += 1;
                } else {
                    self.bad.push(describe());
                }
            }
        }
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The id (`metadata.id`) of a task object.
pub(super) fn task_id(task: &Value) -> String {
    str_at(task, "/metadata/id").to_owned()
}

/// Cancels one task through `POST /api/v1/tasks/{id}/cancel` (history kept).
pub(super) async fn cancel(api: &Api, id: &str) -> Result<()> {
    let res = api
        .send(
            Method::POST,
            &format!("/api/v1/tasks/{id}/cancel"),
            None,
            &[],
        )
        .await?;
    if res.status != StatusCode::OK {
        bail!("cancel {id}: {}", res.describe());
    }
    Ok(())
}

/// Every listed task, in list (creation) order, by pages of 1,000.
pub(super) async fn list_all(api: &Api) -> Result<Vec<Value>> {
    let mut conn = api.conn().await?;
    let mut out: Vec<Value> = Vec::new();
    loop {
        let res = conn
            .send(
                Method::GET,
                &format!("/api/v1/tasks?limit=1000&offset={}", out.len()),
                None,
                &[],
            )
            .await?;
        if res.status != StatusCode::OK {
            bail!("list: {}", res.describe());
        }
        let page = res.json();
        let items = page
            .get("tasks")
            .and_then(Value::as_array)
            .cloned()
            .context("list: no `tasks`")?;
        let total = page
            .get("total")
            .and_then(Value::as_u64)
            .context("list: no `total`")?;
        let empty = items.is_empty();
        out.extend(items);
        if empty || out.len() as u64 >= total {
            return Ok(out);
        }
    }
}

/// `GET /api/v1/tasks/{id}/runs` bodies of `ids`, over [`CLIENTS`] connections.
pub(super) async fn fetch_runs(api: &Api, ids: &[String]) -> Result<HashMap<String, Value>> {
    let queue = Arc::new(Mutex::new(ids.to_vec()));
    let mut workers = Vec::new();
    for _ in 0..CLIENTS.min(ids.len()) {
        let (api, queue) = (api.clone(), Arc::clone(&queue));
        workers.push(tokio::spawn(async move {
            let mut conn = api.conn().await?;
            let mut got = Vec::new();
            loop {
                let next = queue
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .pop();
                let Some(id) = next else {
                    return anyhow::Ok(got);
                };
                let res = conn
                    .send(Method::GET, &format!("/api/v1/tasks/{id}/runs"), None, &[])
                    .await?;
                if res.status != StatusCode::OK {
                    return Err(anyhow!("runs of {id}: {}", res.describe()));
                }
                got.push((id, res.json()));
            }
        }));
    }
    let mut out = HashMap::with_capacity(ids.len());
    for w in workers {
        out.extend(w.await??);
    }
    Ok(out)
}
