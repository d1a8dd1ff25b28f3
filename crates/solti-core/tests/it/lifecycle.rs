//! Submit → phases → run history, for routed and embedded tasks.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use solti_core::{CoreError, StateConfig, SupervisorApi};
use solti_model::{RestartPolicy, TaskKind, TaskPhase, TaskQuery, TaskSpec};
use solti_runner::{AttemptOutcome, MetricsBackend, RunnerError, RunnerRouter};
use taskvisor::{ControllerConfig, SupervisorConfig, TaskContext, TaskError, TaskFn};

use crate::support::{api, done, spec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn succeeded_task_has_one_run_and_versions() {
    let api = api().await;
    let id = api
        .submit(&spec("hello", "ok", &["hi"]).build().unwrap())
        .await
        .unwrap();
    let task = done(&api, &id).await;
    assert_eq!(task.status.phase, TaskPhase::Succeeded);
    assert_eq!(task.status.attempt, 1);
    assert_eq!(task.status.error, None);
    // created (1), run started (2), run finished (3), terminal (4).
    assert_eq!(task.metadata.resource_version, 4);
    assert_eq!(task.status.exit_code, Some(0), "recorded by the runner");
    let runs = api.list_task_runs(&id).await.unwrap().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].phase, TaskPhase::Succeeded);
    assert_eq!(runs[0].exit_code, Some(0));
    assert!(runs[0].finished_at.unwrap() >= runs[0].started_at);
    let page = api.query_tasks(&TaskQuery::new()).await.unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.items[0].metadata.id, id);
    api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fatal_failure_is_failed_with_exit_code() {
    let api = api().await;
    let s = spec("f", "fatal", &[])
        .restart(RestartPolicy::OnFailure)
        .build()
        .unwrap();
    let id = api.submit(&s).await.unwrap();
    let task = done(&api, &id).await;
    assert_eq!(task.status.phase, TaskPhase::Failed);
    assert_eq!(task.status.exit_code, Some(2));
    assert!(task.status.error.unwrap().contains("broken"));
    assert_eq!(
        api.list_task_runs(&id).await.unwrap().unwrap().len(),
        1,
        "fatal is not retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_tasks_run_but_are_not_listed() {
    let api = api().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let task = TaskFn::arc(move |_ctx: TaskContext| {
        c.fetch_add(1, Ordering::SeqCst);
        async { Ok::<(), TaskError>(()) }
    });
    let s = TaskSpec::builder("inner", TaskKind::Embedded, 1_000u64)
        .build()
        .unwrap();
    let id = api.submit_with_task(task, &s).await.unwrap();
    assert_eq!(done(&api, &id).await.status.phase, TaskPhase::Succeeded);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(api.list_task_runs(&id).await.unwrap().unwrap().len(), 1);
    assert_eq!(api.query_tasks(&TaskQuery::new()).await.unwrap().total, 0);
    assert_eq!(api.phase_counts().values().sum::<u64>(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_entry_point_is_refused() {
    let api = api().await;
    let embedded = TaskSpec::builder("e", TaskKind::Embedded, 1_000u64)
        .build()
        .unwrap();
    assert!(matches!(
        api.submit(&embedded).await,
        Err(CoreError::Runner(RunnerError::EmbeddedNeedsTask))
    ));
    let task = TaskFn::arc(|_ctx: TaskContext| async { Ok::<(), TaskError>(()) });
    let err = api
        .submit_with_task(task, &spec("x", "ok", &[]).build().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::Invalid(_)));
    assert!(err.source_text().contains("kind"), "{err:?}");
    assert_eq!(
        api.query_tasks(&TaskQuery::new()).await.unwrap().total,
        0,
        "nothing stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_runner_is_an_error() {
    let api = SupervisorApi::new(
        SupervisorConfig::default(),
        ControllerConfig::default(),
        vec![],
        RunnerRouter::new(),
        StateConfig::default(),
    )
    .await
    .unwrap();
    let err = api
        .submit(&spec("x", "ok", &[]).build().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        CoreError::Runner(RunnerError::NoRunner { .. })
    ));
}

#[derive(Default)]
struct Counting {
    started: AtomicUsize,
    success: AtomicUsize,
    failure: AtomicUsize,
}

impl MetricsBackend for Counting {
    fn task_started(&self, runner: &str, kind: &str) {
        if runner == "embedded" {
            return; // the sweep
        }
        assert_eq!((runner, kind), ("fake", "subprocess"));
        self.started.fetch_add(1, Ordering::SeqCst);
    }
    fn task_completed(
        &self,
        runner: &str,
        _kind: &str,
        outcome: AttemptOutcome,
        _d: std::time::Duration,
    ) {
        if runner == "embedded" {
            return;
        }
        match outcome {
            AttemptOutcome::Success => self.success.fetch_add(1, Ordering::SeqCst),
            _ => self.failure.fetch_add(1, Ordering::SeqCst),
        };
    }
    fn runner_error(&self, _runner: &str, _reason: &'static str) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_see_every_attempt() {
    let metrics = Arc::new(Counting::default());
    let mut router = RunnerRouter::new();
    router
        .register(crate::support::FakeRunner::default())
        .unwrap();
    router.set_metrics(metrics.clone());
    let api = SupervisorApi::new(
        SupervisorConfig::default(),
        ControllerConfig::default(),
        vec![],
        router,
        StateConfig::default(),
    )
    .await
    .unwrap();
    let s = spec("m", "flaky", &["1"])
        .restart(RestartPolicy::OnFailure)
        .build()
        .unwrap();
    let id = api.submit(&s).await.unwrap();
    assert_eq!(done(&api, &id).await.status.phase, TaskPhase::Succeeded);
    assert_eq!(metrics.started.load(Ordering::SeqCst), 2);
    assert_eq!(metrics.failure.load(Ordering::SeqCst), 1);
    assert_eq!(metrics.success.load(Ordering::SeqCst), 1);
}

trait SourceText {
    fn source_text(&self) -> String;
}

impl SourceText for CoreError {
    fn source_text(&self) -> String {
        std::error::Error::source(self)
            .map(ToString::to_string)
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct Finished(AtomicUsize);

impl taskvisor::Subscribe for Finished {
    fn on_event(&self, event: &taskvisor::Event) {
        if event.kind == taskvisor::EventKind::TaskFinished {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_subscribers_pass_through() {
    let finished = Arc::new(Finished::default());
    let mut router = RunnerRouter::new();
    router
        .register(crate::support::FakeRunner::default())
        .unwrap();
    let subscribers: Vec<Arc<dyn taskvisor::Subscribe>> = vec![finished.clone()];
    let api = SupervisorApi::new(
        SupervisorConfig::default(),
        ControllerConfig::default(),
        subscribers,
        router,
        StateConfig::default(),
    )
    .await
    .unwrap();
    for n in 0..3 {
        let id = api
            .submit(&spec(&format!("s{n}"), "ok", &[]).build().unwrap())
            .await
            .unwrap();
        done(&api, &id).await;
    }
    api.shutdown().await.unwrap();
    // Three user tasks and the sweep; delivery is asynchronous and best-effort, but nothing
    // is lost at this volume once shutdown has drained the subscriber queues.
    assert_eq!(finished.0.load(Ordering::SeqCst), 4);
}

/// API layers call every method from spawned handlers: the futures must be `Send`.
#[test]
fn api_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    fn sync_send<T: Send + Sync + Clone + 'static>() {}
    sync_send::<SupervisorApi>();
    let _ = |api: SupervisorApi, spec: TaskSpec, id: solti_model::TaskId, q: TaskQuery| {
        let task = TaskFn::arc(|_ctx: TaskContext| async { Ok::<(), TaskError>(()) });
        send(&api.submit(&spec));
        send(&api.submit_with_task(task, &spec));
        send(&api.get_task(&id));
        send(&api.query_tasks(&q));
        send(&api.list_task_runs(&id));
        send(&api.cancel_task(&id));
        send(&api.delete_task(&id));
        send(&api.subscribe_output(&id, solti_core::OutputStart::Live));
        send(&api.shutdown());
    };
    fn stream_is_send<T: Send>() {}
    stream_is_send::<solti_core::OutputSubscription>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_come_from_the_runner_or_the_error() {
    let api = api().await;
    let id = api
        .submit(&spec("e", "exit3", &[]).build().unwrap())
        .await
        .unwrap();
    let task = done(&api, &id).await;
    assert_eq!(
        (task.status.phase, task.status.exit_code),
        (TaskPhase::Succeeded, Some(3))
    );
    let id = api
        .submit(&spec("e", "fail", &[]).build().unwrap())
        .await
        .unwrap();
    let task = done(&api, &id).await;
    assert_eq!(
        (task.status.phase, task.status.exit_code),
        (TaskPhase::Failed, Some(1))
    );
    // An embedded task that records nothing has no exit code.
    let task = TaskFn::arc(|_ctx: TaskContext| async { Ok::<(), TaskError>(()) });
    let s = TaskSpec::builder("e2", TaskKind::Embedded, 1_000u64)
        .build()
        .unwrap();
    let id = api.submit_with_task(task, &s).await.unwrap();
    assert_eq!(done(&api, &id).await.status.exit_code, None);
}
