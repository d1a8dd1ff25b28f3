//! Scrape cost and recording overhead.
//!
//! Run with `cargo bench -p solti-prometheus --bench scrape`.
//!
//! - `encode/1000_tasks`: gather + text-encode a registry after 1,000 tasks (3 attempts each,
//!   spread over 4 runners × 2 kinds and every outcome), API traffic over 12 routes, discovery,
//!   the phase collector and process metrics. Task ids are never labels, so the series count
//!   depends on runners, kinds, routes and statuses, not on the number of tasks.
//! - `backend/*`, `lifecycle/*`, `api/*`: one call of each hot-path recorder.
#![expect(clippy::expect_used, reason = "a bench panics on a broken fixture")]

use std::{collections::BTreeMap, hint::black_box, time::Duration};

use criterion::Criterion;
use prometheus::Registry;
use solti_model::TaskPhase;
use solti_prometheus::{SoltiMetrics, encode_text};
use solti_runner::{AttemptOutcome, MetricsBackend};
use taskvisor::{Event, EventKind, Subscribe, TaskOutcomeKind};

const RUNNERS: [&str; 4] = ["default", "gpu", "wasm", "sandbox"];
const KINDS: [&str; 2] = ["subprocess", "embedded"];
const OUTCOMES: [AttemptOutcome; 4] = [
    AttemptOutcome::Success,
    AttemptOutcome::Failure,
    AttemptOutcome::Timeout,
    AttemptOutcome::Canceled,
];
const ROUTES: [&str; 12] = [
    "/api/v1/tasks",
    "/api/v1/tasks/{id}",
    "/api/v1/tasks/{id}/runs",
    "/api/v1/tasks/{id}/output",
    "/api/v1/tasks/{id}/cancel",
    "/api/v1/health",
    "/solti.v1.AgentApi/SubmitTask",
    "/solti.v1.AgentApi/GetTask",
    "/solti.v1.AgentApi/ListTasks",
    "/solti.v1.AgentApi/CancelTask",
    "/solti.v1.AgentApi/DeleteTask",
    "/solti.v1.AgentApi/StreamOutput",
];

fn populated(tasks: u64) -> (Registry, SoltiMetrics) {
    let registry = Registry::new();
    let metrics = SoltiMetrics::new(&registry).expect("fresh registry");
    metrics
        .register_phase_counts(move || {
            BTreeMap::from([
                (TaskPhase::Running, tasks / 10),
                (TaskPhase::Succeeded, tasks - tasks / 10),
            ])
        })
        .expect("registered once");
    let backend = metrics.runner();
    let lifecycle = metrics.lifecycle();
    for t in 0..tasks {
        let runner = RUNNERS[(t % 4) as usize];
        let kind = KINDS[(t % 2) as usize];
        for attempt in 0..3u32 {
            lifecycle.on_event(&Event::new(EventKind::AttemptStarting).with_attempt(attempt + 1));
            backend.task_started(runner, kind);
            let outcome = OUTCOMES[((t + u64::from(attempt)) % 4) as usize];
            backend.task_completed(runner, kind, outcome, Duration::from_millis(t % 5000));
            lifecycle.on_event(&Event::new(EventKind::AttemptSucceeded));
        }
        lifecycle.on_event(
            &Event::new(EventKind::TaskFinished).with_outcome_kind(TaskOutcomeKind::Completed),
        );
    }
    let api = metrics.api();
    for (i, route) in ROUTES.iter().enumerate() {
        let (transport, methods, statuses): (&str, &[&str], &[&str]) =
            if route.starts_with("/solti") {
                ("grpc", &["POST"], &["0", "5", "3"])
            } else {
                (
                    "http",
                    &["GET", "POST", "DELETE"],
                    &["200", "201", "400", "404", "500", "401"],
                )
            };
        for method in methods {
            for status in statuses {
                api.request_started(transport, method, route);
                api.request_finished(
                    transport,
                    method,
                    route,
                    status,
                    Duration::from_micros(100 * i as u64),
                );
            }
        }
    }
    let discovery = metrics.discovery();
    discovery.sync_attempt();
    discovery.sync_success(Duration::from_millis(20));
    (registry, metrics)
}

fn encode(c: &mut Criterion) {
    let (registry, _metrics) = populated(1000);
    let text = encode_text(&registry).expect("encodes");
    eprintln!(
        "scrape after 1,000 tasks: {} bytes, {} sample lines",
        text.len(),
        text.lines().filter(|l| !l.starts_with('#')).count()
    );
    c.bench_function("encode/1000_tasks", |b| {
        b.iter(|| black_box(encode_text(&registry).expect("encodes")))
    });
}

fn hot_path(c: &mut Criterion) {
    let (_registry, metrics) = populated(10);
    let backend = metrics.runner();
    let lifecycle = metrics.lifecycle();
    let api = metrics.api();
    c.bench_function("backend/task_started+task_completed", |b| {
        b.iter(|| {
            backend.task_started(black_box("default"), black_box("subprocess"));
            backend.task_completed(
                black_box("default"),
                black_box("subprocess"),
                AttemptOutcome::Success,
                Duration::from_millis(12),
            );
        });
    });
    c.bench_function("backend/runner_error", |b| {
        b.iter(|| backend.runner_error(black_box("default"), "spawn"))
    });
    let starting = Event::new(EventKind::AttemptStarting).with_attempt(2);
    let finished =
        Event::new(EventKind::TaskFinished).with_outcome_kind(TaskOutcomeKind::Completed);
    c.bench_function("lifecycle/attempt_starting", |b| {
        b.iter(|| lifecycle.on_event(black_box(&starting)))
    });
    c.bench_function("lifecycle/task_finished", |b| {
        b.iter(|| lifecycle.on_event(black_box(&finished)))
    });
    c.bench_function("api/request_started+finished", |b| {
        b.iter(|| {
            api.request_started("http", black_box("GET"), "/api/v1/tasks/{id}");
            api.request_finished(
                "http",
                black_box("GET"),
                "/api/v1/tasks/{id}",
                black_box("200"),
                Duration::from_micros(80),
            );
        });
    });
}

fn main() {
    // What `criterion_group!`/`criterion_main!` expand to, without their undocumented `pub fn`.
    let mut c = Criterion::default().configure_from_args();
    encode(&mut c);
    hot_path(&mut c);
    c.final_summary();
}
