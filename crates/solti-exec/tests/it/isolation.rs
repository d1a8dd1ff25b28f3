//! Isolation observed from inside the child: rlimits, capabilities, no_new_privs,
//! enforcement policy, and (where cgroup v2 controllers exist) cgroup limits.

use std::time::Duration;

use solti_exec::{ExecError, SubprocessBackendConfig, SubprocessRunner};
use taskvisor::{TaskContext, TaskError};

use crate::harness::*;

async fn stdout_of(config: SubprocessBackendConfig, script: &str) -> Vec<String> {
    let b = build_with(&spec(sh(script)), config, Default::default());
    b.task.spawn(TaskContext::detached()).await.unwrap();
    b.out.stdout()
}

#[tokio::test]
async fn rlimits_are_visible_in_the_child() {
    let config = fast()
        .rlimit_nofile(123)
        .rlimit_core(0)
        .rlimit_fsize(1 << 20)
        .rlimit_cpu(77)
        .rlimit_as(8 << 30);
    let out = stdout_of(config, "ulimit -n; grep -E '^Max (open files|core file size|file size|cpu time|address space)' /proc/self/limits").await;
    assert_eq!(out[0], "123");
    let limits = out[1..].join("\n");
    let row = |name: &str| {
        let line = limits
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {limits}"));
        line[name.len()..]
            .split_whitespace()
            .take(2)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(row("Max open files"), ["123", "123"]);
    assert_eq!(row("Max core file size"), ["0", "0"]);
    assert_eq!(row("Max file size"), ["1048576", "1048576"]);
    assert_eq!(row("Max cpu time"), ["77", "77"]);
    assert_eq!(row("Max address space"), ["8589934592", "8589934592"]);
}

fn status_field(out: &[String], key: &str) -> String {
    out.iter()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("{key} in {out:?}"))
}

#[tokio::test]
async fn capabilities_dropped_except_the_keep_list_and_no_new_privs() {
    let runner = SubprocessRunner::new("caps", fast().drop_all_capabilities(true)).unwrap();
    if !runner.unenforced().is_empty() {
        eprintln!("SKIPPED capabilities test: {:?}", runner.unenforced());
        return;
    }
    let out = stdout_of(
        fast().drop_all_capabilities(true).no_new_privs(true),
        "cat /proc/self/status",
    )
    .await;
    assert_eq!(status_field(&out, "CapEff:"), "0000000000000000");
    assert_eq!(status_field(&out, "CapPrm:"), "0000000000000000");
    assert_eq!(status_field(&out, "CapBnd:"), "0000000000000000");
    assert_eq!(status_field(&out, "CapAmb:"), "0000000000000000");
    assert_eq!(status_field(&out, "NoNewPrivs:"), "1");

    let keep = fast()
        .drop_all_capabilities(true)
        .keep_capabilities(["CAP_NET_BIND_SERVICE"]);
    let out = stdout_of(keep, "cat /proc/self/status").await;
    assert_eq!(status_field(&out, "CapBnd:"), "0000000000000400");
    assert_eq!(status_field(&out, "NoNewPrivs:"), "0");
    // Root regains what the bounding set allows on exec: exactly the kept capability.
    if is_root() {
        assert_eq!(status_field(&out, "CapEff:"), "0000000000000400");
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    })
}

#[tokio::test]
async fn without_isolation_the_child_inherits_capabilities() {
    let out = stdout_of(fast(), "cat /proc/self/status").await;
    assert_eq!(status_field(&out, "NoNewPrivs:"), "0");
}

