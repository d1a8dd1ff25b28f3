//! Shared helpers: a collecting output target and a way to run one attempt.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::Engine as _;
use bytes::Bytes;
use solti_exec::{SubprocessBackendConfig, subprocess};
use solti_model::{
    Flag, OutputEvent, OutputStream, Runtime, SubprocessMode, SubprocessSpec, TaskEnv, TaskId,
    TaskKind, TaskSpec,
};
use solti_runner::{AttemptEnd, OutputPublisher, OutputTarget, RunnerRouter};
use taskvisor::{TaskContext, TaskError, TaskRef};

/// Collects every published event.
#[derive(Default)]
pub(crate) struct Collect(Mutex<Vec<OutputEvent>>);

impl OutputTarget for Collect {
    fn publish(&self, event: OutputEvent) {
        self.0.lock().unwrap().push(event);
    }
}

impl Collect {
    pub(crate) fn lines(&self, stream: OutputStream) -> Vec<Bytes> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                OutputEvent::Chunk {
                    stream: s, line, ..
                } if *s == stream => Some(line.clone()),
                _ => None,
            })
            .collect()
    }
    pub(crate) fn stdout(&self) -> Vec<String> {
        self.lines(OutputStream::Stdout)
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }
    pub(crate) fn stderr(&self) -> Vec<String> {
        self.lines(OutputStream::Stderr)
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }
}

/// One built task with its output.
pub(crate) struct Built {
    pub(crate) task: TaskRef,
    pub(crate) out: Arc<Collect>,
}

/// A small grace keeps the kill tests short.
pub(crate) fn fast() -> SubprocessBackendConfig {
    SubprocessBackendConfig::new().kill_grace(Duration::from_millis(300))
}

pub(crate) fn build_with(spec: &TaskSpec, config: SubprocessBackendConfig, env: TaskEnv) -> Built {
    let mut router = RunnerRouter::new();
    router.set_env(solti_runner::RunnerEnv::from_env(env));
    subprocess::register_subprocess_runner_with_backend(&mut router, "default", config).unwrap();
    let out = Arc::new(Collect::default());
    let ctx = router.context(OutputPublisher::new(TaskId::generate(), out.clone()));
    let (task, _) = router.build(spec, &ctx).unwrap();
    Built { task, out }
}

pub(crate) fn build(spec: &TaskSpec) -> Built {
    build_with(spec, fast(), TaskEnv::new())
}

/// Runs one attempt to the end with a fresh, never-cancelled context.
pub(crate) async fn run(spec: &TaskSpec) -> (Result<(), TaskError>, Built) {
    let (end, b) = run_attempt(spec).await;
    (end.into_result(), b)
}

/// Runs attempt 1 to the end as the supervisor starts it, with a never-cancelled context.
pub(crate) async fn run_attempt(spec: &TaskSpec) -> (AttemptEnd, Built) {
    let b = build(spec);
    let end = solti_runner::start_attempt(&b.task, 1, TaskContext::detached()).await;
    (end, b)
}

pub(crate) fn spec(sub: SubprocessSpec) -> TaskSpec {
    TaskSpec::builder("t", TaskKind::Subprocess(sub), 60_000u64)
        .build()
        .unwrap()
}

pub(crate) fn cmd(command: &str, args: &[&str]) -> SubprocessSpec {
    SubprocessSpec::command(command, args.iter().copied())
}

pub(crate) fn sh(script: &str) -> SubprocessSpec {
    cmd("sh", &["-c", script])
}

pub(crate) fn script(runtime: Runtime, body: &str, args: &[&str]) -> SubprocessSpec {
    SubprocessSpec {
        mode: SubprocessMode::Script {
            runtime,
            body: base64::engine::general_purpose::STANDARD.encode(body),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
        },
        env: TaskEnv::new(),
        cwd: None,
        fail_on_non_zero: Flag::enabled(),
    }
}

/// Whether a process with this pid is alive (zombies count as dead).
pub(crate) fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next());
            state != Some("Z") && state != Some("X")
        }
        Err(_) => false,
    }
}

/// Waits (real time, bounded) until none of `pids` is alive.
pub(crate) async fn gone(pids: &[i32], within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if pids.iter().all(|p| !alive(*p)) {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the collected stdout has at least `n` lines.
pub(crate) async fn wait_lines(out: &Collect, n: usize) -> Vec<String> {
    for _ in 0..1000 {
        let l = out.stdout();
        if l.len() >= n {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "timed out waiting for {n} stdout lines; got {:?} / stderr {:?}",
        out.stdout(),
        out.stderr()
    );
}

pub(crate) fn build_runner(spec: &TaskSpec, runner: solti_exec::SubprocessRunner) -> Built {
    let mut router = RunnerRouter::new();
    router.register(runner).unwrap();
    let out = Arc::new(Collect::default());
    let ctx = router.context(OutputPublisher::new(TaskId::generate(), out.clone()));
    let (task, _) = router.build(spec, &ctx).unwrap();
    Built { task, out }
}
