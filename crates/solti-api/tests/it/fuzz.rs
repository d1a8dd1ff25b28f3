//! Arbitrary input never panics the server and never yields a 5xx.

use std::sync::Arc;

use axum::http::StatusCode;
use bytes::{BufMut as _, Bytes, BytesMut};
use http_body_util::BodyExt as _;
use proptest::prelude::*;
use serde_json::Value;
use solti_api::{GrpcApi, HttpApi};
use tower::ServiceExt as _;

use crate::harness::{FakeHandler, request};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-zA-Z0-9_ .:/=-]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("spec"),
            Just("slot"),
            Just("kind"),
            Just("subprocess"),
            Just("command"),
            Just("script"),
            Just("TASK_STATUS_RUNNING"),
            Just("RESTART_STRATEGY_ALWAYS"),
            Just("ZWNobw==")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        let keys = prop_oneof![
            Just("spec"),
            Just("slot"),
            Just("kind"),
            Just("subprocess"),
            Just("wasm"),
            Just("container"),
            Just("command"),
            Just("args"),
            Just("script"),
            Just("wellKnown"),
            Just("custom"),
            Just("body"),
            Just("env"),
            Just("cwd"),
            Just("timeoutMs"),
            Just("restart"),
            Just("restartIntervalMs"),
            Just("backoff"),
            Just("firstMs"),
            Just("maxMs"),
            Just("factor"),
            Just("jitter"),
            Just("admission"),
            Just("labels"),
            Just("maxRetries"),
            Just("runnerSelector"),
            Just("matchExpressions"),
            Just("operator"),
            Just("values"),
            Just("key"),
            Just("value"),
            Just("failOnNonZero")
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((keys, inner), 0..6).prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

fn post(app: &axum::Router, body: Vec<u8>) -> StatusCode {
    runtime().block_on(async {
        let req = http::Request::post("/api/v1/tasks")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .unwrap();
        app.clone().oneshot(req).await.unwrap().status()
    })
}

fn ok_or_4xx(status: StatusCode) -> bool {
    status == StatusCode::CREATED || status.is_client_error()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn http_submit_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let app = HttpApi::new(Arc::new(FakeHandler::default())).router();
        let status = post(&app, body);
        prop_assert!(ok_or_4xx(status), "{status}");
    }

    #[test]
    fn http_submit_arbitrary_json(value in json_value()) {
        let app = HttpApi::new(Arc::new(FakeHandler::default())).router();
        let status = post(&app, serde_json::to_vec(&serde_json::json!({ "spec": value })).unwrap());
        prop_assert!(ok_or_4xx(status), "{status}");
        let status = post(&app, serde_json::to_vec(&value).unwrap());
        prop_assert!(ok_or_4xx(status), "{status}");
    }

    #[test]
    fn grpc_submit_arbitrary_protobuf(msg in prop::collection::vec(any::<u8>(), 0..512)) {
        let svc = GrpcApi::new(Arc::new(FakeHandler::default())).into_routes();
        let code = runtime().block_on(async {
            let mut frame = BytesMut::with_capacity(msg.len() + 5);
            frame.put_u8(0);
            frame.put_u32(u32::try_from(msg.len()).unwrap());
            frame.put_slice(&msg);
            let req = http::Request::post("/solti.task.v1.TaskService/SubmitTask")
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(tonic::body::Body::new(http_body_util::Full::new(Bytes::from(frame))))
                .unwrap();
            let res = svc.oneshot(req).await.unwrap();
            let head = res.headers().get("grpc-status").map(|v| v.to_str().unwrap().to_owned());
            match head {
                Some(code) => code,
                None => {
                    let collected = res.into_body().collect().await.unwrap();
                    collected.trailers().and_then(|t| t.get("grpc-status")).map_or_else(|| "missing".to_owned(), |v| v.to_str().unwrap().to_owned())
                }
            }
        });
        // 0 = OK, 3 = INVALID_ARGUMENT, 13 would be INTERNAL (a bug).
        prop_assert!(code == "0" || code == "3", "grpc-status {code}");
    }
}

/// A request against the real route shape is fine too (sanity check for the strategies).
#[test]
fn sanity_valid_body_is_created() {
    let app = HttpApi::new(Arc::new(FakeHandler::default())).router();
    let body = crate::harness::submit_body("x", "true", &[]);
    let status = runtime().block_on(async {
        app.clone()
            .oneshot(request("POST", "/api/v1/tasks", Some(&body), None))
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, StatusCode::CREATED);
}
