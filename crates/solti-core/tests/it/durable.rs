//! Recovery from a durable store: terminal tasks come back with their history, unfinished
//! ones are started again or failed by their restart policy.

use std::{sync::Arc, time::Duration};

use solti_core::{DiskStore, StateConfig, StateStore, SupervisorApi, store::RunEnd};
use solti_model::{
    AdmissionPolicy, ObjectMeta, RestartPolicy, Task, TaskId, TaskPhase, TaskQuery, TaskStatus,
};
use solti_runner::{RunnerRouter, now_ms};
use taskvisor::{ControllerConfig, SupervisorConfig};

use crate::support::{FakeRunner, running, spec};

const REASON: &str = "agent restarted during the run";

fn stored(spec: solti_model::TaskSpec) -> Task {
    Task::new(
        ObjectMeta::new(TaskId::generate(), now_ms()),
        spec,
        TaskStatus::new(TaskPhase::Pending),
    )
}

async fn api_on(store: Arc<dyn StateStore>) -> SupervisorApi {
    let mut router = RunnerRouter::new();
    router.register(FakeRunner::default()).unwrap();
    let sup = SupervisorConfig::default().with_grace(Duration::from_secs(2));
    SupervisorApi::with_store(
        sup,
        ControllerConfig::default(),
        vec![],
        router,
        StateConfig::default(),
        store,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_restores_history_restarts_always_and_fails_never() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    // What a killed agent leaves behind: one finished task, two running, one queued.
    let done = stored(spec("done", "ok", &[]).build().unwrap());
    let never = stored(spec("never", "hang", &[]).build().unwrap());
    let always = stored(
        spec("always", "hang", &[])
            .restart(RestartPolicy::Always { interval_ms: None })
            .build()
            .unwrap(),
    );
    let queued = stored(
        spec("always", "ok", &[])
            .restart(RestartPolicy::OnFailure)
            .admission(AdmissionPolicy::Queue)
            .build()
            .unwrap(),
    );
    let ids: Vec<TaskId> = [&done, &never, &always, &queued]
        .iter()
        .map(|t| t.metadata.id.clone())
        .collect();
    let (done_before, done_runs) = {
        let store = DiskStore::open(&path, &StateConfig::default()).unwrap();
        for t in [done, never, always, queued] {
            store.create(t, true).unwrap();
        }
        store.run_started(&ids[0], 1, now_ms());
        store.run_finished(
            &ids[0],
            1,
            RunEnd::new(TaskPhase::Succeeded, now_ms(), None),
        );
        store.finish(
            &ids[0],
            RunEnd::new(TaskPhase::Succeeded, now_ms(), None),
            TaskPhase::Canceled,
        );
        store.run_started(&ids[1], 1, now_ms());
        store.run_started(&ids[2], 1, now_ms());
        store.sync().await.unwrap();
        (store.get(&ids[0]).unwrap(), store.runs(&ids[0]).unwrap())
    };

    let store = Arc::new(DiskStore::open(&path, &StateConfig::default()).unwrap());
    let api = api_on(store).await;

    // Terminal: as stored.
    assert_eq!(api.get_task(&ids[0]).await.unwrap().unwrap(), done_before);
    assert_eq!(
        api.list_task_runs(&ids[0]).await.unwrap().unwrap(),
        done_runs
    );

    // NEVER, was running: failed with the reason, its run closed with it.
    let never = api.get_task(&ids[1]).await.unwrap().unwrap();
    assert_eq!(never.status.phase, TaskPhase::Failed);
    assert_eq!(never.status.error.as_deref(), Some(REASON));
    let runs = api.list_task_runs(&ids[1]).await.unwrap().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].phase, TaskPhase::Failed);
    assert_eq!(runs[0].error.as_deref(), Some(REASON));

    // ALWAYS, was running: a new attempt, after the closed one.
    running(&api, &ids[2]).await;
    let always = api.get_task(&ids[2]).await.unwrap().unwrap();
    assert_eq!(always.status.attempt, 2);
    let runs = api.list_task_runs(&ids[2]).await.unwrap().unwrap();
    assert_eq!(
        runs.iter()
            .map(|r| (r.attempt, r.phase))
            .collect::<Vec<_>>(),
        vec![(1, TaskPhase::Failed), (2, TaskPhase::Running)]
    );
    // Its output offsets start above any the previous process handed out: a reader resuming
    // after offset 5 of the old process gets the new attempt's first event, no reuse, no
    // `Lagged` for events that were never retained by this process.
    let mut sub = api
        .subscribe_output(&ids[2], solti_core::OutputStart::After(5))
        .await
        .unwrap()
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), sub.recv_batch())
        .await
        .unwrap()
        .unwrap();
    assert!(first.offset() > 1 << 40, "{first:?}");
    assert!(
        matches!(
            &first,
            solti_core::OutputBatch::Event {
                event: solti_model::OutputEvent::RunStarted { attempt: 2, .. },
                ..
            }
        ),
        "{first:?}"
    );

    // ON_FAILURE, queued behind it on the same slot: still waiting, in its place.
    let queued = api.get_task(&ids[3]).await.unwrap().unwrap();
    assert_eq!(queued.status.phase, TaskPhase::Pending);
    assert!(
        api.list_task_runs(&ids[3])
            .await
            .unwrap()
            .unwrap()
            .is_empty()
    );

    // Every id listed once, in the original order.
    let listed: Vec<TaskId> = api
        .query_tasks(&TaskQuery::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|t| t.metadata.id)
        .collect();
    assert_eq!(listed, ids);
    api.shutdown().await.unwrap();
}

