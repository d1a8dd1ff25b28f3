//! Does scraping `/metrics` every 100 ms slow a 1,000-task run?
//!
//! Run with `cargo bench -p solti-prometheus --bench scrape_under_load`.
//!
//! Without the agent: a taskvisor supervisor runs 1,000 one-shot tasks that each spawn
//! `/bin/true` (at most 32 at a time), reporting through `RunnerMetrics` and
//! `LifecycleMetrics`, while `serve_metrics` serves the registry. Each round runs once without
//! and once with a client scraping every 100 ms over TCP; the report compares median wall
//! times. The full-agent version (solti-core + solti-exec + HTTP API) is described in
//! `docs/observability.md`.
#![expect(clippy::expect_used, reason = "a bench panics on a broken fixture")]

use std::{
    num::NonZeroUsize,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use prometheus::Registry;
use solti_prometheus::{SoltiMetrics, serve_metrics};
use solti_runner::{AttemptOutcome, MetricsBackend};
use taskvisor::{
    Subscribe, Supervisor, SupervisorConfig, TaskContext, TaskError, TaskFn, TaskRef, TaskSpec,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

const TASKS: usize = 1000;
const ROUNDS: usize = 5;
const SCRAPE_EVERY: Duration = Duration::from_millis(100);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut plain = Vec::new();
        let mut scraped = Vec::new();
        let mut scrapes = 0;
        run(false).await; // warm-up: page cache, thread pools
        for _ in 0..ROUNDS {
            plain.push(run(false).await.0);
            let (took, n) = run(true).await;
            scraped.push(took);
            scrapes += n;
        }
        let (p, s) = (median(&mut plain), median(&mut scraped));
        let slowdown = (s.as_secs_f64() / p.as_secs_f64() - 1.0) * 100.0;
        println!("{TASKS} tasks x {ROUNDS} rounds (median wall time)");
        println!("  without scraping: {p:?}  ({plain:?})");
        println!("  scraping /100ms:  {s:?}  ({scraped:?}, {scrapes} scrapes in all)");
        println!("  slowdown: {slowdown:+.2} %");
    });
}

async fn run(scrape: bool) -> (Duration, usize) {
    let registry = Registry::new();
    let metrics = SoltiMetrics::new(&registry).expect("fresh registry");
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("bound");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_metrics(listener, registry, async {
        let _ = stopped.await;
    }));
    let count = Arc::new(AtomicUsize::new(0));
    let scraper = scrape.then(|| {
        let count = Arc::clone(&count);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SCRAPE_EVERY);
            loop {
                every.tick().await;
                let mut conn = TcpStream::connect(addr).await.expect("connect");
                conn.write_all(
                    b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n",
                )
                .await
                .expect("send");
                let mut body = Vec::new();
                conn.read_to_end(&mut body).await.expect("read");
                assert!(body.starts_with(b"HTTP/1.1 200"));
                count.fetch_add(1, Ordering::Relaxed);
            }
        })
    });

    let backend: Arc<dyn MetricsBackend> = metrics.runner();
    let task: TaskRef = TaskFn::arc(move |_ctx: TaskContext| {
        let backend = Arc::clone(&backend);
        async move {
            backend.task_started("default", "subprocess");
            let started = Instant::now();
            let status =
                tokio::task::spawn_blocking(|| std::process::Command::new("true").status())
                    .await
                    .map_err(TaskError::fail_from)?
                    .map_err(TaskError::fail_from)?;
            let outcome = if status.success() {
                AttemptOutcome::Success
            } else {
                AttemptOutcome::Failure
            };
            backend.task_completed("default", "subprocess", outcome, started.elapsed());
            Ok(())
        }
    });
    let specs: Vec<TaskSpec> = (0..TASKS)
        .map(|i| TaskSpec::once(format!("task-{i}"), Arc::clone(&task)))
        .collect();
    let subscribers: Vec<Arc<dyn Subscribe>> = vec![metrics.lifecycle()];
    let supervisor = Supervisor::builder(SupervisorConfig::default())
        .with_max_concurrent(NonZeroUsize::new(32))
        .with_max_registered_tasks(NonZeroUsize::new(TASKS + 16))
        .with_ownership_capacity(NonZeroUsize::new(TASKS + 16))
        .with_subscribers(subscribers)
        .build();

    let began = Instant::now();
    supervisor.run(specs).await.expect("supervisor run");
    let took = began.elapsed();

    if let Some(handle) = scraper {
        handle.abort();
        // Cancelled on purpose; a panic inside would have shown up as a JoinError::Panic.
        if let Some(e) = handle.await.err() {
            assert!(e.is_cancelled(), "scraper failed: {e}");
        }
    }
    let scrapes = count.load(Ordering::Relaxed);
    let _ = stop.send(());
    server.await.expect("server task").expect("server");
    (took, scrapes)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}
