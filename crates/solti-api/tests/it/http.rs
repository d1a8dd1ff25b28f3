//! HTTP routes in-process (`oneshot`) against a real supervisor with the subprocess runner.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Value, json};
use solti_api::{ApiError, HttpApi};

use crate::harness::{
    FakeHandler, adapter, assert_error, call, request, send, submit_body, wait_terminal,
};

#[tokio::test]
async fn submit_get_runs_delete_roundtrip() {
    let (sup, handler) = adapter().await;
    let app = HttpApi::new(handler).router();

    let (status, _, text) = send(
        &app,
        request(
            "POST",
            "/api/v1/tasks",
            Some(&submit_body("pin", "echo", &["hi"])),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1, "{text}");
    let id = body["taskId"].as_str().unwrap().to_owned();
    assert!(id.starts_with("tsk_"), "{id}");
    wait_terminal(&sup, &id).await;

    // GET: exact shape of TaskData in proto3 JSON.
    let (status, body) = call(&app, "GET", &format!("/api/v1/tasks/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let task = &body["task"];
    let meta = &task["metadata"];
    assert_eq!(meta["id"], id.as_str());
    for key in ["createdAt", "updatedAt", "resourceVersion"] {
        let v = meta[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} must be a string: {meta}"));
        assert!(v.parse::<i64>().is_ok(), "{key}={v}");
    }
    assert_eq!(
        task["spec"],
        json!({
            "slot": "pin",
            "kind": { "subprocess": { "command": { "command": "echo", "args": ["hi"] }, "env": [], "failOnNonZero": true } },
            "timeoutMs": "10000",
            "restart": "RESTART_STRATEGY_NEVER",
            "backoff": { "jitter": "JITTER_STRATEGY_FULL", "firstMs": "1000", "maxMs": "30000", "factor": 2.0 },
            "admission": "ADMISSION_STRATEGY_DROP_IF_RUNNING",
            "labels": {}
        })
    );
    assert_eq!(
        task["status"],
        json!({ "phase": "TASK_STATUS_SUCCEEDED", "attempt": 1, "exitCode": 0 })
    );

    // Runs: one attempt, absent optionals omitted.
    let (status, body) = call(&app, "GET", &format!("/api/v1/tasks/{id}/runs"), None).await;
    assert_eq!(status, StatusCode::OK);
    let runs = body["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{body}");
    let run = runs[0].as_object().unwrap();
    let mut keys: Vec<_> = run.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["attempt", "exitCode", "finishedAt", "startedAt", "status"],
        "{body}"
    );
    assert_eq!(run["status"], "TASK_STATUS_SUCCEEDED");
    assert!(run["startedAt"].is_string() && run["finishedAt"].is_string());

    // Delete: 204 both times, then 404.
    let (status, _, text) = send(
        &app,
        request("DELETE", &format!("/api/v1/tasks/{id}"), None, None),
    )
    .await;
    assert_eq!((status, text.as_str()), (StatusCode::NO_CONTENT, ""));
    let (status, _, _) = send(
        &app,
        request("DELETE", &format!("/api/v1/tasks/{id}"), None, None),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(&app, "GET", &format!("/api/v1/tasks/{id}"), None).await;
    assert_eq!(
        body,
        json!({ "error": "TaskNotFound", "message": format!("task {id:?} not found") })
    );
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_ids_are_404_on_get_runs_logs_and_204_on_delete() {
    let (_sup, handler) = adapter().await;
    let app = HttpApi::new(handler).router();
    for path in [
        "/api/v1/tasks/tsk_nope",
        "/api/v1/tasks/tsk_nope/runs",
        "/api/v1/tasks/tsk_nope/logs",
    ] {
        let (status, body) = call(&app, "GET", path, None).await;
        assert_error(
            status,
            &body,
            StatusCode::NOT_FOUND,
            "TaskNotFound",
            "task \"tsk_nope\" not found",
        );
    }
    let (status, _, _) = send(
        &app,
        request("DELETE", "/api/v1/tasks/tsk_nope", None, None),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(&app, "GET", "/api/v1/tasks/bad%20id", None).await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        "id: must be 1..=256 chars",
    );
}

#[tokio::test]
async fn list_filters_pagination_and_total() {
    let (sup, handler) = adapter().await;
    let app = HttpApi::new(handler).router();
    let mut ids = Vec::new();
    for slot in ["la", "lb", "lc"] {
        let (status, body) = call(
            &app,
            "POST",
            "/api/v1/tasks",
            Some(&submit_body(slot, "true", &[])),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.push(body["taskId"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        wait_terminal(&sup, id).await;
    }
    let (status, body) = call(&app, "GET", "/api/v1/tasks?slot=lb", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 1);
    assert_eq!(body["tasks"][0]["metadata"]["id"], ids[1].as_str());

    for status_param in ["succeeded", "TASK_STATUS_SUCCEEDED", "3"] {
        let (_, body) = call(
            &app,
            "GET",
            &format!("/api/v1/tasks?status={status_param}&limit=1&offset=1"),
            None,
        )
        .await;
        assert!(body["total"].as_u64().unwrap() >= 3, "{body}");
        assert_eq!(body["tasks"].as_array().unwrap().len(), 1, "{body}");
    }
    let (_, body) = call(&app, "GET", "/api/v1/tasks?status=running&slot=la", None).await;
    assert_eq!(body, json!({ "tasks": [], "total": 0 }));
    let (_, body) = call(
        &app,
        "GET",
        "/api/v1/tasks?slot=&status=&limit=0&offset=0",
        None,
    )
    .await;
    assert!(body["total"].as_u64().unwrap() >= 3, "{body}");

    let (status, body) = call(&app, "GET", "/api/v1/tasks?limit=1001", None).await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        "limit: must be at most 1000, got 1001",
    );
    let (status, body) = call(&app, "GET", "/api/v1/tasks?limit=many", None).await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        "limit: must be an integer",
    );
    let (status, body) = call(&app, "GET", "/api/v1/tasks?status=done", None).await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        "status: unknown task phase",
    );
    let (status, body) = call(&app, "GET", "/api/v1/tasks?slot=a%2Fb", None).await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        "slot:",
    );
}

#[tokio::test]
async fn proto3_json_inputs_numbers_strings_enum_names_and_numbers() {
    let fake = Arc::new(FakeHandler::default());
    let app = HttpApi::new(Arc::clone(&fake)).router();
    let body = json!({
        "spec": {
            "slot": "j",
            "kind": { "subprocess": { "script": { "wellKnown": 1, "body": "ZWNobyBoaQ==", "args": [] } } },
            "timeoutMs": "2500",
            "restart": 3,
            "restartIntervalMs": 50,
            "backoff": { "jitter": "JITTER_STRATEGY_EQUAL", "firstMs": 10, "maxMs": "100", "factor": 1.5 },
            "admission": "ADMISSION_STRATEGY_QUEUE",
            "maxRetries": 2,
            "futureField": { "ignored": true }
        }
    });
    let (status, _) = call(&app, "POST", "/api/v1/tasks", Some(&body.to_string())).await;
    assert_eq!(status, StatusCode::CREATED);
    let spec = fake.specs.lock().unwrap().pop().unwrap();
    assert_eq!(spec.timeout_ms(), 2500);
    assert_eq!(
        spec.restart(),
        solti_model::RestartPolicy::Always {
            interval_ms: Some(50)
        }
    );
    assert_eq!(spec.admission(), solti_model::AdmissionPolicy::Queue);
    assert_eq!(spec.backoff().first_ms(), 10);
    assert_eq!(spec.backoff().jitter(), solti_model::JitterPolicy::Equal);
    assert_eq!(spec.max_retries(), Some(2));

    // PUT forces Replace whatever the body says.
    let (status, body) = call(
        &app,
        "PUT",
        "/api/v1/tasks",
        Some(&submit_body("j", "true", &[])),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "taskId": "tsk_fake" }))
    );
    assert_eq!(
        fake.specs.lock().unwrap().pop().unwrap().admission(),
        solti_model::AdmissionPolicy::Replace
    );
}

