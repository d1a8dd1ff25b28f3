//! End-to-end: the real `agentd-grpc` binary on 127.0.0.1:0, driven by a gRPC client built from
//! the published `.proto` files.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::{path::Path, time::Duration};

use agentd_kit::testing::AgentProcess;
use solti_api::pb::{
    self, CommandMode, CreateSpec, DeleteTaskRequest, GetTaskStatusRequest, ListTaskRunsRequest,
    ListTasksRequest, StreamTaskLogsRequest, SubmitTaskRequest, SubprocessTask, TaskKind,
    stream_task_logs_response::Kind, task_service_client::TaskServiceClient,
};
use tonic::{Code, Request, metadata::MetadataValue, transport::Channel};

fn start(name: &str, extra: &[&str]) -> AgentProcess {
    let dir = std::env::temp_dir().join(format!("agentd-grpc-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    AgentProcess::start(Path::new(env!("CARGO_BIN_EXE_agentd-grpc")), &dir, extra).unwrap()
}

async fn client(agent: &AgentProcess) -> TaskServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", agent.api_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    TaskServiceClient::new(channel)
}

fn spec(slot: &str, script: &str) -> CreateSpec {
    CreateSpec {
        slot: slot.into(),
        kind: Some(TaskKind {
            kind: Some(pb::task_kind::Kind::Subprocess(SubprocessTask {
                mode: Some(pb::subprocess_task::Mode::Command(CommandMode {
                    command: "sh".into(),
                    args: vec!["-c".into(), script.into()],
                })),
                fail_on_non_zero: true,
                ..Default::default()
            })),
        }),
        timeout_ms: 30_000,
        restart: pb::RestartStrategy::OnFailure as i32,
        admission: pb::AdmissionStrategy::DropIfRunning as i32,
        max_retries: Some(1),
        backoff: Some(pb::BackoffStrategy {
            jitter: pb::JitterStrategy::None as i32,
            first_ms: 10,
            max_ms: 10,
            factor: 1.0,
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_over_a_real_socket() {
    let agent = start("rpcs", &[]);
    let mut c = client(&agent).await;

    // Fails twice (one retry allowed): the stream spans both attempts.
    let id = c
        .submit_task(SubmitTaskRequest {
            spec: Some(spec("flaky", "sleep 0.3; echo out; echo err >&2; exit 3")),
        })
        .await
        .unwrap()
        .into_inner()
        .task_id;
    let mut stream = c
        .stream_task_logs(StreamTaskLogsRequest {
            task_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while let Some(msg) = tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .unwrap()
        .unwrap()
    {
        seen.push(msg.kind.unwrap());
    }
    let finished: Vec<_> = seen
        .iter()
        .filter_map(|k| match k {
            Kind::RunFinished(f) => Some((f.attempt, f.exit_code)),
            _ => None,
        })
        .collect();
    assert_eq!(finished, vec![(1, Some(3)), (2, Some(3))], "{seen:?}");
    let lines: Vec<_> = seen
        .iter()
        .filter_map(|k| match k {
            Kind::Chunk(ch) => Some((ch.attempt, ch.stream, ch.line.to_vec())),
            _ => None,
        })
        .collect();
    assert!(
        lines.contains(&(2, pb::OutputStreamKind::Stdout as i32, b"out".to_vec())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&(2, pb::OutputStreamKind::Stderr as i32, b"err".to_vec())),
        "{lines:?}"
    );

    let task = c
        .get_task_status(GetTaskStatusRequest {
            task_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(
        task.status.as_ref().unwrap().phase,
        pb::TaskStatus::Exhausted as i32,
        "{task:?}"
    );
    let runs = c
        .list_task_runs(ListTaskRunsRequest {
            task_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.exit_code == Some(3)));
    let list = c
        .list_tasks(ListTasksRequest {
            slot: Some("flaky".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.total, 1);

    c.delete_task(DeleteTaskRequest {
        task_id: id.clone(),
    })
    .await
    .unwrap();
    c.delete_task(DeleteTaskRequest {
        task_id: id.clone(),
    })
    .await
    .unwrap();
    let gone = c
        .get_task_status(GetTaskStatusRequest {
            task_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(gone.task.is_none());
    let err = c
        .stream_task_logs(StreamTaskLogsRequest {
            task_id: id,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let bad = c
        .submit_task(SubmitTaskRequest {
            spec: Some(CreateSpec {
                timeout_ms: 0,
                ..spec("x", "true")
            }),
        })
        .await;
    let err = bad.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().to_lowercase().contains("timeout"),
        "{}",
        err.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_is_required_on_every_rpc() {
    let agent = start("auth", &["--token", "s3cret-token"]);
    let mut c = client(&agent).await;
    let err = c.list_tasks(ListTasksRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = c
        .stream_task_logs(StreamTaskLogsRequest {
            task_id: "tsk_x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    let mut req = Request::new(ListTasksRequest::default());
    req.metadata_mut()
        .insert("authorization", MetadataValue::from_static("Bearer wrong"));
    assert_eq!(
        c.list_tasks(req).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    let mut req = Request::new(ListTasksRequest::default());
    req.metadata_mut().insert(
        "authorization",
        MetadataValue::from_static("Bearer s3cret-token"),
    );
    assert_eq!(c.list_tasks(req).await.unwrap().into_inner().total, 0);
}
