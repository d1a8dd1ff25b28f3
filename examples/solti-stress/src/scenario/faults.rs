//! `faults`: a task's child SIGKILLed from outside, a subscriber leaving mid-stream, an
//! unwritable script directory, a full disk, a runner that panics (`agentd-chaos`), and
//! `kill -9` of the agent itself.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use base64::Engine as _;
use serde_json::{Value, json};

use super::{Ctx, command_spec, open_gate, poll, stop_agent};
use crate::{
    agent::{Agent, kill_groups},
    client::{Api, is_terminal, phase_of},
    procfs,
    report::Report,
    sse::{LogEvent, SseItem},
};

pub(super) async fn run(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let agent = ctx.agent("faults").await?;
    sigkill_child(&agent, report).await?;
    subscriber_disconnect(ctx, &agent, report).await?;
    stop_agent(agent, report).await;
    unwritable_script_dir(ctx, report).await?;
    disk_full(ctx, report).await?;
    runner_panic(ctx, report).await?;
    kill9_agent(ctx, report).await
}

/// Finds the agent's child whose command line is exactly `cmdline`, waiting up to 10 s.
async fn find_child(agent_pid: u32, cmdline: &str, not: Option<u32>) -> Option<u32> {
    poll(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async move {
            procfs::children_of(agent_pid)
                .into_iter()
                .find(|p| p.cmdline == cmdline && Some(p.pid) != not)
                .map(|p| p.pid)
        },
    )
    .await
}

async fn sigkill_child(agent: &Agent, report: &mut Report) -> Result<()> {
    let api = agent.api();
    let mut spec = command_spec("faults-kill", "sleep", &["1001"], Duration::from_secs(600));
    spec["restart"] = json!("RESTART_STRATEGY_ON_FAILURE");
    spec["maxRetries"] = json!(5);
    spec["backoff"] = json!({ "jitter": "JITTER_STRATEGY_NONE", "firstMs": "200", "maxMs": "1000", "factor": 2.0 });
    let id = api.submit(&spec).await?;
    let mut sub = api.logs(&id).await?;
    let first = find_child(agent.pid(), "sleep 1001", None)
        .await
        .context("the task's child `sleep 1001` never appeared under the agent")?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(first)?),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    let killed_at = Instant::now();

    let run1 = poll(Duration::from_secs(15), Duration::from_millis(100), || {
        let (api, id) = (api.clone(), id.clone());
        async move {
            let runs = api.runs(&id).await.ok()?;
            runs.first()
                .filter(|r| r.get("finishedAt").is_some())
                .cloned()
        }
    })
    .await;
    let run1 = run1.unwrap_or(Value::Null);
    let status = run1.get("status").and_then(Value::as_str).unwrap_or("none");
    let error = run1.get("error").and_then(Value::as_str).unwrap_or("");
    let lower = error.to_ascii_lowercase();
    let mentions_signal =
        lower.contains("sigkill") || lower.contains("signal 9") || lower.contains("signal: 9");
    report.check(
        "sigkill-recorded",
        status == "TASK_STATUS_FAILED" && mentions_signal && run1.get("exitCode").is_none(),
        format!(
            "killed pid {first} with SIGKILL; run 1: status={status} error={error:?} exitCode={:?}",
            run1.get("exitCode")
        ),
    );

    let second = find_child(agent.pid(), "sleep 1001", Some(first)).await;
    let task = api.task(&id).await?;
    let attempt = task
        .pointer("/status/attempt")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    report.check(
        "sigkill-restarted",
        second.is_some() && attempt >= 2,
        format!(
            "restart OnFailure: new child {second:?} {:.1}s after the kill, task phase {} attempt {attempt}",
            killed_at.elapsed().as_secs_f64(),
            phase_of(&task)
        ),
    );

    // The subscriber saw attempt 1 finish without an exit code and attempt 2 start.
    let mut events = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(item)) = sub.next().await {
            if let SseItem::Event { name, data } = item {
                let ev = LogEvent::decode(&name, &data);
                let started2 = matches!(ev, Ok(LogEvent::RunStarted { attempt: 2 }));
                events.push(ev);
                if started2 {
                    return;
                }
            }
        }
    })
    .await;
    let saw_finish = events.iter().any(|e| {
        matches!(
            e,
            Ok(LogEvent::RunFinished {
                attempt: 1,
                exit_code: None
            })
        )
    });
    let saw_start2 = events
        .iter()
        .any(|e| matches!(e, Ok(LogEvent::RunStarted { attempt: 2 })));
    report.check(
        "sigkill-stream",
        saw_finish && saw_start2,
        format!("log stream events: {events:?}"),
    );

    let deleted = api.delete(&id).await?;
    let gone = poll(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async { (!second.is_some_and(procfs::is_alive)).then_some(()) },
    )
    .await;
    report.check(
        "delete-reaps-child",
        gone.is_some(),
        format!(
            "DELETE -> {}; child {second:?} gone: {}",
            deleted.as_u16(),
            gone.is_some()
        ),
    );
    Ok(())
}

