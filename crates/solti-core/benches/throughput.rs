//! Overhead of `SupervisorApi` over bare taskvisor, in one process and one run.
//!
//! Run with `cargo bench -p solti-core`. Prints, for no-op embedded tasks:
//! - submit→terminal throughput through `SupervisorApi` and through bare taskvisor
//!   controller submissions (watched), and their ratio;
//! - submit→start latency (p50/p99) on an idle supervisor, both paths;
//! - resident memory per idle task, both paths (each measured in a fresh child process,
//!   since freed memory is not returned to the OS and would skew a second measurement).
//!
//! `SOLTI_BENCH_TASKS` overrides the task count (default 20 000);
//! `SOLTI_BENCH_MODE=throughput-core|throughput-bare|latency-core|latency-bare` runs one
//! measurement alone (for profiling).
#![expect(
    clippy::unwrap_used,
    reason = "a benchmark: any failure should abort it loudly"
)]
#![expect(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "rates and percentiles of small counts"
)]

use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use solti_core::{StateConfig, SupervisorApi};
use solti_model::{AdmissionPolicy, TaskKind, TaskSpec};
use solti_runner::RunnerRouter;
use taskvisor::{
    ControllerConfig, ControllerSpec, Supervisor, SupervisorConfig, SupervisorHandle, TaskContext,
    TaskError, TaskFn, TaskRef,
};
use tokio::sync::mpsc;

const MODE_ENV: &str = "SOLTI_BENCH_MODE";

