//! A scripted run (3 attempts: a failure, a timeout, a success) shows up in one scrape with
//! exact values, every family present, and well-formed exposition text.

use std::{collections::BTreeMap, time::Duration};

use prometheus::Registry;
use prometheus_parse::Value;
use solti_model::TaskPhase;
use solti_prometheus::{SoltiMetrics, encode_text, names};
use solti_runner::{AttemptOutcome, MetricsBackend};
use taskvisor::{Event, EventKind, Subscribe, TaskId, TaskOutcomeKind};

use crate::exposition::{parse, promtool_check, value};

const RUNNER: &str = "default";
const KIND: &str = "subprocess";

fn run_scenario(metrics: &SoltiMetrics) {
    let backend = metrics.runner();
    let events = metrics.lifecycle();
    let id = TaskId::for_tests();
    let ev = |kind: EventKind| Event::new(kind).with_task("task-1").with_id(id);

    // Attempt 1 fails after 0.2 s.
    events.on_event(&ev(EventKind::AttemptStarting).with_attempt(1));
    backend.task_started(RUNNER, KIND);
    backend.task_completed(
        RUNNER,
        KIND,
        AttemptOutcome::Failure,
        Duration::from_millis(200),
    );
    events.on_event(
        &ev(EventKind::AttemptFailed)
            .with_attempt(1)
            .with_reason("exit status 1")
            .with_exit_code(1),
    );
    events.on_event(
        &ev(EventKind::BackoffScheduled)
            .with_attempt(1)
            .with_delay(Duration::from_secs(1))
            .with_backoff_failure(),
    );
    // Attempt 2 times out after 5 s.
    events.on_event(&ev(EventKind::AttemptStarting).with_attempt(2));
    backend.task_started(RUNNER, KIND);
    backend.task_completed(
        RUNNER,
        KIND,
        AttemptOutcome::Timeout,
        Duration::from_secs(5),
    );
    events.on_event(
        &ev(EventKind::AttemptTimedOut)
            .with_attempt(2)
            .with_timeout(Duration::from_secs(5)),
    );
    events.on_event(
        &ev(EventKind::BackoffScheduled)
            .with_attempt(2)
            .with_delay(Duration::from_secs(2))
            .with_backoff_failure(),
    );
    // Attempt 3 succeeds after 1 s; the task completes.
    events.on_event(&ev(EventKind::AttemptStarting).with_attempt(3));
    backend.task_started(RUNNER, KIND);
    backend.task_completed(
        RUNNER,
        KIND,
        AttemptOutcome::Success,
        Duration::from_secs(1),
    );
    events.on_event(
        &ev(EventKind::AttemptSucceeded)
            .with_attempt(3)
            .with_duration(Duration::from_secs(1)),
    );
    events.on_event(&ev(EventKind::TaskFinished).with_outcome_kind(TaskOutcomeKind::Completed));

    // The rest of the agent: a runner error, a refused submission, a lossy subscriber, a
    // supervisor diagnostic, API traffic and discovery syncs.
    backend.runner_error(RUNNER, "spawn");
    backend.task_submitted();
    backend.task_submitted();
    backend.task_rejected("slot_busy");
    events.on_event(
        &Event::subscriber_overflow("solti-lifecycle-logger", "queue full").with_dropped(5),
    );
    events.on_event(&Event::new(EventKind::GraceExceeded));
    let api = metrics.api();
    api.request_started("http", "POST", "/api/v1/tasks");
    api.request_finished(
        "http",
        "POST",
        "/api/v1/tasks",
        "201",
        Duration::from_millis(2),
    );
    api.request_started(
        "grpc",
        "GetTaskStatus",
        "/solti.task.v1.TaskService/GetTaskStatus",
    );
    api.request_finished(
        "grpc",
        "GetTaskStatus",
        "/solti.task.v1.TaskService/GetTaskStatus",
        "5",
        Duration::from_millis(1),
    );
    api.request_started("http", "GET", "/api/v1/tasks/{id}/output");
    let discovery = metrics.discovery();
    discovery.sync_attempt();
    discovery.sync_success(Duration::from_millis(30));
    discovery.sync_attempt();
    discovery.sync_failure("timeout");
    discovery.hold(Duration::from_secs(10));
}

fn metrics() -> (Registry, SoltiMetrics) {
    let registry = Registry::new();
    let metrics = SoltiMetrics::builder()
        .agent("agentd-test")
        .build(&registry)
        .unwrap();
    metrics
        .register_phase_counts(|| {
            BTreeMap::from([(TaskPhase::Succeeded, 1), (TaskPhase::Running, 2)])
        })
        .unwrap();
    (registry, metrics)
}