async fn subscriber_disconnect(ctx: &Ctx, agent: &Agent, report: &mut Report) -> Result<()> {
    let api = agent.api();
    let gate = ctx.dir("faults-gate")?.join("go");
    let lines = 2000;
    let script = super::paced_lines_script(lines, 100, "0.05");
    let id = api
        .submit(&super::bash_spec(
            "faults-disconnect",
            &script,
            &[("GATE", &gate.to_string_lossy())],
            Duration::from_secs(600),
        ))
        .await?;
    let leaver = api.logs(&id).await?;
    let stayers = [api.logs(&id).await?, api.logs(&id).await?];
    open_gate(&gate)?;
    let leave = tokio::spawn(async move {
        let mut leaver = leaver;
        let mut chunks = 0;
        while chunks < 300 {
            match leaver.next().await {
                Ok(Some(SseItem::Event { name, .. })) if name == "chunk" => chunks += 1,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        drop(leaver);
        chunks
    });
    let mut handles = Vec::new();
    for s in stayers {
        handles.push(tokio::spawn(super::logs::follow(s)));
    }
    let left_after = leave.await?;
    let mut problems = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        let seen = tokio::time::timeout(Duration::from_secs(60), h)
            .await
            .context("stayer stalled")??;
        if seen.chunks != lines
            || seen.lagged > 0
            || seen.order_error.is_some()
            || !seen.ended
            || seen.error.is_some()
        {
            problems.push(format!("stayer {i}: {seen:?}"));
        }
    }
    report.check(
        "subscriber-disconnect",
        problems.is_empty(),
        format!(
            "one of three subscribers dropped its connection after {left_after} lines; the other two got all {lines} lines in order and the end{}",
            super::load::first_failures(&problems)
        ),
    );
    Ok(())
}

async fn unwritable_script_dir(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let mut opts = ctx.opts("faults-tmpdir")?;
    let missing = ctx.scratch.join("no-such-tmpdir");
    opts.env
        .push(("TMPDIR".to_owned(), missing.to_string_lossy().into_owned()));
    let mut agent = Agent::start(&opts).await?;
    let api = agent.api();
    let body = base64::engine::general_purpose::STANDARD.encode("echo hello\n");
    let spec = json!({
        "slot": "faults-script",
        "kind": { "subprocess": { "script": { "wellKnown": "SCRIPT_RUNTIME_BASH", "body": body }, "failOnNonZero": true } },
        "timeoutMs": "30000",
        "restart": "RESTART_STRATEGY_NEVER",
        "admission": "ADMISSION_STRATEGY_DROP_IF_RUNNING",
    });
    let id = api.submit(&spec).await?;
    let task = terminal(&api, &id, Duration::from_secs(20)).await;
    let (phase, error) = phase_and_error(task.as_ref());
    report.check(
        "script-dir-unwritable",
        phase == "TASK_STATUS_FAILED" && !error.is_empty(),
        format!(
            "TMPDIR={} (missing): script task phase={phase} error={error:?}",
            missing.display()
        ),
    );
    super::still_serving(&mut agent, report, "a failed script write").await;
    stop_agent(agent, report).await;
    Ok(())
}

/// A script task whose temp directory is on a full filesystem (a 64 KiB tmpfs, filled up)
/// must end Failed with a clear error while the agent keeps serving. Needs root to mount;
/// skipped otherwise.
async fn disk_full(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let dir = ctx.scratch.join("full-fs");
    std::fs::create_dir_all(&dir)?;
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        report.skip("disk-full", "cannot mount a small tmpfs here (needs root); the unwritable-dir check covers the error path");
        return Ok(());
    }
    // Fill the filesystem to the last byte.
    {
        use std::io::Write as _;
        let mut filler = std::fs::File::create(dir.join("filler"))?;
        let block = vec![0u8; 4096];
        while filler.write_all(&block).is_ok() {}
    }
    let result = async {
        let mut opts = ctx.opts("faults-diskfull")?;
        opts.env.push(("TMPDIR".to_owned(), dir.to_string_lossy().into_owned()));
        let mut agent = Agent::start(&opts).await?;
        let api = agent.api();
        let body = base64::engine::general_purpose::STANDARD.encode("echo hello\n".repeat(2000));
        let spec = json!({
            "slot": "faults-diskfull",
            "kind": { "subprocess": { "script": { "wellKnown": "SCRIPT_RUNTIME_BASH", "body": body }, "failOnNonZero": true } },
            "timeoutMs": "30000",
            "restart": "RESTART_STRATEGY_NEVER",
            "admission": "ADMISSION_STRATEGY_DROP_IF_RUNNING",
        });
        let id = api.submit(&spec).await?;
        let task = terminal(&api, &id, Duration::from_secs(20)).await;
        let (phase, error) = phase_and_error(task.as_ref());
        report.check(
            "disk-full",
            phase == "TASK_STATUS_FAILED" && !error.is_empty(),
            format!("script written to a full 64 KiB tmpfs: phase={phase} error={error:?}"),
        );
        super::still_serving(&mut agent, report, "a full disk").await;
        stop_agent(agent, report).await;
        anyhow::Ok(())
    }
    .await;
    let _ = std::process::Command::new("umount").arg(&dir).status();
    result
}

