//! The agent itself is killed with SIGKILL: its direct children die with it
//! (`PR_SET_PDEATHSIG`), and the next runner created under the same cgroup parent kills
//! what escaped (a background job) and removes the dead agent's attempt cgroups.
//!
//! The "agent" is this test binary re-executed with [`AGENT_ENV`] set, running only
//! [`fake_agent_entry_point`].

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use solti_exec::SubprocessRunner;
use taskvisor::TaskContext;

use crate::harness::*;

/// `<pid file>|<cgroup parent, empty for the default config, or PROCESS_GROUP>`: set only
/// in the re-executed fake agent.
const AGENT_ENV: &str = "SOLTI_IT_FAKE_AGENT";
const PROCESS_GROUP: &str = "process-group";

/// Not a test on its own: the body of the fake agent. Without [`AGENT_ENV`] it returns at
/// once.
#[test]
fn fake_agent_entry_point() {
    let Ok(arg) = std::env::var(AGENT_ENV) else {
        return;
    };
    let (pid_file, parent) = arg.split_once('|').unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = match parent {
            "" => fast(),
            PROCESS_GROUP => fast().dangerous_process_group_kill_only(),
            parent => fast().cgroup_parent(parent),
        };
        let runner = SubprocessRunner::new("agent", config).unwrap();
        // A background job (not the direct child, so no death signal for it) and the
        // direct child; the pids are published atomically.
        let script = format!(
            "sleep 300 & echo \"$$ $!\" > '{pid_file}.tmp' && mv '{pid_file}.tmp' '{pid_file}'; sleep 300"
        );
        let b = build_runner(&spec(sh(&script)), runner);
        let r = b.task.spawn(TaskContext::detached()).await;
        panic!("the fake agent's task ended before the agent was killed: {r:?}");
    });
}

