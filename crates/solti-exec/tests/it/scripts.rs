//! Script mode in every runtime present on the machine; temp file hygiene.

use std::{path::Path, time::Duration};

use solti_model::Runtime;
use taskvisor::{TaskContext, TaskError};

use crate::harness::*;

fn have(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn bash_script_with_args_and_private_file() {
    let body = "echo \"args: $*\"; stat -c '%a' \"$0\"; echo \"$0\"";
    let (r, b) = run(&spec(script(Runtime::Bash, body, &["x", "y z"]))).await;
    r.unwrap();
    let out = b.out.stdout();
    assert_eq!(out[0], "args: x y z");
    assert_eq!(out[1], "600");
    assert!(
        !Path::new(&out[2]).exists(),
        "script file {} left behind",
        out[2]
    );
}

#[tokio::test]
async fn custom_runtime_with_flag() {
    let rt = Runtime::Custom {
        command: "sh".into(),
        flag: "-e".into(),
    };
    let (r, b) = run(&spec(script(rt, "echo one\nfalse\necho never", &[]))).await;
    let e = r.unwrap_err();
    assert_eq!(e.exit_code(), Some(1));
    assert_eq!(b.out.stdout(), vec!["one"]);
}

#[tokio::test]
async fn python_script() {
    if !have("python3") {
        eprintln!("SKIPPED python_script: python3 is not installed on this machine");
        return;
    }
    let (r, b) = run(&spec(script(
        Runtime::Python,
        "import sys\nprint('py', sys.argv[1:])",
        &["a"],
    )))
    .await;
    r.unwrap();
    assert_eq!(b.out.stdout(), vec!["py ['a']"]);
}

#[tokio::test]
async fn node_script() {
    if !have("node") {
        eprintln!("SKIPPED node_script: node is not installed on this machine");
        return;
    }
    let (r, b) = run(&spec(script(
        Runtime::Node,
        "console.log('js', process.argv.slice(2).join(','))",
        &["a", "b"],
    )))
    .await;
    r.unwrap();
    assert_eq!(b.out.stdout(), vec!["js a,b"]);
}

#[tokio::test]
async fn script_file_is_removed_when_the_future_is_dropped() {
    let b = build(&spec(script(Runtime::Bash, "echo \"$0\"; sleep 30", &[])));
    let fut = b.task.spawn(TaskContext::detached());
    let waited = tokio::time::timeout(Duration::from_secs(5), async {
        let mut fut = std::pin::pin!(fut);
        tokio::select! {
            r = &mut fut => panic!("finished early: {r:?}"),
            lines = wait_lines(&b.out, 1) => lines,
        }
    })
    .await
    .unwrap();
    let path = waited[0].clone();
    for _ in 0..300 {
        if !Path::new(&path).exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("script file {path} still exists after the attempt was dropped");
}

#[tokio::test]
async fn unwritable_script_dir_is_a_clear_fatal_error() {
    let s = spec(script(Runtime::Bash, "echo hi", &[]));
    let b = build_with(
        &s,
        fast().script_dir("/proc/solti-no-such-dir"),
        Default::default(),
    );
    let e = b.task.spawn(TaskContext::detached()).await.unwrap_err();
    assert!(matches!(e, TaskError::Fatal { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("failed to write the script file under \"/proc/solti-no-such-dir\""),
        "{e}"
    );
}
