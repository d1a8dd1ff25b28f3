//! Regression bench: hostile specs near the 4 MiB body limit are refused quickly.
//!
//! Run with `cargo bench -p solti-api --features http --bench hostile_spec`.
//!
//! Each case sends one `POST /api/v1/tasks` through the whole HTTP router in process
//! (browser guard, auth-free, body read, proto3 JSON decode, conversion, validation) and
//! measures the time until the `400` is ready. The case names say what the spec carries.
//! Before the fix, 125,000 env entries took about 21 s (pairwise de-duplication before the
//! count check); the budget is 10 ms per request.
#![expect(clippy::unwrap_used, reason = "a benchmark aborts on setup failure")]

use std::{hint::black_box, sync::Arc, time::Duration};

use axum::{Router, body::Body};
use criterion::Criterion;
use http::{Request, StatusCode};
use serde_json::{Value, json};
use solti_api::{HttpApi, SupervisorApiAdapter};
use solti_core::{StateConfig, SupervisorApi};
use solti_runner::RunnerRouter;
use taskvisor::{ControllerConfig, SupervisorConfig};
use tower::ServiceExt as _;

/// The largest body the API reads.
const LIMIT: usize = solti_api::http::MAX_BODY_BYTES;

fn spec_with(kind: &Value, extra: &[(&str, Value)]) -> Value {
    let mut spec = json!({ "slot": "hostile", "kind": kind, "timeoutMs": 1000 });
    for (k, v) in extra {
        spec[*k] = v.clone();
    }
    json!({ "spec": spec })
}

fn command(args: &[String], env: &[Value]) -> Value {
    json!({ "subprocess": { "command": { "command": "true", "args": args }, "env": env } })
}

/// Hostile bodies, each just under the body limit.
fn cases() -> Vec<(&'static str, Vec<u8>)> {
    let env: Vec<Value> = (0..125_000)
        .map(|i| json!({ "key": format!("K{i}"), "value": "v" }))
        .collect();
    let same_key: Vec<Value> = (0..125_000)
        .map(|_| json!({ "key": "K", "value": "v" }))
        .collect();
    let args: Vec<String> = (0..450_000).map(|i| format!("{i}")).collect();
    let labels: serde_json::Map<String, Value> = (0..250_000)
        .map(|i| (format!("l{i}"), json!("v")))
        .collect();
    let values: Vec<String> = (0..400_000).map(|i| format!("{i}")).collect();
    let selector = json!({ "matchExpressions": [
        { "key": "k", "operator": "SELECTOR_OPERATOR_IN", "values": values }
    ]});
    // Within the count limits, so fully decoded, and refused by the total-bytes limits.
    let big_env: Vec<Value> = (0..1024)
        .map(|i| json!({ "key": format!("K{i}"), "value": "v".repeat(3900) }))
        .collect();
    let big_args: Vec<String> = (0..4096).map(|_| "a".repeat(1000)).collect();
    let cases = vec![
        ("env_1024_x_3.9k", spec_with(&command(&[], &big_env), &[])),
        ("args_4096_x_1k", spec_with(&command(&big_args, &[]), &[])),
        ("env_125k_distinct", spec_with(&command(&[], &env), &[])),
        (
            "env_125k_same_key",
            spec_with(&command(&[], &same_key), &[]),
        ),
        ("args_450k", spec_with(&command(&args, &[]), &[])),
        (
            "labels_250k",
            spec_with(&command(&[], &[]), &[("labels", Value::Object(labels))]),
        ),
        (
            "selector_values_400k",
            spec_with(&command(&[], &[]), &[("runnerSelector", selector)]),
        ),
    ];
    cases
        .into_iter()
        .map(|(name, v)| {
            let body = serde_json::to_vec(&v).unwrap();
            assert!(body.len() <= LIMIT, "{name}: {} bytes", body.len());
            (name, body)
        })
        .collect()
}

fn router(rt: &tokio::runtime::Runtime) -> Router {
    rt.block_on(async {
        let sup = SupervisorApi::new(
            SupervisorConfig::default(),
            ControllerConfig::default(),
            vec![],
            RunnerRouter::new(),
            StateConfig::default(),
        )
        .await
        .unwrap();
        HttpApi::new(Arc::new(SupervisorApiAdapter::new(Arc::new(sup)))).router()
    })
}

async fn post(app: &Router, body: &[u8]) -> StatusCode {
    let req = Request::post("/api/v1/tasks")
        .header("content-type", "application/json")
        .header("host", "127.0.0.1:8085")
        .body(Body::from(body.to_vec()))
        .unwrap();
    app.clone().oneshot(req).await.unwrap().status()
}

fn hostile(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let app = router(&rt);
    let mut group = c.benchmark_group("hostile_spec_refused");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for (name, body) in cases() {
        // Every case is refused (400), never accepted or timed out.
        assert_eq!(
            rt.block_on(post(&app, &body)),
            StatusCode::BAD_REQUEST,
            "{name}"
        );
        let mb = body.len() as f64 / (1024.0 * 1024.0);
        group.bench_function(format!("{name} ({mb:.2} MiB)"), |b| {
            b.iter(|| rt.block_on(post(&app, black_box(&body))));
        });
    }
    group.finish();
}

fn main() {
    // What `criterion_group!`/`criterion_main!` expand to, without their undocumented `pub fn`.
    let mut c = Criterion::default().configure_from_args();
    hostile(&mut c);
    c.final_summary();
}