#[tokio::test]
async fn every_error_label_and_status() {
    let fake = Arc::new(FakeHandler::default());
    let app = HttpApi::new(Arc::clone(&fake)).router();
    let post = |body: &str| {
        let app = app.clone();
        let body = body.to_owned();
        async move { call(&app, "POST", "/api/v1/tasks", Some(&body)).await }
    };

    let (s, b) = post("{not json").await;
    assert_error(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        "invalid JSON body:",
    );
    let (s, b) = post("{}").await;
    assert_error(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        "spec: required",
    );
    let (s, b) = post(r#"{"spec":{"slot":"x","timeoutMs":5}}"#).await;
    assert_error(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        "spec.kind: required",
    );
    let zero = submit_body("x", "true", &[]).replace("10000", "0");
    let (s, b) = post(&zero).await;
    assert_error(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        "spec.timeoutMs: must be 1..=31536000000 ms, got 0",
    );
    let (s, b) = post(r#"{"spec":{"slot":"x","timeoutMs":5,"restart":"SOMETIMES"}}"#).await;
    assert_error(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        "spec.restart: must be one of RESTART_STRATEGY_NEVER,",
    );
    let (s, b) = post(r#"{"spec":{"slot":"x","timeoutMs":-5}}"#).await;
    assert_error(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        "invalid JSON body:",
    );

    // Wrong content type, empty body.
    let req = http::Request::post("/api/v1/tasks")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from("a=b"))
        .unwrap();
    let (s, _, text) = send(&app, req).await;
    assert_error(
        s,
        &serde_json::from_str(&text).unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaType",
        "Content-Type: must be application/json",
    );
    let (s, _, text) = send(&app, request("POST", "/api/v1/tasks", None, None)).await;
    assert_error(
        s,
        &serde_json::from_str(&text).unwrap(),
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        "body: required",
    );

    // Unknown route and wrong method still answer JSON.
    let (s, b) = call(&app, "GET", "/api/v2/nothing", None).await;
    assert_error(
        s,
        &b,
        StatusCode::NOT_FOUND,
        "NotFound",
        "no route for GET /api/v2/nothing",
    );
    let (s, _, text) = send(&app, request("PATCH", "/api/v1/tasks", None, None)).await;
    assert_error(
        s,
        &serde_json::from_str(&text).unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "method PATCH",
    );

    // Handler errors map through the table.
    let rows = [
        (
            ApiError::AlreadyExists("tsk_1".into()),
            StatusCode::CONFLICT,
            "AlreadyExists",
        ),
        (
            ApiError::internal("runner exploded"),
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal",
        ),
        (
            ApiError::ShuttingDown,
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
        ),
        (
            ApiError::invalid("spec.kind", "no runner"),
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
        ),
    ];
    for (err, want, label) in rows {
        *fake.fail.lock().unwrap() = Some(err.clone());
        let (s, b) = post(&submit_body("x", "true", &[])).await;
        assert_error(s, &b, want, label, &err.to_string());
    }
}

#[tokio::test]
async fn wasm_and_container_kinds_have_no_runner() {
    let (_sup, handler) = adapter().await;
    let app = HttpApi::new(handler).router();
    for kind in [
        json!({ "wasm": { "module": "m.wasm" } }),
        json!({ "container": { "image": "alpine" } }),
    ] {
        let body = json!({ "spec": { "slot": "w", "kind": kind, "timeoutMs": 1000, "restart": "RESTART_STRATEGY_NEVER", "admission": "ADMISSION_STRATEGY_DROP_IF_RUNNING" } }).to_string();
        let (s, b) = call(&app, "POST", "/api/v1/tasks", Some(&body)).await;
        assert_error(
            s,
            &b,
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "spec.kind: no runner for task kind",
        );
    }
}

#[tokio::test]
async fn body_limit_413_and_script_limit_400() {
    let fake = Arc::new(FakeHandler::default());
    let app = HttpApi::new(fake).router();
    let big = format!(r#"{{"spec":{{"slot":"{}"}}}}"#, "a".repeat(4 * 1024 * 1024));
    let (s, b) = call(&app, "POST", "/api/v1/tasks", Some(&big)).await;
    assert_error(
        s,
        &b,
        StatusCode::PAYLOAD_TOO_LARGE,
        "PayloadTooLarge",
        "request body must be at most 4194304 bytes",
    );

    use base64::Engine as _;
    let script = base64::engine::general_purpose::STANDARD.encode(vec![b'#'; 2 * 1024 * 1024 + 1]);
    let body = json!({
        "spec": { "slot": "s", "timeoutMs": 1000, "restart": "RESTART_STRATEGY_NEVER", "admission": "ADMISSION_STRATEGY_DROP_IF_RUNNING",
                  "kind": { "subprocess": { "script": { "wellKnown": "SCRIPT_RUNTIME_BASH", "body": script } } } }
    })
    .to_string();
    assert!(body.len() < 4 * 1024 * 1024);
    let (s, b) = call(&app, "POST", "/api/v1/tasks", Some(&body)).await;
    assert_error(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        "spec.kind.subprocess.script.body: decoded script must be at most 2097152 bytes",
    );
}

#[tokio::test]
async fn drop_if_running_is_acknowledged_and_reported_through_the_task() {
    let (sup, handler) = adapter().await;
    let app = HttpApi::new(handler).router();
    let (_, first) = call(
        &app,
        "POST",
        "/api/v1/tasks",
        Some(&submit_body("busy", "sleep", &["5"])),
    )
    .await;
    let first = first["taskId"].as_str().unwrap().to_owned();
    let (status, second) = call(
        &app,
        "POST",
        "/api/v1/tasks",
        Some(&submit_body("busy", "sleep", &["5"])),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let second = second["taskId"].as_str().unwrap().to_owned();
    wait_terminal(&sup, &second).await;
    let (_, body) = call(&app, "GET", &format!("/api/v1/tasks/{second}"), None).await;
    assert_eq!(
        body["task"]["status"]["phase"], "TASK_STATUS_CANCELED",
        "{body}"
    );
    assert!(
        body["task"]["status"]["error"]
            .as_str()
            .unwrap()
            .contains(&first),
        "{body}"
    );
    let (s, _, _) = send(
        &app,
        request("DELETE", &format!("/api/v1/tasks/{first}"), None, None),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_list_page_over_4_mib_is_refused_with_advice() {
    use base64::Engine as _;
    let (_sup, handler) = adapter().await;
    let app = HttpApi::new(handler).router();
    // Three refused-at-once tasks (a missing interpreter fails fast) each carrying a ~1.9 MiB script.
    let script = base64::engine::general_purpose::STANDARD.encode(vec![b'#'; 1_400_000]);
    for n in 0..3 {
        let body = json!({
            "spec": { "slot": format!("big-{n}"), "timeoutMs": 1000, "restart": "RESTART_STRATEGY_NEVER", "admission": "ADMISSION_STRATEGY_DROP_IF_RUNNING",
                      "kind": { "subprocess": { "script": { "custom": { "command": "/nonexistent-interpreter" }, "body": script } } } }
        })
        .to_string();
        let (s, b) = call(&app, "POST", "/api/v1/tasks", Some(&body)).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let (s, b) = call(&app, "GET", "/api/v1/tasks", None).await;
    assert_error(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        "limit: the page would be over",
    );
    let (s, b) = call(&app, "GET", "/api/v1/tasks?limit=1", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["total"], 3);
}