#[test]
fn scripted_run_has_exact_values() {
    let (registry, metrics) = metrics();
    run_scenario(&metrics);
    let text = encode_text(&registry).unwrap();
    let s = parse(&text);
    let r = [("runner", RUNNER)];
    let ro = |o| [("runner", RUNNER), ("outcome", o)];

    assert_eq!(value(&s, names::RUNNER_TASKS_STARTED_TOTAL, &r), 3.0);
    for outcome in ["success", "failure", "timeout"] {
        assert_eq!(
            value(&s, names::RUNNER_TASKS_COMPLETED_TOTAL, &ro(outcome)),
            1.0,
            "{outcome}"
        );
        let count = format!("{}_count", names::RUNNER_TASK_DURATION_SECONDS);
        assert_eq!(value(&s, &count, &ro(outcome)), 1.0, "{outcome}");
    }
    assert_eq!(
        value(&s, names::RUNNER_TASKS_COMPLETED_TOTAL, &ro("canceled")),
        0.0
    );
    let sum = format!("{}_sum", names::RUNNER_TASK_DURATION_SECONDS);
    assert_eq!(value(&s, &sum, &ro("timeout")), 5.0);
    assert_eq!(value(&s, &sum, &ro("failure")), 0.2);
    assert_eq!(
        value(
            &s,
            names::RUNNER_ATTEMPTS_IN_FLIGHT,
            &[("runner", RUNNER), ("kind", KIND)]
        ),
        0.0
    );
    let err = |e| [("runner", RUNNER), ("error", e)];
    assert_eq!(value(&s, names::RUNNER_ERRORS_TOTAL, &err("spawn")), 1.0);
    assert_eq!(value(&s, names::RUNNER_ERRORS_TOTAL, &err("cgroup")), 0.0);

    assert_eq!(value(&s, names::SV_TASKS_IN_FLIGHT, &[]), 0.0);
    assert_eq!(value(&s, names::SV_TASK_RESTARTS_TOTAL, &[]), 2.0);
    let source = |v| [("source", v)];
    assert_eq!(
        value(&s, names::SV_TASK_BACKOFF_COUNT_TOTAL, &source("failure")),
        2.0
    );
    assert_eq!(
        value(&s, names::SV_TASK_BACKOFF_COUNT_TOTAL, &source("success")),
        0.0
    );
    assert_eq!(value(&s, names::SV_TASK_TIMEOUTS_TOTAL, &[]), 1.0);
    assert_eq!(value(&s, names::SV_ATTEMPT_FAILURES_TOTAL, &[]), 1.0);
    let reason = |v| [("reason", v)];
    assert_eq!(
        value(&s, names::SV_TASK_TERMINAL_TOTAL, &reason("completed")),
        1.0
    );
    for zero in ["exhausted", "fatal", "canceled"] {
        assert_eq!(
            value(&s, names::SV_TASK_TERMINAL_TOTAL, &reason(zero)),
            0.0,
            "{zero}"
        );
    }
    assert_eq!(value(&s, names::SV_SUBSCRIBER_OVERFLOW_TOTAL, &[]), 5.0);
    assert_eq!(value(&s, names::SV_SUBSCRIBER_PANICKED_TOTAL, &[]), 0.0);
    assert_eq!(
        value(
            &s,
            names::SV_DIAGNOSTICS_TOTAL,
            &[("event", "grace_exceeded")]
        ),
        1.0
    );

    assert_eq!(value(&s, names::CTRL_SUBMISSIONS_TOTAL, &[]), 2.0);
    assert_eq!(
        value(&s, names::CTRL_REJECTIONS_TOTAL, &reason("slot_busy")),
        1.0
    );
    assert_eq!(
        value(&s, names::CTRL_REJECTIONS_TOTAL, &reason("slot_full")),
        0.0
    );

    let phase = |p| [("phase", p)];
    assert_eq!(value(&s, names::SV_TASKS_BY_PHASE, &phase("running")), 2.0);
    assert_eq!(
        value(&s, names::SV_TASKS_BY_PHASE, &phase("succeeded")),
        1.0
    );
    assert_eq!(
        value(&s, names::SV_TASKS_BY_PHASE, &phase("exhausted")),
        0.0
    );

    let post = [
        ("transport", "http"),
        ("method", "POST"),
        ("path", "/api/v1/tasks"),
        ("status", "201"),
    ];
    assert_eq!(value(&s, names::API_REQUESTS_TOTAL, &post), 1.0);
    let grpc = [
        ("transport", "grpc"),
        ("method", "GetTaskStatus"),
        ("path", "/solti.task.v1.TaskService/GetTaskStatus"),
        ("status", "5"),
    ];
    assert_eq!(value(&s, names::API_REQUESTS_TOTAL, &grpc), 1.0);
    let api_count = format!("{}_count", names::API_REQUEST_DURATION_SECONDS);
    assert_eq!(value(&s, &api_count, &post[..3]), 1.0);
    // One HTTP request is still open (a log stream being set up); gRPC has none.
    let transport = |t| [("transport", t)];
    assert_eq!(
        value(&s, names::API_IN_FLIGHT_REQUESTS, &transport("http")),
        1.0
    );
    assert_eq!(
        value(&s, names::API_IN_FLIGHT_REQUESTS, &transport("grpc")),
        0.0
    );

    assert_eq!(value(&s, names::DISCOVER_ATTEMPTS_TOTAL, &[]), 2.0);
    let outcome = |o| [("outcome", o)];
    assert_eq!(
        value(&s, names::DISCOVER_OUTCOMES_TOTAL, &outcome("success")),
        1.0
    );
    assert_eq!(
        value(&s, names::DISCOVER_OUTCOMES_TOTAL, &outcome("failure")),
        1.0
    );
    assert_eq!(
        value(&s, names::DISCOVER_FAILURES_TOTAL, &reason("timeout")),
        1.0
    );
    assert_eq!(
        value(&s, names::DISCOVER_FAILURES_TOTAL, &reason("decode")),
        0.0
    );
    assert_eq!(
        value(
            &s,
            &format!("{}_count", names::DISCOVER_DURATION_SECONDS),
            &[]
        ),
        1.0
    );
    assert_eq!(
        value(&s, &format!("{}_sum", names::DISCOVER_HOLD_SECONDS), &[]),
        10.0
    );
    assert!(value(&s, names::DISCOVER_LAST_SUCCESS_TIMESTAMP_SECONDS, &[]) > 1.7e9);

    assert_eq!(
        value(
            &s,
            names::BUILD_INFO,
            &[
                ("agent", "agentd-test"),
                ("version", solti_prometheus::SDK_VERSION)
            ]
        ),
        1.0
    );
    #[cfg(target_os = "linux")]
    assert!(value(&s, "process_resident_memory_bytes", &[]) > 0.0);

    // Histogram buckets are cumulative and end at +Inf = count.
    let bucket = s
        .samples
        .iter()
        .find(|x| {
            x.metric == names::RUNNER_TASK_DURATION_SECONDS
                && x.labels.get("outcome") == Some("timeout")
        })
        .unwrap();
    let Value::Histogram(ref buckets) = bucket.value else {
        panic!("{bucket:?}")
    };
    assert_eq!(
        buckets.iter().find(|b| b.less_than == 2.5).unwrap().count,
        0.0
    );
    assert_eq!(
        buckets.iter().find(|b| b.less_than == 5.0).unwrap().count,
        1.0
    );
    assert_eq!(buckets.last().unwrap().count, 1.0);
}

