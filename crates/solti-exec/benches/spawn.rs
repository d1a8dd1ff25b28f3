//! Spawn cost and output throughput of the subprocess runner, each next to a raw
//! `tokio::process` baseline measured in the same run.
//!
//! Run with `cargo bench -p solti-exec --bench spawn` (add `-- quick` for a short run,
//! `-- output-only` for the output-throughput table alone).
//! Prints one table; see `docs/subprocess-isolation.md` for recorded numbers.
#![expect(
    unsafe_code,
    reason = "the fork-path baseline needs a (no-op) pre_exec hook"
)]
#![expect(
    clippy::unwrap_used,
    reason = "a benchmark binary: setup failures abort the run"
)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use solti_core::{OutputBatch, StateConfig, SupervisorApi};
use solti_exec::{SubprocessBackendConfig, SubprocessRunner};
use solti_model::{OutputEvent, SubprocessSpec, TaskId, TaskKind, TaskSpec};
use solti_runner::{LineBatch, OutputPublisher, OutputTarget, RunnerRouter};
use taskvisor::{ControllerConfig, SupervisorConfig, TaskContext};
use tokio::io::AsyncBufReadExt as _;

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(quick));
}

async fn run(quick: bool) {
    if std::env::args().any(|a| a == "lines-only") {
        for _ in 0..5 {
            let (rate, got) = runner_lines(1_000_000).await;
            println!("runner alone: {rate:.0} lines/s ({got} delivered)");
        }
        return;
    }
    if std::env::args().any(|a| a == "supervisor-lines-only") {
        for _ in 0..5 {
            let (rate, got, lagged) = supervisor_lines(1_000_000).await;
            println!("SupervisorApi: {rate:.0} lines/s ({got} delivered, {lagged} lagged)");
        }
        return;
    }
    if std::env::args().any(|a| a == "output-only") {
        // The output-throughput table alone (raw reader, runner alone, SupervisorApi).
        output_table().await;
        return;
    }
    let n1 = if quick { 200 } else { 1000 };
    let n8 = if quick { 400 } else { 2000 };
    println!(
        "spawn+wait of /bin/true (tasks/s; ratio = runner / raw tokio::process at the same concurrency)"
    );
    println!(
        "{:<66} {:>10} {:>10} {:>7}",
        "case", "raw/s", "solti/s", "ratio"
    );

    let plain = SubprocessBackendConfig::new();
    let isolated = SubprocessBackendConfig::new()
        .rlimit_nofile(1024)
        .rlimit_core(0)
        .rlimit_nproc(4096)
        .drop_all_capabilities(true)
        .no_new_privs(true);
    // Other work on the machine makes single runs noisy: raw and solti runs alternate, and
    // each rate is the median of ROUNDS runs.
    for (label, config) in [
        ("default config", plain.clone()),
        ("rlimits + caps dropped + no_new_privs", isolated.clone()),
    ] {
        for c in [1usize, 8] {
            let n = if c == 1 { n1 } else { n8 };
            let (mut raw, mut direct, mut sup) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                raw.push(raw_rate(c, n, false).await);
                direct.push(runner_rate(c, n, config.clone()).await);
                sup.push(supervisor_rate(c, n, config.clone()).await);
            }
            let raw = median(raw);
            row(
                &format!("{label}, runner alone, c={c}"),
                raw,
                median(direct),
            );
            row(
                &format!("{label}, SupervisorApi + runner, c={c}"),
                raw,
                median(sup),
            );
        }
    }

    // A 1 GiB agent: fork() copies page tables, CLONE_VM | CLONE_VFORK does not.
    let ballast = vec![1u8; 1 << 30];
    std::hint::black_box(&ballast);
    println!("-- with 1 GiB of resident memory in the agent --");
    for c in [1usize, 8] {
        let n = if c == 1 { n1 / 2 } else { n8 / 2 };
        let (mut raw, mut sup) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            raw.push(raw_rate(c, n, false).await);
            sup.push(supervisor_rate(c, n, isolated.clone()).await);
        }
        let raw = median(raw);
        let fork = raw_rate(c, (n / 10).max(20), true).await;
        row(
            &format!("isolated, SupervisorApi + runner, c={c}"),
            raw,
            median(sup),
        );
        row(
            &format!("(for contrast) raw tokio with a pre_exec hook = fork, c={c}"),
            raw,
            fork,
        );
    }
    drop(ballast);

    println!();
    output_table().await;
}

