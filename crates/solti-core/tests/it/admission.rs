//! Per-slot admission: DropIfRunning, Replace, Queue.

use solti_core::StateConfig;
use solti_model::{AdmissionPolicy, TaskPhase};
use taskvisor::ControllerConfig;

use crate::support::{api, api_with, done, running, spec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_if_running_refuses_and_names_the_owner() {
    let api = api().await;
    let owner = api
        .submit(&spec("s", "hang", &[]).build().unwrap())
        .await
        .unwrap();
    running(&api, &owner).await;
    let s = spec("s", "ok", &[])
        .admission(AdmissionPolicy::DropIfRunning)
        .build()
        .unwrap();
    let refused = api.submit(&s).await.unwrap();
    // Terminal at once: a caller looking right after submit already sees the refusal.
    let task = api.get_task(&refused).await.unwrap().unwrap();
    assert_eq!(task.status.phase, TaskPhase::Canceled);
    let error = task.status.error.unwrap();
    assert!(error.contains(owner.as_str()), "{error}");
    assert!(error.contains("busy"), "{error}");
    assert!(
        api.list_task_runs(&refused)
            .await
            .unwrap()
            .unwrap()
            .is_empty()
    );
    let owner_task = api.get_task(&owner).await.unwrap().unwrap();
    assert_eq!(
        owner_task.status.phase,
        TaskPhase::Running,
        "owner untouched"
    );
    api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_cancels_owner_and_queue_and_starts_the_new_task() {
    let api = api().await;
    let owner = api
        .submit(&spec("s", "hang", &[]).build().unwrap())
        .await
        .unwrap();
    running(&api, &owner).await;
    let queued_spec = spec("s", "ok", &[])
        .admission(AdmissionPolicy::Queue)
        .build()
        .unwrap();
    let q1 = api.submit(&queued_spec).await.unwrap();
    let q2 = api.submit(&queued_spec).await.unwrap();
    let s = spec("s", "hang", &[])
        .admission(AdmissionPolicy::Replace)
        .build()
        .unwrap();
    let new = api.submit(&s).await.unwrap();
    let expected = format!("replaced by {new}");
    for old in [&owner, &q1, &q2] {
        let task = done(&api, old).await;
        assert_eq!(task.status.phase, TaskPhase::Canceled, "{task:?}");
        assert_eq!(task.status.error.as_deref(), Some(expected.as_str()));
    }
    assert!(
        api.list_task_runs(&q1).await.unwrap().unwrap().is_empty(),
        "queued task never ran"
    );
    running(&api, &new).await;
    api.shutdown().await.unwrap();
    let task = api.get_task(&new).await.unwrap().unwrap();
    assert_eq!(task.status.phase, TaskPhase::Canceled);
    assert_eq!(task.status.error.as_deref(), Some("agent shutting down"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_runs_in_order() {
    let (api, starts) = api_with(StateConfig::default(), ControllerConfig::default()).await;
    let s = spec("q", "sleep", &["20"])
        .admission(AdmissionPolicy::Queue)
        .build()
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(api.submit(&s).await.unwrap());
    }
    let mut previous_end = 0;
    for id in &ids {
        assert_eq!(done(&api, id).await.status.phase, TaskPhase::Succeeded);
        let run = &api.list_task_runs(id).await.unwrap().unwrap()[0];
        assert!(
            run.started_at >= previous_end,
            "tasks overlapped or ran out of order"
        );
        previous_end = run.finished_at.unwrap();
    }
    assert_eq!(starts.lock().unwrap()["q"].len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_over_bound_fails_with_the_reason() {
    let ctl = ControllerConfig::default().with_max_slot_queue(1);
    let (api, _) = api_with(StateConfig::default(), ctl).await;
    let owner = api
        .submit(&spec("q", "hang", &[]).build().unwrap())
        .await
        .unwrap();
    running(&api, &owner).await;
    let s = spec("q", "ok", &[])
        .admission(AdmissionPolicy::Queue)
        .build()
        .unwrap();
    let queued = api.submit(&s).await.unwrap();
    let over = api.submit(&s).await.unwrap();
    let task = done(&api, &over).await;
    assert_eq!(task.status.phase, TaskPhase::Failed);
    assert!(task.status.error.unwrap().contains("full"));
    assert_eq!(
        api.get_task(&queued).await.unwrap().unwrap().status.phase,
        TaskPhase::Pending
    );
    assert!(api.cancel_task(&owner).await.unwrap());
    assert_eq!(
        done(&api, &queued).await.status.phase,
        TaskPhase::Succeeded,
        "queued task runs after the owner"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_of_internal_tasks_are_closed_to_listed_submissions() {
    let api = api().await;
    let internal = taskvisor::TaskFn::arc(|ctx: taskvisor::TaskContext| async move {
        ctx.cancelled().await;
        Err::<(), _>(taskvisor::TaskError::Canceled)
    });
    let internal_spec =
        solti_model::TaskSpec::builder("internal-x", solti_model::TaskKind::Embedded, 60_000u64)
            .build()
            .unwrap();
    let internal_id = api
        .submit_with_task(internal, &internal_spec)
        .await
        .unwrap();
    running(&api, &internal_id).await;
    for admission in [
        AdmissionPolicy::Replace,
        AdmissionPolicy::Queue,
        AdmissionPolicy::DropIfRunning,
    ] {
        let spec = spec("internal-x", "sleep", &["1"])
            .admission(admission)
            .build()
            .unwrap();
        let err = api.submit(&spec).await.unwrap_err();
        let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(chain.contains("reserved by an internal task"), "{chain}");
    }
    // The internal task is untouched.
    let task = api.get_task(&internal_id).await.unwrap().unwrap();
    assert_eq!(task.status.phase, TaskPhase::Running);
    api.shutdown().await.unwrap();
}

/// Regression: taskvisor delivers a task's outcome before its controller releases the slot,
/// and its own DropIfRunning refused a task submitted in that window (`SlotBusy`, so the new
/// task ended `Canceled` with no exit code although the slot was free for every caller).
/// Resubmitting to the slot the moment the previous task is terminal must always run the task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_is_free_the_moment_its_task_is_terminal() {
    let api = api().await;
    for round in 0..300 {
        let (command, phase, code) = if round % 2 == 0 {
            ("exit3", TaskPhase::Succeeded, Some(3))
        } else {
            ("fail", TaskPhase::Failed, Some(1))
        };
        let s = spec("reuse", command, &[])
            .admission(AdmissionPolicy::DropIfRunning)
            .build()
            .unwrap();
        let id = api.submit(&s).await.unwrap();
        let task = done(&api, &id).await;
        assert_eq!(
            (task.status.phase, task.status.exit_code),
            (phase, code),
            "round {round}: {:?}",
            task.status.error
        );
    }
    api.shutdown().await.unwrap();
}

/// DropIfRunning is decided by the supervisor: of concurrent submissions to a free slot,
/// exactly one gets it and every other is refused naming an owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_drop_if_running_submissions_admit_exactly_one() {
    let api = api().await;
    for round in 0..20 {
        let slot = format!("race-{round}");
        let s = spec(&slot, "hang", &[])
            .admission(AdmissionPolicy::DropIfRunning)
            .build()
            .unwrap();
        let submits: Vec<_> = (0..8)
            .map(|_| {
                let api = api.clone();
                let s = s.clone();
                tokio::spawn(async move { api.submit(&s).await.unwrap() })
            })
            .collect();
        let mut ids = Vec::new();
        for submit in submits {
            ids.push(submit.await.unwrap());
        }
        let mut admitted = Vec::new();
        for id in &ids {
            let task = api.get_task(id).await.unwrap().unwrap();
            if task.status.phase == TaskPhase::Canceled {
                let error = task.status.error.unwrap_or_default();
                assert!(error.contains("busy"), "{error}");
            } else {
                admitted.push(id.clone());
            }
        }
        assert_eq!(admitted.len(), 1, "round {round}");
        running(&api, &admitted[0]).await;
        assert!(api.cancel_task(&admitted[0]).await.unwrap());
        assert_eq!(
            done(&api, &admitted[0]).await.status.phase,
            TaskPhase::Canceled
        );
    }
    api.shutdown().await.unwrap();
}
