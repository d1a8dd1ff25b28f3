//! A full descriptor table at spawn is a retryable failure: the restart policy applies and
//! the task succeeds once descriptors are free again.
//!
//! Its own test binary (one test) because it fills this process's descriptor table.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test setup failures panic"
)]
#![expect(unsafe_code, reason = "getrlimit/setrlimit FFI calls")]

use std::{
    os::fd::{AsFd as _, OwnedFd},
    time::Duration,
};

use solti_core::{StateConfig, SupervisorApi};
use solti_model::{BackoffPolicy, JitterPolicy, RestartPolicy, TaskKind, TaskPhase, TaskSpec};
use solti_runner::RunnerRouter;
use taskvisor::{ControllerConfig, SupervisorConfig};

/// Opens descriptors until the table is full (`EMFILE`); dropping them frees it again.
fn fill_descriptor_table() -> Vec<OwnedFd> {
    let null = std::fs::File::open("/dev/null").unwrap();
    let mut held = Vec::new();
    loop {
        match null.as_fd().try_clone_to_owned() {
            Ok(fd) => held.push(fd),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                return held;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emfile_at_spawn_is_retried_by_the_restart_policy() {
    // A small table, so filling it is quick.
    let limit = libc::rlimit {
        rlim_cur: 256,
        rlim_max: 256.max(current_hard_limit()),
    };
    // SAFETY: `limit` is a valid rlimit for the duration of the call.
    let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) };
    assert_eq!(set, 0);

    let mut router = RunnerRouter::new();
    solti_exec::register_subprocess_runner(&mut router, "default").unwrap();
    let api = SupervisorApi::new(
        SupervisorConfig::default(),
        ControllerConfig::default(),
        vec![],
        router,
        StateConfig::default(),
    )
    .await
    .unwrap();
    let spec = TaskSpec::builder(
        "emfile",
        TaskKind::Subprocess(solti_model::SubprocessSpec::command("echo", ["ran"])),
        10_000u64,
    )
    .restart(RestartPolicy::OnFailure)
    .backoff(BackoffPolicy::new(JitterPolicy::None, 50, 50, 1.0).unwrap())
    .build()
    .unwrap();

    let held = fill_descriptor_table();
    let id = api.submit(&spec).await.unwrap();
    // Wait (bounded) for the first attempt to fail on the full table.
    let mut failed = None;
    for _ in 0..2000 {
        let t = api.get_task(&id).await.unwrap().unwrap();
        assert!(
            !t.status.phase.is_terminal(),
            "a full descriptor table ended the task: {t:?}"
        );
        if let Some(e) = t.status.error.filter(|e| e.contains("Too many open files")) {
            failed = Some(e);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let failed = failed.expect("an attempt failed with EMFILE");
    drop(held);

    let mut last = None;
    for _ in 0..2000 {
        let t = api.get_task(&id).await.unwrap().unwrap();
        if t.status.phase.is_terminal() {
            last = Some(t);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let t = last.expect("the task ends once descriptors are free");
    assert_eq!(
        t.status.phase,
        TaskPhase::Succeeded,
        "{t:?} (first failure: {failed})"
    );
    assert!(t.status.attempt >= 2, "{t:?}");
    api.shutdown().await.unwrap();
}

fn current_hard_limit() -> u64 {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `cur` is a valid out-pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut cur) };
    cur.rlim_max
}