async fn output_table() {
    println!(
        "output throughput, one subscriber, default StateConfig (lines/s; ratio = solti / raw pipe reader)"
    );
    println!(
        "{:<78} {:>10} {:>10} {:>7}",
        "case", "raw/s", "solti/s", "ratio"
    );
    for lines in [100_000u64, 1_000_000] {
        // Median of ROUNDS, each case next to a fresh raw measurement.
        let mut raw = Vec::new();
        let mut direct = Vec::new();
        let mut cases: [Vec<(f64, u64, u64)>; 3] = Default::default();
        for _ in 0..OUTPUT_ROUNDS {
            raw.push(raw_lines(lines).await);
            direct.push(runner_lines(lines).await.0);
            cases[0].push(supervisor_lines_with(lines, Reader::Task, true).await);
            cases[1].push(supervisor_lines_with(lines, Reader::Thread, true).await);
            cases[2].push(supervisor_lines_with(lines, Reader::Task, false).await);
        }
        let raw = median(raw);
        row(&format!("seq 1 {lines}, runner alone"), raw, median(direct));
        let labels = [
            "SupervisorApi, recv_batch, subscriber a runtime task",
            "SupervisorApi, recv_batch, subscriber on its own thread",
            "SupervisorApi, recv (one event per line), runtime task",
        ];
        for (label, case) in labels.iter().zip(cases) {
            let got = case.iter().map(|c| c.1).min().unwrap_or(0);
            let lagged = case.iter().map(|c| c.2).max().unwrap_or(0);
            row(
                &format!("seq 1 {lines}, {label} ({got}+ got, {lagged} lagged)"),
                raw,
                median(case.iter().map(|c| c.0).collect()),
            );
        }
    }
    println!();
    reader_independence().await;
}

/// What a reader does while a task prints.
#[derive(Clone, Copy, Debug)]
enum Attached {
    /// Nobody reads.
    None,
    /// A subscription that is never read.
    Stalled,
    /// A subscription that takes one batch every 150 ms.
    Slow,
}

/// The run time of `seq 1 2000000` (its run's `finished_at - started_at`) with no reader,
/// a stalled reader and a reader taking one batch every 150 ms: the runner never waits
/// for a reader, so the three should match.
async fn reader_independence() {
    const LINES: u64 = 2_000_000;
    println!(
        "task run time of `seq 1 {LINES}` (ms, median of {OUTPUT_ROUNDS}; ratio = with reader / no reader)"
    );
    let mut times: [Vec<f64>; 3] = Default::default();
    let mut lagged = [0u64; 3];
    for _ in 0..OUTPUT_ROUNDS {
        for (i, attached) in [Attached::None, Attached::Stalled, Attached::Slow]
            .into_iter()
            .enumerate()
        {
            let (ms, lag) = run_time_with(LINES, attached).await;
            times[i].push(ms);
            lagged[i] = lagged[i].max(lag);
        }
    }
    let base = median(times[0].clone());
    for (i, label) in [
        "no reader",
        "stalled reader",
        "reader taking a batch every 150 ms",
    ]
    .iter()
    .enumerate()
    {
        let t = median(times[i].clone());
        println!(
            "{label:<40} {t:>8.1} ms  ratio {:.3}  (lagged up to {} events)",
            t / base,
            lagged[i]
        );
    }
}

