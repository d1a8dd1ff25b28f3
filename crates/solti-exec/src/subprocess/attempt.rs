//! One attempt: write the script, spawn, pump output, wait, and stop the tree on cancel
//! or drop.

use std::{os::unix::process::ExitStatusExt as _, process::ExitStatus, sync::Arc, time::Duration};

use solti_model::{OutputStream, TaskId};
use solti_runner::{Attempt, AttemptEnd, MetricsBackend};
use taskvisor::TaskError;
use tempfile::TempPath;
use tokio::task::JoinHandle;

use super::{Program, Shared, TaskPlan, output};
use crate::{
    ExecError,
    sys::{self, CommandLine, Running},
};

/// Inputs of one attempt.
pub(crate) struct Inputs {
    pub(crate) shared: Arc<Shared>,
    pub(crate) plan: Arc<TaskPlan>,
    pub(crate) attempt: Attempt,
    pub(crate) metrics: Arc<dyn MetricsBackend>,
    pub(crate) task_id: TaskId,
}

/// Runs one attempt to completion (see the crate docs for the exit mapping); the error is
/// the attempt's when it did not get to start a process.
pub(crate) async fn run(a: &Inputs) -> Result<AttemptEnd, TaskError> {
    let number = a.attempt.number();
    if a.attempt.context().is_cancelled() {
        return Err(TaskError::Canceled);
    }
    let not_started = |e: ExecError| {
        a.metrics.runner_error(&a.shared.name, e.metric_reason());
        let retryable = e.is_retryable();
        tracing::warn!(task_id = %a.task_id, attempt = number, error = %e.chain(), retryable, "attempt could not start");
        if retryable {
            // Out of descriptors or processes for now, or a hung mount: the restart
            // policy decides whether to try again.
            TaskError::fail(e.chain())
        } else {
            TaskError::fatal(e.chain())
        }
    };

    let (cmd, script) = match &a.plan.program {
        Program::Command { command, args } => {
            (command_line(&a.plan, command.clone(), args.clone()), None)
        }
        Program::Script {
            interpreter,
            flag,
            args,
            ..
        } => {
            let path = write_script(&a.shared, &a.plan)
                .await
                .map_err(not_started)?;
            let mut argv: Vec<String> = flag.iter().cloned().collect();
            argv.push(path.to_string_lossy().into_owned());
            argv.extend(args.iter().cloned());
            (command_line(&a.plan, interpreter.clone(), argv), Some(path))
        }
    };

    let mut running = sys::start(&a.shared.isolation, &cmd, a.shared.config.spawn_timeout)
        .await
        .map_err(not_started)?;
    tracing::debug!(task_id = %a.task_id, attempt = number, pid = running.pid(), program = %cmd.program, "process started");
    let mut guard = Guard {
        running: None,
        readers: Vec::new(),
        script,
        shared: Arc::clone(&a.shared),
    };
    if let Some((stdout, stderr)) = running.take_output() {
        let max = a.shared.config.max_line_bytes;
        for (pipe, stream) in [
            (stdout, OutputStream::Stdout),
            (stderr, OutputStream::Stderr),
        ] {
            let reader = output::pump(
                pipe,
                stream,
                a.attempt.output().clone(),
                max,
                a.task_id.clone(),
            );
            guard.readers.push(a.shared.tracker.spawn(reader));
        }
    }
    guard.running = Some(running);

    let canceled = tokio::select! {
        biased;
        () = a.attempt.context().cancelled() => true,
        () = guard.running_ref().exited() => false,
    };
    let grace = a.shared.config.kill_grace;
    let status = guard.stop(canceled, grace).await;
    if canceled {
        tracing::debug!(task_id = %a.task_id, attempt = number, "attempt canceled; process tree stopped");
        let end = AttemptEnd::new(Err(TaskError::Canceled));
        return Ok(match status.and_then(|s| s.code()) {
            Some(code) => end.with_exit_code(code),
            None => end,
        });
    }
    Ok(exit_end(a, status))
}

/// The end of an attempt whose process exited by itself.
fn exit_end(a: &Inputs, status: Option<ExitStatus>) -> AttemptEnd {
    let attempt = a.attempt.number();
    let Some(status) = status else {
        return AttemptEnd::new(Err(TaskError::fail("the process could not be waited for")));
    };
    if let Some(code) = status.code() {
        if code != 0 && a.plan.fail_on_non_zero {
            let failed = TaskError::fail(format!("process exited with code {code}"));
            return AttemptEnd::new(Err(failed.with_exit_code(code)));
        }
        if code != 0 {
            tracing::info!(task_id = %a.task_id, attempt, exit_code = code, "process exited non-zero; fail_on_non_zero is off");
        }
        return AttemptEnd::success().with_exit_code(code);
    }
    let signal = status.signal().unwrap_or(0);
    let reason = format!(
        "process killed by signal {signal} ({})",
        signal_name(signal)
    );
    if a.plan.fail_on_non_zero {
        return AttemptEnd::new(Err(TaskError::fail(reason)));
    }
    tracing::info!(task_id = %a.task_id, attempt, signal, "{reason}; fail_on_non_zero is off");
    AttemptEnd::success()
}

