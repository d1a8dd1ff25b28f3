//! Browser defences: the requests a web page can make a browser send are refused before
//! auth and before any handler runs, on both transports.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::Value;
use solti_api::{GrpcApi, HostPolicy, HttpApi, serve_http};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
};

use crate::harness::{FakeHandler, RecordingObserver, assert_error, send, submit_body};

fn req(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> http::Request<axum::body::Body> {
    let mut b = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(axum::body::Body::from(body.to_owned())).unwrap()
}

async fn answer(app: &axum::Router, r: http::Request<axum::body::Body>) -> (StatusCode, Value) {
    let (status, _, text) = send(app, r).await;
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn the_no_cors_fetch_request_is_refused_and_runs_nothing() {
    let fake = Arc::new(FakeHandler::default());
    let app = HttpApi::new(Arc::clone(&fake)).router();
    let body = submit_body("evil", "touch", &["/tmp/pwned"]);
    // Exactly what Chrome sends for fetch(url, {method: "POST", mode: "no-cors", body}) with
    // a string body (text/plain) and with a Blob/ArrayBuffer body (no Content-Type).
    for ct in [Some("text/plain;charset=UTF-8"), None] {
        let mut headers = vec![
            ("host", "127.0.0.1:8085"),
            ("origin", "https://evil.example"),
            ("sec-fetch-mode", "no-cors"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-dest", "empty"),
        ];
        if let Some(ct) = ct {
            headers.push(("content-type", ct));
        }
        let (s, b) = answer(&app, req("POST", "/api/v1/tasks", &headers, &body)).await;
        assert_error(
            s,
            &b,
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Sec-Fetch-Site: ",
        );
        // Older browsers send no Fetch metadata: the Origin alone refuses it.
        headers.retain(|(k, _)| !k.starts_with("sec-fetch"));
        let (s, b) = answer(&app, req("POST", "/api/v1/tasks", &headers, &body)).await;
        assert_error(s, &b, StatusCode::FORBIDDEN, "Forbidden", "Origin: ");
        // And with no Origin at all (a form from an old browser), the content type does.
        headers.retain(|(k, _)| *k != "origin");
        let (s, b) = answer(&app, req("POST", "/api/v1/tasks", &headers, &body)).await;
        assert_error(
            s,
            &b,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "Content-Type: must be application/json",
        );
    }
    assert!(fake.specs.lock().unwrap().is_empty(), "a handler ran");
}

#[tokio::test]
async fn bodies_must_be_declared_json() {
    let fake = Arc::new(FakeHandler::default());
    let app = HttpApi::new(Arc::clone(&fake)).router();
    let body = submit_body("a", "true", &[]);
    for (method, ct) in [
        ("POST", None),
        ("POST", Some("text/plain")),
        ("PUT", Some("application/x-www-form-urlencoded")),
        ("PUT", Some("multipart/form-data; boundary=x")),
    ] {
        let headers: Vec<_> = ct.map(|c| ("content-type", c)).into_iter().collect();
        let (s, b) = answer(&app, req(method, "/api/v1/tasks", &headers, &body)).await;
        assert_error(
            s,
            &b,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "Content-Type: must be application/json, got",
        );
    }
    assert!(fake.specs.lock().unwrap().is_empty());
    let ok = [("content-type", "application/json")];
    let (s, _) = answer(&app, req("POST", "/api/v1/tasks", &ok, &body)).await;
    assert_eq!(s, StatusCode::CREATED);
    // Same-origin pages (the agent's own origin) and non-browser clients pass.
    let same = [
        ("content-type", "application/json"),
        ("host", "localhost:8085"),
        ("origin", "http://localhost:8085"),
        ("sec-fetch-site", "same-origin"),
    ];
    let (s, _) = answer(&app, req("POST", "/api/v1/tasks", &same, &body)).await;
    assert_eq!(s, StatusCode::CREATED);
}

#[tokio::test]
async fn dns_rebinding_is_421_and_host_policy_any_allows_names() {
    let fake = Arc::new(FakeHandler::default());
    let app = HttpApi::new(Arc::clone(&fake)).router();
    for path in ["/api/v1/tasks", "/api/v1/tasks/tsk_1/logs", "/nope"] {
        let (s, b) = answer(
            &app,
            req("GET", path, &[("host", "rebind.evil.example:8085")], ""),
        )
        .await;
        assert_error(
            s,
            &b,
            StatusCode::MISDIRECTED_REQUEST,
            "MisdirectedRequest",
            "Host: this API listens on a loopback address",
        );
    }
    let open = HttpApi::new(fake)
        .with_host_policy(HostPolicy::Any)
        .router();
    let (s, _) = answer(
        &open,
        req("GET", "/api/v1/tasks", &[("host", "agent.lan:8085")], ""),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn refusals_come_before_auth_and_are_observed_with_bounded_labels() {
    let observer = Arc::new(RecordingObserver::default());
    let app = HttpApi::new(Arc::new(FakeHandler::default()))
        .with_auth(solti_model::Token::new("s3cret").unwrap())
        .with_observer(observer.clone())
        .router();
    let (s, _) = answer(
        &app,
        req(
            "GET",
            "/api/v1/tasks",
            &[("origin", "https://evil.example"), ("host", "127.0.0.1")],
            "",
        ),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Invented methods are reported as `other`: a client cannot mint label values.
    for m in ["FOO", "BAR", "X-1"] {
        let (s, _) = answer(&app, req(m, "/api/v1/tasks", &[], "")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let finished = observer.finished.lock().unwrap();
    let methods: Vec<&str> = finished.iter().map(|(_, m, _, _)| m.as_str()).collect();
    assert_eq!(methods, ["GET", "other", "other", "other"]);
    assert_eq!(finished[0].3, "403");
}

/// The raw bytes a browser puts on the wire, over a real socket.
#[tokio::test]
async fn raw_browser_request_over_tcp() {
    let fake = Arc::new(FakeHandler::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_http(
        listener,
        HttpApi::new(Arc::clone(&fake)).router(),
        async move {
            let _ = stopped.await;
        },
    ));
    let body = submit_body("evil", "true", &[]);
    let head = format!(
        "POST /api/v1/tasks HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\
         Content-Type: text/plain;charset=UTF-8\r\nOrigin: https://evil.example\r\n\
         Sec-Fetch-Mode: no-cors\r\nSec-Fetch-Site: cross-site\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body.as_bytes()).await.unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 403 "), "{out}");
    assert!(out.contains(r#""error":"Forbidden""#), "{out}");
    assert!(fake.specs.lock().unwrap().is_empty());
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// A page can POST HTTP/1.1 to the gRPC port too; the gRPC service refuses it unless it is
/// a gRPC request.
#[tokio::test]
async fn grpc_port_refuses_browser_posts() {
    let fake = Arc::new(FakeHandler::default());
    let server = crate::grpc::Server::start(GrpcApi::new(Arc::clone(&fake))).await;
    let addr = server.addr;
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    // A gRPC frame for an empty SubmitTaskRequest, sent as text/plain from a page.
    let body = [0u8, 0, 0, 0, 0];
    let head = format!(
        "POST /solti.task.v1.TaskService/SubmitTask HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Length: 5\r\nContent-Type: text/plain\r\nOrigin: https://evil.example\r\n\
         Connection: close\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body).await.unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).await.unwrap();
    assert!(out.to_ascii_lowercase().contains("grpc-status: 7"), "{out}");
    // A rebinding Host is refused on the gRPC port as well.
    let mut client = server.client().await;
    let mut request = tonic::Request::new(solti_api::pb::ListTasksRequest::default());
    request
        .metadata_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let err = client.list_tasks(request).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert!(fake.specs.lock().unwrap().is_empty());
    server.stop().await;
}