/// The agent died after a task's attempt ended and was stored, before the task's end was:
/// a success ends the task `Succeeded` (unless the policy restarts successes), a failure is
/// handled like an interrupted run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_successful_last_run_ends_the_task_as_it_would_have() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let never = stored(spec("never", "hang", &[]).build().unwrap());
    let on_failure = stored(
        spec("on-failure", "hang", &[])
            .restart(RestartPolicy::OnFailure)
            .build()
            .unwrap(),
    );
    let always = stored(
        spec("always", "hang", &[])
            .restart(RestartPolicy::Always { interval_ms: None })
            .build()
            .unwrap(),
    );
    let failed = stored(spec("failed", "hang", &[]).build().unwrap());
    let ids: Vec<TaskId> = [&never, &on_failure, &always, &failed]
        .iter()
        .map(|t| t.metadata.id.clone())
        .collect();
    let ended_at = now_ms() - 1_000;
    {
        let store = DiskStore::open(&path, &StateConfig::default()).unwrap();
        for t in [never, on_failure, always, failed] {
            store.create(t, true).unwrap();
        }
        for (i, id) in ids.iter().enumerate() {
            store.run_started(id, 1, ended_at - 10);
            let phase = if i == 3 {
                TaskPhase::Failed
            } else {
                TaskPhase::Succeeded
            };
            store.run_finished(id, 1, RunEnd::new(phase, ended_at, None));
        }
        store.sync().await.unwrap();
        store.close();
    }
    let store = Arc::new(DiskStore::open(&path, &StateConfig::default()).unwrap());
    let api = api_on(store).await;
    for id in &ids[..2] {
        let task = api.get_task(id).await.unwrap().unwrap();
        assert_eq!(task.status.phase, TaskPhase::Succeeded, "{task:?}");
        assert_eq!(task.status.error, None);
        let runs = api.list_task_runs(id).await.unwrap().unwrap();
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert_eq!(runs[0].phase, TaskPhase::Succeeded);
    }
    // ALWAYS restarts successes too: a new attempt.
    running(&api, &ids[2]).await;
    assert_eq!(
        api.get_task(&ids[2]).await.unwrap().unwrap().status.attempt,
        2
    );
    // NEVER after a failed attempt: failed with the reason (the task's own end was lost).
    let failed = api.get_task(&ids[3]).await.unwrap().unwrap();
    assert_eq!(failed.status.phase, TaskPhase::Failed);
    assert_eq!(failed.status.error.as_deref(), Some(REASON));
    api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_submissions_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let mut ids = Vec::new();
    {
        let store = Arc::new(DiskStore::open(&path, &StateConfig::default()).unwrap());
        let api = api_on(Arc::clone(&store) as Arc<dyn StateStore>).await;
        for i in 0..20 {
            ids.push(
                api.submit(&spec(&format!("s{i}"), "ok", &[]).build().unwrap())
                    .await
                    .unwrap(),
            );
        }
        api.shutdown().await.unwrap();
        // Tasks of the stopped supervisor may still hold the store for a moment: release the
        // file now, as the agent does on exit, instead of waiting for the last handle.
        store.close();
    }
    let store = Arc::new(DiskStore::open(&path, &StateConfig::default()).unwrap());
    let api = api_on(store).await;
    for id in &ids {
        let task = api.get_task(id).await.unwrap().unwrap();
        assert!(task.status.phase.is_terminal(), "{task:?}");
    }
    api.shutdown().await.unwrap();
}

/// A caller that stops waiting mid-submission (a client that disconnects) does not leave a
/// half-admitted task: the admission finishes, the task runs to its end, and the slot is
/// free for the next task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_submission_still_runs_and_frees_its_slot() {
    // A durable store: the submission waits for its commit, so the dropped future stops
    // there (with the in-memory store the whole admission runs within the first poll).
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(DiskStore::open(dir.path().join("s.redb"), &StateConfig::default()).unwrap());
    let api = api_on(Arc::clone(&store) as Arc<dyn StateStore>).await;
    for round in 0..50 {
        let s = spec("abandon", "ok", &[])
            .admission(AdmissionPolicy::DropIfRunning)
            .build()
            .unwrap();
        // Polled once, then dropped.
        let _ = tokio::time::timeout(Duration::ZERO, api.submit(&s)).await;
        // Wait until the abandoned task is listed and terminal.
        let abandoned = loop {
            let page = api.query_tasks(&TaskQuery::new()).await.unwrap();
            // Every earlier round deleted its tasks: a listed task of the slot is this round's.
            let found = page
                .items
                .into_iter()
                .find(|t| t.spec.slot().as_str() == "abandon");
            if let Some(t) = found {
                break t.metadata.id;
            }
            tokio::task::yield_now().await;
        };
        let task = crate::support::done(&api, &abandoned).await;
        assert_eq!(task.status.phase, TaskPhase::Succeeded, "round {round}");
        let next = api.submit(&s).await.unwrap();
        let task = crate::support::done(&api, &next).await;
        assert_eq!(
            task.status.phase,
            TaskPhase::Succeeded,
            "round {round}: the slot must be free: {:?}",
            task.status.error
        );
        for id in [abandoned, next] {
            api.delete_task(&id).await.unwrap();
        }
    }
    api.shutdown().await.unwrap();
    store.close();
}
