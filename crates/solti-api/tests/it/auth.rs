//! Bearer auth and the observer on HTTP.

use std::sync::Arc;

use axum::http::StatusCode;
use solti_api::{HttpApi, Transport, UNMATCHED_ROUTE};
use solti_model::Token;

use crate::harness::{FakeHandler, RecordingObserver, assert_error, request, send, submit_body};

const ROUTES: [(&str, &str); 9] = [
    ("POST", "/api/v1/tasks"),
    ("PUT", "/api/v1/tasks"),
    ("GET", "/api/v1/tasks"),
    ("GET", "/api/v1/tasks/tsk_1"),
    ("DELETE", "/api/v1/tasks/tsk_1"),
    ("GET", "/api/v1/tasks/tsk_1/runs"),
    ("GET", "/api/v1/tasks/tsk_1/logs"),
    ("GET", "/nope"),
    ("PATCH", "/api/v1/tasks"),
];

#[tokio::test]
async fn missing_or_wrong_token_is_401_on_every_route() {
    let fake = Arc::new(FakeHandler::default());
    fake.end_stream
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let app = HttpApi::new(fake)
        .with_auth(Token::new("s3cret").unwrap())
        .router();
    let body = submit_body("a", "true", &[]);
    for (method, path) in ROUTES {
        for token in [None, Some("wrong"), Some("s3cre"), Some("s3cret ")] {
            let (status, res, text) = send(&app, request(method, path, Some(&body), token)).await;
            if token == Some("s3cret ") {
                // Trailing blanks are trimmed: this one is accepted.
                assert_ne!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
                continue;
            }
            assert_error(
                status,
                &serde_json::from_str(&text).unwrap(),
                StatusCode::UNAUTHORIZED,
                "Unauthenticated",
                "missing or invalid bearer token",
            );
            assert_eq!(
                res.headers()["www-authenticate"],
                "Bearer",
                "{method} {path}"
            );
        }
        let (status, _, _) = send(&app, request(method, path, Some(&body), Some("s3cret"))).await;
        assert_ne!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    // Another scheme is refused too.
    let req = http::Request::get("/api/v1/tasks")
        .header("authorization", "Basic s3cret")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn observer_sees_templates_and_statuses() {
    let fake = Arc::new(FakeHandler::default());
    let obs = Arc::new(RecordingObserver::default());
    let app = HttpApi::new(fake)
        .with_auth(Token::new("t").unwrap())
        .with_observer(obs.clone())
        .router();
    send(
        &app,
        request("GET", "/api/v1/tasks/tsk_secret_id", None, Some("t")),
    )
    .await;
    send(
        &app,
        request("GET", "/api/v1/tasks/tsk_secret_id/runs", None, None),
    )
    .await;
    send(&app, request("GET", "/elsewhere", None, Some("t"))).await;
    let finished = obs.finished.lock().unwrap().clone();
    assert_eq!(
        finished,
        vec![
            (
                Transport::Http,
                "GET".to_owned(),
                "/api/v1/tasks/{id}",
                "404".to_owned()
            ),
            (
                Transport::Http,
                "GET".to_owned(),
                "/api/v1/tasks/{id}/runs",
                "401".to_owned()
            ),
            (
                Transport::Http,
                "GET".to_owned(),
                UNMATCHED_ROUTE,
                "404".to_owned()
            ),
        ]
    );
    assert_eq!(obs.started.lock().unwrap().len(), 3);
}