fn main() {
    let tasks: usize = std::env::var("SOLTI_BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Drive everything from a task on the runtime, as an API handler would (spawning from the
    // `block_on` thread instead costs every spawn a worker wake-up).
    let rt = &runtime;
    match std::env::var(MODE_ENV).as_deref() {
        Ok("mem-core") => println!("{}", on_runtime(rt, idle_memory_core(tasks / 2))),
        Ok("mem-bare") => println!("{}", on_runtime(rt, idle_memory_bare(tasks / 2))),
        // One path alone, for profiling (`perf record`).
        Ok("throughput-core") => println!("{:.0}", on_runtime(rt, throughput_core(tasks))),
        Ok("throughput-bare") => println!("{:.0}", on_runtime(rt, throughput_bare(tasks))),
        Ok("latency-core") => println!("{:.1?}", on_runtime(rt, latency_core(2_000))),
        Ok("latency-bare") => println!("{:.1?}", on_runtime(rt, latency_bare(2_000))),
        _ => on_runtime(rt, compare(tasks)),
    }
}

fn on_runtime<F>(runtime: &tokio::runtime::Runtime, fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    runtime.block_on(async { tokio::spawn(fut).await.unwrap() })
}

async fn compare(tasks: usize) {
    println!("solti-core vs bare taskvisor, {tasks} no-op embedded tasks, 2 worker threads");
    // Warm-up round for both, then the measured round.
    let _ = throughput_bare(tasks / 10).await;
    let _ = throughput_core(tasks / 10).await;
    let bare = throughput_bare(tasks).await;
    let core = throughput_core(tasks).await;
    println!("throughput  bare taskvisor : {bare:>9.0} tasks/s");
    println!("throughput  SupervisorApi  : {core:>9.0} tasks/s");
    println!(
        "throughput  ratio          : {:>9.2} (target >= 0.5)",
        core / bare
    );

    let (bare50, bare99) = latency_bare(2_000).await;
    let (core50, core99) = latency_core(2_000).await;
    println!("submit->start bare         : p50 {bare50:>6.1} us  p99 {bare99:>6.1} us");
    println!(
        "submit->start SupervisorApi: p50 {core50:>6.1} us  p99 {core99:>6.1} us (target p50 <= 50 us)"
    );

    let child = |mode: &str| -> Option<f64> {
        let exe = std::env::current_exe().ok()?;
        let out = Command::new(exe)
            .env(MODE_ENV, mode)
            .env("SOLTI_BENCH_TASKS", tasks.to_string())
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    match (child("mem-bare"), child("mem-core")) {
        (Some(bare), Some(core)) if bare > 0.0 => {
            println!("idle memory bare taskvisor : {bare:>9.0} B/task (RSS)");
            println!("idle memory SupervisorApi  : {core:>9.0} B/task (RSS)");
            println!(
                "idle memory ratio          : {:>9.2} (target <= 2.0)",
                core / bare
            );
        }
        _ => println!("idle memory: not measured (needs /proc/self/status)"),
    }
}

// --- SupervisorApi ---

async fn core_api() -> SupervisorApi {
    let state = StateConfig::default();
    SupervisorApi::new(
        SupervisorConfig::default(),
        ControllerConfig::default(),
        vec![],
        RunnerRouter::new(),
        state,
    )
    .await
    .unwrap()
}

fn embedded_spec(slot: &str, admission: AdmissionPolicy) -> TaskSpec {
    TaskSpec::builder(slot, TaskKind::Embedded, 60_000u64)
        .admission(admission)
        .build()
        .unwrap()
}

async fn throughput_core(tasks: usize) -> f64 {
    let api = core_api().await;
    let noop: TaskRef = TaskFn::arc(|_ctx: TaskContext| async { Ok::<(), TaskError>(()) });
    // Distinct slots, like independent jobs; specs built up front (not part of the cost).
    let specs: Vec<TaskSpec> = (0..tasks)
        .map(|n| embedded_spec(&format!("t{n}"), AdmissionPolicy::Queue))
        .collect();
    let started = Instant::now();
    let mut ids = Vec::with_capacity(tasks);
    for spec in &specs {
        ids.push(api.submit_with_task(Arc::clone(&noop), spec).await.unwrap());
    }
    // Poll for terminal phases (tasks finish roughly in submission order). Subscribing to
    // each task instead would allocate an output buffer per still-running task and measure
    // the hub rather than supervision.
    for id in &ids {
        while !api
            .get_task(id)
            .await
            .unwrap()
            .unwrap()
            .status
            .phase
            .is_terminal()
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let rate = tasks as f64 / started.elapsed().as_secs_f64();
    api.shutdown().await.unwrap();
    rate
}

async fn latency_core(samples: usize) -> (f64, f64) {
    let api = core_api().await;
    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let task: TaskRef = TaskFn::arc(move |_ctx: TaskContext| {
        let _ = tx.send(Instant::now());
        async { Ok::<(), TaskError>(()) }
    });
    let spec = embedded_spec("lat", AdmissionPolicy::Queue);
    let mut micros = Vec::with_capacity(samples);
    for _ in 0..samples {
        let before = Instant::now();
        let id = api
            .submit_with_task(Arc::clone(&task), &spec)
            .await
            .unwrap();
        let start = rx.recv().await.unwrap();
        micros.push(start.duration_since(before).as_secs_f64() * 1e6);
        let mut sub = api
            .subscribe_output(&id, solti_core::OutputStart::Live)
            .await
            .unwrap()
            .unwrap();
        while sub.recv().await.is_some() {}
    }
    api.shutdown().await.unwrap();
    percentiles(micros)
}

async fn idle_memory_core(tasks: usize) -> f64 {
    let api = core_api().await;
    let up = Arc::new(AtomicUsize::new(0));
    let u = Arc::clone(&up);
    let idle: TaskRef = TaskFn::arc(move |ctx: TaskContext| {
        u.fetch_add(1, Ordering::SeqCst);
        async move {
            ctx.cancelled().await;
            Err::<(), TaskError>(TaskError::Canceled)
        }
    });
    let specs: Vec<TaskSpec> = (0..tasks)
        .map(|n| embedded_spec(&format!("idle{n}"), AdmissionPolicy::Replace))
        .collect();
    warm_up_core(&api).await;
    let before = rss_bytes();
    for spec in &specs {
        api.submit_with_task(Arc::clone(&idle), spec).await.unwrap();
    }
    wait_for(&up, tasks).await;
    let after = rss_bytes();
    api.shutdown().await.unwrap();
    per_task(before, after, tasks)
}

async fn warm_up_core(api: &SupervisorApi) {
    let noop: TaskRef = TaskFn::arc(|_ctx: TaskContext| async { Ok::<(), TaskError>(()) });
    for n in 0..200 {
        let id = api
            .submit_with_task(
                Arc::clone(&noop),
                &embedded_spec(&format!("w{n}"), AdmissionPolicy::Queue),
            )
            .await;
        let mut sub = api
            .subscribe_output(&id.unwrap(), solti_core::OutputStart::Live)
            .await
            .unwrap()
            .unwrap();
        while sub.recv().await.is_some() {}
    }
}

// --- bare taskvisor ---

fn bare_handle() -> (Arc<Supervisor>, SupervisorHandle) {
    // The same limits SupervisorApi would set, so neither path waits on a 1024 default.
    let n = std::num::NonZeroUsize::new(200_000).unwrap();
    let sup = SupervisorConfig::default()
        .with_max_registered_tasks(Some(n))
        .with_ownership_capacity(Some(n))
        .try_with_registry_queue_capacity(16_384)
        .unwrap();
    let ctl = ControllerConfig::default()
        .try_with_queue_capacity(16_384)
        .unwrap()
        .with_max_controller_slots(Some(n))
        .with_max_total_pending(Some(n));
    let supervisor = Supervisor::builder(sup)
        .with_controller(ctl)
        .try_build()
        .unwrap();
    let handle = supervisor.serve().unwrap();
    (supervisor, handle)
}

/// A one-shot task named `name` on `slot`, queued: what `SupervisorApi` submits for an
/// embedded `Never`/`Queue` spec.
fn bare_spec(name: String, slot: &str, task: TaskRef) -> ControllerSpec {
    let spec = taskvisor::TaskSpec::once(name, task).with_timeout(Duration::from_secs(60));
    ControllerSpec::queue(spec).with_slot(slot)
}

async fn throughput_bare(tasks: usize) -> f64 {
    let (_supervisor, handle) = bare_handle();
    let noop: TaskRef = TaskFn::arc(|_ctx: TaskContext| async { Ok::<(), TaskError>(()) });
    let names: Vec<String> = (0..tasks).map(|n| format!("t{n}")).collect();
    let started = Instant::now();
    let mut waiters = Vec::with_capacity(tasks);
    for name in names {
        let spec = bare_spec(name.clone(), &name, Arc::clone(&noop));
        waiters.push(handle.submit(spec).watch().execute().await.unwrap());
    }
    for waiter in waiters {
        waiter.wait().await.unwrap();
    }
    let rate = tasks as f64 / started.elapsed().as_secs_f64();
    handle.shutdown().await.unwrap();
    rate
}

async fn latency_bare(samples: usize) -> (f64, f64) {
    let (_supervisor, handle) = bare_handle();
    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let task: TaskRef = TaskFn::arc(move |_ctx: TaskContext| {
        let _ = tx.send(Instant::now());
        async { Ok::<(), TaskError>(()) }
    });
    let mut micros = Vec::with_capacity(samples);
    for n in 0..samples {
        let before = Instant::now();
        let spec = bare_spec(format!("lat/{n}"), "lat", Arc::clone(&task));
        let waiter = handle.submit(spec).watch().execute().await.unwrap();
        let start = rx.recv().await.unwrap();
        micros.push(start.duration_since(before).as_secs_f64() * 1e6);
        waiter.wait().await.unwrap();
    }
    handle.shutdown().await.unwrap();
    percentiles(micros)
}

async fn idle_memory_bare(tasks: usize) -> f64 {
    let (_supervisor, handle) = bare_handle();
    let up = Arc::new(AtomicUsize::new(0));
    let u = Arc::clone(&up);
    let idle: TaskRef = TaskFn::arc(move |ctx: TaskContext| {
        u.fetch_add(1, Ordering::SeqCst);
        async move {
            ctx.cancelled().await;
            Err::<(), TaskError>(TaskError::Canceled)
        }
    });
    let noop: TaskRef = TaskFn::arc(|_ctx: TaskContext| async { Ok::<(), TaskError>(()) });
    for n in 0..200 {
        let name = format!("w{n}");
        let waiter = handle
            .submit(bare_spec(name.clone(), &name, Arc::clone(&noop)))
            .watch()
            .execute()
            .await
            .unwrap();
        waiter.wait().await.unwrap();
    }
    let names: Vec<String> = (0..tasks).map(|n| format!("idle{n}")).collect();
    let before = rss_bytes();
    // Watched, waiters kept: what a caller needs to learn outcomes (as SupervisorApi does).
    let mut waiters = Vec::with_capacity(tasks);
    for name in names {
        let spec =
            ControllerSpec::replace(taskvisor::TaskSpec::once(name.clone(), Arc::clone(&idle)))
                .with_slot(name);
        waiters.push(handle.submit(spec).watch().execute().await.unwrap());
    }
    wait_for(&up, tasks).await;
    let after = rss_bytes();
    handle.shutdown().await.unwrap();
    drop(waiters);
    per_task(before, after, tasks)
}

// --- helpers ---

async fn wait_for(counter: &AtomicUsize, n: usize) {
    while counter.load(Ordering::SeqCst) < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Let admissions settle (slot transitions, cleanup threads).
    tokio::time::sleep(Duration::from_millis(200)).await;
}

fn per_task(before: Option<u64>, after: Option<u64>, tasks: usize) -> f64 {
    match (before, after) {
        (Some(b), Some(a)) => a.saturating_sub(b) as f64 / tasks as f64,
        _ => 0.0,
    }
}

fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn percentiles(mut micros: Vec<f64>) -> (f64, f64) {
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q) as usize];
    (at(0.50), at(0.99))
}
