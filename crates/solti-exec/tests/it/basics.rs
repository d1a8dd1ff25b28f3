//! Command mode, exit codes, env, cwd.

use solti_model::{Flag, TaskEnv};
use taskvisor::TaskError;

use crate::harness::*;

#[tokio::test]
async fn echo_prints_and_succeeds() {
    let (end, b) = run_attempt(&spec(cmd("echo", &["hello world"]))).await;
    assert_eq!(end.exit_code(), Some(0));
    end.into_result().unwrap();
    assert_eq!(b.out.stdout(), vec!["hello world"]);
}

#[tokio::test]
async fn non_zero_exit_fails_with_code() {
    let (r, b) = run(&spec(sh("echo oops >&2; exit 3"))).await;
    let e = r.unwrap_err();
    assert!(matches!(e, TaskError::Fail { .. }), "{e:?}");
    assert_eq!(e.exit_code(), Some(3));
    assert_eq!(b.out.stderr(), vec!["oops"]);
}

#[tokio::test]
async fn non_zero_exit_with_fail_off_succeeds_and_records_code() {
    let mut s = sh("exit 7");
    s.fail_on_non_zero = Flag::disabled();
    let (end, _) = run_attempt(&spec(s)).await;
    assert_eq!(end.exit_code(), Some(7));
    end.into_result().unwrap();
}

#[tokio::test]
async fn env_merge_and_cwd() {
    let mut s = sh("echo $A $B $C; pwd");
    s.env = TaskEnv::new().with("B", "task").with("C", "c");
    s.cwd = Some("/tmp".into());
    let b = build_with(
        &spec(s),
        fast(),
        TaskEnv::new().with("A", "runner").with("B", "runner"),
    );
    b.task
        .spawn(taskvisor::TaskContext::detached())
        .await
        .unwrap();
    assert_eq!(b.out.stdout(), vec!["runner task c", "/tmp"]);
}

#[tokio::test]
async fn command_not_found_is_fatal_and_clear() {
    let (r, _) = run(&spec(cmd("solti-no-such-command", &[]))).await;
    let e = r.unwrap_err();
    assert!(e.is_fatal(), "{e:?}");
    assert!(
        e.to_string()
            .contains("command \"solti-no-such-command\" not found in PATH"),
        "{e}"
    );
}
