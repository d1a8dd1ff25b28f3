//! Shutting down and over capacity: HTTP 503 with `Retry-After`, gRPC `UNAVAILABLE` /
//! `RESOURCE_EXHAUSTED`; a real supervisor that is shutting down answers so too.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::Value;
use solti_api::{ApiError, GrpcApi, HttpApi, SupervisorApiAdapter, pb};
use tonic::Code;

use crate::{
    grpc::Server,
    harness::{FakeHandler, request, send, submit_body, supervisor},
};

#[tokio::test]
async fn http_503_with_retry_after() {
    let fake = Arc::new(FakeHandler::default());
    let app = HttpApi::new(Arc::clone(&fake)).router();
    for (err, label, retry) in [
        (ApiError::ShuttingDown, "Unavailable", "5"),
        (
            ApiError::CapacityExhausted {
                what: "tasks",
                limit: 3,
            },
            "CapacityExhausted",
            "1",
        ),
    ] {
        *fake.fail.lock().unwrap() = Some(err.clone());
        let body = submit_body("x", "true", &[]);
        let (status, res, text) =
            send(&app, request("POST", "/api/v1/tasks", Some(&body), None)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
        assert_eq!(res.headers()["retry-after"], retry);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"], label);
        assert_eq!(v["message"], err.to_string());
    }
    // Other errors carry no Retry-After.
    *fake.fail.lock().unwrap() = Some(ApiError::internal("boom"));
    let body = submit_body("x", "true", &[]);
    let (status, res, _) = send(&app, request("POST", "/api/v1/tasks", Some(&body), None)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(res.headers().get("retry-after").is_none());
}

#[tokio::test]
async fn grpc_unavailable_and_resource_exhausted() {
    let fake = Arc::new(FakeHandler::default());
    let server = Server::start(GrpcApi::new(Arc::clone(&fake))).await;
    let mut client = server.client().await;
    for (err, code) in [
        (ApiError::ShuttingDown, Code::Unavailable),
        (
            ApiError::CapacityExhausted {
                what: "tasks",
                limit: 3,
            },
            Code::ResourceExhausted,
        ),
    ] {
        *fake.fail.lock().unwrap() = Some(err);
        let status = client
            .list_tasks(pb::ListTasksRequest::default())
            .await
            .unwrap_err();
        assert_eq!(status.code(), code);
    }
    server.stop().await;
}

#[tokio::test]
async fn a_supervisor_shutting_down_answers_503() {
    let sup = supervisor().await;
    let app = HttpApi::new(Arc::new(SupervisorApiAdapter::new(Arc::clone(&sup)))).router();
    sup.shutdown().await.unwrap();
    let body = submit_body("late", "true", &[]);
    let (status, res, text) = send(&app, request("POST", "/api/v1/tasks", Some(&body), None)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert_eq!(res.headers()["retry-after"], "5");
}
