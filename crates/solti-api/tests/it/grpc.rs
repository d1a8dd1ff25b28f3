//! gRPC over 127.0.0.1:0 with the client generated from our proto.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use solti_api::{ApiHandler, GrpcApi, Transport, pb, serve_grpc};
use solti_model::Token;
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::{Code, Request, transport::Channel};

use crate::harness::{FakeHandler, RecordingObserver, adapter, eventually, wait_terminal};

type Client = pb::task_service_client::TaskServiceClient<Channel>;

/// A running gRPC server; stops when dropped.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    pub(crate) async fn start<H: ApiHandler>(api: GrpcApi<H>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_grpc(listener, api.into_routes(), async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub(crate) async fn client(&self) -> Client {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Client::new(channel)
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn echo_spec(slot: &str) -> pb::CreateSpec {
    pb::CreateSpec {
        slot: slot.into(),
        kind: Some(pb::TaskKind {
            kind: Some(pb::task_kind::Kind::Subprocess(pb::SubprocessTask {
                mode: Some(pb::subprocess_task::Mode::Command(pb::CommandMode {
                    command: "echo".into(),
                    args: vec!["hi".into()],
                })),
                fail_on_non_zero: true,
                ..Default::default()
            })),
        }),
        timeout_ms: 10_000,
        restart: pb::RestartStrategy::Never.into(),
        admission: pb::AdmissionStrategy::DropIfRunning.into(),
        ..Default::default()
    }
}

fn with_token<T>(msg: T, token: Option<&str>) -> Request<T> {
    let mut req = Request::new(msg);
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    req
}