#[test]
fn every_family_appears_and_follows_naming_conventions() {
    let (registry, metrics) = metrics();
    run_scenario(&metrics);
    let text = encode_text(&registry).unwrap();
    let scrape = parse(&text);
    for name in names::ALL {
        assert!(scrape.docs.contains_key(name), "{name} has no HELP line");
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} has no TYPE line"
        );
        assert!(name.starts_with("solti_"), "{name}");
    }
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut parts = line.split_whitespace().skip(2);
        let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(
            name.starts_with("solti_") || name.starts_with(names::PROCESS_PREFIX),
            "{name}"
        );
        match kind {
            "counter" => assert!(
                name.ends_with("_total"),
                "counter {name} must end in _total"
            ),
            "histogram" => assert!(
                name.ends_with("_seconds"),
                "histogram {name} must be in seconds"
            ),
            "gauge" => assert!(
                !name.ends_with("_total"),
                "gauge {name} must not end in _total"
            ),
            other => panic!("unexpected type {other} for {name}"),
        }
    }
    // Task ids never become labels.
    assert!(!text.contains("task-1"), "a task name leaked into labels");
    promtool_check(&text);
}

#[test]
fn registering_twice_on_one_registry_is_an_error() {
    let registry = Registry::new();
    let _first = SoltiMetrics::new(&registry).unwrap();
    let err = SoltiMetrics::new(&registry).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("failed to register metric family solti_"),
        "{err}"
    );
}

#[test]
fn lost_start_events_never_make_gauges_negative() {
    let (registry, metrics) = metrics();
    metrics
        .lifecycle()
        .on_event(&Event::new(EventKind::AttemptSucceeded));
    metrics
        .runner()
        .task_completed(RUNNER, KIND, AttemptOutcome::Canceled, Duration::ZERO);
    metrics
        .api()
        .request_finished("http", "GET", "/healthz", "200", Duration::ZERO);
    let s = parse(&encode_text(&registry).unwrap());
    assert_eq!(value(&s, names::SV_TASKS_IN_FLIGHT, &[]), 0.0);
    assert_eq!(
        value(
            &s,
            names::RUNNER_ATTEMPTS_IN_FLIGHT,
            &[("runner", RUNNER), ("kind", KIND)]
        ),
        0.0
    );
}
