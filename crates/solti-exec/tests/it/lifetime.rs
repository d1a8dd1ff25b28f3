//! Stopping attempts: cancel, drop (timeout), leftovers of a normal exit; no process survives.

use std::time::Duration;

use solti_exec::SubprocessRunner;
use taskvisor::{TaskContext, TaskError};

use crate::harness::*;

/// A tree with a grandchild that ignores SIGTERM and one that escapes with setsid; prints
/// `<leader> <trapper> <escapee>` and waits.
const TREE: &str = r#"
sh -c 'trap "" TERM; while :; do sleep 0.05; done' &
T=$!
setsid sh -c 'while :; do sleep 0.05; done' &
E=$!
echo "$$ $T $E"
wait
"#;

fn pids(line: &str) -> Vec<i32> {
    line.split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

#[tokio::test]
async fn cancel_kills_the_whole_tree_and_reaps() {
    let b = build(&spec(sh(TREE)));
    let ctx = TaskContext::detached();
    let token = ctx.cancellation_token();
    let fut = tokio::spawn(b.task.spawn(ctx));
    let lines = wait_lines(&b.out, 1).await;
    let pids = pids(&lines[0]);
    assert!(pids.iter().all(|p| alive(*p)));
    token.cancel();
    let r = fut.await.unwrap();
    assert!(matches!(r, Err(TaskError::Canceled)), "{r:?}");
    assert!(
        gone(&pids, Duration::from_secs(2)).await,
        "survivors among {pids:?}"
    );
}

#[tokio::test]
async fn dropping_the_future_kills_and_reaps_via_the_runner() {
    let runner = SubprocessRunner::new("drop", fast()).unwrap();
    let b = build_runner(&spec(sh(TREE)), runner.clone());
    let fut = b.task.spawn(TaskContext::detached());
    // What taskvisor does on timeout: the future is dropped without being polled again.
    let r = tokio::time::timeout(Duration::from_millis(500), async {
        let mut fut = std::pin::pin!(fut);
        tokio::select! {
            r = &mut fut => Some(r),
            _ = tokio::time::sleep(Duration::from_secs(30)) => None,
        }
    });
    // Collect the pids concurrently with the running attempt.
    let pids_task = async {
        let lines = wait_lines(&b.out, 1).await;
        pids(&lines[0])
    };
    let (r, pids) = tokio::join!(r, pids_task);
    assert!(
        r.is_err(),
        "the attempt should still be running at the timeout"
    );
    assert!(
        gone(&pids, Duration::from_secs(3)).await,
        "survivors among {pids:?}"
    );
    for _ in 0..300 {
        if runner.background_tasks() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("reaper still running: {}", runner.background_tasks());
}

#[tokio::test]
async fn leftovers_of_a_normal_exit_are_killed() {
    let (r, b) = run(&spec(sh("sleep 30 & echo $!; exit 0"))).await;
    r.unwrap();
    let pid: i32 = b.out.stdout()[0].parse().unwrap();
    assert!(gone(&[pid], Duration::from_secs(2)).await);
}

#[tokio::test]
async fn process_group_fallback_still_kills_a_sigterm_trapper() {
    let b = build_with(
        &spec(sh(TREE)),
        fast().dangerous_process_group_kill_only(),
        Default::default(),
    );
    let ctx = TaskContext::detached();
    let token = ctx.cancellation_token();
    let fut = tokio::spawn(b.task.spawn(ctx));
    let lines = wait_lines(&b.out, 1).await;
    let pids = pids(&lines[0]);
    token.cancel();
    assert!(matches!(fut.await.unwrap(), Err(TaskError::Canceled)));
    assert!(
        gone(&pids[..2], Duration::from_secs(2)).await,
        "leader or trapper survived: {pids:?}"
    );
    // The documented limitation: without a cgroup, a setsid escapee leaves the group.
    let escapee = pids[2];
    // Clean it up so the test does not leak a process.
    let _ = std::process::Command::new("kill")
        .args(["-9", &escapee.to_string()])
        .status();
}

#[tokio::test]
async fn signal_death_fails_without_exit_code() {
    let (r, _) = run(&spec(sh("kill -9 $$"))).await;
    let e = r.unwrap_err();
    assert!(matches!(e, TaskError::Fail { .. }), "{e:?}");
    assert_eq!(e.exit_code(), None);
    assert!(e.to_string().contains("signal 9 (SIGKILL)"), "{e}");
}

#[tokio::test]
async fn already_cancelled_context_does_not_spawn() {
    let b = build(&spec(sh("echo should-not-run")));
    let r = b.task.spawn(TaskContext::detached_cancelled()).await;
    assert!(matches!(r, Err(TaskError::Canceled)));
    assert!(b.out.stdout().is_empty());
}
