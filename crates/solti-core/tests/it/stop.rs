//! cancel, delete, shutdown.

use std::time::{Duration, Instant};

use solti_core::{CoreError, StateConfig, SupervisorApi};
use solti_model::{AdmissionPolicy, TaskId, TaskPhase, TaskQuery};
use solti_runner::RunnerRouter;
use taskvisor::{ControllerConfig, SupervisorConfig};

use crate::support::{FakeRunner, api, done, running, spec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_running_and_queued() {
    let api = api().await;
    let owner = api
        .submit(&spec("c", "hang", &[]).build().unwrap())
        .await
        .unwrap();
    running(&api, &owner).await;
    let queued = api
        .submit(
            &spec("c", "ok", &[])
                .admission(AdmissionPolicy::Queue)
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(api.cancel_task(&queued).await.unwrap());
    let task = done(&api, &queued).await;
    assert_eq!(task.status.phase, TaskPhase::Canceled);
    assert_eq!(task.status.error.as_deref(), Some("canceled"));
    assert!(
        api.list_task_runs(&queued)
            .await
            .unwrap()
            .unwrap()
            .is_empty()
    );

    assert!(api.cancel_task(&owner).await.unwrap());
    let task = done(&api, &owner).await;
    assert_eq!(task.status.phase, TaskPhase::Canceled);
    assert_eq!(task.status.error.as_deref(), Some("canceled"));
    let runs = api.list_task_runs(&owner).await.unwrap().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].phase, TaskPhase::Canceled);
    assert!(runs[0].finished_at.is_some());

    assert!(
        !api.cancel_task(&owner).await.unwrap(),
        "terminal: nothing to cancel"
    );
    assert!(
        !api.cancel_task(&TaskId::generate()).await.unwrap(),
        "unknown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_is_idempotent_and_purges() {
    let api = api().await;
    let running_id = api
        .submit(&spec("d", "hang", &[]).build().unwrap())
        .await
        .unwrap();
    running(&api, &running_id).await;
    let queued = api
        .submit(
            &spec("d", "ok", &[])
                .admission(AdmissionPolicy::Queue)
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let mut sub = api
        .subscribe_output(&running_id, solti_core::OutputStart::Live)
        .await
        .unwrap()
        .unwrap();
    for id in [&queued, &running_id] {
        assert!(api.delete_task(id).await.unwrap());
        assert!(api.get_task(id).await.unwrap().is_none());
        assert!(api.list_task_runs(id).await.unwrap().is_none());
        assert!(
            api.subscribe_output(id, solti_core::OutputStart::Live)
                .await
                .unwrap()
                .is_none()
        );
        assert!(!api.delete_task(id).await.unwrap(), "second delete");
    }
    // The stream ends (after at most the stopped attempt's RunFinished).
    let drained = async { while sub.recv().await.is_some() {} };
    tokio::time::timeout(Duration::from_secs(10), drained)
        .await
        .expect("stream ends");
    // The slot frees up once the deleted task has stopped.
    let next = api
        .submit(
            &spec("d", "ok", &[])
                .admission(AdmissionPolicy::Queue)
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(done(&api, &next).await.status.phase, TaskPhase::Succeeded);
    assert_eq!(api.query_tasks(&TaskQuery::new()).await.unwrap().total, 1);

    let finished = api
        .submit(&spec("d2", "ok", &[]).build().unwrap())
        .await
        .unwrap();
    done(&api, &finished).await;
    assert!(api.delete_task(&finished).await.unwrap());
    assert!(!api.delete_task(&finished).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_100_running_tasks_returns_within_grace() {
    let mut router = RunnerRouter::new();
    router.register(FakeRunner::default()).unwrap();
    let grace = Duration::from_secs(3);
    let sup = SupervisorConfig::default().with_grace(grace);
    let api = SupervisorApi::new(
        sup,
        ControllerConfig::default(),
        vec![],
        router,
        StateConfig::default(),
    )
    .await
    .unwrap();
    let mut ids = Vec::new();
    for n in 0..100 {
        let command = if n % 10 == 0 { "stubborn" } else { "hang" };
        ids.push(
            api.submit(&spec(&format!("s{n}"), command, &[]).build().unwrap())
                .await
                .unwrap(),
        );
    }
    for id in &ids {
        running(&api, id).await;
    }
    let started = Instant::now();
    api.shutdown().await.unwrap();
    let took = started.elapsed();
    assert!(
        took < grace + Duration::from_secs(2),
        "shutdown took {took:?}"
    );
    for id in &ids {
        let task = api.get_task(id).await.unwrap().unwrap();
        assert_eq!(task.status.phase, TaskPhase::Canceled, "{task:?}");
        assert!(
            task.status
                .error
                .unwrap()
                .starts_with("agent shutting down")
        );
        let runs = api.list_task_runs(id).await.unwrap().unwrap();
        assert!(
            runs.iter().all(|r| r.finished_at.is_some()),
            "no run left running: {runs:?}"
        );
        assert!(
            api.subscribe_output(id, solti_core::OutputStart::Live)
                .await
                .unwrap()
                .unwrap()
                .recv()
                .await
                .is_none()
        );
    }
    assert!(matches!(
        api.submit(&spec("late", "ok", &[]).build().unwrap()).await,
        Err(CoreError::ShuttingDown)
    ));
    api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_ignoring_cancel_is_force_aborted_and_not_left_running() {
    let mut router = RunnerRouter::new();
    router.register(FakeRunner::default()).unwrap();
    let sup = SupervisorConfig::default().with_grace(Duration::from_millis(200));
    let api = SupervisorApi::new(
        sup,
        ControllerConfig::default(),
        vec![],
        router,
        StateConfig::default(),
    )
    .await
    .unwrap();
    let id = api
        .submit(&spec("stuck", "stubborn", &[]).build().unwrap())
        .await
        .unwrap();
    running(&api, &id).await;
    assert!(api.cancel_task(&id).await.unwrap());
    let task = done(&api, &id).await;
    assert_eq!(task.status.phase, TaskPhase::Canceled);
    let error = task.status.error.unwrap();
    assert!(
        error.starts_with("canceled") && error.contains("force-aborted"),
        "{error}"
    );
    let runs = api.list_task_runs(&id).await.unwrap().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].phase, TaskPhase::Canceled);
    assert!(runs[0].finished_at.is_some(), "no run left running");
}
