//! The live output hub.

use std::time::Duration;

use solti_core::StateConfig;
use solti_model::{AdmissionPolicy, OutputEvent, OutputStream, RestartPolicy, TaskPhase};
use taskvisor::ControllerConfig;

use crate::support::{api, api_with, done, running, spec};

/// Subscribes to a task queued behind a blocker, then releases the blocker, so the
/// subscription sees the task's whole life.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markers_and_lines_across_attempts_then_end() {
    let api = api().await;
    let blocker = api
        .submit(&spec("o", "hang", &[]).build().unwrap())
        .await
        .unwrap();
    running(&api, &blocker).await;
    let s = spec("o", "flaky", &["1", "a", "b"])
        .restart(RestartPolicy::OnFailure)
        .admission(AdmissionPolicy::Queue)
        .build()
        .unwrap();
    let id = api.submit(&s).await.unwrap();
    let mut sub = api.subscribe_output(&id).await.unwrap().unwrap();
    api.cancel_task(&blocker).await.unwrap();

    let mut events = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), sub.recv())
        .await
        .unwrap()
    {
        events.push(event);
    }
    let summary: Vec<String> = events
        .iter()
        .map(|e| match e {
            OutputEvent::RunStarted { attempt, .. } => format!("start {attempt}"),
            OutputEvent::Chunk {
                attempt,
                stream: OutputStream::Stdout,
                seq,
                line,
                ..
            } => {
                format!("{attempt}:{seq}:{}", String::from_utf8_lossy(line))
            }
            OutputEvent::RunFinished {
                attempt, exit_code, ..
            } => format!("end {attempt} {exit_code:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "start 1",
            "1:0:a",
            "1:1:b",
            "end 1 Some(1)",
            "start 2",
            "2:0:a",
            "2:1:b",
            "end 2 None"
        ],
    );
    assert_eq!(
        api.get_task(&id).await.unwrap().unwrap().status.phase,
        TaskPhase::Succeeded
    );
    // A terminal task's stream ends at once.
    assert_eq!(
        api.subscribe_output(&id)
            .await
            .unwrap()
            .unwrap()
            .recv()
            .await,
        None
    );
    assert!(
        api.subscribe_output(&solti_model::TaskId::generate())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_lags_while_the_runner_keeps_going() {
    let (api, _) = api_with(
        StateConfig::default().with_output_capacity(8),
        ControllerConfig::default(),
    )
    .await;
    let blocker = api
        .submit(&spec("o", "hang", &[]).build().unwrap())
        .await
        .unwrap();
    running(&api, &blocker).await;
    let s = spec("o", "spam", &["1000"])
        .admission(AdmissionPolicy::Queue)
        .build()
        .unwrap();
    let id = api.submit(&s).await.unwrap();
    let mut slow = api.subscribe_output(&id).await.unwrap().unwrap();
    api.cancel_task(&blocker).await.unwrap();
    // The runner finishes although nobody reads.
    assert_eq!(done(&api, &id).await.status.phase, TaskPhase::Succeeded);
    let first = slow.recv().await.unwrap();
    let OutputEvent::Lagged { skipped } = first else {
        panic!("expected Lagged, got {first:?}")
    };
    // 1002 events (RunStarted, 1000 lines, RunFinished), 8 buffered.
    assert_eq!(skipped, 1002 - 8);
    let mut rest = 0;
    while let Some(event) = slow.recv().await {
        rest += 1;
        if rest == 8 {
            assert!(
                matches!(event, OutputEvent::RunFinished { .. }),
                "{event:?}"
            );
        }
    }
    assert_eq!(rest, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_adapter_ends_with_the_task() {
    use futures_util::StreamExt as _;
    let api = api().await;
    let blocker = api
        .submit(&spec("o", "hang", &[]).build().unwrap())
        .await
        .unwrap();
    running(&api, &blocker).await;
    let s = spec("o", "ok", &["x"])
        .admission(AdmissionPolicy::Queue)
        .build()
        .unwrap();
    let id = api.submit(&s).await.unwrap();
    let stream = api
        .subscribe_output(&id)
        .await
        .unwrap()
        .unwrap()
        .into_stream();
    api.cancel_task(&blocker).await.unwrap();
    let events: Vec<OutputEvent> = tokio::time::timeout(Duration::from_secs(10), stream.collect())
        .await
        .unwrap();
    assert_eq!(events.len(), 3);
}