#[tokio::test]
async fn every_rpc_against_a_real_supervisor() {
    let (sup, handler) = adapter().await;
    let obs = Arc::new(RecordingObserver::default());
    let server = Server::start(GrpcApi::new(handler).with_observer(obs.clone())).await;
    let mut client = server.client().await;

    let id = client
        .submit_task(pb::SubmitTaskRequest {
            spec: Some(echo_spec("g1")),
        })
        .await
        .unwrap()
        .into_inner()
        .task_id;
    assert!(id.starts_with("tsk_"));
    wait_terminal(&sup, &id).await;

    let task = client
        .get_task_status(pb::GetTaskStatusRequest {
            task_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(task.metadata.as_ref().unwrap().id, id);
    let status = task.status.unwrap();
    assert_eq!(
        (status.phase, status.attempt, status.exit_code),
        (pb::TaskStatus::Succeeded as i32, 1, Some(0))
    );
    assert_eq!(task.spec.unwrap().slot, "g1");

    let list = client
        .list_tasks(pb::ListTasksRequest {
            slot: Some("g1".into()),
            status: Some(pb::TaskStatus::Succeeded as i32),
            limit: 0,
            offset: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((list.total, list.tasks.len()), (1, 1));

    let runs = client
        .list_task_runs(pb::ListTaskRunsRequest {
            task_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].attempt, runs[0].status, runs[0].exit_code),
        (1, pb::TaskStatus::Succeeded as i32, Some(0))
    );

    let applied = client
        .apply_task(pb::ApplyTaskRequest {
            spec: Some(echo_spec("g1")),
        })
        .await
        .unwrap()
        .into_inner()
        .task_id;
    assert_ne!(applied, id);
    wait_terminal(&sup, &applied).await;
    let spec = client
        .get_task_status(pb::GetTaskStatusRequest {
            task_id: applied.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        spec.task.unwrap().spec.unwrap().admission,
        pb::AdmissionStrategy::Replace as i32
    );

    client
        .delete_task(pb::DeleteTaskRequest {
            task_id: id.clone(),
        })
        .await
        .unwrap();
    client
        .delete_task(pb::DeleteTaskRequest {
            task_id: id.clone(),
        })
        .await
        .unwrap();

    // Unknown ids follow the proto.
    let gone = client
        .get_task_status(pb::GetTaskStatusRequest {
            task_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(gone.task.is_none());
    let runs = client
        .list_task_runs(pb::ListTaskRunsRequest {
            task_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(runs.runs.is_empty());
    let err = client
        .stream_task_logs(pb::StreamTaskLogsRequest {
            task_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    // Validation.
    let mut bad = echo_spec("g2");
    bad.timeout_ms = 0;
    let err = client
        .submit_task(pb::SubmitTaskRequest { spec: Some(bad) })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (
            Code::InvalidArgument,
            "spec.timeoutMs: must be 1..=31536000000 ms, got 0"
        )
    );
    let err = client
        .submit_task(pb::SubmitTaskRequest { spec: None })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "spec: required")
    );
    let err = client
        .list_tasks(pb::ListTasksRequest {
            limit: 1001,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (
            Code::InvalidArgument,
            "limit: must be at most 1000, got 1001"
        )
    );
    let err = client
        .get_task_status(pb::GetTaskStatusRequest {
            task_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "taskId: required")
    );
    let mut wasm = echo_spec("g3");
    wasm.kind = Some(pb::TaskKind {
        kind: Some(pb::task_kind::Kind::Wasm(pb::WasmTask {
            module: "m".into(),
            ..Default::default()
        })),
    });
    let err = client
        .submit_task(pb::SubmitTaskRequest { spec: Some(wasm) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("spec.kind: no runner"),
        "{}",
        err.message()
    );

    let finished = obs.finished.lock().unwrap().clone();
    assert!(finished.contains(&(
        Transport::Grpc,
        "SubmitTask".into(),
        "/solti.task.v1.TaskService/SubmitTask",
        "0".into()
    )));
    assert!(finished.contains(&(
        Transport::Grpc,
        "StreamTaskLogs".into(),
        "/solti.task.v1.TaskService/StreamTaskLogs",
        "5".into()
    )));
    server.stop().await;
}

#[tokio::test]
async fn auth_on_every_rpc() {
    let fake = Arc::new(FakeHandler::default());
    fake.end_stream.store(true, Ordering::SeqCst);
    let server = Server::start(GrpcApi::new(fake).with_auth(Token::new("s3cret").unwrap())).await;
    let mut c = server.client().await;
    for token in [None, Some("nope")] {
        let codes = [
            c.submit_task(with_token(
                pb::SubmitTaskRequest {
                    spec: Some(echo_spec("a")),
                },
                token,
            ))
            .await
            .map(|_| ())
            .unwrap_err(),
            c.apply_task(with_token(
                pb::ApplyTaskRequest {
                    spec: Some(echo_spec("a")),
                },
                token,
            ))
            .await
            .map(|_| ())
            .unwrap_err(),
            c.get_task_status(with_token(
                pb::GetTaskStatusRequest {
                    task_id: "tsk_1".into(),
                },
                token,
            ))
            .await
            .map(|_| ())
            .unwrap_err(),
            c.list_tasks(with_token(pb::ListTasksRequest::default(), token))
                .await
                .map(|_| ())
                .unwrap_err(),
            c.list_task_runs(with_token(
                pb::ListTaskRunsRequest {
                    task_id: "tsk_1".into(),
                },
                token,
            ))
            .await
            .map(|_| ())
            .unwrap_err(),
            c.delete_task(with_token(
                pb::DeleteTaskRequest {
                    task_id: "tsk_1".into(),
                },
                token,
            ))
            .await
            .map(|_| ())
            .unwrap_err(),
            c.stream_task_logs(with_token(
                pb::StreamTaskLogsRequest {
                    task_id: "tsk_1".into(),
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(|_| ())
            .unwrap_err(),
        ];
        for status in codes {
            assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
            assert_eq!(status.message(), "missing or invalid bearer token");
        }
    }
    let ok = Some("s3cret");
    c.submit_task(with_token(
        pb::SubmitTaskRequest {
            spec: Some(echo_spec("a")),
        },
        ok,
    ))
    .await
    .unwrap();
    c.list_tasks(with_token(pb::ListTasksRequest::default(), ok))
        .await
        .unwrap();
    let mut stream = c
        .stream_task_logs(with_token(
            pb::StreamTaskLogsRequest {
                task_id: "tsk_1".into(),
                ..Default::default()
            },
            ok,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_none());
    server.stop().await;
}

#[tokio::test]
async fn messages_over_4_mib_are_resource_exhausted() {
    let fake = Arc::new(FakeHandler::default());
    let server = Server::start(GrpcApi::new(Arc::clone(&fake))).await;
    let mut c = server.client().await;
    let mut spec = echo_spec("big");
    spec.labels
        .insert("blob".into(), "x".repeat(4 * 1024 * 1024 + 10));
    let err = c
        .submit_task(pb::SubmitTaskRequest { spec: Some(spec) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message()
            .starts_with("message must be at most 4194304 bytes"),
        "{}",
        err.message()
    );
    assert!(fake.specs.lock().unwrap().is_empty());
    // The connection is still usable.
    c.submit_task(pb::SubmitTaskRequest {
        spec: Some(echo_spec("small")),
    })
    .await
    .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn stream_spans_retries_with_run_markers() {
    use pb::stream_task_logs_response::Kind;
    let (_sup, handler) = adapter().await;
    let server = Server::start(GrpcApi::new(handler)).await;
    let mut c = server.client().await;
    let dir = tempfile::tempdir().unwrap();
    let json = serde_json::json!({ "spec": crate::sse::two_attempt_spec(dir.path()) }).to_string();
    let req: pb::SubmitTaskRequest = serde_json::from_str(&json).unwrap();
    let id = c.submit_task(req).await.unwrap().into_inner().task_id;
    let marker = dir.path().join("second");
    assert!(eventually(|| marker.exists()).await);
    let mut stream = c
        .stream_task_logs(pb::StreamTaskLogsRequest {
            task_id: id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    std::fs::write(dir.path().join("go"), b"").unwrap();
    let mut seen = Vec::new();
    while let Some(msg) = tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .unwrap()
        .unwrap()
    {
        seen.push(match msg.kind.unwrap() {
            Kind::Chunk(c) => format!(
                "chunk {} {} {} {}",
                c.attempt,
                c.stream,
                c.seq,
                String::from_utf8_lossy(&c.line)
            ),
            Kind::RunStarted(s) => format!("started {}", s.attempt),
            Kind::RunFinished(f) => {
                format!("finished {} {:?}", f.attempt, f.exit_code)
            }
            Kind::Lagged(l) => format!("lagged {}", l.skipped),
        });
    }
    // A subscriber that joins a running attempt may be told of that attempt's start first.
    if seen.first().is_some_and(|s| s == "started 1") {
        seen.remove(0);
    }
    assert_eq!(
        seen,
        [
            "chunk 1 1 0 one",
            "chunk 1 1 1 two",
            "finished 1 Some(1)",
            "started 2",
            "chunk 2 1 0 one",
            "chunk 2 1 1 two",
            "finished 2 Some(0)"
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_cancelled_stream_frees_its_subscription() {
    let fake = Arc::new(FakeHandler::default());
    let server = Server::start(GrpcApi::new(Arc::clone(&fake))).await;
    let mut c = server.client().await;
    let stream = c
        .stream_task_logs(pb::StreamTaskLogsRequest {
            task_id: "tsk_1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!fake.dropped.load(Ordering::SeqCst));
    drop(stream);
    assert!(eventually(|| fake.dropped.load(Ordering::SeqCst)).await);
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_list_page_is_refused_with_advice() {
    use base64::Engine as _;
    use solti_model::{
        Flag, ObjectMeta, Runtime, SubprocessMode, SubprocessSpec, Task, TaskEnv, TaskId, TaskKind,
        TaskPhase, TaskSpec, TaskStatus,
    };
    let body = base64::engine::general_purpose::STANDARD.encode(vec![b'#'; 2 * 1024 * 1024]);
    let kind = TaskKind::Subprocess(SubprocessSpec {
        mode: SubprocessMode::Script {
            runtime: Runtime::Bash,
            body,
            args: vec![],
        },
        env: TaskEnv::new(),
        cwd: None,
        fail_on_non_zero: Flag::enabled(),
    });
    let spec = TaskSpec::builder("big", kind, 1000u64).build().unwrap();
    let task = |n: u32| {
        Task::new(
            ObjectMeta::new(TaskId::try_new(format!("tsk_{n}")).unwrap(), 1),
            spec.clone(),
            TaskStatus::new(TaskPhase::Succeeded),
        )
    };
    let fake = Arc::new(FakeHandler::default());
    *fake.tasks.lock().unwrap() = vec![task(1), task(2)];
    let server = Server::start(GrpcApi::new(fake)).await;
    let mut c = server.client().await;
    let err = c
        .list_tasks(pb::ListTasksRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("request a smaller page"),
        "{}",
        err.message()
    );
    server.stop().await;
}
