//! `durable-faults`: the task state store under a graceful restart and under faults
//! (issue 19, docs/state.md "Failures"): SIGTERM and restart with 1,000 terminal tasks, a
//! corrupted store file, a read-only state directory, and a full disk under a running agent.
//! The file-system faults need root (a bind mount, a small tmpfs); without it they are
//! skipped with the reason printed.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::{
    Ctx, command_spec,
    durable::{REASON, cancel, fetch_runs, list_all, task_id},
    load::first_failures,
    poll, stop_agent,
};
use crate::{
    agent::{Agent, AgentOpts},
    client::{Api, is_terminal, phase_of, task_id_of},
    procfs,
    report::Report,
};

pub(super) async fn run(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let dir = sigterm_terminal(ctx, report).await?;
    corrupted(ctx, report, &dir).await?;
    read_only(ctx, report).await?;
    disk_full(ctx, report).await
}

/// The store file of `agentd-http` in `state_dir`.
fn store_file(state_dir: &Path) -> PathBuf {
    state_dir.join("agentd-http.tasks.redb")
}

/// A spec by index: successes, failures with an exit code, retried failures (three runs),
/// timeouts and cancelled sleeps, so the histories differ.
fn mixed_spec(i: usize) -> (Value, bool) {
    let slot = format!("term-{i}");
    match i % 20 {
        0 => {
            let mut s = command_spec(&slot, "sh", &["-c", "exit 3"], Duration::from_secs(60));
            s["restart"] = json!("RESTART_STRATEGY_ON_FAILURE");
            s["maxRetries"] = json!(2);
            s["backoff"] = json!({ "jitter": "JITTER_STRATEGY_NONE", "firstMs": "10", "maxMs": "10", "factor": 1.0 });
            (s, false)
        }
        1 | 2 => (
            command_spec(&slot, "sh", &["-c", "exit 3"], Duration::from_secs(60)),
            false,
        ),
        3 => (
            command_spec(&slot, "sleep", &["30"], Duration::from_millis(200)),
            false,
        ),
        4 => (
            command_spec(&slot, "sleep", &["3600"], Duration::from_secs(7200)),
            true,
        ),
        _ => (
            command_spec(&slot, "echo", &["hello"], Duration::from_secs(60)),
            false,
        ),
    }
}

/// Submits `specs` from 32 keep-alive clients; the ids in submission order.
async fn submit_all(api: &Api, specs: Vec<Value>) -> Result<Vec<String>> {
    let n = specs.len();
    let specs = Arc::new(specs);
    let next = Arc::new(AtomicUsize::new(0));
    let ids = Arc::new(Mutex::new(vec![String::new(); n]));
    let mut clients = Vec::new();
    for _ in 0..32.min(n) {
        let (api, specs, next, ids) = (
            api.clone(),
            Arc::clone(&specs),
            Arc::clone(&next),
            Arc::clone(&ids),
        );
        clients.push(tokio::spawn(async move {
            let mut conn = api.conn().await?;
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(spec) = specs.get(i) else {
                    return anyhow::Ok(());
                };
                let res = conn
                    .send_json(Method::POST, "/api/v1/tasks", &json!({ "spec": spec }))
                    .await?;
                let id = task_id_of(&res)?;
                ids.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)[i] = id;
            }
        }));
    }
    for c in clients {
        c.await??;
    }
    let ids = std::mem::take(
        &mut *ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    Ok(ids)
}

/// Waits until every listed task is terminal; the list.
async fn all_terminal(api: &Api, within: Duration) -> Option<Vec<Value>> {
    poll(within, Duration::from_millis(200), || async {
        let all = list_all(api).await.ok()?;
        all.iter().all(|t| is_terminal(&phase_of(t))).then_some(all)
    })
    .await
}

