//! `solti-stress`: load, fault, bad-input and auth scenarios against the real `agentd-http`
//! binary, over loopback, each bounded in time.
//!
//! ```text
//! cargo build -p agentd-http -p solti-stress
//! cargo run -p solti-stress -- [--long] [--agent PATH] [scenario...]
//! ```
//!
//! Scenarios: `load`, `logs`, `idle-sse`, `faults`, `control-plane`, `bad-input`, `auth`,
//! `security`, `listeners`, `durable-kill`, `durable-faults` (all by default).
//! Each starts its own agent as a child process
//! (`--listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --state-dir <tmp>`), waits for its
//! `agentd-http ready: …` line, prints one `PASS`/`FAIL`/`SKIP` line per check with the
//! numbers measured, and kills the agent (and the task processes it started) at the end. The
//! process exits 1 when any check failed. See `docs/reliability.md`.
//!
//! The package's second binary, `agentd-chaos` (`src/bin/agentd-chaos.rs`), is `agentd-http`
//! plus a runner that panics; `faults` starts it for the runner-panic check.

#![forbid(unsafe_code)]

mod agent;
mod client;
mod procfs;
mod raw;
mod report;
mod scenario;
mod sse;
mod startup;

use std::{path::PathBuf, process::ExitCode, time::Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "Stress, fault and bad-input scenarios against the real agentd-http binary")]
struct Args {
    /// Run the full sizes of issue 10 (10,000 tasks, 100×100k lines, 1,000 idle streams, ...).
    #[arg(long)]
    long: bool,
    /// The agentd-http binary [default: next to this binary in the target dir].
    #[arg(long)]
    agent: Option<PathBuf>,
    /// The agentd-chaos binary of this package (agentd-http plus a runner that panics, for
    /// `faults`) [default: next to this binary; build it with `cargo build -p solti-stress`].
    #[arg(long)]
    chaos_agent: Option<PathBuf>,
    /// Extra environment for every agent started, as KEY=VALUE (repeatable; for diagnosis,
    /// e.g. MALLOC_ARENA_MAX=2).
    #[arg(long, value_name = "KEY=VALUE")]
    agent_env: Vec<String>,
    /// Rounds of the `load` scenario (memory growth shows from round 2 on).
    #[arg(long, default_value_t = 3)]
    load_rounds: usize,
    /// Seed of the random choices (the kill points of `durable-kill`) [default: from the
    /// clock; printed, so a run can be repeated].
    #[arg(long)]
    seed: Option<u64>,
    /// Scenarios to run (load, logs, idle-sse, faults, control-plane, bad-input, auth, security,
    /// listeners, durable-kill, durable-faults) [default: all].
    scenarios: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("solti-stress: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("solti-stress: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<bool> {
    let bin = match args.agent {
        Some(p) => p,
        None => sibling("agentd-http")?,
    };
    let chaos_bin = match args.chaos_agent {
        Some(p) => p,
        None => sibling("agentd-chaos")?,
    };
    if !bin.is_file() {
        bail!(
            "agent binary {} not found; build it with `cargo build -p agentd-http` or pass --agent PATH",
            bin.display()
        );
    }
    for s in &args.scenarios {
        if !scenario::ALL.contains(&s.as_str()) {
            bail!(
                "unknown scenario {s:?}; known: {}",
                scenario::ALL.join(", ")
            );
        }
    }
    raise_fd_limit();
    let scratch = tempfile::Builder::new()
        .prefix("solti-stress-")
        .tempdir()
        .context("create a scratch dir")?;
    let mut agent_env = Vec::new();
    for kv in &args.agent_env {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("--agent-env {kv:?}: expected KEY=VALUE")
        };
        agent_env.push((k.to_owned(), v.to_owned()));
    }
    let ctx = scenario::Ctx {
        bin: bin.clone(),
        chaos_bin,
        long: args.long,
        scratch: scratch.path().to_owned(),
        agent_env,
        load_rounds: args.load_rounds.max(2),
        seed: args.seed.unwrap_or_else(clock_seed),
    };
    let names: Vec<&str> = if args.scenarios.is_empty() {
        scenario::ALL.to_vec()
    } else {
        args.scenarios.iter().map(String::as_str).collect()
    };
    println!(
        "solti-stress: agent {} ({} sizes), scratch {}, seed {}",
        bin.display(),
        if args.long { "long" } else { "short" },
        ctx.scratch.display(),
        ctx.seed
    );
    let started = Instant::now();
    let mut reports = Vec::new();
    let mut interrupted = false;
    for name in names {
        // On ctrl-c/SIGTERM the scenario future is dropped, which kills its agents.
        tokio::select! {
            report = scenario::run(&ctx, name) => reports.push(report),
            () = interrupt() => {
                eprintln!("solti-stress: interrupted; the agents were killed");
                interrupted = true;
                break;
            }
        }
    }
    println!("\n== summary ({:.1}s)", started.elapsed().as_secs_f64());
    let mut ok = true;
    for r in &reports {
        let verdict = if r.passed() { "PASS" } else { "FAIL" };
        println!(
            "{verdict} {} ({:.1}s, {} checks)",
            r.scenario,
            r.elapsed.as_secs_f64(),
            r.checks.len()
        );
        for f in r.failures() {
            ok = false;
            println!("    FAIL {}/{}: {}", r.scenario, f.name, f.detail);
        }
    }
    Ok(ok && !interrupted)
}

/// A seed from the clock, for runs without `--seed`.
fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() ^ u64::from(d.subsec_nanos()))
}

/// Resolves on SIGINT or SIGTERM.
async fn interrupt() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

/// The binary `name` next to this executable (all live in the target dir's profile directory).
fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locate this executable")?;
    let dir = exe.parent().context("executable has no parent dir")?;
    // Also works when run from `target/<profile>/deps` (tests).
    for d in [dir, dir.parent().unwrap_or(dir)] {
        let candidate = d.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Ok(dir.join(name))
}

/// Idle-stream scenarios open over a thousand sockets; the agent inherits the limit.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let want = hard.min(65_536);
        if soft < want {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, want, hard);
        }
    }
}
