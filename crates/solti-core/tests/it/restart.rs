//! Restart policies, retry limits, timeouts and backoff delays.

use std::time::Duration;

use solti_core::StateConfig;
use solti_model::{BackoffPolicy, JitterPolicy, RestartPolicy, TaskPhase};
use taskvisor::ControllerConfig;

use crate::support::{api, api_with, done, run_phases, running, spec};

#[tokio::test(start_paused = true)]
async fn max_retries_two_gives_three_failed_runs_then_exhausted() {
    let api = api().await;
    let s = spec("r", "fail", &[])
        .restart(RestartPolicy::OnFailure)
        .max_retries(Some(2))
        .build()
        .unwrap();
    let id = api.submit(&s).await.unwrap();
    let task = done(&api, &id).await;
    assert_eq!(task.status.phase, TaskPhase::Exhausted);
    assert_eq!(task.status.exit_code, Some(1));
    assert_eq!(run_phases(&api, &id).await, vec![TaskPhase::Failed; 3]);
}

#[tokio::test(start_paused = true)]
async fn never_stops_after_one_failure() {
    let api = api().await;
    let id = api
        .submit(&spec("r", "fail", &[]).build().unwrap())
        .await
        .unwrap();
    assert_eq!(done(&api, &id).await.status.phase, TaskPhase::Failed);
    assert_eq!(run_phases(&api, &id).await, vec![TaskPhase::Failed]);
}

#[tokio::test(start_paused = true)]
async fn on_failure_recovers() {
    let api = api().await;
    let s = spec("r", "flaky", &["2"])
        .restart(RestartPolicy::OnFailure)
        .build()
        .unwrap();
    let id = api.submit(&s).await.unwrap();
    let task = done(&api, &id).await;
    assert_eq!(task.status.phase, TaskPhase::Succeeded);
    assert_eq!(task.status.attempt, 3);
    assert_eq!(
        run_phases(&api, &id).await,
        vec![TaskPhase::Failed, TaskPhase::Failed, TaskPhase::Succeeded]
    );
}

#[tokio::test(start_paused = true)]
async fn always_restarts_after_success_until_canceled() {
    let api = api().await;
    let s = spec("r", "ok", &[])
        .restart(RestartPolicy::Always {
            interval_ms: Some(100),
        })
        .build()
        .unwrap();
    let id = api.submit(&s).await.unwrap();
    running(&api, &id).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(api.cancel_task(&id).await.unwrap());
    let task = done(&api, &id).await;
    assert_eq!(task.status.phase, TaskPhase::Canceled);
    let phases = run_phases(&api, &id).await;
    assert!(phases.len() >= 3, "{phases:?}");
    assert!(
        phases.iter().all(|p| *p == TaskPhase::Succeeded),
        "{phases:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn timeout_records_a_timeout_run_and_phase() {
    let api = api().await;
    let kind_spec = |restart| {
        solti_model::TaskSpec::builder(
            "t",
            solti_model::TaskKind::Subprocess(solti_model::SubprocessSpec::command(
                "sleep",
                ["60000"],
            )),
            50u64,
        )
        .backoff(crate::support::fast_backoff())
        .restart(restart)
    };
    let id = api
        .submit(&kind_spec(RestartPolicy::Never).build().unwrap())
        .await
        .unwrap();
    let task = done(&api, &id).await;
    assert_eq!(task.status.phase, TaskPhase::Timeout);
    let runs = api.list_task_runs(&id).await.unwrap().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].phase, TaskPhase::Timeout);
    assert_eq!(runs[0].exit_code, None);

    // A timed-out attempt is retried like a failure.
    let s = kind_spec(RestartPolicy::OnFailure)
        .max_retries(Some(1))
        .build()
        .unwrap();
    let id = api.submit(&s).await.unwrap();
    assert_eq!(done(&api, &id).await.status.phase, TaskPhase::Exhausted);
    assert_eq!(
        run_phases(&api, &id).await,
        vec![TaskPhase::Timeout, TaskPhase::Timeout]
    );
}

/// Gaps between attempt starts of an always-failing task stay within the documented bounds.
async fn check_backoff(jitter: JitterPolicy) {
    let (api, starts) = api_with(StateConfig::default(), ControllerConfig::default()).await;
    let policy = BackoffPolicy::new(jitter, 100, 1_000, 2.0).unwrap();
    let slot = format!("b-{jitter}");
    let s = spec(&slot, "fail", &[])
        .restart(RestartPolicy::OnFailure)
        .max_retries(Some(5))
        .backoff(policy)
        .build()
        .unwrap();
    let id = api.submit(&s).await.unwrap();
    assert_eq!(done(&api, &id).await.status.phase, TaskPhase::Exhausted);
    let starts = starts.lock().unwrap()[&slot].clone();
    assert_eq!(starts.len(), 6);
    for (n, pair) in starts.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        let (lo, hi) = policy.delay_range_ms(u32::try_from(n).unwrap());
        let (lo, hi) = (Duration::from_millis(lo), Duration::from_millis(hi + 1));
        assert!(
            gap >= lo && gap <= hi,
            "{jitter}: retry {n}: gap {gap:?} outside [{lo:?}, {hi:?}]"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn backoff_none_within_bounds() {
    check_backoff(JitterPolicy::None).await;
}

#[tokio::test(start_paused = true)]
async fn backoff_full_within_bounds() {
    check_backoff(JitterPolicy::Full).await;
}

#[tokio::test(start_paused = true)]
async fn backoff_equal_within_bounds() {
    check_backoff(JitterPolicy::Equal).await;
}

#[tokio::test(start_paused = true)]
async fn backoff_decorrelated_within_bounds() {
    check_backoff(JitterPolicy::Decorrelated).await;
}

#[tokio::test(start_paused = true)]
async fn panics_are_failed_runs_and_retried() {
    let api = api().await;
    let s = spec("p", "panic", &[])
        .restart(RestartPolicy::OnFailure)
        .max_retries(Some(1))
        .build()
        .unwrap();
    let id = api.submit(&s).await.unwrap();
    assert_eq!(done(&api, &id).await.status.phase, TaskPhase::Exhausted);
    let runs = api.list_task_runs(&id).await.unwrap().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.phase == TaskPhase::Failed && r.error.as_deref() == Some("attempt panicked")));
}

#[tokio::test(start_paused = true)]
async fn cancel_during_backoff_ends_canceled() {
    let api = api().await;
    let slow = BackoffPolicy::new(JitterPolicy::None, 60_000, 60_000, 1.0).unwrap();
    let s = spec("bo", "fail", &[])
        .restart(RestartPolicy::OnFailure)
        .backoff(slow)
        .build()
        .unwrap();
    let id = api.submit(&s).await.unwrap();
    // Wait for the first failed run; the task then sits in a 60 s backoff.
    while run_phases(&api, &id).await != [TaskPhase::Failed] {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(
        api.get_task(&id).await.unwrap().unwrap().status.phase,
        TaskPhase::Running
    );
    assert!(api.cancel_task(&id).await.unwrap());
    let task = done(&api, &id).await;
    assert_eq!(task.status.phase, TaskPhase::Canceled);
    assert_eq!(task.status.error.as_deref(), Some("canceled"));
    assert_eq!(run_phases(&api, &id).await, vec![TaskPhase::Failed]);
}