/// SIGTERM and restart with 1,000 terminal tasks: the list and every run history come back
/// identical. Returns the state directory (stopped agent, 1,000 tasks) for [`corrupted`].
async fn sigterm_terminal(ctx: &Ctx, report: &mut Report) -> Result<PathBuf> {
    let n = 1_000;
    let opts = ctx.opts("durable-term")?;
    let agent = Agent::start(&opts).await?;
    let api = agent.api();
    let (specs, to_cancel): (Vec<Value>, Vec<bool>) = (0..n).map(mixed_spec).unzip();
    let ids = submit_all(&api, specs).await?;
    for (id, _) in ids.iter().zip(&to_cancel).filter(|(_, c)| **c) {
        cancel(&api, id).await?;
    }
    let before = all_terminal(&api, Duration::from_secs(120))
        .await
        .context("the 1,000 tasks did not all end within 120 s")?;
    let runs_before = fetch_runs(&api, &ids).await?;
    let mut phases = std::collections::BTreeMap::<String, usize>::new();
    for t in &before {
        *phases.entry(phase_of(t)).or_default() += 1;
    }
    let run_count: usize = runs_before
        .values()
        .map(|r| r.get("runs").and_then(Value::as_array).map_or(0, Vec::len))
        .sum();
    stop_agent(agent, report).await;

    let started = Instant::now();
    let agent = Agent::start(&opts).await?;
    let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
    let api = agent.api();
    let after = list_all(&api).await?;
    let runs_after = fetch_runs(&api, &ids).await?;
    let mut diffs = Vec::new();
    if after.len() != before.len() {
        diffs.push(format!("{} listed, was {}", after.len(), before.len()));
    }
    for (b, a) in before.iter().zip(&after) {
        if a != b {
            diffs.push(format!("was {b}, now {a}"));
        }
    }
    for id in &ids {
        if runs_before.get(id) != runs_after.get(id) {
            diffs.push(format!(
                "{id} runs: was {:?}, now {:?}",
                runs_before.get(id),
                runs_after.get(id)
            ));
        }
    }
    report.check(
        "sigterm-1000-terminal-identical",
        before.len() == n && diffs.is_empty(),
        format!(
            "{n} terminal tasks ({phases:?}, {run_count} runs) before SIGTERM; after the restart (ready in \
             {ready_ms:.0} ms) {} listed in the same order with identical JSON, run histories identical{}",
            after.len(),
            first_failures(&diffs)
        ),
    );
    stop_agent(agent, report).await;
    Ok(opts.state_dir)
}

