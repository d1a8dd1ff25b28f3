//! The scenarios and what they share: sizes, task specs, polling, memory sampling.

mod auth;
mod bad_input;
mod control_plane;
mod durable;
mod durable_faults;
mod faults;
mod fuzz;
mod idle_sse;
mod listeners;
mod load;
mod load_sweep;
mod logs;
mod security;

use std::{
    future::Future,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Result;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::{
    agent::{Agent, AgentOpts},
    procfs,
    report::Report,
};

/// Every scenario, in the order they run.
pub(crate) const ALL: &[&str] = &[
    "load",
    "logs",
    "idle-sse",
    "faults",
    "control-plane",
    "bad-input",
    "auth",
    "security",
    "listeners",
    "durable-kill",
    "durable-faults",
];

/// What every scenario gets.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// The agent binary.
    pub(crate) bin: PathBuf,
    /// The `agentd-chaos` binary (the agent plus a panicking runner).
    pub(crate) chaos_bin: PathBuf,
    /// Full sizes (`--long`).
    pub(crate) long: bool,
    /// A private scratch directory (state dirs, gate files).
    pub(crate) scratch: PathBuf,
    /// Extra environment for every agent.
    pub(crate) agent_env: Vec<(String, String)>,
    /// Rounds of `load` (at least 2).
    pub(crate) load_rounds: usize,
    /// Seed of the random choices (`durable-kill`'s kill points), printed by the scenarios
    /// that use it.
    pub(crate) seed: u64,
}

impl Ctx {
    /// `short` or `long`, by the mode.
    pub(crate) fn size<T>(&self, short: T, long: T) -> T {
        if self.long { long } else { short }
    }

    /// A fresh directory under the scratch dir.
    pub(crate) fn dir(&self, name: &str) -> Result<PathBuf> {
        let d = self.scratch.join(name);
        std::fs::create_dir_all(&d)?;
        Ok(d)
    }

    /// Starts an agent with a fresh state dir named after `name`.
    pub(crate) async fn agent(&self, name: &str) -> Result<Agent> {
        Agent::start(&self.opts(name)?).await
    }

    /// Options for an agent with a fresh state dir named after `name`.
    pub(crate) fn opts(&self, name: &str) -> Result<AgentOpts> {
        let mut opts = AgentOpts::new(&self.bin, &self.dir(&format!("state-{name}"))?);
        opts.env.clone_from(&self.agent_env);
        Ok(opts)
    }
}

/// Runs scenario `name` within `budget`; the agent(s) it started are killed when it ends.
pub(crate) async fn run(ctx: &Ctx, name: &str) -> Report {
    let (label, budget) = match name {
        "load" => (
            "load",
            ctx.size(Duration::from_secs(90), Duration::from_secs(900)),
        ),
        "logs" => (
            "logs",
            ctx.size(Duration::from_secs(90), Duration::from_secs(1200)),
        ),
        "idle-sse" => (
            "idle-sse",
            ctx.size(Duration::from_secs(60), Duration::from_secs(180)),
        ),
        "faults" => (
            "faults",
            ctx.size(Duration::from_secs(90), Duration::from_secs(180)),
        ),
        "bad-input" => (
            "bad-input",
            ctx.size(Duration::from_secs(90), Duration::from_secs(240)),
        ),
        "control-plane" => (
            "control-plane",
            ctx.size(Duration::from_secs(90), Duration::from_secs(240)),
        ),
        "auth" => ("auth", Duration::from_secs(60)),
        "security" => ("security", Duration::from_secs(60)),
        "listeners" => ("listeners", Duration::from_secs(120)),
        "durable-kill" => (
            "durable-kill",
            ctx.size(Duration::from_secs(120), Duration::from_secs(1800)),
        ),
        "durable-faults" => ("durable-faults", Duration::from_secs(180)),
        _ => ("unknown", Duration::ZERO),
    };
    let mut report = Report::new(label);
    println!("== {label} ({})", if ctx.long { "long" } else { "short" });
    let started = Instant::now();
    let work = async {
        match name {
            "load" => load::run(ctx, &mut report).await,
            "logs" => logs::run(ctx, &mut report).await,
            "idle-sse" => idle_sse::run(ctx, &mut report).await,
            "faults" => faults::run(ctx, &mut report).await,
            "bad-input" => bad_input::run(ctx, &mut report).await,
            "control-plane" => control_plane::run(ctx, &mut report).await,
            "auth" => auth::run(ctx, &mut report).await,
            "security" => security::run(ctx, &mut report).await,
            "listeners" => listeners::run(ctx, &mut report).await,
            "durable-kill" => durable::run(ctx, &mut report).await,
            "durable-faults" => durable_faults::run(ctx, &mut report).await,
            other => Err(anyhow::anyhow!(
                "unknown scenario {other:?}; known: {}",
                ALL.join(", ")
            )),
        }
    };
    let result = tokio::time::timeout(budget, work).await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => report.error(&e),
        Err(_) => report.error(&anyhow::anyhow!(
            "scenario did not finish within its budget of {budget:?}"
        )),
    }
    report.elapsed = started.elapsed();
    let verdict = if report.passed() { "PASS" } else { "FAIL" };
    println!("{verdict} {label} in {:.1}s", report.elapsed.as_secs_f64());
    report
}

