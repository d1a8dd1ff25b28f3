//! Tasks run as another user (`run_as`) and the environment they get.
//!
//! The user switch needs root (this sandbox and the VM run tests as root; elsewhere the
//! tests print SKIPPED). The cgroup tests need a pure cgroup v2 host: run them in the VM
//! with `../shared/tools/run-in-vm.sh` (see docs/subprocess-isolation.md §5).

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

use solti_core::{StateConfig, SupervisorApi};
use solti_exec::{ExecError, SubprocessBackendConfig, SubprocessRunner};
use solti_model::{Runtime, TaskEnv, TaskKind, TaskSpec};
use solti_runner::RunnerRouter;
use taskvisor::{ControllerConfig, SupervisorConfig, TaskContext};

use crate::harness::*;

/// `nobody` on most systems; used by number, so it needs no passwd entry (the VM has none).
const TASK_UID: u32 = 65534;
const TASK_GID: u32 = 65534;

fn root_or_skip(what: &str) -> bool {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    });
    if !root {
        eprintln!("SKIPPED {what}: switching users needs root");
    }
    root
}

fn as_task_user() -> SubprocessBackendConfig {
    fast().run_as(TASK_UID, TASK_GID)
}

async fn stdout_of(
    config: SubprocessBackendConfig,
    sub: solti_model::SubprocessSpec,
) -> Vec<String> {
    let b = build_with(&spec(sub), config, TaskEnv::new());
    let r = b.task.spawn(TaskContext::detached()).await;
    assert!(r.is_ok(), "{r:?} stderr {:?}", b.out.stderr());
    b.out.stdout()
}

fn field<'a>(out: &'a [String], key: &str) -> &'a str {
    out.iter()
        .find_map(|l| l.strip_prefix(key))
        .map_or_else(|| panic!("{key} in {out:?}"), str::trim)
}

#[tokio::test]
async fn run_as_switches_user_and_group_and_clears_supplementary_groups() {
    if !root_or_skip("run_as") {
        return;
    }
    let out = stdout_of(
        as_task_user(),
        sh("id -u; id -g; grep -E '^(Uid|Gid|Groups):' /proc/self/status; echo \"home=$HOME\""),
    )
    .await;
    assert_eq!(out[0], "65534", "{out:?}");
    assert_eq!(out[1], "65534", "{out:?}");
    assert_eq!(field(&out, "Uid:"), "65534\t65534\t65534\t65534");
    assert_eq!(field(&out, "Gid:"), "65534\t65534\t65534\t65534");
    assert_eq!(field(&out, "Groups:"), "");
    // The task user's home from the password database, `/` when it has no entry.
    let home = field(&out, "home=");
    assert!(home == "/" || home == "/nonexistent", "{home}");

    // Without run_as the task runs as the agent (root here).
    let out = stdout_of(fast(), sh("id -u")).await;
    assert_eq!(out, ["0"]);
}

