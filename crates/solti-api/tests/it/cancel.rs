//! `POST /api/v1/tasks/{id}/cancel` and gRPC `CancelTask` against a real supervisor: the task
//! stops, ends `CANCELED` naming who cancelled it, and is kept with its history.

use axum::http::StatusCode;
use serde_json::Value;
use solti_api::{GrpcApi, HttpApi, pb};
use solti_model::{OutputEvent, TaskId};
use tonic::Code;

use crate::{
    grpc::Server,
    harness::{adapter, assert_error, call, request, send, submit_body},
};

/// Waits (without sleeping) until the task prints a line (it prints one every 200 ms): it
/// is running then.
async fn wait_first_line(sup: &solti_core::SupervisorApi, id: &str) {
    let id = TaskId::try_new(id).unwrap();
    let mut sub = sup
        .subscribe_output(&id, solti_core::OutputStart::Live)
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(event) = sub.recv().await {
            if matches!(event, OutputEvent::Chunk { .. }) {
                return;
            }
        }
        panic!("the task ended before printing");
    })
    .await
    .expect("the task printed nothing in 20 s");
}

#[tokio::test]
async fn http_cancel_keeps_the_task_and_its_history() {
    let (sup, handler) = adapter().await;
    let app = HttpApi::new(handler).router();
    let body = submit_body(
        "cx",
        "sh",
        &["-c", "while :; do echo running; sleep 0.2; done"],
    );
    let (status, created) = call(&app, "POST", "/api/v1/tasks", Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["taskId"].as_str().unwrap().to_owned();
    wait_first_line(&sup, &id).await;

    // Empty body, no content type: the documented form.
    let (status, _, text) = send(
        &app,
        request("POST", &format!("/api/v1/tasks/{id}/cancel"), None, None),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let st = &body["task"]["status"];
    assert_eq!(st["phase"], "TASK_STATUS_CANCELED", "{body}");
    let error = st["error"].as_str().unwrap();
    assert!(error.contains("canceled by an API client (HTTP"), "{error}");
    assert!(st.get("exitCode").is_none(), "killed: no exit code: {body}");

    // Kept: get and runs still answer, with the cancelled run.
    let (status, got) = call(&app, "GET", &format!("/api/v1/tasks/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["task"], body["task"]);
    let (status, runs) = call(&app, "GET", &format!("/api/v1/tasks/{id}/runs"), None).await;
    assert_eq!(status, StatusCode::OK);
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "TASK_STATUS_CANCELED");
    assert!(runs[0]["finishedAt"].is_string());

    // Idempotent: a terminal task comes back unchanged.
    let (status, again) = call(&app, "POST", &format!("/api/v1/tasks/{id}/cancel"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["task"], body["task"]);

    // Unknown id: 404; a bad id: 400; GET is not a cancel.
    let (status, err) = call(&app, "POST", "/api/v1/tasks/tsk_nope/cancel", None).await;
    assert_error(
        status,
        &err,
        StatusCode::NOT_FOUND,
        "TaskNotFound",
        "task \"tsk_nope\" not found",
    );
    let (status, err) = call(&app, "POST", "/api/v1/tasks/bad%20id/cancel", None).await;
    assert_error(
        status,
        &err,
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        "id:",
    );
    let (status, _) = call(&app, "GET", &format!("/api/v1/tasks/{id}/cancel"), None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_finished_task_is_returned_unchanged() {
    let (sup, handler) = adapter().await;
    let app = HttpApi::new(handler).router();
    let (_, created) = call(
        &app,
        "POST",
        "/api/v1/tasks",
        Some(&submit_body("done", "true", &[])),
    )
    .await;
    let id = created["taskId"].as_str().unwrap().to_owned();
    crate::harness::wait_terminal(&sup, &id).await;
    let (_, before) = call(&app, "GET", &format!("/api/v1/tasks/{id}"), None).await;
    let (status, after) = call(&app, "POST", &format!("/api/v1/tasks/{id}/cancel"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(after, before);
    assert_eq!(after["task"]["status"]["phase"], "TASK_STATUS_SUCCEEDED");
}

#[tokio::test]
async fn grpc_cancel_task() {
    let (sup, handler) = adapter().await;
    let server = Server::start(GrpcApi::new(handler)).await;
    let mut client = server.client().await;
    let spec = pb::CreateSpec {
        slot: "gcx".into(),
        kind: Some(pb::TaskKind {
            kind: Some(pb::task_kind::Kind::Subprocess(pb::SubprocessTask {
                mode: Some(pb::subprocess_task::Mode::Command(pb::CommandMode {
                    command: "sh".into(),
                    args: vec![
                        "-c".into(),
                        "while :; do echo running; sleep 0.2; done".into(),
                    ],
                })),
                ..Default::default()
            })),
        }),
        timeout_ms: 60_000,
        restart: pb::RestartStrategy::Never as i32,
        admission: pb::AdmissionStrategy::DropIfRunning as i32,
        ..Default::default()
    };
    let id = client
        .submit_task(pb::SubmitTaskRequest { spec: Some(spec) })
        .await
        .unwrap()
        .into_inner()
        .task_id;
    wait_first_line(&sup, &id).await;

    let task = client
        .cancel_task(pb::CancelTaskRequest {
            task_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let status = task.status.clone().unwrap();
    assert_eq!(status.phase, pb::TaskStatus::Canceled as i32);
    assert!(
        status
            .error
            .as_deref()
            .unwrap()
            .contains("canceled by an API client (gRPC CancelTask)"),
        "{status:?}"
    );
    // Still there, and a second cancel changes nothing.
    let again = client
        .cancel_task(pb::CancelTaskRequest {
            task_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(again, task);
    let runs = client
        .list_task_runs(pb::ListTaskRunsRequest { task_id: id })
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, pb::TaskStatus::Canceled as i32);

    let err = client
        .cancel_task(pb::CancelTaskRequest {
            task_id: "tsk_nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .cancel_task(pb::CancelTaskRequest {
            task_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    server.stop().await;
}
