//! End-to-end: `agentd-grpc --listen unix:/path` served to a tonic client over the socket.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::{os::unix::fs::PermissionsExt as _, path::Path};

use agentd_kit::testing::AgentProcess;
use hyper_util::rt::TokioIo;
use solti_api::pb::{
    self, CommandMode, CreateSpec, ListTasksRequest, SubmitTaskRequest, SubprocessTask, TaskKind,
    task_service_client::TaskServiceClient,
};
use tonic::transport::Endpoint;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_a_unix_socket() {
    let dir = std::env::temp_dir().join(format!("agentd-grpc-unix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("agent.sock");
    let listen = format!("unix:{}", sock.display());
    let mut agent = AgentProcess::start_args(
        Path::new(env!("CARGO_BIN_EXE_agentd-grpc")),
        &dir.join("state"),
        &["--listen", &listen, "--metrics-listen", "off"],
    )
    .unwrap();
    assert_eq!(agent.ready["api"], listen);
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let path = sock.clone();
    // The URI only sets `:authority` (localhost passes the loopback Host check).
    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .unwrap();
    let mut client = TaskServiceClient::new(channel);
    let spec = CreateSpec {
        slot: "unix".into(),
        kind: Some(TaskKind {
            kind: Some(pb::task_kind::Kind::Subprocess(SubprocessTask {
                mode: Some(pb::subprocess_task::Mode::Command(CommandMode {
                    command: "true".into(),
                    args: vec![],
                })),
                ..Default::default()
            })),
        }),
        timeout_ms: 10_000,
        restart: pb::RestartStrategy::Never as i32,
        admission: pb::AdmissionStrategy::DropIfRunning as i32,
        ..Default::default()
    };
    let id = client
        .submit_task(SubmitTaskRequest { spec: Some(spec) })
        .await
        .unwrap()
        .into_inner()
        .task_id;
    assert!(id.starts_with("tsk_"), "{id}");
    let list = client
        .list_tasks(ListTasksRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.total, 1);
    let status = agent.terminate(std::time::Duration::from_secs(30)).unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!sock.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