#[tokio::test]
async fn run_as_enters_cwd_as_the_task_user() {
    if !root_or_skip("run_as cwd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut s = sh("pwd");
    s.cwd = Some(open.clone());
    assert_eq!(
        stdout_of(as_task_user(), s).await,
        [open.display().to_string()]
    );

    let mut s = sh("pwd");
    s.cwd = Some(private);
    let b = build_with(&spec(s), as_task_user(), TaskEnv::new());
    let e = b.task.spawn(TaskContext::detached()).await.unwrap_err();
    assert!(e.is_fatal(), "{e:?}");
    assert!(e.to_string().contains("(chdir): Permission denied"), "{e}");
}

#[tokio::test]
async fn run_as_script_mode_can_read_its_script() {
    if !root_or_skip("run_as script") {
        return;
    }
    let sub = script(
        Runtime::Custom {
            command: "sh".to_owned(),
            flag: String::new(),
        },
        "id -u; ls -ln \"$0\" | cut -c1-10",
        &[],
    );
    let out = stdout_of(as_task_user(), sub).await;
    // Still private (0600), now owned by the task user.
    assert_eq!(out, ["65534", "-rw-------"]);
}

#[tokio::test]
async fn run_as_keeps_listed_capabilities_through_the_ambient_set() {
    if !root_or_skip("run_as capabilities") {
        return;
    }
    let config = as_task_user()
        .drop_all_capabilities(true)
        .keep_capabilities(["CAP_NET_BIND_SERVICE"]);
    let out = stdout_of(config, cmd("cat", &["/proc/self/status"])).await;
    assert_eq!(field(&out, "Uid:"), "65534\t65534\t65534\t65534");
    for set in ["CapEff:", "CapPrm:", "CapBnd:", "CapAmb:"] {
        assert_eq!(field(&out, set), "0000000000000400", "{set}");
    }
    // Without a keep-list a task user holds nothing.
    let out = stdout_of(
        as_task_user()
            .drop_all_capabilities(true)
            .no_new_privs(true),
        cmd("cat", &["/proc/self/status"]),
    )
    .await;
    for set in ["CapEff:", "CapPrm:", "CapBnd:", "CapAmb:"] {
        assert_eq!(field(&out, set), "0000000000000000", "{set}");
    }
    assert_eq!(field(&out, "NoNewPrivs:"), "1");
}

#[tokio::test]
async fn clean_environment_by_default() {
    let mut s = cmd("env", &[]);
    s.env = TaskEnv::new().with("FROM_TASK", "t");
    let b = build_with(&spec(s), fast(), TaskEnv::new().with("FROM_RUNNER", "r"));
    b.task.spawn(TaskContext::detached()).await.unwrap();
    let out = b.out.stdout();
    let keys: Vec<&str> = out
        .iter()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    // The test process has dozens of variables (CARGO_*, RUST_*, ...); none but these pass.
    for k in &keys {
        assert!(
            ["PATH", "HOME", "LANG", "TZ", "FROM_TASK", "FROM_RUNNER"].contains(k),
            "{k} leaked into the task: {out:?}"
        );
    }
    assert!(out.contains(&"FROM_TASK=t".to_owned()), "{out:?}");
    assert!(out.contains(&"FROM_RUNNER=r".to_owned()), "{out:?}");
    if let Ok(path) = std::env::var("PATH") {
        assert!(out.contains(&format!("PATH={path}")), "{out:?}");
    }

    // Opt-in inheritance passes the rest of the agent's environment.
    let b = build_with(
        &spec(cmd("env", &[])),
        fast().inherit_env(true),
        TaskEnv::new(),
    );
    b.task.spawn(TaskContext::detached()).await.unwrap();
    let inherited = b.out.stdout();
    if let Ok(v) = std::env::var("CARGO_MANIFEST_DIR") {
        assert!(
            inherited.contains(&format!("CARGO_MANIFEST_DIR={v}")),
            "{inherited:?}"
        );
    }
}

#[tokio::test]
async fn task_env_may_set_home_over_the_task_users() {
    if !root_or_skip("run_as HOME") {
        return;
    }
    let mut s = sh("echo $HOME");
    s.env = TaskEnv::new().with("HOME", "/tmp");
    assert_eq!(stdout_of(as_task_user(), s).await, ["/tmp"]);
}

// ---- cgroup v2 (VM) -------------------------------------------------------------------

/// A fresh parent for attempt cgroups on a pure cgroup v2 host, or `None` (SKIPPED).
fn v2_parent(name: &str) -> Option<PathBuf> {
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        eprintln!(
            "SKIPPED {name}: /sys/fs/cgroup is not a cgroup v2 root on this host (run it with ../shared/tools/run-in-vm.sh)"
        );
        return None;
    }
    Some(PathBuf::from("/sys/fs/cgroup").join(name))
}