/// Kills whatever the test started if it fails half-way.
struct Cleanup {
    pids: Vec<i32>,
    parent: Option<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for &pid in &self.pids {
            if alive(pid) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
        if let Some(parent) = &self.parent {
            for dir in attempt_dirs(parent) {
                let _ = std::fs::write(dir.join("cgroup.kill"), "1");
                for _ in 0..100 {
                    if std::fs::remove_dir(&dir).is_ok() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// The attempt cgroups (`solti-…`) directly under `parent`.
fn attempt_dirs(parent: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(parent)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("solti-"))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// A cgroup parent of this test alone (so that no concurrently created runner elsewhere
/// on the host sweeps our leftovers before we look), when cgroup v2 is writable here.
fn private_parent() -> Option<PathBuf> {
    let probe = SubprocessRunner::new("probe", fast()).unwrap();
    let parent = probe
        .cgroup_parent()?
        .join(format!("solti-it-agent-death-{}", std::process::id()));
    match std::fs::create_dir(&parent) {
        Ok(()) => Some(parent),
        Err(e) => {
            eprintln!("no private cgroup parent ({e}); checking the death signal only");
            None
        }
    }
}

/// Where the fake agent puts attempt cgroups.
enum Mode<'a> {
    /// Under this cgroup parent.
    Cgroup(&'a Path),
    /// Default config (its own cgroup when writable, else the process group).
    Default,
    /// The process-group fallback, forced.
    ProcessGroup,
}

/// Starts the fake agent and waits for its task's `(direct child, background job)` pids;
/// every pid goes into `cleanup` at once.
async fn start_agent(mode: Mode<'_>, cleanup: &mut Cleanup) -> (std::process::Child, i32, i32) {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let mode = match mode {
        Mode::Cgroup(parent) => parent.display().to_string(),
        Mode::Default => String::new(),
        Mode::ProcessGroup => PROCESS_GROUP.to_owned(),
    };
    let mut agent = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "agent_death::fake_agent_entry_point",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(AGENT_ENV, format!("{}|{mode}", pid_file.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    cleanup.pids.push(agent.id() as i32);

    // Generous: the box may be loaded.
    let deadline = Instant::now() + Duration::from_secs(20);
    let pids = loop {
        if let Ok(text) = std::fs::read_to_string(&pid_file) {
            break text
                .split_whitespace()
                .map(|p| p.parse::<i32>().unwrap())
                .collect::<Vec<_>>();
        }
        if let Some(status) = agent.try_wait().unwrap() {
            panic!("the fake agent exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the fake agent never started its task"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let (child, grandchild) = (pids[0], pids[1]);
    cleanup.pids.extend([child, grandchild]);
    assert!(alive(child) && alive(grandchild), "{pids:?}");
    (agent, child, grandchild)
}

/// SIGKILLs the fake agent and checks that its direct child died with it.
async fn kill_agent(mut agent: std::process::Child, child: i32) {
    agent.kill().unwrap(); // SIGKILL
    agent.wait().unwrap();
    assert!(
        gone(&[child], Duration::from_secs(5)).await,
        "the agent's direct child {child} survived the agent's SIGKILL (no death signal?)"
    );
}

#[tokio::test]
async fn without_a_cgroup_only_the_direct_child_dies_with_the_agent() {
    let mut cleanup = Cleanup {
        pids: Vec::new(),
        parent: None,
    };
    let (agent, child, grandchild) = start_agent(Mode::ProcessGroup, &mut cleanup).await;
    kill_agent(agent, child).await;
    // The documented limitation: nothing finds the background job later; the cleanup
    // guard kills it.
    assert!(alive(grandchild));
}

#[tokio::test]
async fn agent_sigkill_leaves_no_task_process_behind() {
    let parent = private_parent();
    let mut cleanup = Cleanup {
        pids: Vec::new(),
        parent: parent.clone(),
    };
    let mode = parent.as_deref().map_or(Mode::Default, Mode::Cgroup);
    let (agent, child, grandchild) = start_agent(mode, &mut cleanup).await;
    kill_agent(agent, child).await;

    let Some(parent) = parent else {
        eprintln!(
            "SKIPPED leftover sweep: no writable cgroup v2 here; the background job {grandchild} \
             escapes (documented limitation of the process-group fallback)"
        );
        return;
    };
    let leftovers = attempt_dirs(&parent);
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    assert!(
        alive(grandchild),
        "the background job should still run until the next runner sweeps"
    );

    // The restarted agent: creating its runner kills and removes the leftovers.
    let restarted = SubprocessRunner::new("restarted", fast().cgroup_parent(&parent)).unwrap();
    // The sweep waited for the cgroup to empty; the bound only covers the last steps of
    // the process's exit becoming visible in /proc.
    assert!(
        gone(&[grandchild], Duration::from_secs(2)).await,
        "the background job {grandchild} survived the sweep"
    );
    assert_eq!(attempt_dirs(&parent), Vec::<PathBuf>::new());

    // The restarted runner still works, and its own cgroups are not swept by another one.
    let b = build_runner(&spec(sh("echo ok; sleep 0.2")), restarted);
    let ctx = TaskContext::detached();
    let run = tokio::spawn(b.task.spawn(ctx));
    wait_lines(&b.out, 1).await;
    let _again = SubprocessRunner::new("again", fast().cgroup_parent(&parent)).unwrap();
    run.await.unwrap().unwrap();
    assert_eq!(b.out.stdout(), ["ok"]);
    drop(cleanup);
}

/// `PR_GET_PDEATHSIG` as seen by the program itself (python, as the shell cannot ask).
const READ_PDEATHSIG: &str = "import ctypes; s = ctypes.c_int(-1); \
     ctypes.CDLL(None).prctl(2, ctypes.byref(s)); print(s.value)";

/// Capability changes before `execve` must not clear the death signal (the kernel clears
/// it when credentials grow).
#[tokio::test]
async fn the_death_signal_is_armed_in_the_program() {
    if Command::new("python3")
        .arg("-c")
        .arg("pass")
        .status()
        .map_or(true, |s| !s.success())
    {
        eprintln!("SKIPPED death signal check: no python3");
        return;
    }
    for (label, config) in [
        ("default", fast()),
        ("no_new_privs", fast().no_new_privs(true)),
        ("caps dropped", fast().drop_all_capabilities(true)),
        (
            "caps dropped, one kept",
            fast()
                .drop_all_capabilities(true)
                .keep_capabilities(["CAP_NET_BIND_SERVICE"]),
        ),
        (
            "caps dropped, one kept, no_new_privs",
            fast()
                .drop_all_capabilities(true)
                .keep_capabilities(["CAP_NET_BIND_SERVICE"])
                .no_new_privs(true),
        ),
    ] {
        let b = build_with(
            &spec(cmd("python3", &["-c", READ_PDEATHSIG])),
            config,
            Default::default(),
        );
        b.task.spawn(TaskContext::detached()).await.unwrap();
        assert_eq!(b.out.stdout(), ["9"], "{label}: SIGKILL (9) expected");
    }
    // The user switch of run_as clears the death signal; the child arms it again. Needs
    // root, and a python3 the task user can reach (not one under /root).
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    });
    if !root || !Path::new("/usr/bin/python3").exists() {
        eprintln!("SKIPPED death signal check with a task user: needs root and /usr/bin/python3");
        return;
    }
    for (label, config) in [
        ("task user", fast().run_as(65534, 65534)),
        (
            "task user, caps dropped, one kept",
            fast()
                .run_as(65534, 65534)
                .drop_all_capabilities(true)
                .keep_capabilities(["CAP_NET_BIND_SERVICE"]),
        ),
    ] {
        let b = build_with(
            &spec(cmd("/usr/bin/python3", &["-c", READ_PDEATHSIG])),
            config,
            Default::default(),
        );
        let r = b.task.spawn(TaskContext::detached()).await;
        assert!(r.is_ok(), "{label}: {r:?} {:?}", b.out.stderr());
        assert_eq!(b.out.stdout(), ["9"], "{label}: SIGKILL (9) expected");
    }
}
