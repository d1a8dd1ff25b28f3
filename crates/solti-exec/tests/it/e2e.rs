//! End to end through solti-core's `SupervisorApi`: submit, output, exit codes, and every
//! way an attempt is stopped (timeout, cancel, delete, shutdown) leaving no process behind.

use std::{path::Path, time::Duration};

use solti_core::{StateConfig, SupervisorApi};
use solti_model::{OutputEvent, Task, TaskId, TaskPhase, TaskSpec};
use solti_runner::RunnerRouter;
use taskvisor::{ControllerConfig, SupervisorConfig};

use crate::harness::*;

async fn api() -> SupervisorApi {
    let mut router = RunnerRouter::new();
    solti_exec::register_subprocess_runner_with_backend(&mut router, "default", fast()).unwrap();
    let sup = SupervisorConfig::default().with_grace(Duration::from_secs(3));
    SupervisorApi::new(
        sup,
        ControllerConfig::default(),
        vec![],
        router,
        StateConfig::default(),
    )
    .await
    .unwrap()
}

async fn done(api: &SupervisorApi, id: &TaskId) -> Task {
    let wait = async {
        loop {
            let t = api.get_task(id).await.unwrap().unwrap();
            if t.status.phase.is_terminal() {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .expect("task ends")
}

/// A tree (SIGTERM trapper + setsid escapee) that writes its pids to `file`.
fn tree(file: &Path, timeout_ms: u64) -> TaskSpec {
    let body = format!(
        r#"sh -c 'trap "" TERM; while :; do sleep 0.05; done' &
T=$!
setsid sh -c 'while :; do sleep 0.05; done' &
echo "$$ $T $!" > {f}.tmp && mv {f}.tmp {f}
wait"#,
        f = file.display()
    );
    TaskSpec::builder(
        "tree",
        solti_model::TaskKind::Subprocess(sh(&body)),
        timeout_ms,
    )
    .build()
    .unwrap()
}

async fn pids_from(file: &Path) -> Vec<i32> {
    for _ in 0..2000 {
        if let Ok(s) = std::fs::read_to_string(file) {
            return s.split_whitespace().map(|p| p.parse().unwrap()).collect();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the tree never wrote {}", file.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_and_exit_codes_through_the_supervisor() {
    let api = api().await;
    let s = TaskSpec::builder(
        "e",
        solti_model::TaskKind::Subprocess(sh("sleep 0.2; echo hi; exit 4")),
        10_000u64,
    )
    .build()
    .unwrap();
    let id = api.submit(&s).await.unwrap();
    let mut sub = api
        .subscribe_output(&id, solti_core::OutputStart::Live)
        .await
        .unwrap()
        .unwrap();
    let mut lines = Vec::new();
    while let Some(ev) = sub.recv().await {
        if let OutputEvent::Chunk { line, .. } = ev {
            lines.push(line);
        }
    }
    assert_eq!(lines, vec![bytes::Bytes::from_static(b"hi")]);
    let t = done(&api, &id).await;
    assert_eq!(t.status.phase, TaskPhase::Failed);
    assert_eq!(t.status.exit_code, Some(4));

    let id = api
        .submit(
            &TaskSpec::builder(
                "m",
                solti_model::TaskKind::Subprocess(cmd("solti-missing", &[])),
                10_000u64,
            )
            .build()
            .unwrap(),
        )
        .await
        .unwrap();
    let t = done(&api, &id).await;
    assert_eq!(t.status.phase, TaskPhase::Failed);
    assert!(t.status.error.unwrap().contains("not found in PATH"));
    api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_and_reaps_the_tree() {
    let api = api().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pids");
    let id = api.submit(&tree(&file, 1_000)).await.unwrap();
    let pids = pids_from(&file).await;
    let t = done(&api, &id).await;
    assert_eq!(t.status.phase, TaskPhase::Timeout, "{t:?}");
    assert!(
        gone(&pids, Duration::from_secs(3)).await,
        "survivors among {pids:?}"
    );
    api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_delete_kill_the_tree() {
    let api = api().await;
    let dir = tempfile::tempdir().unwrap();
    for delete in [false, true] {
        let file = dir.path().join(format!("pids-{delete}"));
        let id = api.submit(&tree(&file, 60_000)).await.unwrap();
        let pids = pids_from(&file).await;
        if delete {
            assert!(api.delete_task(&id).await.unwrap());
        } else {
            assert!(api.cancel_task(&id).await.unwrap());
            assert_eq!(done(&api, &id).await.status.phase, TaskPhase::Canceled);
        }
        assert!(
            gone(&pids, Duration::from_secs(3)).await,
            "survivors among {pids:?} (delete: {delete})"
        );
    }
    api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_kills_the_tree() {
    let api = api().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pids");
    api.submit(&tree(&file, 60_000)).await.unwrap();
    let pids = pids_from(&file).await;
    api.shutdown().await.unwrap();
    assert!(
        gone(&pids, Duration::from_secs(3)).await,
        "survivors among {pids:?}"
    );
}

/// The hub never blocks the runner (solti-runner's contract), so a subscriber slower than the
/// process may lag; what it does get is in order, and nothing is unaccounted for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reading_subscriber_gets_100k_lines_in_order_and_accounted() {
    let api = api().await;
    let s = TaskSpec::builder(
        "seq",
        solti_model::TaskKind::Subprocess(sh("sleep 0.2; seq 1 100000")),
        60_000u64,
    )
    .build()
    .unwrap();
    let id = api.submit(&s).await.unwrap();
    let mut sub = api
        .subscribe_output(&id, solti_core::OutputStart::Live)
        .await
        .unwrap()
        .unwrap();
    let (mut last, mut delivered, mut lagged) = (0u64, 0u64, 0u64);
    while let Some(ev) = sub.recv().await {
        match ev {
            OutputEvent::Chunk { line, .. } => {
                let n: u64 = std::str::from_utf8(&line).unwrap().parse().unwrap();
                assert!(n > last, "line {n} after {last}");
                last = n;
                delivered += 1;
            }
            OutputEvent::Lagged { skipped } => lagged += skipped,
            _ => {}
        }
    }
    eprintln!("100k lines: {delivered} delivered, {lagged} events skipped by the hub");
    assert_eq!(last, 100_000);
    assert!(
        (100_000..=100_002).contains(&(delivered + lagged)),
        "{delivered} + {lagged}"
    );
    api.shutdown().await.unwrap();
}