/// Reads the lines the task wrote to `file` (written with a rename, so complete).
async fn wait_file(file: &Path) -> String {
    for _ in 0..4000 {
        if let Ok(s) = std::fs::read_to_string(file) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the task never wrote {}", file.display());
}

/// Names of the attempt cgroups (`solti-…`) under `parent`.
fn attempt_cgroups(parent: &Path) -> Vec<String> {
    std::fs::read_dir(parent)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("solti-"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn task_user_cannot_lift_its_cgroup_limits() {
    if !root_or_skip("cgroup limits as task user") {
        return;
    }
    let Some(parent) = v2_parent("solti-user-limits") else {
        return;
    };
    let probe = r#"cg=/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)
for f in memory.max pids.max; do
  if echo max > "$cg/$f" 2>/dev/null; then echo "$f=written"; else echo "$f=refused"; fi
done
read m < "$cg/memory.max"; echo "memory.max is $m"
read p < "$cg/pids.max"; echo "pids.max is $p""#;
    let limits = |c: SubprocessBackendConfig| {
        c.cgroup_parent(&parent)
            .memory_max(64 << 20)
            .pids_max(64)
            .require_enforcement(true)
    };

    let runner = SubprocessRunner::new("user", limits(as_task_user())).unwrap();
    let b = build_runner(&spec(sh(probe)), runner);
    b.task.spawn(TaskContext::detached()).await.unwrap();
    assert_eq!(
        b.out.stdout(),
        [
            "memory.max=refused",
            "pids.max=refused",
            "memory.max is 67108864",
            "pids.max is 64"
        ],
        "{:?}",
        b.out.stderr()
    );

    // Control: a task running as the agent (root) can lift them, which is why run_as
    // matters.
    let runner = SubprocessRunner::new("agent-user", limits(fast())).unwrap();
    let b = build_runner(&spec(sh(probe)), runner);
    b.task.spawn(TaskContext::detached()).await.unwrap();
    assert_eq!(
        b.out.stdout(),
        [
            "memory.max=written",
            "pids.max=written",
            "memory.max is max",
            "pids.max is max"
        ]
    );
    assert!(attempt_cgroups(&parent).is_empty());
    let _ = std::fs::remove_dir(&parent);
}

/// The escape of issue #15: move into a sibling cgroup, `setsid`, and outlive DELETE.
/// Returns `(escapee pid, whether the move worked, whether it survived DELETE)`.
async fn sibling_escape(parent: &Path, config: SubprocessBackendConfig) -> (i32, bool, bool) {
    let sibling = parent.join("escape");
    std::fs::create_dir_all(&sibling).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let report = dir.path().join("report");
    // The escapee reports only once it leads its own session, so DELETE cannot catch it
    // in the task's process group by coming early.
    let body = format!(
        r#"sh -c 'if echo $$ > "$1/cgroup.procs" 2>/dev/null; then m=moved; else m=stayed; fi
exec setsid sh -c "echo \$\$ $m > $2.tmp; mv $2.tmp $2; exec sleep 1000"' escapee {sib} {rep} &
sleep 1000"#,
        sib = sibling.display(),
        rep = report.display()
    );

    let mut router = RunnerRouter::new();
    solti_exec::register_subprocess_runner_with_backend(
        &mut router,
        "default",
        config.cgroup_parent(parent).pids_max(64),
    )
    .unwrap();
    let api = SupervisorApi::new(
        SupervisorConfig::default().with_grace(Duration::from_secs(3)),
        ControllerConfig::default(),
        vec![],
        router,
        StateConfig::default(),
    )
    .await
    .unwrap();
    let task = TaskSpec::builder("escape", TaskKind::Subprocess(sh(&body)), 120_000u64)
        .build()
        .unwrap();
    let id = api.submit(&task).await.unwrap();
    let line = wait_file(&report).await;
    let (pid, how) = line.trim().split_once(' ').unwrap();
    let pid: i32 = pid.parse().unwrap();
    let moved = how == "moved";
    assert!(api.delete_task(&id).await.unwrap());
    // DELETE returns once the task is removed; its attempt ends (tree killed, cgroup
    // removed) right after.
    let mut left = attempt_cgroups(parent);
    for _ in 0..1000 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        left = attempt_cgroups(parent);
    }
    assert!(
        left.is_empty(),
        "attempt cgroups left after DELETE: {left:?}"
    );
    let survived = !gone(&[pid], Duration::from_secs(3)).await;
    api.shutdown().await.unwrap();
    // Clean up what escaped (the control case).
    let _ = std::fs::write(sibling.join("cgroup.kill"), "1");
    for _ in 0..200 {
        if std::fs::remove_dir(&sibling).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (pid, moved, survived)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_user_cannot_escape_to_a_sibling_cgroup_and_delete_leaves_nothing() {
    if !root_or_skip("sibling escape") {
        return;
    }
    let Some(parent) = v2_parent("solti-user-escape") else {
        return;
    };
    let (pid, moved, survived) = sibling_escape(&parent, as_task_user()).await;
    assert!(!moved, "the task user moved {pid} into a sibling cgroup");
    assert!(!survived, "{pid} survived DELETE");

    // Control: as the agent's user (root) the same task escapes and survives DELETE.
    let (pid, moved, survived) = sibling_escape(&parent, fast()).await;
    assert!(
        moved && survived,
        "control: pid {pid} moved={moved} survived={survived}"
    );
    let _ = std::fs::remove_dir(&parent);
}

#[tokio::test]
async fn run_as_refuses_a_cgroup_parent_the_task_user_can_write() {
    if !root_or_skip("writable cgroup parent") {
        return;
    }
    let Some(parent) = v2_parent("solti-user-owned") else {
        return;
    };
    std::fs::create_dir_all(&parent).unwrap();
    std::os::unix::fs::chown(&parent, Some(TASK_UID), Some(TASK_GID)).unwrap();
    let e = SubprocessRunner::new(
        "owned",
        as_task_user().cgroup_parent(&parent).memory_max(64 << 20),
    )
    .unwrap_err();
    assert!(matches!(e, ExecError::RunAs { .. }), "{e}");
    assert!(
        e.to_string().contains("is writable by the task user"),
        "{e}"
    );
    let _ = std::fs::remove_dir(&parent);
}