#[tokio::test]
async fn require_enforcement_fails_attempts_naming_what_is_missing() {
    let not_cgroup = tempfile::tempdir().unwrap();
    let config = fast()
        .cgroup_parent(not_cgroup.path())
        .memory_max(64 << 20)
        .require_enforcement(true);
    let runner = SubprocessRunner::new("strict", config).unwrap();
    assert_eq!(runner.unenforced().len(), 1, "{:?}", runner.unenforced());
    let b = build_runner(&spec(sh("echo should-not-run")), runner);
    let e = b.task.spawn(TaskContext::detached()).await.unwrap_err();
    assert!(matches!(e, TaskError::Fatal { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("isolation is required but cannot be enforced: memory.max ("),
        "{msg}"
    );
    assert!(msg.contains("is not in a cgroup v2 hierarchy"), "{msg}");
    assert!(b.out.stdout().is_empty());

    // Without require_enforcement the same config runs unconfined.
    let lax = fast().cgroup_parent(not_cgroup.path()).memory_max(64 << 20);
    assert_eq!(stdout_of(lax, "echo ran").await, vec!["ran"]);
}

#[tokio::test]
async fn invalid_configs_fail_registration() {
    let mut router = solti_runner::RunnerRouter::new();
    let e = solti_exec::register_subprocess_runner_with_backend(
        &mut router,
        "x",
        fast().memory_max(1 << 20),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            ExecError::InvalidConfig {
                field: "cgroup_parent",
                ..
            }
        ),
        "{e}"
    );
    let e = solti_exec::register_subprocess_runner_with_backend(
        &mut router,
        "x",
        fast().keep_capabilities(["CAP_CHOWN"]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("keep_capabilities"), "{e}");
    let e = solti_exec::register_subprocess_runner_with_backend(
        &mut router,
        "x",
        fast()
            .drop_all_capabilities(true)
            .keep_capabilities(["CAP_NOPE"]),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("unknown capability \"CAP_NOPE\""),
        "{e}"
    );
    solti_exec::register_subprocess_runner(&mut router, "x").unwrap();
    let e = solti_exec::register_subprocess_runner(&mut router, "x").unwrap_err();
    assert!(matches!(e, ExecError::Register(_)), "{e}");
    assert!(router.len() == 1);
}

/// The cgroup used for limit tests: `SOLTI_TEST_CGROUP_PARENT`, or `/sys/fs/cgroup/solti-test`
/// on a pure cgroup v2 host.
fn limits_runner(config: SubprocessBackendConfig) -> Option<SubprocessRunner> {
    let parent = std::env::var("SOLTI_TEST_CGROUP_PARENT")
        .unwrap_or_else(|_| "/sys/fs/cgroup/solti-test".to_owned());
    if !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
        && std::env::var_os("SOLTI_TEST_CGROUP_PARENT").is_none()
    {
        eprintln!(
            "SKIPPED cgroup limit test: /sys/fs/cgroup is not a cgroup v2 root on this host (run it with ../shared/tools/run-in-vm.sh)"
        );
        return None;
    }
    let runner = SubprocessRunner::new("limits", config.cgroup_parent(parent)).unwrap();
    if !runner.unenforced().is_empty() {
        eprintln!("SKIPPED cgroup limit test: {:?}", runner.unenforced());
        return None;
    }
    Some(runner)
}

#[tokio::test]
async fn memory_hog_is_oom_killed_under_memory_max() {
    let Some(runner) = limits_runner(fast().memory_max(32 << 20)) else {
        return;
    };
    // Grows a shell variable to 256 MiB.
    let hog = "x=$(head -c 1048576 /dev/zero | tr '\\0' a); while :; do x=\"$x$x\"; done";
    let b = build_runner(&spec(sh(hog)), runner);
    let r = tokio::time::timeout(
        Duration::from_secs(60),
        b.task.spawn(TaskContext::detached()),
    )
    .await
    .unwrap();
    let e = r.unwrap_err();
    assert!(e.to_string().contains("SIGKILL"), "{e}");
}

#[tokio::test]
async fn fork_bomb_stops_at_pids_max() {
    let Some(runner) = limits_runner(fast().pids_max(16)) else {
        return;
    };
    // Forks until refused (in a subshell, since some shells exit when fork fails), then
    // reads the counters with shell builtins only (no fork needed).
    let bomb = r#"
cg=/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)
( i=0; while [ $i -lt 64 ]; do sleep 5 & i=$((i+1)); done ) 2>/dev/null
read cur < "$cg/pids.current"; echo "$cur"
read ev < "$cg/pids.events"; echo "$ev"
"#;
    let b = build_runner(&spec(sh(bomb)), runner);
    let r = tokio::time::timeout(
        Duration::from_secs(60),
        b.task.spawn(TaskContext::detached()),
    )
    .await
    .unwrap();
    r.unwrap();
    let out = b.out.stdout();
    assert_eq!(out.len(), 2, "{out:?} {:?}", b.out.stderr());
    let current: u64 = out[0].parse().unwrap();
    assert!(current <= 16, "pids.current {current} above pids.max 16");
    let refused: u64 = out[1]
        .strip_prefix("max ")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(refused > 0, "pids.events shows no refused fork: {out:?}");
}

#[tokio::test]
async fn cpu_max_is_written() {
    let Some(runner) = limits_runner(fast().cpu_max(20_000, 100_000)) else {
        return;
    };
    let b = build_runner(
        &spec(sh(
            "cat /sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/cpu.max",
        )),
        runner,
    );
    b.task.spawn(TaskContext::detached()).await.unwrap();
    assert_eq!(b.out.stdout(), vec!["20000 100000"]);
}
