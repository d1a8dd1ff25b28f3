//! Queries, bounds and the sweep.

use std::time::Duration;

use solti_core::{CoreError, StateConfig};
use solti_model::{RestartPolicy, Slot, TaskPhase, TaskQuery};
use taskvisor::ControllerConfig;

use crate::support::{api, api_with, done, run_phases, running, spec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_filters_pages_and_totals() {
    let api = api().await;
    let mut ids = Vec::new();
    for (slot, command) in [
        ("a", "ok"),
        ("b", "ok"),
        ("a", "fail"),
        ("c", "ok"),
        ("a", "ok"),
    ] {
        let id = api
            .submit(&spec(slot, command, &[]).build().unwrap())
            .await
            .unwrap();
        done(&api, &id).await;
        ids.push(id);
    }
    let all = api.query_tasks(&TaskQuery::new()).await.unwrap();
    assert_eq!(all.total, 5);
    assert_eq!(
        all.items
            .iter()
            .map(|t| t.metadata.id.clone())
            .collect::<Vec<_>>(),
        ids,
        "oldest first"
    );
    let a = api
        .query_tasks(&TaskQuery::new().with_slot(Slot::try_new("a").unwrap()))
        .await
        .unwrap();
    assert_eq!(a.total, 3);
    let page = TaskQuery::new()
        .with_slot(Slot::try_new("a").unwrap())
        .with_limit(1)
        .unwrap()
        .with_offset(1);
    let page = api.query_tasks(&page).await.unwrap();
    assert_eq!((page.total, page.items.len()), (3, 1));
    assert_eq!(page.items[0].metadata.id, ids[2]);
    let failed = api
        .query_tasks(&TaskQuery::new().with_phase(TaskPhase::Failed))
        .await
        .unwrap();
    assert_eq!(failed.total, 1);
    let past_end = api
        .query_tasks(&TaskQuery::new().with_offset(10))
        .await
        .unwrap();
    assert_eq!((past_end.total, past_end.items.len()), (5, 0));
    let counts = api.phase_counts();
    assert_eq!(counts[&TaskPhase::Succeeded], 4);
    assert_eq!(counts[&TaskPhase::Failed], 1);
    assert_eq!(counts[&TaskPhase::Running], 0);
}

#[tokio::test(start_paused = true)]
async fn run_history_is_capped_oldest_first() {
    let (api, _) = api_with(
        StateConfig::default().with_max_runs_per_task(3),
        ControllerConfig::default(),
    )
    .await;
    let s = spec("h", "fail", &[])
        .restart(RestartPolicy::OnFailure)
        .max_retries(Some(5))
        .build()
        .unwrap();
    let id = api.submit(&s).await.unwrap();
    assert_eq!(done(&api, &id).await.status.phase, TaskPhase::Exhausted);
    let runs = api.list_task_runs(&id).await.unwrap().unwrap();
    assert_eq!(
        runs.iter().map(|r| r.attempt).collect::<Vec<_>>(),
        vec![4, 5, 6]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_state_evicts_terminal_then_refuses() {
    let (api, _) = api_with(
        StateConfig::default().with_max_tasks(3),
        ControllerConfig::default(),
    )
    .await;
    // The sweep task takes one of the three places.
    let first = api
        .submit(&spec("x", "ok", &[]).build().unwrap())
        .await
        .unwrap();
    done(&api, &first).await;
    let hang1 = api
        .submit(&spec("y", "hang", &[]).build().unwrap())
        .await
        .unwrap();
    let hang2 = api
        .submit(&spec("z", "hang", &[]).build().unwrap())
        .await
        .unwrap();
    assert!(
        api.get_task(&first).await.unwrap().is_none(),
        "terminal task evicted"
    );
    let err = api
        .submit(&spec("w", "ok", &[]).build().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, CoreError::Capacity { limit: 3, .. }),
        "{err:?}"
    );
    running(&api, &hang1).await;
    running(&api, &hang2).await;
    api.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn sweep_removes_old_runs_and_tasks_and_nothing_else() {
    let state = StateConfig::default()
        .with_run_ttl(Duration::from_secs(60))
        .with_task_ttl(Duration::from_secs(60))
        .with_sweep_interval(Duration::from_secs(10));
    let (api, _) = api_with(state, ControllerConfig::default()).await;
    let old = api
        .submit(&spec("old", "ok", &[]).build().unwrap())
        .await
        .unwrap();
    done(&api, &old).await;
    // A long-lived task restarting every 30 s: old runs go, the task stays.
    let s = spec("live", "ok", &[])
        .restart(RestartPolicy::Always {
            interval_ms: Some(30_000),
        })
        .build()
        .unwrap();
    let live = api.submit(&s).await.unwrap();
    running(&api, &live).await;

    tokio::time::sleep(Duration::from_secs(75)).await;
    let young = api
        .submit(&spec("young", "ok", &[]).build().unwrap())
        .await
        .unwrap();
    done(&api, &young).await;
    // old: runs expired at 60 s and were swept by 70 s; the task itself stays until 130 s.
    assert_eq!(api.list_task_runs(&old).await.unwrap().unwrap().len(), 0);
    assert!(api.get_task(&old).await.unwrap().is_some());

    tokio::time::sleep(Duration::from_secs(70)).await;
    assert!(
        api.get_task(&old).await.unwrap().is_none(),
        "old task swept"
    );
    assert_eq!(
        run_phases(&api, &young).await.len(),
        0,
        "young runs expired"
    );
    assert!(
        api.get_task(&young).await.unwrap().is_some(),
        "young task still kept"
    );
    let live_task = api.get_task(&live).await.unwrap().unwrap();
    assert_eq!(
        live_task.status.phase,
        TaskPhase::Running,
        "active tasks are never swept"
    );
    let live_runs = api.list_task_runs(&live).await.unwrap().unwrap();
    assert!(
        !live_runs.is_empty() && live_runs.len() <= 3,
        "{live_runs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_submissions_all_finish_with_history() {
    let api = api().await;
    let mut handles = Vec::new();
    for n in 0..1000 {
        let api = api.clone();
        handles.push(tokio::spawn(async move {
            let command = if n % 3 == 0 { "fail" } else { "ok" };
            api.submit(&spec(&format!("load-{n}"), command, &["x"]).build().unwrap())
                .await
                .unwrap()
        }));
    }
    let mut ids = Vec::new();
    for h in handles {
        ids.push(h.await.unwrap());
    }
    for id in &ids {
        let task = done(&api, id).await;
        let runs = api.list_task_runs(id).await.unwrap().unwrap();
        assert_eq!(runs.len(), 1, "{task:?}");
        assert!(runs[0].finished_at.is_some());
        assert_eq!(runs[0].phase, task.status.phase);
    }
    let counts = api.phase_counts();
    assert_eq!(
        counts[&TaskPhase::Succeeded] + counts[&TaskPhase::Failed],
        1000
    );
    assert_eq!(counts[&TaskPhase::Failed], 334);
}
