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
    let mut sub = api
        .subscribe_output(&id, solti_core::OutputStart::Live)
        .await
        .unwrap()
        .unwrap();
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
    // A terminal task's live stream ends at once.
    assert_eq!(
        api.subscribe_output(&id, solti_core::OutputStart::Live)
            .await
            .unwrap()
            .unwrap()
            .recv()
            .await,
        None
    );
    assert!(
        api.subscribe_output(
            &solti_model::TaskId::generate(),
            solti_core::OutputStart::Live
        )
        .await
        .unwrap()
        .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_lags_while_the_runner_keeps_going() {
    // The last 8 lines ("line 99N", published one by one: 8 bytes + 16 + 128 each) and
    // RunFinished (128) fit.
    let (api, _) = api_with(
        StateConfig::default().with_output_retention_bytes(8 * (8 + 16 + 128) + 128),
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
    let mut slow = api
        .subscribe_output(&id, solti_core::OutputStart::Live)
        .await
        .unwrap()
        .unwrap();
    api.cancel_task(&blocker).await.unwrap();
    // The runner finishes although nobody reads.
    assert_eq!(done(&api, &id).await.status.phase, TaskPhase::Succeeded);
    let first = slow.recv().await.unwrap();
    let OutputEvent::Lagged { skipped } = first else {
        panic!("expected Lagged, got {first:?}")
    };
    // 1002 events (RunStarted, 1000 lines, RunFinished), 9 retained.
    assert_eq!(skipped, 1002 - 9);
    assert_eq!(slow.offset(), Some(992));
    let mut rest = Vec::new();
    while let Some(event) = slow.recv().await {
        rest.push((slow.offset().unwrap(), event));
    }
    assert_eq!(rest.len(), 9);
    assert_eq!(rest[0].0, 993);
    assert!(
        matches!(rest[8], (1001, OutputEvent::RunFinished { .. })),
        "{:?}",
        rest[8]
    );
}

/// A finished task's output stays readable in full, from any start, until it is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_output_is_retained_until_deleted() {
    use solti_core::{OutputQuery, OutputStart};
    let api = api().await;
    let id = api
        .submit(&spec("r", "spam", &["5"]).build().unwrap())
        .await
        .unwrap();
    done(&api, &id).await;
    let all = |q: OutputQuery| {
        let api = api.clone();
        let id = id.clone();
        async move {
            let mut sub = api.subscribe_output(&id, q).await.unwrap().unwrap();
            let mut got = Vec::new();
            while let Some(event) = sub.recv().await {
                got.push((sub.offset().unwrap(), event));
            }
            got
        }
    };
    let everything = all(OutputStart::All.into()).await;
    assert_eq!(everything.len(), 7, "{everything:?}");
    assert!(matches!(everything[0], (0, OutputEvent::RunStarted { .. })));
    assert!(matches!(
        everything[6],
        (6, OutputEvent::RunFinished { .. })
    ));
    let tail = all(OutputStart::Tail(2).into()).await;
    assert_eq!(tail.iter().map(|(o, _)| *o).collect::<Vec<_>>(), [4, 5, 6]);
    let resumed = all(OutputStart::After(3).into()).await;
    assert_eq!(resumed, everything[4..]);
    assert!(matches!(
        api.subscribe_output(&id, OutputStart::After(7)).await,
        Err(solti_core::CoreError::Invalid(_))
    ));
    assert!(api.output_retained_bytes() > 0);
    api.delete_task(&id).await.unwrap();
    assert!(
        api.subscribe_output(&id, OutputStart::All)
            .await
            .unwrap()
            .is_none()
    );
}

/// Byte accounting: many finished tasks keep at most the global budget, and deleting them
/// gives every byte back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_finished_tasks_stay_within_the_global_budget() {
    // Each task prints 1000 lines of 6-8 bytes, one publish each (~150 KB charged); 200 of
    // them would retain ~30 MB; the budget is 512 KiB.
    let budget = 512 * 1024;
    let (api, _) = api_with(
        StateConfig::default()
            .with_output_retention_bytes(1 << 20)
            .with_output_retention_total_bytes(budget),
        ControllerConfig::default(),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..200 {
        let id = api
            .submit(&spec(&format!("b{i}"), "spam", &["1000"]).build().unwrap())
            .await
            .unwrap();
        done(&api, &id).await;
        assert!(api.output_retained_bytes() <= budget);
        ids.push(id);
    }
    let retained = api.output_retained_bytes();
    // Nearly the whole budget is in use (not "nothing retained").
    assert!(retained > budget - 1024, "{retained}");
    // The newest task is readable in full; the oldest lost everything but is still known.
    let newest = ids.last().unwrap();
    let mut sub = api
        .subscribe_output(newest, solti_core::OutputStart::All)
        .await
        .unwrap()
        .unwrap();
    let first = sub.recv().await.unwrap();
    assert!(matches!(first, OutputEvent::RunStarted { .. }), "{first:?}");
    let mut sub = api
        .subscribe_output(&ids[0], solti_core::OutputStart::After(0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        sub.recv().await,
        Some(OutputEvent::Lagged { skipped: 1001 })
    );
    assert_eq!(sub.recv().await, None);
    drop(sub);
    for id in &ids {
        api.delete_task(id).await.unwrap();
    }
    // What is left are the run markers of the internal sweep task (128 bytes each).
    let left = api.output_retained_bytes();
    assert!(left < 4096, "{left}");
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
        .subscribe_output(&id, solti_core::OutputStart::Live)
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
