//! Strict enums (`api_v1.md`, "The spec"): every enum of `CreateSpec` that has no default is
//! refused when it is `*_UNSPECIFIED`, omitted or unknown, with the same message over HTTP
//! (400 `InvalidRequest`) and gRPC (`INVALID_ARGUMENT`), on submit and on apply.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Value, json};
use solti_api::{GrpcApi, HttpApi, pb};
use tonic::Code;

use crate::{
    grpc::Server,
    harness::{FakeHandler, assert_error, call},
};

/// One strict field: where it sits in the spec (JSON pointer below `spec`), and the message.
struct Field {
    pointer: &'static str,
    message: &'static str,
}

const FIELDS: [Field; 5] = [
    Field {
        pointer: "/restart",
        message: "spec.restart: must be one of RESTART_STRATEGY_NEVER, RESTART_STRATEGY_ON_FAILURE, RESTART_STRATEGY_ALWAYS",
    },
    Field {
        pointer: "/admission",
        message: "spec.admission: must be one of ADMISSION_STRATEGY_DROP_IF_RUNNING, ADMISSION_STRATEGY_REPLACE, ADMISSION_STRATEGY_QUEUE",
    },
    Field {
        pointer: "/backoff/jitter",
        message: "spec.backoff.jitter: must be one of JITTER_STRATEGY_NONE, JITTER_STRATEGY_FULL, JITTER_STRATEGY_EQUAL, JITTER_STRATEGY_DECORRELATED",
    },
    Field {
        pointer: "/kind/subprocess/script/wellKnown",
        message: "spec.kind.subprocess.script.wellKnown: must be one of SCRIPT_RUNTIME_BASH, SCRIPT_RUNTIME_PYTHON, SCRIPT_RUNTIME_NODE",
    },
    Field {
        pointer: "/runnerSelector/matchExpressions/0/operator",
        message: "spec.runnerSelector.matchExpressions[0].operator: must be one of SELECTOR_OPERATOR_IN, SELECTOR_OPERATOR_NOT_IN, SELECTOR_OPERATOR_EXISTS, SELECTOR_OPERATOR_DOES_NOT_EXIST",
    },
];

/// A spec that sets every strict enum to an accepted name.
fn valid_spec() -> Value {
    json!({
        "slot": "strict",
        "kind": { "subprocess": { "script": { "wellKnown": "SCRIPT_RUNTIME_BASH", "body": "ZWNobyBoaQ==" } } },
        "timeoutMs": 1000,
        "restart": "RESTART_STRATEGY_NEVER",
        "admission": "ADMISSION_STRATEGY_DROP_IF_RUNNING",
        "backoff": { "jitter": "JITTER_STRATEGY_FULL", "firstMs": 10, "maxMs": 100, "factor": 2.0 },
        "runnerSelector": { "matchExpressions": [ { "key": "zone", "operator": "SELECTOR_OPERATOR_EXISTS" } ] }
    })
}

/// `valid_spec` with the field at `pointer` replaced by `value`, or removed when `None`.
fn with(pointer: &str, value: Option<Value>) -> Value {
    let mut spec = valid_spec();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = spec.pointer_mut(parent).unwrap().as_object_mut().unwrap();
    match value {
        Some(v) => parent.insert(key.to_owned(), v),
        None => parent.remove(key),
    };
    spec
}

/// The unspecified name of the enum at `pointer`.
fn unspecified(pointer: &str) -> &'static str {
    match pointer {
        "/restart" => "RESTART_STRATEGY_UNSPECIFIED",
        "/admission" => "ADMISSION_STRATEGY_UNSPECIFIED",
        "/backoff/jitter" => "JITTER_STRATEGY_UNSPECIFIED",
        "/kind/subprocess/script/wellKnown" => "SCRIPT_RUNTIME_UNSPECIFIED",
        _ => "SELECTOR_OPERATOR_UNSPECIFIED",
    }
}

/// Each refused value of a field, as JSON: the unspecified name and number, an unknown
/// number, an unknown name, `null`, and the field left out.
fn refused_values(field: &Field) -> Vec<(String, Option<Value>)> {
    vec![
        (
            "unspecified name".into(),
            Some(json!(unspecified(field.pointer))),
        ),
        ("unspecified number".into(), Some(json!(0))),
        ("unknown number".into(), Some(json!(99))),
        ("unknown name".into(), Some(json!("SOMETIMES"))),
        ("null".into(), Some(Value::Null)),
        ("omitted".into(), None),
    ]
}

