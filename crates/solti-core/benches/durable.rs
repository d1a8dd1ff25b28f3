//! The durable store against the in-memory one, in one process and one run.
//!
//! Run with `cargo bench -p solti-core --features disk --bench durable`. Prints:
//! - submission throughput (submit until acknowledged, i.e. durable) from 32 concurrent
//!   clients on a `MemoryStore` and on a `DiskStore`, and their ratio;
//! - the start-up cost of a `DiskStore` holding 100 000 terminal tasks (open + load +
//!   supervisor built on it);
//! - the store file size per terminal task.
//!
//! `SOLTI_BENCH_TASKS` overrides the submission count (default 20 000) and
//! `SOLTI_BENCH_STORED` the stored terminal tasks (default 100 000).
#![expect(
    clippy::unwrap_used,
    reason = "a benchmark: any failure should abort it loudly"
)]
#![expect(clippy::cast_precision_loss, reason = "rates of small counts")]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use solti_core::{DiskStore, MemoryStore, StateConfig, StateStore, SupervisorApi, store::RunEnd};
use solti_model::{
    ObjectMeta, SubprocessSpec, Task, TaskId, TaskKind, TaskPhase, TaskSpec, TaskStatus,
};
use solti_runner::{BuildContext, Runner, RunnerError, RunnerRouter, now_ms};
use taskvisor::{ControllerConfig, SupervisorConfig, TaskContext, TaskError, TaskFn, TaskRef};

const CLIENTS: usize = 32;

/// Builds no-op tasks for subprocess specs (so tasks are listed, hence persisted).
struct Noop;

impl Runner for Noop {
    fn name(&self) -> &str {
        "noop"
    }
    fn supports(&self, _spec: &TaskSpec) -> bool {
        true
    }
    fn build_task(&self, _spec: &TaskSpec, _ctx: &BuildContext) -> Result<TaskRef, RunnerError> {
        Ok(TaskFn::arc(|_ctx: TaskContext| async {
            Ok::<(), TaskError>(())
        }))
    }
}

fn spec(i: usize) -> TaskSpec {
    let kind = TaskKind::Subprocess(SubprocessSpec::command("echo", [format!("task {i}")]));
    TaskSpec::builder(format!("bench-{i}"), kind, 30_000u64)
        .build()
        .unwrap()
}

async fn api_on(store: Arc<dyn StateStore>, state: StateConfig) -> SupervisorApi {
    let mut router = RunnerRouter::new();
    router.register(Noop).unwrap();
    SupervisorApi::with_store(
        SupervisorConfig::default().with_grace(Duration::from_secs(5)),
        ControllerConfig::default(),
        vec![],
        router,
        state,
        store,
    )
    .await
    .unwrap()
}

/// Submissions per second from `CLIENTS` concurrent clients until every one is acknowledged.
async fn throughput(store: Arc<dyn StateStore>, state: StateConfig, tasks: usize) -> f64 {
    let api = api_on(store, state).await;
    let started = Instant::now();
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let api = api.clone();
        clients.push(tokio::spawn(async move {
            let mut i = c;
            while i < tasks {
                api.submit(&spec(i)).await.unwrap();
                i += CLIENTS;
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let rate = tasks as f64 / started.elapsed().as_secs_f64();
    api.shutdown().await.unwrap();
    rate
}

fn main() {
    let tasks: usize = env_or("SOLTI_BENCH_TASKS", 20_000);
    let stored: usize = env_or("SOLTI_BENCH_STORED", 100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    runtime.block_on(async {
        tokio::spawn(async move {
            let state = StateConfig::default().with_max_tasks(tasks * 2 + stored * 2);
            println!("durable vs in-memory store, {CLIENTS} clients, {tasks} submissions, 2 worker threads");
            // Warm-up, then measured rounds, alternating.
            let _ = throughput(Arc::new(MemoryStore::new(&state)), state.clone(), tasks / 10).await;
            let mem = throughput(Arc::new(MemoryStore::new(&state)), state.clone(), tasks).await;
            let disk_store = Arc::new(DiskStore::open(dir.path().join("t.redb"), &state).unwrap());
            let disk = throughput(Arc::clone(&disk_store) as _, state.clone(), tasks).await;
            let commits = disk_store.commits();
            drop(disk_store);
            println!("  memory store: {mem:>9.0} submissions/s");
            println!(
                "  disk store:   {disk:>9.0} submissions/s ({commits} commits, {:.1} tasks per commit)",
                tasks as f64 / commits.max(1) as f64
            );
            println!("  ratio disk/memory: {:.2}", disk / mem);

            // Start-up with many stored terminal tasks.
            let path = dir.path().join("big.redb");
            {
                let store = DiskStore::open(&path, &state).unwrap();
                for i in 0..stored {
                    let task = Task::new(
                        ObjectMeta::new(TaskId::generate(), now_ms()),
                        spec(i),
                        TaskStatus::new(TaskPhase::Pending),
                    );
                    let id = task.metadata.id.clone();
                    store.create(task, true).unwrap();
                    store.run_started(&id, 1, now_ms());
                    store.run_finished(&id, 1, RunEnd::new(TaskPhase::Succeeded, now_ms(), None));
                    store.finish(&id, RunEnd::new(TaskPhase::Succeeded, now_ms(), None), TaskPhase::Canceled);
                    if i % 10_000 == 9_999 {
                        store.sync().await.unwrap();
                    }
                }
                store.sync().await.unwrap();
            }
            let bytes = std::fs::metadata(&path).unwrap().len();
            let started = Instant::now();
            let store = Arc::new(DiskStore::open(&path, &state).unwrap());
            let loaded = started.elapsed();
            let api = api_on(store, state.clone()).await;
            let ready = started.elapsed();
            let listed = api.phase_counts().values().sum::<u64>();
            assert_eq!(listed, stored as u64);
            println!(
                "  start-up with {stored} stored terminal tasks: open+load {loaded:.2?}, supervisor ready {ready:.2?}"
            );
            println!(
                "  store file: {bytes} bytes, {:.0} bytes per terminal task (one run each)",
                bytes as f64 / stored as f64
            );
            api.shutdown().await.unwrap();
        })
        .await
        .unwrap();
    });
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