fn command_line(plan: &TaskPlan, program: String, args: Vec<String>) -> CommandLine {
    CommandLine {
        program,
        args,
        env: plan.env.clone(),
        cwd: plan.cwd.clone(),
    }
}

/// Writes the script body to a private (0600) temp file; removed when the returned path
/// is dropped.
async fn write_script(shared: &Shared, plan: &TaskPlan) -> Result<TempPath, ExecError> {
    let Program::Script { body, .. } = &plan.program else {
        return Err(ExecError::InvalidSpec {
            field: "kind.subprocess.mode",
            reason: "not a script".to_owned(),
        });
    };
    let dir = shared
        .config
        .script_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir);
    let body = body.clone();
    let dir2 = dir.clone();
    let run_as = shared.config.run_as;
    let written = tokio::task::spawn_blocking(move || -> std::io::Result<TempPath> {
        use std::io::Write as _;
        // tempfile creates the file with mode 0600 and O_EXCL.
        let mut file = tempfile::Builder::new()
            .prefix("solti-script-")
            .tempfile_in(&dir2)?;
        if let Some(run_as) = run_as {
            // The interpreter runs as the task user and must be able to read the file.
            std::os::unix::fs::fchown(file.as_file(), Some(run_as.uid), Some(run_as.gid))?;
        }
        file.write_all(&body)?;
        file.as_file().sync_data().ok();
        Ok(file.into_temp_path())
    })
    .await;
    match written {
        Ok(Ok(path)) => Ok(path),
        Ok(Err(source)) => Err(ExecError::ScriptWrite { dir, source }),
        Err(join) => Err(ExecError::ScriptWrite {
            dir,
            source: std::io::Error::other(join.to_string()),
        }),
    }
}

/// Owns a running attempt. Dropped before the attempt finished (timeout, force-abort),
/// it SIGTERMs the tree at once and hands everything to a reaper on the runner's tracker,
/// which SIGKILLs after the grace, reaps, and removes the cgroup and script file.
struct Guard {
    running: Option<Running>,
    readers: Vec<JoinHandle<()>>,
    script: Option<TempPath>,
    shared: Arc<Shared>,
}

impl Guard {
    fn running_ref(&self) -> &Running {
        // The field is set right after spawn and only taken by `stop`/`drop`.
        #[expect(
            clippy::expect_used,
            reason = "set before the first await, taken only when the guard ends"
        )]
        self.running
            .as_ref()
            .expect("running is set until the attempt ends")
    }

    /// Stops the tree (gracefully when `terminate`), reaps, drains output and cleans up.
    async fn stop(&mut self, terminate: bool, grace: Duration) -> Option<ExitStatus> {
        let running = self.running.take()?;
        let readers = std::mem::take(&mut self.readers);
        let script = self.script.take();
        finish(running, readers, script, terminate, grace).await
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        running.terminate();
        let readers = std::mem::take(&mut self.readers);
        let script = self.script.take();
        let grace = self.shared.config.kill_grace;
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                // Already SIGTERMed above: the reaper waits the grace, then SIGKILLs.
                drop(self.shared.tracker.spawn_on(
                    async move {
                        finish(running, readers, script, true, grace).await;
                    },
                    &handle,
                ));
            }
            Err(_) => {
                // No runtime to wait on: kill now; Running's drop reaps and removes the
                // cgroup synchronously.
                running.kill();
                for r in readers {
                    r.abort();
                }
                drop((running, script));
            }
        }
    }
}

/// The common end of an attempt: optional SIGTERM + grace, SIGKILL of whatever is left
/// (leftovers of a normal exit included: no orphan outlives its attempt), reap, drain the
/// output readers, remove the cgroup, then the script file.
async fn finish(
    mut running: Running,
    readers: Vec<JoinHandle<()>>,
    script: Option<TempPath>,
    terminate: bool,
    grace: Duration,
) -> Option<ExitStatus> {
    if terminate {
        running.terminate();
        let _ = tokio::time::timeout(grace, running.exited()).await;
    }
    running.kill();
    running.exited().await;
    let status = running.reap();
    // The readers publish what is left in the pipes (never waiting for subscribers). Only a
    // reader that still has not reached EOF after READER_DRAIN + READER_FLUSH (a writer
    // escaped the group without a cgroup and holds the pipe open) is aborted.
    let mut readers = readers;
    let drained = tokio::time::Instant::now() + READER_DRAIN;
    for r in &mut readers {
        let _ = tokio::time::timeout_at(drained, r).await;
    }
    for mut r in readers {
        if !r.is_finished() && tokio::time::timeout(READER_FLUSH, &mut r).await.is_err() {
            r.abort();
        }
    }
    running.cleanup().await;
    drop(script);
    status
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        _ => "signal",
    }
}

/// How long output readers may take to publish what is left in the pipes once the tree is
/// dead.
const READER_DRAIN: Duration = Duration::from_secs(2);
/// How much longer each may then take to reach EOF before it is aborted.
const READER_FLUSH: Duration = Duration::from_secs(1);
