//! Shared fixtures: a fake runner driven by the spec's command, and helpers.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use solti_core::{StateConfig, SupervisorApi};
use solti_model::{
    BackoffPolicy, JitterPolicy, SubprocessMode, SubprocessSpec, Task, TaskId, TaskKind, TaskPhase,
    TaskSpec, TaskSpecBuilder,
};
use solti_runner::{
    Attempt, AttemptEnd, AttemptFn, BuildContext, Runner, RunnerError, RunnerRouter,
};
use taskvisor::{ControllerConfig, SupervisorConfig, TaskError, TaskRef};
use tokio::time::Instant;

/// Start instants of every attempt, per slot (tokio clock, so paused time works).
pub(crate) type StartLog = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

/// Runs `command args…` specs:
/// - `ok [line…]`: prints each arg as a stdout line, records exit code 0, succeeds;
/// - `exit3`: records exit code 3, succeeds;
/// - `fail [line…]`: prints, fails (exit 1); `fatal`: fatal failure (exit 2);
/// - `flaky N [line…]`: prints, fails while the attempt number is <= N, then succeeds;
/// - `sleep MS`: sleeps (cancellable), then succeeds; `hang`: waits for cancellation;
/// - `stubborn`: ignores cancellation (sleeps 1 h);
/// - `spam N`: prints N lines, then succeeds; `panic`: panics inside the attempt.
#[derive(Default)]
pub(crate) struct FakeRunner {
    pub(crate) starts: StartLog,
}

impl Runner for FakeRunner {
    fn name(&self) -> &str {
        "fake"
    }

    fn supports(&self, spec: &TaskSpec) -> bool {
        matches!(spec.kind(), TaskKind::Subprocess(_))
    }

    fn build_task(&self, spec: &TaskSpec, ctx: &BuildContext) -> Result<TaskRef, RunnerError> {
        let TaskKind::Subprocess(sub) = spec.kind() else {
            return Err(RunnerError::build("fake", "not a subprocess"));
        };
        let SubprocessMode::Command { command, args } = &sub.mode else {
            return Err(RunnerError::build("fake", "scripts unsupported"));
        };
        let (command, args) = (command.clone(), args.clone());
        let starts = Arc::clone(&self.starts);
        let slot = spec.slot().to_string();
        Ok(AttemptFn::arc(ctx.output(), move |attempt: Attempt| {
            starts
                .lock()
                .unwrap()
                .entry(slot.clone())
                .or_default()
                .push(Instant::now());
            let (command, args) = (command.clone(), args.clone());
            async move {
                let (sink, ctx) = (attempt.output(), attempt.context());
                let print = |lines: &[String]| {
                    for line in lines {
                        sink.stdout_line(line.clone().into());
                    }
                };
                AttemptEnd::new(match command.as_str() {
                    "ok" => {
                        print(&args);
                        // Like a subprocess runner: the code of a clean exit is recorded.
                        return AttemptEnd::success().with_exit_code(0);
                    }
                    "fail" => {
                        print(&args);
                        Err(TaskError::fail("boom").with_exit_code(1))
                    }
                    "exit3" => {
                        // Non-zero exit that does not fail the attempt (fail_on_non_zero off).
                        return AttemptEnd::success().with_exit_code(3);
                    }
                    "fatal" => Err(TaskError::fatal("broken").with_exit_code(2)),
                    "flaky" => {
                        let n: u32 = args[0].parse().unwrap();
                        print(&args[1..]);
                        if attempt.number() <= n {
                            Err(TaskError::fail("flaky").with_exit_code(1))
                        } else {
                            Ok(())
                        }
                    }
                    "sleep" => {
                        let ms: u64 = args[0].parse().unwrap();
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(()),
                            () = ctx.cancelled() => Err(TaskError::Canceled),
                        }
                    }
                    "hang" => {
                        ctx.cancelled().await;
                        Err(TaskError::Canceled)
                    }
                    "stubborn" => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        Ok(())
                    }
                    "panic" => panic!("fake runner panics on purpose"),
                    "spam" => {
                        let n: usize = args[0].parse().unwrap();
                        for i in 0..n {
                            sink.stdout_line(format!("line {i}").into());
                        }
                        Ok(())
                    }
                    other => Err(TaskError::fatal(format!("unknown fake command {other}"))),
                })
            }
        }))
    }
}

/// A supervisor with the fake runner; grace 2 s.
pub(crate) async fn api() -> SupervisorApi {
    api_with(StateConfig::default(), ControllerConfig::default())
        .await
        .0
}

pub(crate) async fn api_with(
    state: StateConfig,
    ctl: ControllerConfig,
) -> (SupervisorApi, StartLog) {
    let runner = FakeRunner::default();
    let starts = Arc::clone(&runner.starts);
    let mut router = RunnerRouter::new();
    router.register(runner).unwrap();
    let sup = SupervisorConfig::default().with_grace(Duration::from_secs(2));
    let api = SupervisorApi::new(sup, ctl, vec![], router, state)
        .await
        .unwrap();
    (api, starts)
}

/// A spec builder for `command args…` on `slot` with a 10 s timeout.
pub(crate) fn spec(slot: &str, command: &str, args: &[&str]) -> TaskSpecBuilder {
    let kind = TaskKind::Subprocess(SubprocessSpec::command(command, args.iter().copied()));
    TaskSpec::builder(slot, kind, 10_000u64).backoff(fast_backoff())
}

/// 1 ms backoff, no jitter.
pub(crate) fn fast_backoff() -> BackoffPolicy {
    BackoffPolicy::new(JitterPolicy::None, 1, 1, 1.0).unwrap()
}

/// Waits until the task is terminal (its output stream ends) and returns it.
pub(crate) async fn done(api: &SupervisorApi, id: &TaskId) -> Task {
    let wait = async {
        if let Some(mut sub) = api
            .subscribe_output(id, solti_core::OutputStart::Live)
            .await
            .unwrap()
        {
            while sub.recv().await.is_some() {}
        }
        api.get_task(id).await.unwrap().expect("task exists")
    };
    let task = tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("task reaches a terminal phase");
    assert!(task.status.phase.is_terminal(), "{task:?}");
    task
}

/// Waits until the task has started running (phase Running).
pub(crate) async fn running(api: &SupervisorApi, id: &TaskId) {
    let wait = async {
        loop {
            let task = api.get_task(id).await.unwrap().expect("task exists");
            if task.status.phase == TaskPhase::Running {
                return;
            }
            assert_eq!(task.status.phase, TaskPhase::Pending, "{task:?}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("task starts");
}

/// Phases of the task's runs, oldest first.
pub(crate) async fn run_phases(api: &SupervisorApi, id: &TaskId) -> Vec<TaskPhase> {
    api.list_task_runs(id)
        .await
        .unwrap()
        .unwrap()
        .iter()
        .map(|r| r.phase)
        .collect()
}