#[tokio::test]
async fn http_refuses_each_unset_or_unknown_strict_enum_on_submit_and_apply() {
    let fake = Arc::new(FakeHandler::default());
    let app = HttpApi::new(Arc::clone(&fake)).router();

    let body = json!({ "spec": valid_spec() }).to_string();
    let (status, b) = call(&app, "POST", "/api/v1/tasks", Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{b}");

    for field in &FIELDS {
        for (case, value) in refused_values(field) {
            let body = json!({ "spec": with(field.pointer, value) }).to_string();
            for method in ["POST", "PUT"] {
                let (status, b) = call(&app, method, "/api/v1/tasks", Some(&body)).await;
                assert_error(
                    status,
                    &b,
                    StatusCode::BAD_REQUEST,
                    "InvalidRequest",
                    field.message,
                );
                assert_eq!(
                    b["message"], field.message,
                    "{method} {} {case}",
                    field.pointer
                );
            }
        }
    }
}

#[tokio::test]
async fn http_snake_case_keys_get_the_canonical_field_name() {
    let app = HttpApi::new(Arc::new(FakeHandler::default())).router();
    let mut spec = valid_spec();
    let sel = spec
        .as_object_mut()
        .unwrap()
        .remove("runnerSelector")
        .unwrap();
    let exprs = sel["matchExpressions"].clone();
    spec["runner_selector"] = json!({ "match_expressions": exprs });
    spec["runner_selector"]["match_expressions"][0]["operator"] = json!(7);
    let body = json!({ "spec": spec }).to_string();
    let (status, b) = call(&app, "POST", "/api/v1/tasks", Some(&body)).await;
    assert_error(
        status,
        &b,
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        FIELDS[4].message,
    );
}

#[tokio::test]
async fn an_absent_backoff_or_a_custom_runtime_is_not_refused() {
    let fake = Arc::new(FakeHandler::default());
    let app = HttpApi::new(Arc::clone(&fake)).router();
    let no_backoff = with("/backoff", None);
    let custom = with(
        "/kind/subprocess/script",
        Some(json!({ "custom": { "command": "/bin/sh", "flag": "-c" }, "body": "ZWNobyBoaQ==" })),
    );
    for spec in [no_backoff, custom] {
        let body = json!({ "spec": spec }).to_string();
        let (status, b) = call(&app, "POST", "/api/v1/tasks", Some(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{b}");
    }
}

#[tokio::test]
async fn grpc_refuses_each_unset_or_unknown_strict_enum_on_submit_and_apply() {
    let server = Server::start(GrpcApi::new(Arc::new(FakeHandler::default()))).await;
    let mut client = server.client().await;

    let valid: pb::CreateSpec = serde_json::from_value(valid_spec()).unwrap();
    client
        .submit_task(pb::SubmitTaskRequest {
            spec: Some(valid.clone()),
        })
        .await
        .unwrap();

    for field in &FIELDS {
        // Over gRPC an omitted enum and UNSPECIFIED are the same bytes (0); a script with no
        // runtime at all is its own case.
        let mut cases: Vec<(&str, pb::CreateSpec)> = Vec::new();
        for (case, n) in [("unspecified", 0), ("unknown number", 99), ("negative", -1)] {
            let mut spec = valid.clone();
            set_enum(&mut spec, field.pointer, n);
            cases.push((case, spec));
        }
        if field.pointer == "/kind/subprocess/script/wellKnown" {
            cases.push((
                "no runtime",
                serde_json::from_value(with(field.pointer, None)).unwrap(),
            ));
        }
        for (case, spec) in cases {
            let err = client
                .submit_task(pb::SubmitTaskRequest {
                    spec: Some(spec.clone()),
                })
                .await
                .unwrap_err();
            assert_eq!(
                (err.code(), err.message()),
                (Code::InvalidArgument, field.message),
                "submit {} {case}",
                field.pointer
            );
            let err = client
                .apply_task(pb::ApplyTaskRequest { spec: Some(spec) })
                .await
                .unwrap_err();
            assert_eq!(
                (err.code(), err.message()),
                (Code::InvalidArgument, field.message),
                "apply {} {case}",
                field.pointer
            );
        }
    }
    server.stop().await;
}

/// Sets the raw enum number of the field at `pointer`.
fn set_enum(spec: &mut pb::CreateSpec, pointer: &str, n: i32) {
    use pb::{script_mode::Runtime, subprocess_task::Mode, task_kind::Kind};
    match pointer {
        "/restart" => spec.restart = n,
        "/admission" => spec.admission = n,
        "/backoff/jitter" => spec.backoff.as_mut().unwrap().jitter = n,
        "/kind/subprocess/script/wellKnown" => {
            let Some(Kind::Subprocess(sub)) = spec.kind.as_mut().unwrap().kind.as_mut() else {
                unreachable!()
            };
            let Some(Mode::Script(script)) = sub.mode.as_mut() else {
                unreachable!()
            };
            script.runtime = Some(Runtime::WellKnown(n));
        }
        _ => {
            spec.runner_selector.as_mut().unwrap().match_expressions[0].operator = n;
        }
    }
}