/// A store file with a damaged header: start-up stops naming the file and `--state-reset`;
/// `--state-reset` starts empty and keeps the damaged file beside, byte for byte.
async fn corrupted(ctx: &Ctx, report: &mut Report, state_dir: &Path) -> Result<()> {
    let file = store_file(state_dir);
    let mut bytes = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
    let len = bytes.len().min(4096);
    bytes[..len].fill(0x5a);
    std::fs::write(&file, &bytes)?;
    let mut opts = AgentOpts::new(&ctx.bin, state_dir);
    opts.env.clone_from(&ctx.agent_env);
    let refused = match Agent::start(&opts).await {
        Ok(agent) => {
            drop(agent);
            "the agent started".to_owned()
        }
        Err(e) => format!("{e:#}"),
    };
    let named = refused.contains(&file.display().to_string());
    let way_out = refused.contains("--state-reset");
    let line = refused
        .lines()
        .find(|l| l.contains("state store"))
        .unwrap_or(refused.lines().next().unwrap_or(""))
        .trim()
        .to_owned();
    report.check(
        "corrupted-refused",
        named && way_out,
        format!(
            "first 4 KiB of the store file overwritten: start-up stops (names the file: {named}, \
             names --state-reset: {way_out}): {line}"
        ),
    );
    opts.args.push("--state-reset".to_owned());
    let agent = Agent::start(&opts).await?;
    let listed = list_all(&agent.api()).await?.len();
    let aside: Vec<PathBuf> = std::fs::read_dir(state_dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains(".reset-"))
        .collect();
    let kept = aside
        .iter()
        .any(|p| std::fs::read(p).is_ok_and(|b| b == bytes));
    report.check(
        "corrupted-reset",
        listed == 0 && kept,
        format!(
            "with --state-reset the agent starts with {listed} tasks and the damaged file is kept byte for \
             byte as {}",
            aside
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    stop_agent(agent, report).await;
    Ok(())
}

/// A mount made by the harness, unmounted when dropped.
#[derive(Debug)]
struct Mount(PathBuf);

impl Mount {
    /// `mount ARGS... target`; `Err` with mount's message when it fails (not root, say).
    fn new(args: &[&str], source: &str, target: &Path) -> Result<Self, String> {
        let out = Command::new("mount")
            .args(args)
            .arg(source)
            .arg(target)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Self(target.to_owned()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// `mount -o remount,bind,{ro|rw}` of this mount; mount's message when refused.
    fn remount(&self, opts: &str) -> Result<(), String> {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,bind,{opts}")])
            .arg(&self.0)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// A read-only state directory: at start-up, the agent stops naming the file and the cause;
/// once writable again, every task is there. While the agent runs, the kernel refuses to
/// make the mount read-only (the store file is open for writing), which is reported.
async fn read_only(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let dir = ctx.dir("durable-ro")?;
    let mount = match Mount::new(&["--bind"], &dir.to_string_lossy(), &dir) {
        Ok(m) => m,
        Err(why) => {
            report.skip(
                "read-only-at-start",
                format!("cannot bind-mount the state dir (needs root): {why}"),
            );
            return Ok(());
        }
    };
    let mut opts = AgentOpts::new(&ctx.bin, &dir);
    opts.env.clone_from(&ctx.agent_env);
    let agent = Agent::start(&opts).await?;
    let api = agent.api();
    let specs: Vec<Value> = (0..20)
        .map(|i| {
            command_spec(
                &format!("ro-{i}"),
                "echo",
                &["hello"],
                Duration::from_secs(60),
            )
        })
        .collect();
    submit_all(&api, specs).await?;
    let before = all_terminal(&api, Duration::from_secs(60))
        .await
        .context("the 20 tasks did not end")?;
    match mount.remount("ro") {
        Ok(()) => {
            // Not expected on Linux while a file on the mount is open for writing.
            let res = api
                .send_json_once(&json!({ "spec": command_spec("ro-late", "true", &[], Duration::from_secs(60)) }))
                .await?;
            report.check(
                "read-only-at-runtime",
                res.status == StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "state dir remounted read-only under the running agent: submit -> {}",
                    res.describe()
                ),
            );
            let _ = mount.remount("rw");
        }
        Err(why) => report.skip(
            "read-only-at-runtime",
            format!(
                "the kernel refuses to remount the state dir read-only while the agent holds the store \
                 open for writing ({why}); a file system turned read-only by I/O errors fails writes like \
                 a full disk, covered by disk-full"
            ),
        ),
    }
    stop_agent(agent, report).await;

    if let Err(why) = mount.remount("ro") {
        report.check(
            "read-only-at-start",
            false,
            format!("cannot remount the stopped agent's state dir read-only: {why}"),
        );
        return Ok(());
    }
    let refused = match Agent::start(&opts).await {
        Ok(agent) => {
            drop(agent);
            "the agent started".to_owned()
        }
        Err(e) => format!("{e:#}"),
    };
    let file = store_file(&dir);
    let named =
        refused.contains(&file.display().to_string()) || refused.contains(&*dir.to_string_lossy());
    let cause = refused.contains("Read-only file system");
    let line = refused
        .lines()
        .find(|l| l.contains("Read-only") || l.contains("state"))
        .unwrap_or("")
        .trim()
        .to_owned();
    report.check(
        "read-only-at-start",
        named && cause,
        format!(
            "state dir read-only: start-up stops (names it: {named}, says why: {cause}): {line}"
        ),
    );
    mount
        .remount("rw")
        .map_err(|why| anyhow::anyhow!("remount rw: {why}"))?;
    let agent = Agent::start(&opts).await?;
    let after = list_all(&agent.api()).await?;
    report.check(
        "read-only-nothing-lost",
        after == before,
        format!(
            "writable again: {} of {} tasks listed with identical JSON",
            after.iter().zip(&before).filter(|(a, b)| a == b).count(),
            before.len()
        ),
    );
    stop_agent(agent, report).await;
    drop(mount);
    Ok(())
}

/// The state dir on a small tmpfs, filled up under a running agent: submissions are refused
/// with 503 and a clear message, reads and running tasks go on, submissions work again once
/// there is space, and after a `kill -9` every acknowledged task (and no refused one) is
/// back.
async fn disk_full(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let dir = ctx.dir("durable-full")?;
    let mount = match Mount::new(&["-t", "tmpfs", "-o", "size=8m"], "tmpfs", &dir) {
        Ok(m) => m,
        Err(why) => {
            report.skip(
                "disk-full",
                format!("cannot mount a small tmpfs for the state dir (needs root): {why}"),
            );
            return Ok(());
        }
    };
    let result = disk_full_on(ctx, report, &dir).await;
    drop(mount);
    result
}

async fn disk_full_on(ctx: &Ctx, report: &mut Report, dir: &Path) -> Result<()> {
    let mut opts = AgentOpts::new(&ctx.bin, dir);
    opts.env.clone_from(&ctx.agent_env);
    let mut agent = Agent::start(&opts).await?;
    let api = agent.api();
    let quick: Vec<Value> = (0..50)
        .map(|i| command_spec(&format!("full-q{i}"), "true", &[], Duration::from_secs(60)))
        .collect();
    let mut acked: Vec<String> = submit_all(&api, quick).await?;
    let long = api
        .submit(&command_spec(
            "full-long",
            "sleep",
            &["3600"],
            Duration::from_secs(7200),
        ))
        .await?;
    acked.push(long.clone());
    // Ends while the disk is full: its end is written once there is space.
    let ends = api
        .submit(&command_spec(
            "full-ends",
            "sh",
            &["-c", "sleep 2; echo done"],
            Duration::from_secs(60),
        ))
        .await?;
    acked.push(ends.clone());
    let child = poll(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            procfs::children_of(agent.pid())
                .into_iter()
                .find(|p| p.cmdline == "sleep 3600")
                .map(|p| p.pid)
        },
    )
    .await
    .context("the long task's `sleep 3600` never appeared")?;

    // Fill the file system to the last byte.
    let filler = dir.join("filler");
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&filler)?;
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let small = [0u8; 512];
        while f.write_all(&small).is_ok() {}
        while f.write_all(&[0u8]).is_ok() {}
    }

    // Submit until refused: the store may still have free pages inside its file.
    let mut conn = api.conn().await?;
    let mut accepted_when_full = 0usize;
    let mut first_503: Option<String> = None;
    let mut other = Vec::new();
    for i in 0..5_000 {
        let spec = command_spec(&format!("full-f{i}"), "true", &[], Duration::from_secs(60));
        let res = conn
            .send_json(Method::POST, "/api/v1/tasks", &json!({ "spec": spec }))
            .await?;
        match res.status {
            StatusCode::CREATED => {
                acked.push(task_id_of(&res)?);
                accepted_when_full += 1;
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                first_503 = Some(format!(
                    "{} {}: {}",
                    res.status.as_u16(),
                    res.error_label().unwrap_or_default(),
                    res.error_message()
                ));
                break;
            }
            _ => {
                other.push(res.describe());
                break;
            }
        }
    }
    let message = first_503.clone().unwrap_or_default();
    report.check(
        "disk-full-503",
        first_503.is_some()
            && message.contains("Unavailable")
            && message.contains("state store")
            && message.contains("No space left on device"),
        format!(
            "state dir on a full 8 MiB tmpfs: {accepted_when_full} submissions still committed (free pages \
             inside the store file), then {}{}",
            first_503.as_deref().unwrap_or("no 503 within 5,000 submissions"),
            first_failures(&other)
        ),
    );
    // Refused before anything is stored: a flood does not grow the agent.
    let rss_before = agent.rss_kib();
    let mut refused = 0usize;
    let flood = 2_000;
    for i in 0..flood {
        let spec = command_spec(&format!("full-x{i}"), "true", &[], Duration::from_secs(60));
        let res = conn
            .send_json(Method::POST, "/api/v1/tasks", &json!({ "spec": spec }))
            .await?;
        if res.status == StatusCode::SERVICE_UNAVAILABLE {
            refused += 1;
        } else if res.status == StatusCode::CREATED {
            acked.push(task_id_of(&res)?);
        }
    }
    let rss_after = agent.rss_kib();
    report.check(
        "disk-full-flood-refused",
        refused == flood,
        format!(
            "{refused} of {flood} more submissions refused with 503; agent RSS {} -> {}",
            crate::report::mib(rss_before),
            crate::report::mib(rss_after)
        ),
    );
    // Reads and running tasks go on.
    let listed = list_all(&api).await?;
    let long_phase = api
        .task(&long)
        .await
        .map(|t| phase_of(&t))
        .unwrap_or_default();
    let ended = poll(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async {
            api.task(&ends)
                .await
                .ok()
                .filter(|t| is_terminal(&phase_of(t)))
                .map(|t| phase_of(&t))
        },
    )
    .await
    .unwrap_or_default();
    let still_full = std::fs::OpenOptions::new()
        .append(true)
        .open(&filler)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &[0u8; 4096]))
        .is_err();
    report.check(
        "disk-full-reads-and-runs",
        listed.len() == acked.len()
            && long_phase == "TASK_STATUS_RUNNING"
            && procfs::is_alive(child)
            && ended == "TASK_STATUS_SUCCEEDED"
            && still_full,
        format!(
            "while full: list 200 with {} tasks ({} acknowledged); the long task {long_phase}, its process \
             alive: {}; a task that ended meanwhile: {ended}; disk still full: {still_full}",
            listed.len(),
            acked.len(),
            procfs::is_alive(child)
        ),
    );

    // Space again: submissions work within about a second (the writer retries).
    std::fs::remove_file(&filler)?;
    let freed = Instant::now();
    let mut probes = 0;
    let resumed = poll(Duration::from_secs(15), Duration::from_millis(100), || {
        probes += 1;
        let spec = command_spec(
            &format!("full-back{probes}"),
            "true",
            &[],
            Duration::from_secs(60),
        );
        let api = api.clone();
        async move {
            let res = api.send_json_once(&json!({ "spec": spec })).await.ok()?;
            (res.status == StatusCode::CREATED)
                .then(|| task_id_of(&res).ok())
                .flatten()
        }
    })
    .await;
    report.check(
        "disk-full-resumes",
        resumed.is_some(),
        format!(
            "filler removed: submissions accepted again after {:.2} s ({probes} probes)",
            freed.elapsed().as_secs_f64()
        ),
    );
    if let Some(id) = resumed {
        acked.push(id);
    }

    // A crash now loses nothing acknowledged, and brings back none of the refused.
    agent.kill9().await?;
    drop(agent);
    let agent = Agent::start(&opts).await?;
    let api = agent.api();
    let after = list_all(&api).await?;
    let ids: HashSet<String> = after.iter().map(task_id).collect();
    let missing: Vec<String> = acked
        .iter()
        .filter(|id| !ids.contains(*id))
        .cloned()
        .collect();
    let ends_after = api
        .task(&ends)
        .await
        .map(|t| phase_of(&t))
        .unwrap_or_default();
    let long_after = api.task(&long).await.unwrap_or(Value::Null);
    report.check(
        "disk-full-nothing-lost",
        missing.is_empty()
            && after.len() == acked.len()
            && ends_after == "TASK_STATUS_SUCCEEDED"
            && phase_of(&long_after) == "TASK_STATUS_FAILED"
            && long_after.pointer("/status/error").and_then(Value::as_str) == Some(REASON),
        format!(
            "after kill -9 and restart: {} listed, {} acknowledged, missing {}; the task that ended while \
             full: {ends_after}; the long NEVER task: {} {:?}{}",
            after.len(),
            acked.len(),
            missing.len(),
            phase_of(&long_after),
            long_after.pointer("/status/error"),
            first_failures(&missing)
        ),
    );
    stop_agent(agent, report).await;
    Ok(())
}