async fn run_time_with(lines: u64, attached: Attached) -> (f64, u64) {
    let api = api(SubprocessBackendConfig::new()).await;
    let spec = TaskSpec::builder(
        "seq",
        TaskKind::Subprocess(SubprocessSpec::command(
            "sh",
            ["-c".to_owned(), format!("sleep 0.05; exec seq 1 {lines}")],
        )),
        600_000u64,
    )
    .build()
    .unwrap();
    let id = api.submit(&spec).await.unwrap();
    let sub = match attached {
        Attached::None => None,
        _ => api
            .subscribe_output(&id, solti_core::OutputStart::Live)
            .await
            .unwrap(),
    };
    let slow = match (attached, sub) {
        (Attached::Slow, Some(mut sub)) => Some(tokio::spawn(async move {
            let mut lagged = 0;
            while let Some(batch) = sub.recv_batch().await {
                if let OutputBatch::Event {
                    event: OutputEvent::Lagged { skipped },
                    ..
                } = batch
                {
                    lagged += skipped;
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            lagged
        })),
        (_, sub) => {
            // Stalled: held, never read, until the task is done.
            let _held = sub;
            loop {
                let task = api.get_task(&id).await.unwrap().unwrap();
                if task.status.phase.is_terminal() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            None
        }
    };
    loop {
        let task = api.get_task(&id).await.unwrap().unwrap();
        if task.status.phase.is_terminal() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let runs = api.list_task_runs(&id).await.unwrap().unwrap();
    let run = &runs[0];
    let ms = (run.finished_at.unwrap() - run.started_at) as f64;
    // The slow reader is stopped once the task is done (its pace would take minutes).
    let lagged = match slow {
        Some(handle) => {
            api.delete_task(&id).await.unwrap();
            handle.await.unwrap()
        }
        None => 0,
    };
    api.shutdown().await.unwrap();
    (ms, lagged)
}

/// Rounds of the output table (each case once per round, medians reported): single runs
/// vary by 2x on a busy 2-core machine.
const OUTPUT_ROUNDS: usize = 9;

const ROUNDS: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn row(label: &str, raw: f64, solti: f64) {
    println!("{label:<78} {raw:>10.0} {solti:>10.0} {:>7.2}", solti / raw);
}

/// `n` spawns of /bin/true split over `c` concurrent loops.
async fn raw_rate(c: usize, n: usize, with_pre_exec: bool) -> f64 {
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..c {
        set.spawn(async move {
            for _ in 0..n / c {
                let mut cmd = tokio::process::Command::new("/bin/true");
                if with_pre_exec {
                    // SAFETY: the hook does nothing; it only forces std onto the fork() path.
                    unsafe {
                        cmd.pre_exec(|| Ok(()));
                    }
                }
                let status = cmd.status().await.unwrap();
                assert!(status.success());
            }
        });
    }
    set.join_all().await;
    (n / c * c) as f64 / start.elapsed().as_secs_f64()
}

fn true_spec(slot: &str) -> TaskSpec {
    TaskSpec::builder(
        slot,
        TaskKind::Subprocess(SubprocessSpec::command("/bin/true", Vec::<String>::new())),
        60_000u64,
    )
    .build()
    .unwrap()
}

async fn runner_rate(c: usize, n: usize, config: SubprocessBackendConfig) -> f64 {
    let mut router = RunnerRouter::new();
    router
        .register(SubprocessRunner::new("bench", config).unwrap())
        .unwrap();
    let publisher = OutputPublisher::discard(TaskId::generate());
    let ctx = router.context(publisher);
    let (task, _) = router.build(&true_spec("t"), &ctx).unwrap();
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..c {
        let task = Arc::clone(&task);
        set.spawn(async move {
            for _ in 0..n / c {
                task.spawn(TaskContext::detached()).await.unwrap();
            }
        });
    }
    set.join_all().await;
    (n / c * c) as f64 / start.elapsed().as_secs_f64()
}

async fn api(config: SubprocessBackendConfig) -> SupervisorApi {
    let mut router = RunnerRouter::new();
    solti_exec::register_subprocess_runner_with_backend(&mut router, "default", config).unwrap();
    let state = StateConfig::default();
    SupervisorApi::new(
        SupervisorConfig::default(),
        ControllerConfig::default(),
        vec![],
        router,
        state,
    )
    .await
    .unwrap()
}

async fn supervisor_rate(c: usize, n: usize, config: SubprocessBackendConfig) -> f64 {
    let api = api(config).await;
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for w in 0..c {
        let api = api.clone();
        set.spawn(async move {
            let spec = true_spec(&format!("w{w}"));
            for _ in 0..n / c {
                let id = api.submit(&spec).await.unwrap();
                let mut sub = api
                    .subscribe_output(&id, solti_core::OutputStart::Live)
                    .await
                    .unwrap()
                    .unwrap();
                while sub.recv().await.is_some() {}
            }
        });
    }
    set.join_all().await;
    let rate = (n / c * c) as f64 / start.elapsed().as_secs_f64();
    api.shutdown().await.unwrap();
    rate
}

/// Lines per second of a raw pipe reader: from the first line read to the end of output
/// (spawn cost excluded, as for the supervised cases).
async fn raw_lines(lines: u64) -> f64 {
    let mut child = tokio::process::Command::new("seq")
        .args(["1", &lines.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, child.stdout.take().unwrap());
    let mut buf = Vec::new();
    let mut count = 0u64;
    let mut start = None;
    while reader.read_until(b'\n', &mut buf).await.unwrap() > 0 {
        start.get_or_insert_with(Instant::now);
        std::hint::black_box(&buf);
        buf.clear();
        count += 1;
    }
    let elapsed = start.map_or(Duration::ZERO, |s| s.elapsed());
    child.wait().await.unwrap();
    assert_eq!(count, lines);
    count as f64 / elapsed.as_secs_f64()
}

#[derive(Default)]
struct Count(
    AtomicU64,
    std::sync::Mutex<(Option<Instant>, Option<Instant>)>,
);

impl Count {
    fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
        let now = Instant::now();
        let mut span = self.1.lock().unwrap();
        span.0.get_or_insert(now);
        span.1 = Some(now);
    }

    /// From the first publish to the last.
    fn elapsed(&self) -> Duration {
        match *self.1.lock().unwrap() {
            (Some(first), Some(last)) => last - first,
            _ => Duration::ZERO,
        }
    }
}

impl OutputTarget for Count {
    fn publish(&self, event: OutputEvent) {
        if matches!(event, OutputEvent::Chunk { .. }) {
            self.add(1);
        }
    }

    fn publish_lines(&self, batch: LineBatch) {
        self.add(batch.len() as u64);
    }
}

fn seq_spec(lines: u64) -> TaskSpec {
    TaskSpec::builder(
        "seq",
        TaskKind::Subprocess(SubprocessSpec::command(
            "seq",
            ["1".to_owned(), lines.to_string()],
        )),
        600_000u64,
    )
    .build()
    .unwrap()
}

async fn runner_lines(lines: u64) -> (f64, u64) {
    let mut router = RunnerRouter::new();
    router
        .register(SubprocessRunner::new("bench", SubprocessBackendConfig::new()).unwrap())
        .unwrap();
    let count = Arc::new(Count::default());
    let publisher = OutputPublisher::new(TaskId::generate(), count.clone());
    let ctx = router.context(publisher);
    let (task, _) = router.build(&seq_spec(lines), &ctx).unwrap();
    task.spawn(TaskContext::detached()).await.unwrap();
    let got = count.0.load(Ordering::Relaxed);
    // First line to last line, like the raw reader (spawn and reaping excluded).
    (got as f64 / count.elapsed().as_secs_f64(), got)
}

async fn supervisor_lines(lines: u64) -> (f64, u64, u64) {
    supervisor_lines_with(lines, Reader::Task, true).await
}

/// Where the subscriber runs.
#[derive(Clone, Copy, Debug)]
enum Reader {
    /// A runtime task, like the agent's SSE and gRPC streams.
    Task,
    /// Its own OS thread (`block_on`), like an embedder's blocking consumer.
    Thread,
}

/// `seq 1 lines` through `SupervisorApi` (default settings) to one subscriber, read with
/// `recv_batch` (each line borrowed from its batch) or `recv` (one event per line).
async fn supervisor_lines_with(lines: u64, at: Reader, batched: bool) -> (f64, u64, u64) {
    let api = api(SubprocessBackendConfig::new()).await;
    // The subscription starts before the process: the spec sleeps 50 ms first.
    let spec = TaskSpec::builder(
        "seq",
        TaskKind::Subprocess(SubprocessSpec::command(
            "sh",
            ["-c".to_owned(), format!("sleep 0.05; exec seq 1 {lines}")],
        )),
        600_000u64,
    )
    .build()
    .unwrap();
    let id = api.submit(&spec).await.unwrap();
    let sub = api
        .subscribe_output(&id, solti_core::OutputStart::Live)
        .await
        .unwrap()
        .unwrap();
    let (start, got, lagged) = match at {
        Reader::Task => tokio::spawn(read_all(sub, batched)).await.unwrap(),
        Reader::Thread => {
            let thread =
                std::thread::spawn(move || futures_executor_block_on(read_all(sub, batched)));
            tokio::task::spawn_blocking(move || thread.join().unwrap())
                .await
                .unwrap()
        }
    };
    let elapsed = start.map_or(Duration::ZERO, |s| s.elapsed());
    api.shutdown().await.unwrap();
    (got as f64 / elapsed.as_secs_f64(), got, lagged)
}

/// Runs `fut` to completion on the current (non-runtime) thread.
fn futures_executor_block_on<F: Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(fut)
}

/// Reads a subscription to its end: when the first line arrived, lines got, events lagged.
async fn read_all(
    mut sub: solti_core::OutputSubscription,
    batched: bool,
) -> (Option<Instant>, u64, u64) {
    let (mut got, mut lagged) = (0u64, 0u64);
    // Timed from the first line received to the end of the stream, like the raw reader.
    let mut start = None;
    if batched {
        while let Some(batch) = sub.recv_batch().await {
            if got == 0 {
                start = Some(Instant::now());
            }
            match batch {
                OutputBatch::Lines { lines, .. } => {
                    for line in lines.lines().slices() {
                        std::hint::black_box(line);
                    }
                    got += lines.len() as u64;
                }
                OutputBatch::Event { event, .. } => tally(&event, &mut got, &mut lagged),
                _ => {}
            }
        }
    } else {
        while let Some(ev) = sub.recv().await {
            if got == 0 {
                start = Some(Instant::now());
            }
            tally(&ev, &mut got, &mut lagged);
        }
    }
    (start, got, lagged)
}

fn tally(ev: &OutputEvent, got: &mut u64, lagged: &mut u64) {
    match ev {
        OutputEvent::Chunk { line, .. } => {
            std::hint::black_box(line);
            *got += 1;
        }
        OutputEvent::Lagged { skipped } => *lagged += skipped,
        _ => {}
    }
}
