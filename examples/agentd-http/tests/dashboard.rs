//! The published Grafana dashboard ("Solti agent overview") reads a fixed set of metric
//! families, labels and label values, each joined on `solti_build_info{agent}`. After a mixed
//! workload against the real `agentd-http` (success, failure with retries, timeout, queued and
//! refused submissions, discovery heartbeats), every one of them must have a series.
//! (`docs/observability.md` records the same check done with a real Prometheus.)
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::{path::Path, time::Duration};

use agentd_kit::testing::AgentProcess;
use serde_json::{Value, json};

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "agentd-http-dashboard-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn spec(slot: &str, script: &str, timeout_ms: u64, restart: &str, admission: &str) -> Value {
    json!({
        "slot": slot,
        "kind": {"subprocess": {"command": {"command": "sh", "args": ["-c", script]}, "failOnNonZero": true}},
        "timeoutMs": timeout_ms.to_string(),
        "restart": restart,
        "admission": admission,
        "backoff": {"jitter": "JITTER_STRATEGY_NONE", "firstMs": 10, "maxMs": 10, "factor": 1},
    })
}

/// One sample line of the exposition text: the family, its labels, its value.
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (head, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match head.split_once('{') {
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').unwrap();
                    let labels = body
                        .split("\",")
                        .filter(|kv| !kv.is_empty())
                        .map(|kv| {
                            let (k, v) = kv.split_once("=\"").unwrap();
                            (k.to_owned(), v.trim_end_matches('"').to_owned())
                        })
                        .collect();
                    (name.to_owned(), labels)
                }
                None => (head.to_owned(), Vec::new()),
            };
            Sample {
                name,
                labels,
                value: value.parse().unwrap(),
            }
        })
        .collect()
}

/// The values of the series of `name` whose labels include `labels`.
fn values(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|s| s.value)
        .collect()
}

fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = values(samples, name, labels);
    assert!(!found.is_empty(), "no series {name}{labels:?}");
    found.iter().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_family_the_dashboard_reads_has_series_after_a_mixed_workload() {
    use axum::{Json, Router, routing::post};

    let app = Router::new().route(
        "/api/v1/discovery/sync",
        post(|| async { Json(json!({"success": true})) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cp = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut agent = AgentProcess::start(
        Path::new(env!("CARGO_BIN_EXE_agentd-http")),
        &scratch("mixed"),
        &["--control-plane", &cp, "--heartbeat-ms", "1000"],
    )
    .unwrap();
    let base = format!("http://{}/api/v1/tasks", agent.api_addr());
    let client = reqwest::Client::new();
    let submit = |spec: Value| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let resp = client
                .post(&base)
                .json(&json!({ "spec": spec }))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201);
        }
    };
    const NEVER: &str = "RESTART_STRATEGY_NEVER";
    const DROP: &str = "ADMISSION_STRATEGY_DROP_IF_RUNNING";
    let gate = scratch("gate").join("go");
    let wait_gate = format!("while [ ! -f {} ]; do sleep 0.01; done", gate.display());

    submit(spec("ok", "echo hello", 10_000, NEVER, DROP)).await;
    let mut retry = spec(
        "retry",
        "exit 3",
        10_000,
        "RESTART_STRATEGY_ON_FAILURE",
        DROP,
    );
    retry["maxRetries"] = json!(2);
    submit(retry).await;
    submit(spec("slow", "sleep 30", 200, NEVER, DROP)).await;
    // A busy slot: a queued submission waits, a DROP_IF_RUNNING one is refused.
    submit(spec("busy", &wait_gate, 20_000, NEVER, DROP)).await;
    submit(spec(
        "busy",
        "true",
        10_000,
        NEVER,
        "ADMISSION_STRATEGY_QUEUE",
    ))
    .await;
    submit(spec("busy", "true", 10_000, NEVER, DROP)).await;
    // An invalid request and an unknown task also count as API traffic.
    let bad = client
        .post(&base)
        .json(&json!({"spec": {"slot": "x", "timeoutMs": 1000}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    std::fs::write(&gate, b"").unwrap();

    // Poll the scrape until the workload has played out (no fixed sleeps).
    let last = std::sync::Mutex::new(String::new());
    let scrape = async {
        loop {
            let text = client
                .get(agent.metrics_url())
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let s = parse(&text);
            *last.lock().unwrap() = text;
            let done = |name: &str, labels: &[(&str, &str)], at_least: f64| {
                values(&s, name, labels).iter().sum::<f64>() >= at_least
            };
            let default = ("runner", "default");
            if done(
                "solti_runner_tasks_completed_total",
                &[default, ("outcome", "success")],
                3.0,
            ) && done(
                "solti_runner_tasks_completed_total",
                &[default, ("outcome", "failure")],
                1.0,
            ) && done(
                "solti_runner_tasks_completed_total",
                &[default, ("outcome", "timeout")],
                1.0,
            ) && done(
                "solti_sv_task_backoff_count_total",
                &[("source", "failure")],
                1.0,
            ) && done(
                "solti_discover_outcomes_total",
                &[("outcome", "success")],
                2.0,
            ) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let Ok(s) = tokio::time::timeout(Duration::from_secs(60), scrape).await else {
        let text = last.lock().unwrap().clone();
        let solti: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("solti_") && !l.contains("_bucket"))
            .collect();
        panic!(
            "the workload did not show in the metrics:\n{}",
            solti.join("\n")
        );
    };

    // The agent selector and every join.
    assert_eq!(
        values(&s, "solti_build_info", &[("agent", "agentd-http")]),
        [1.0]
    );
    assert_eq!(values(&s, "solti_build_info", &[]).len(), 1);
    // Health, fleet, activity.
    assert!(
        sum(
            &s,
            "solti_runner_tasks_started_total",
            &[("runner", "default")]
        ) >= 5.0
    );
    for outcome in ["success", "failure", "timeout", "canceled"] {
        sum(
            &s,
            "solti_runner_tasks_completed_total",
            &[("outcome", outcome)],
        );
    }
    assert!(
        sum(
            &s,
            "solti_runner_task_duration_seconds_bucket",
            &[("le", "+Inf")]
        ) >= 5.0
    );
    sum(&s, "solti_sv_tasks_in_flight", &[]);
    assert!(sum(&s, "solti_discover_last_success_timestamp_seconds", &[]) > 1.7e9);
    // Workload.
    for phase in [
        "pending",
        "running",
        "succeeded",
        "failed",
        "timeout",
        "canceled",
        "exhausted",
    ] {
        sum(&s, "solti_sv_tasks_by_phase", &[("phase", phase)]);
    }
    assert!(sum(&s, "solti_sv_tasks_by_phase", &[("phase", "canceled")]) >= 1.0);
    // Lifecycle.
    sum(
        &s,
        "solti_sv_task_backoff_count_total",
        &[("source", "success")],
    );
    assert!(
        sum(
            &s,
            "solti_sv_task_terminal_total",
            &[("reason", "exhausted")]
        ) >= 1.0
    );
    sum(&s, "solti_sv_task_terminal_total", &[("reason", "fatal")]);
    assert!(sum(&s, "solti_sv_task_timeouts_total", &[]) >= 1.0);
    assert!(sum(&s, "solti_sv_task_restarts_total", &[]) >= 1.0);
    // Admission.
    assert!(sum(&s, "solti_ctrl_submissions_total", &[]) >= 6.0);
    assert!(
        sum(
            &s,
            "solti_ctrl_rejections_total",
            &[("reason", "slot_busy")]
        ) >= 1.0
    );
    for reason in [
        "slot_full",
        "superseded",
        "removed",
        "shutting_down",
        "add_failed",
    ] {
        sum(&s, "solti_ctrl_rejections_total", &[("reason", reason)]);
    }
    // Event bus.
    sum(&s, "solti_sv_subscriber_overflow_total", &[]);
    sum(&s, "solti_sv_subscriber_panicked_total", &[]);
    // API: HTTP statuses as codes, the latency histogram.
    for status in ["201", "400"] {
        assert!(
            sum(
                &s,
                "solti_api_requests_total",
                &[("transport", "http"), ("status", status)]
            ) >= 1.0
        );
    }
    sum(
        &s,
        "solti_api_request_duration_seconds_bucket",
        &[("path", "/api/v1/tasks")],
    );
    sum(&s, "solti_api_in_flight_requests", &[("transport", "http")]);
    // Discovery.
    sum(
        &s,
        "solti_discover_outcomes_total",
        &[("outcome", "failure")],
    );
    sum(
        &s,
        "solti_discover_failures_total",
        &[("reason", "timeout")],
    );
    // Host.
    for family in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        sum(&s, family, &[]);
    }

    agent.terminate(Duration::from_secs(20)).unwrap();
    server.abort();
}
