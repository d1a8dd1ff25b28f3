//! End-to-end: `grpc.health.v1` and server reflection (v1 and v1alpha) of the real
//! `agentd-grpc`, through clients that know only those standard services.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::{path::Path, time::Duration};

use agentd_kit::testing::AgentProcess;
use futures_util::StreamExt as _;
use tonic::{Code, Request, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

fn start(name: &str, extra: &[&str]) -> AgentProcess {
    let dir =
        std::env::temp_dir().join(format!("agentd-grpc-health-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    AgentProcess::start(Path::new(env!("CARGO_BIN_EXE_agentd-grpc")), &dir, extra).unwrap()
}

async fn channel(agent: &AgentProcess) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{}", agent.api_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

const TOKEN: &str = "s3cret-token-for-tests";

fn check(service: &str) -> Request<HealthCheckRequest> {
    Request::new(HealthCheckRequest {
        service: service.to_owned(),
    })
}

/// `req` with the agent's bearer token.
fn authed<T>(mut req: Request<T>) -> Request<T> {
    req.metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_needs_no_token_and_follows_shutdown() {
    let mut agent = start("check", &["--token", TOKEN]);
    let mut health = HealthClient::new(channel(&agent).await);
    for service in ["", "solti.task.v1.TaskService"] {
        let res = health.check(check(service)).await.unwrap().into_inner();
        assert_eq!(res.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let err = health.check(check("no.Such")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // A watch is a long-lived stream: it needs the token (else an unauthenticated client
    // could hold connection slots), and sees SERVING, then NOT_SERVING when SIGTERM
    // arrives, then its end.
    let err = health.watch(check("")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut watch = health.watch(authed(check(""))).await.unwrap().into_inner();
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    agent.send_sigterm().unwrap();
    let next = tokio::time::timeout(Duration::from_secs(20), watch.next())
        .await
        .expect("status change within 20 s")
        .unwrap()
        .unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    let end = tokio::time::timeout(Duration::from_secs(20), watch.next())
        .await
        .expect("the watch ends");
    assert!(end.as_ref().is_none_or(Result::is_err), "{end:?}");
    assert!(agent.wait_exit(Duration::from_secs(30)).unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1_and_v1alpha_list_and_describe_the_services() {
    let agent = start("reflect", &["--token", TOKEN]);
    let ch = channel(&agent).await;

    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut v1 = ServerReflectionClient::new(ch.clone());
    let reqs = vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "solti.task.v1.TaskService".into(),
            )),
        },
    ];
    let err = v1
        .server_reflection_info(futures_util::stream::iter(reqs.clone()))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::Unauthenticated,
        "reflection needs the token"
    );
    let mut answers = v1
        .server_reflection_info(authed(Request::new(futures_util::stream::iter(reqs))))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        answers.next().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list");
    };
    let mut names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    for want in [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "solti.task.v1.TaskService",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing in {names:?}"
        );
    }
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        answers.next().await.unwrap().unwrap().message_response
    else {
        panic!("not a file descriptor answer");
    };
    let all: Vec<u8> = files.file_descriptor_proto.concat();
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains("CancelTask") && text.contains("solti/task/v1/api.proto"));

    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest as AlphaRequest,
        server_reflection_client::ServerReflectionClient as AlphaClient,
        server_reflection_request::MessageRequest as AlphaMessage,
        server_reflection_response::MessageResponse as AlphaResponse,
    };
    let mut alpha = AlphaClient::new(ch);
    let mut answers = alpha
        .server_reflection_info(authed(Request::new(futures_util::stream::iter([
            AlphaRequest {
                host: String::new(),
                message_request: Some(AlphaMessage::ListServices(String::new())),
            },
        ]))))
        .await
        .unwrap()
        .into_inner();
    let Some(AlphaResponse::ListServicesResponse(list)) =
        answers.next().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list");
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "solti.task.v1.TaskService")
    );
}
