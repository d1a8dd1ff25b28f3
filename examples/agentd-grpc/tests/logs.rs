//! End-to-end output history (wire contract §5) against the real `agentd-grpc` binary:
//! `tail_all` + `no_follow` of a finished task, resume with `after_offset`, a reader that
//! stops reading, and bad requests.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::{path::Path, time::Duration};

use agentd_kit::testing::AgentProcess;
use solti_api::pb::{
    self, CommandMode, CreateSpec, GetTaskStatusRequest, StreamTaskLogsRequest,
    StreamTaskLogsResponse, SubmitTaskRequest, SubprocessTask, TaskKind,
    stream_task_logs_response::Kind, task_service_client::TaskServiceClient,
};
use tonic::{Code, Streaming, transport::Channel};

fn start(name: &str) -> AgentProcess {
    let dir = std::env::temp_dir().join(format!("agentd-grpc-logs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    AgentProcess::start(Path::new(env!("CARGO_BIN_EXE_agentd-grpc")), &dir, &[]).unwrap()
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
                ..Default::default()
            })),
        }),
        timeout_ms: 120_000,
        restart: pb::RestartStrategy::Never as i32,
        admission: pb::AdmissionStrategy::Replace as i32,
        backoff: Some(pb::BackoffStrategy {
            jitter: pb::JitterStrategy::None as i32,
            first_ms: 10,
            max_ms: 10,
            factor: 1.0,
        }),
        ..Default::default()
    }
}

async fn submit(c: &mut TaskServiceClient<Channel>, slot: &str, script: &str) -> String {
    c.submit_task(SubmitTaskRequest {
        spec: Some(spec(slot, script)),
    })
    .await
    .unwrap()
    .into_inner()
    .task_id
}

/// Polls until the task is terminal (bounded) and returns its phase.
async fn wait_terminal(c: &mut TaskServiceClient<Channel>, id: &str) -> i32 {
    let poll = async {
        loop {
            let task = c
                .get_task_status(GetTaskStatusRequest {
                    task_id: id.to_owned(),
                })
                .await
                .unwrap()
                .into_inner()
                .task
                .unwrap();
            let phase = task.status.unwrap().phase;
            if phase != pb::TaskStatus::Pending as i32 && phase != pb::TaskStatus::Running as i32 {
                return phase;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), poll)
        .await
        .expect("the task ends")
}

async fn collect(mut stream: Streaming<StreamTaskLogsResponse>) -> Vec<StreamTaskLogsResponse> {
    let mut out = Vec::new();
    let read = async {
        while let Some(msg) = stream.message().await.unwrap() {
            out.push(msg);
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("the stream ends");
    out
}

fn name(msg: &StreamTaskLogsResponse) -> &'static str {
    match msg.kind.as_ref().unwrap() {
        Kind::RunStarted(_) => "run-started",
        Kind::Chunk(_) => "chunk",
        Kind::RunFinished(_) => "run-finished",
        Kind::Lagged(_) => "lagged",
    }
}

fn line(msg: &StreamTaskLogsResponse) -> Option<String> {
    match msg.kind.as_ref()? {
        Kind::Chunk(c) => Some(String::from_utf8(c.line.to_vec()).unwrap()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_task_is_readable_with_tail_all_and_resumable() {
    let agent = start("hello");
    let mut c = client(&agent).await;
    let id = submit(&mut c, "hello", "echo hello; echo world").await;
    assert_eq!(
        wait_terminal(&mut c, &id).await,
        pb::TaskStatus::Succeeded as i32
    );
    let all = collect(
        c.stream_task_logs(StreamTaskLogsRequest {
            task_id: id.clone(),
            tail_all: true,
            no_follow: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner(),
    )
    .await;
    let names: Vec<_> = all.iter().map(name).collect();
    assert_eq!(names, ["run-started", "chunk", "chunk", "run-finished"]);
    assert_eq!(line(&all[1]).as_deref(), Some("hello"));
    let offsets: Vec<_> = all.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, [0, 1, 2, 3]);

    // Resume after offset 1: the rest, exactly once.
    let rest = collect(
        c.stream_task_logs(StreamTaskLogsRequest {
            task_id: id.clone(),
            after_offset: Some(1),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner(),
    )
    .await;
    assert_eq!(rest, all[2..]);
    // The last line only.
    let tail = collect(
        c.stream_task_logs(StreamTaskLogsRequest {
            task_id: id.clone(),
            tail: Some(1),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner(),
    )
    .await;
    assert_eq!(tail, all[2..]);

    // An offset from the future, and conflicting starts, are refused by name.
    let err = c
        .stream_task_logs(StreamTaskLogsRequest {
            task_id: id.clone(),
            after_offset: Some(4),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("afterOffset: "),
        "{}",
        err.message()
    );
    let err = c
        .stream_task_logs(StreamTaskLogsRequest {
            task_id: id.clone(),
            tail: Some(1),
            since_ms: Some(0),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("sinceMs: "), "{}", err.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_does_not_hold_the_task_and_learns_the_exact_loss() {
    const LINES: u64 = 1_000_000;
    let agent = start("stalled");
    let mut c = client(&agent).await;
    let dir = std::env::temp_dir().join(format!("agentd-grpc-logs-go-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let go = dir.join("go");
    let script = format!(
        "while [ ! -f {go} ]; do sleep 0.01; done; exec seq 1 {LINES}",
        go = go.display()
    );
    let id = submit(&mut c, "stalled", &script).await;
    // Its own connection, so the stalled stream's flow control does not touch the polls.
    let mut reader = client(&agent).await;
    let mut stream = reader
        .stream_task_logs(StreamTaskLogsRequest {
            task_id: id.clone(),
            tail_all: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(name(&first), "run-started");

    // The task prints a million lines while the stream is not read, and ends.
    std::fs::write(&go, b"").unwrap();
    assert_eq!(
        wait_terminal(&mut c, &id).await,
        pb::TaskStatus::Succeeded as i32
    );

    let mut all = vec![first];
    all.extend(collect(stream).await);
    let mut next = 0u64;
    let mut lagged = Vec::new();
    for msg in &all {
        if let Some(Kind::Lagged(l)) = &msg.kind {
            assert_eq!(msg.offset, next + l.skipped - 1);
            lagged.push(l.skipped);
            next += l.skipped;
        } else {
            assert_eq!(msg.offset, next, "no gap and no duplicate");
            next += 1;
        }
    }
    assert_eq!(next, LINES + 2, "every event received or counted as missed");
    assert_eq!(lagged.len(), 1, "{lagged:?}");
    assert_eq!(name(all.last().unwrap()), "run-finished");
    let last_line = all.iter().rev().find_map(line).unwrap();
    assert_eq!(last_line, LINES.to_string());
    let _ = std::fs::remove_dir_all(&dir);
}