/// A runner whose attempt future panics (`agentd-chaos`, label `chaos=panic`): the task ends
/// Failed with an error naming the panic, its run is recorded, and the agent keeps serving,
/// runs other tasks and stops cleanly.
async fn runner_panic(ctx: &Ctx, report: &mut Report) -> Result<()> {
    if !ctx.chaos_bin.is_file() {
        report.check(
            "runner-panic",
            false,
            format!(
                "{} not found: build it with `cargo build -p solti-stress` or pass --chaos-agent PATH",
                ctx.chaos_bin.display()
            ),
        );
        return Ok(());
    }
    let mut opts = ctx.opts("faults-panic")?;
    opts.bin.clone_from(&ctx.chaos_bin);
    let mut agent = Agent::start(&opts).await?;
    let api = agent.api();
    let mut spec = command_spec("faults-panic", "true", &[], Duration::from_secs(30));
    spec["labels"] = json!({ "chaos": "panic" });
    let id = api.submit(&spec).await?;
    let task = terminal(&api, &id, Duration::from_secs(20)).await;
    let (phase, error) = phase_and_error(task.as_ref());
    let runs = api.runs(&id).await.unwrap_or_default();
    let run_status = |r: &Value| {
        r.get("status")
            .and_then(Value::as_str)
            .unwrap_or("none")
            .to_owned()
    };
    let run_error = |r: &Value| {
        r.get("error")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let run_ok = runs.len() == 1
        && runs.iter().all(|r| {
            run_status(r) == "TASK_STATUS_FAILED"
                && r.get("finishedAt").is_some()
                && run_error(r).contains("panic")
        });
    report.check(
        "runner-panic",
        phase == "TASK_STATUS_FAILED" && error.contains("panic") && run_ok,
        format!(
            "task with labels {{chaos: panic}} (runner `chaos` panics inside its attempt): phase={phase} \
             error={error:?}; runs: {}",
            runs.iter()
                .map(|r| format!(
                    "attempt {} {} error={:?} finishedAt={}",
                    r.get("attempt").and_then(Value::as_u64).unwrap_or(0),
                    run_status(r),
                    run_error(r),
                    r.get("finishedAt").is_some()
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    );
    let panic_logged = agent
        .output_text()
        .contains("chaos runner: this attempt panics on purpose");
    report.info(
        "runner-panic-logged",
        format!("the panic message is in the agent's stderr: {panic_logged}"),
    );
    super::still_serving(&mut agent, report, "a runner panic").await;
    let id = api
        .submit(&command_spec(
            "faults-after-panic",
            "echo",
            &["still here"],
            Duration::from_secs(30),
        ))
        .await?;
    let phase = terminal(&api, &id, Duration::from_secs(20))
        .await
        .as_ref()
        .map(phase_of)
        .unwrap_or_default();
    report.check(
        "runner-panic-next-task",
        phase == "TASK_STATUS_SUCCEEDED",
        format!("after the panic, an unlabelled `echo` task (subprocess runner) ended {phase}"),
    );
    stop_agent(agent, report).await;
    Ok(())
}

async fn terminal(api: &Api, id: &str, within: Duration) -> Option<Value> {
    poll(within, Duration::from_millis(100), || async move {
        api.task(id)
            .await
            .ok()
            .filter(|t| is_terminal(&phase_of(t)))
    })
    .await
}

async fn kill9_agent(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let opts = ctx.opts("faults-kill9")?;
    let mut first = Agent::start(&opts).await?;
    let id_before = first.startup.agent_id.clone();
    let api = first.api();
    // The task's process execs into `sleep 1002` after starting a background `sleep 1003`:
    // a direct child of the agent and a grandchild that does not inherit a parent-death
    // signal (it is cleared on fork).
    let task = api
        .submit(&command_spec(
            "faults-orphan",
            "/bin/sh",
            &["-c", "sleep 1003 & exec sleep 1002"],
            Duration::from_secs(600),
        ))
        .await?;
    let child = find_child(first.pid(), "sleep 1002", None)
        .await
        .context("the task's child `sleep 1002` never appeared")?;
    let grandchild = find_child(child, "sleep 1003", None)
        .await
        .context("the task's grandchild `sleep 1003` never appeared")?;
    // The unified (v2) line says whether the agent put the run in a cgroup of its own.
    let cgroup = std::fs::read_to_string(format!("/proc/{child}/cgroup"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("0::"))
        .unwrap_or("none")
        .to_owned();
    first.kill9().await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let alive_after_kill = (procfs::is_alive(child), procfs::is_alive(grandchild));

    let second = Agent::start(&opts).await?;
    report.check(
        "kill9-same-agent-id",
        second.startup.agent_id == id_before,
        format!(
            "agent id before kill -9: {id_before}; after restart with the same --state-dir: {}",
            second.startup.agent_id
        ),
    );
    let api2 = second.api();
    let known = api2
        .get(&format!("/api/v1/tasks/{task}"))
        .await
        .map(|r| r.status.as_u16())
        .unwrap_or(0);
    let total = api2
        .get("/api/v1/tasks")
        .await
        .ok()
        .and_then(|r| r.json().get("total").and_then(Value::as_u64))
        .unwrap_or(0);
    report.info(
        "kill9-task-state",
        format!("after restart: GET old task {task} -> {known}; tasks listed: {total} (durable state: the task is recovered, docs/state.md)"),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let alive_after_restart = (procfs::is_alive(child), procfs::is_alive(grandchild));
    report.check(
        "kill9-no-orphan",
        alive_after_restart == (false, false),
        format!(
            "old run's child pid {child} (`sleep 1002`) / grandchild pid {grandchild} (`sleep 1003`, started in the \
             background): alive 200 ms after kill -9 = {} / {}, alive after the restart = {} / {} (cgroup {cgroup:?}){}",
            alive_after_kill.0,
            alive_after_kill.1,
            alive_after_restart.0,
            alive_after_restart.1,
            if alive_after_restart == (false, false) { "" } else { " -- ORPHAN LEFT RUNNING" }
        ),
    );
    let leftovers = [child, grandchild].map(|pid| procfs::Proc {
        pid,
        cmdline: String::new(),
    });
    kill_groups(&leftovers);
    // The old run's cgroup may outlive the agent too; remove it once our cleanup emptied it.
    let rel = cgroup.strip_prefix("0::").filter(|rel| rel.len() > 1);
    match rel.and_then(procfs::cgroup2_dir) {
        Some(dir) => {
            let removed = poll(Duration::from_secs(5), Duration::from_millis(50), || {
                let dir = dir.clone();
                async move { std::fs::remove_dir(&dir).is_ok().then_some(()) }
            })
            .await;
            report.info(
                "kill9-stale-cgroup",
                format!(
                    "the old run's cgroup {} was still there after the restart (not reaped by the new agent); \
                     removed by the harness: {}",
                    dir.display(),
                    removed.is_some()
                ),
            );
        }
        None => report.info(
            "kill9-stale-cgroup",
            format!(
                "the old run's cgroup ({}) is gone after the restart",
                rel.unwrap_or("none")
            ),
        ),
    }
    stop_agent(second, report).await;
    Ok(())
}

/// The phase and the error text (empty when none) of a task, if there is one.
fn phase_and_error(task: Option<&Value>) -> (String, String) {
    let phase = task.map(phase_of).unwrap_or_default();
    let error = task
        .and_then(|t| t.pointer("/status/error"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    (phase, error)
}