/// A subprocess command task: `command args…`, restart never, admission drop-if-running,
/// fails on non-zero exit.
pub(crate) fn command_spec(slot: &str, command: &str, args: &[&str], timeout: Duration) -> Value {
    json!({
        "slot": slot,
        "kind": { "subprocess": { "command": { "command": command, "args": args }, "failOnNonZero": true } },
        "timeoutMs": timeout.as_millis().to_string(),
        "restart": "RESTART_STRATEGY_NEVER",
        "admission": "ADMISSION_STRATEGY_DROP_IF_RUNNING",
    })
}

/// `sh -c script` with environment `env`.
pub(crate) fn shell_spec(
    slot: &str,
    script: &str,
    env: &[(&str, &str)],
    timeout: Duration,
) -> Value {
    let mut spec = command_spec(slot, "/bin/sh", &["-c", script], timeout);
    let env: Vec<Value> = env
        .iter()
        .map(|(k, v)| json!({ "key": k, "value": v }))
        .collect();
    spec["kind"]["subprocess"]["env"] = Value::Array(env);
    spec
}

/// A bash script that waits for `$GATE`, then prints the numbers `0..lines`, one per line,
/// in bursts of `batch` lines with a `pause` (seconds) between bursts. Only builtins run in
/// the loop (the pause is a `read -t` on a private FIFO), so a hundred of these do not turn
/// into a fork storm.
pub(crate) fn paced_lines_script(lines: u64, batch: u64, pause: &str) -> String {
    format!(
        "{WAIT_FOR_GATE}f=$(mktemp -u); mkfifo \"$f\" && exec 3<>\"$f\"; rm -f \"$f\"; i=0; \
         while [ $i -lt {lines} ]; do e=$((i+{batch})); [ $e -gt {lines} ] && e={lines}; \
         while [ $i -lt $e ]; do echo $i; i=$((i+1)); done; read -t {pause} -u 3 _ || :; done"
    )
}

/// `bash -c script` with environment `env`.
pub(crate) fn bash_spec(
    slot: &str,
    script: &str,
    env: &[(&str, &str)],
    timeout: Duration,
) -> Value {
    let mut spec = shell_spec(slot, script, env, timeout);
    spec["kind"]["subprocess"]["command"]["command"] = json!("bash");
    spec
}

/// Polls `probe` every `every` until it yields `Some`, or gives up after `within`.
pub(crate) async fn poll<T, F, Fut>(within: Duration, every: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// Samples a process's RSS every 50 ms and remembers the peak.
#[derive(Debug)]
pub(crate) struct RssSampler {
    peak: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl RssSampler {
    /// Starts sampling `pid`.
    pub(crate) fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(procfs::rss_kib(pid).unwrap_or(0)));
        let p = Arc::clone(&peak);
        let task = tokio::spawn(async move {
            loop {
                if let Some(kib) = procfs::rss_kib(pid) {
                    p.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Self { peak, task }
    }

    /// The peak so far, in KiB.
    pub(crate) fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Stops sampling and returns the peak in KiB.
    pub(crate) fn stop(self) -> u64 {
        self.task.abort();
        self.peak()
    }
}

/// Checks that the agent still serves `GET /api/v1/tasks` with 200 (after abuse).
pub(crate) async fn still_serving(agent: &mut Agent, report: &mut Report, after: &str) -> bool {
    let alive = agent.is_running();
    let started = Instant::now();
    let res = agent.api().get("/api/v1/tasks?limit=1").await;
    let took = started.elapsed();
    let ok = alive && res.as_ref().is_ok_and(|r| r.status.as_u16() == 200);
    let detail = match &res {
        Ok(r) => format!(
            "after {after}: agent alive={alive}, GET /api/v1/tasks -> {} in {:.1}ms",
            r.status.as_u16(),
            took.as_secs_f64() * 1000.0
        ),
        Err(e) => format!("after {after}: agent alive={alive}, GET /api/v1/tasks failed: {e:#}"),
    };
    report.check("still-serving", ok, detail)
}

/// Writes `path` (an empty file) so gated tasks start.
pub(crate) fn open_gate(path: &Path) -> Result<()> {
    std::fs::write(path, b"go")?;
    Ok(())
}

/// Shell prefix that waits (up to 60 s) for the file named by `$GATE`.
pub(crate) const WAIT_FOR_GATE: &str =
    "n=0; while [ ! -e \"$GATE\" ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done; ";

/// Stops `agent` with SIGTERM and records how the shutdown went.
pub(crate) async fn stop_agent(agent: Agent, report: &mut Report) {
    match agent.stop(Duration::from_secs(20)).await {
        Ok((status, took)) => {
            report.check(
                "graceful-stop",
                status.success(),
                format!(
                    "SIGTERM -> exit {status} in {:.0}ms",
                    took.as_secs_f64() * 1000.0
                ),
            );
        }
        Err(e) => {
            report.check("graceful-stop", false, format!("{e:#}"));
        }
    }
}
