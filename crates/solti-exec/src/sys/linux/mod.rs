//! Linux backend: `clone(CLONE_VM | CLONE_VFORK)` spawner, pidfd-based waiting, per-attempt
//! cgroups, capabilities and rlimits.
//!
//! Modules, each using only those listed before it: `poll` (the one backoff), `reaper`
//! (finishes what a drop left), `cgroup` (every cgroupfs primitive), `stale` (attempt cgroup
//! names, the sweep of a dead agent's), `caps`, `child` (waiting, signalling, reaping),
//! `spawn` (the clone and the child side up to `execve`), `spawner` (the threads that
//! clone), and this file ([`start`] and [`Running`], used by the attempt).

mod caps;
mod cgroup;
mod child;
mod poll;
mod reaper;
mod spawn;
mod spawner;
mod stale;

use std::{
    ffi::CString,
    io,
    os::unix::ffi::OsStrExt as _,
    path::Path,
    process::ExitStatus,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use nix::{
    sys::{resource::Resource, signal::Signal},
    unistd::{Uid, User},
};
use tokio::net::unix::pipe;

use self::{
    caps::CapPlan,
    cgroup::{AttemptCgroup, CgroupSetup},
    child::Child,
};
use super::CommandLine;
use crate::{ExecError, SubprocessBackendConfig, config::RunAs};

/// The read end of a child's stdout or stderr.
pub(crate) type Pipe = pipe::Receiver;

/// What isolation this runner applies, decided once at registration.
#[derive(Debug)]
pub(crate) struct Isolation {
    cgroup: Option<CgroupSetup>,
    caps: Option<CapPlan>,
    no_new_privs: bool,
    rlimits: Vec<(Resource, u64)>,
    run_as: Option<RunAs>,
    /// The task user's home directory, when tasks run as another user.
    task_home: Option<String>,
    /// Configured items that cannot be applied, as `item (cause)`.
    unenforced: Vec<String>,
    /// Other degradations worth one warning (e.g. tree kill without a cgroup).
    notes: Vec<String>,
    require: bool,
    cgroup_failure_warned: AtomicBool,
}

impl Isolation {
    /// Validates what only the OS can check (capability names) and probes what this host
    /// can enforce.
    pub(crate) fn probe(config: &SubprocessBackendConfig) -> Result<Self, ExecError> {
        let mut unenforced = Vec::new();
        let mut notes = Vec::new();

        let caps = if config.drop_all_capabilities {
            let plan = CapPlan::new(&config.keep_capabilities)?;
            match CapPlan::unenforceable() {
                None => Some(plan),
                Some(why) => {
                    unenforced.push(format!("capability dropping ({why})"));
                    None
                }
            }
        } else {
            None
        };

        let r = &config.rlimits;
        let mut rlimits = Vec::new();
        for (name, res, value) in [
            ("rlimit_nofile", Resource::RLIMIT_NOFILE, r.nofile),
            ("rlimit_fsize", Resource::RLIMIT_FSIZE, r.fsize),
            ("rlimit_core", Resource::RLIMIT_CORE, r.core),
            ("rlimit_as", Resource::RLIMIT_AS, r.address_space),
            ("rlimit_cpu", Resource::RLIMIT_CPU, r.cpu),
            ("rlimit_nproc", Resource::RLIMIT_NPROC, r.nproc),
        ] {
            let Some(value) = value else { continue };
            match rlimit_problem(res, value) {
                None => rlimits.push((res, value)),
                Some(why) => unenforced.push(format!("{name} ({why})")),
            }
        }

        let mut limits: Vec<(&'static str, &'static str, String)> = Vec::new();
        if let Some((quota, period)) = config.cpu_max {
            limits.push(("cpu", "cpu.max", format!("{quota} {period}")));
        }
        if let Some(bytes) = config.memory_max {
            limits.push(("memory", "memory.max", bytes.to_string()));
        }
        if let Some(n) = config.pids_max {
            limits.push(("pids", "pids.max", n.to_string()));
        }
        if !limits.is_empty() && config.cgroup_parent.is_none() {
            return Err(ExecError::invalid(
                "cgroup_parent",
                "required when cpu_max, memory_max or pids_max is set",
            ));
        }
        let mut cgroup = None;
        if let Some(parent) = &config.cgroup_parent {
            let controllers: Vec<&'static str> = limits.iter().map(|(c, _, _)| *c).collect();
            match cgroup::prepare_parent(parent, &controllers) {
                Ok(missing) => {
                    let mut kept = Vec::new();
                    for (controller, file, value) in limits {
                        match missing.iter().find(|(c, _)| *c == controller) {
                            Some((_, why)) => unenforced.push(format!("{file} ({why})")),
                            None => kept.push((file, value)),
                        }
                    }
                    cgroup = Some(CgroupSetup::new(parent.clone(), kept));
                }
                Err(why) => {
                    for (_, file, _) in limits {
                        unenforced.push(format!("{file} ({why})"));
                    }
                }
            }
        }
        if cgroup.is_none() && config.cgroup_kill {
            match cgroup::own_dir().map_err(|e| e.to_string()).and_then(|dir| {
                cgroup::can_create_under(&dir, &stale::next_attempt_name())?;
                Ok(dir)
            }) {
                Ok(dir) => cgroup = Some(CgroupSetup::new(dir, Vec::new())),
                Err(why) => notes.push(format!(
                    "no per-attempt cgroup ({why}); stopping a task kills its process group only, so processes \
                     that leave it (setsid, double fork) can survive"
                )),
            }
        }

        let task_home = match config.run_as {
            None => None,
            Some(run_as) => {
                check_run_as(run_as, cgroup.as_ref().map(|c| c.parent.as_path()))?;
                Some(home_of(run_as.uid).unwrap_or_else(|| "/".to_owned()))
            }
        };

        Ok(Self {
            cgroup,
            caps,
            no_new_privs: config.no_new_privs,
            rlimits,
            run_as: config.run_as,
            task_home,
            unenforced,
            notes,
            require: config.require_enforcement,
            cgroup_failure_warned: AtomicBool::new(false),
        })
    }

    /// Configured isolation that this host cannot apply, as `item (cause)`.
    pub(crate) fn unenforced(&self) -> &[String] {
        &self.unenforced
    }

    /// Degradations that are not configured isolation (one warning each at registration).
    pub(crate) fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The task user's home directory (`/` when the password database has none), when
    /// tasks run as another user.
    pub(crate) fn task_home(&self) -> Option<&str> {
        self.task_home.as_deref()
    }

    /// The parent of attempt cgroups, when attempts get one.
    pub(crate) fn cgroup_parent(&self) -> Option<&Path> {
        self.cgroup.as_ref().map(|c| c.parent.as_path())
    }

    /// Kills and removes the attempt cgroups that dead agent processes left under the
    /// attempt cgroup parent (blocks up to about a second when there are some).
    pub(crate) fn sweep_stale(&self) -> super::Swept {
        let Some(setup) = &self.cgroup else {
            return super::Swept::default();
        };
        stale::sweep(&setup.parent)
    }
}

/// A started attempt: the child, its cgroup and its output pipes.
#[derive(Debug)]
pub(crate) struct Running {
    child: Child,
    cgroup: Option<AttemptCgroup>,
    stdout: Option<Pipe>,
    stderr: Option<Pipe>,
}

impl Running {
    /// The child's pid (also its process-group id).
    pub(crate) fn pid(&self) -> libc::pid_t {
        self.child.pid()
    }

    /// Takes the stdout and stderr pipes (once).
    pub(crate) fn take_output(&mut self) -> Option<(Pipe, Pipe)> {
        Some((self.stdout.take()?, self.stderr.take()?))
    }

    /// Resolves once the main process has exited; it is not reaped yet, so its pid and
    /// process-group id cannot be reused until [`reap`](Self::reap).
    pub(crate) async fn exited(&self) {
        self.child.exited().await;
    }

    /// SIGTERM to the process group and to every process in the cgroup.
    pub(crate) fn terminate(&self) {
        self.child.signal_group(Signal::SIGTERM);
        if let Some(cg) = &self.cgroup {
            cg.signal(Signal::SIGTERM);
        }
    }

    /// SIGKILL to the process group and everything in the cgroup. Must be called before
    /// [`reap`](Self::reap) (afterwards the group id could in theory be reused).
    pub(crate) fn kill(&self) {
        if let Some(cg) = &self.cgroup {
            cg.kill();
        }
        self.child.signal_group(Signal::SIGKILL);
    }

    /// Collects the exit status of the (exited) main process.
    pub(crate) fn reap(&mut self) -> Option<ExitStatus> {
        self.child.reap()
    }

    /// Kills whatever is left in the cgroup, waits for it to empty and removes it.
    pub(crate) async fn cleanup(mut self) {
        if let Some(cg) = self.cgroup.take() {
            cg.finish().await;
        }
    }
}

/// Starts the process of one attempt (in its own cgroup when attempts get one). The steps
/// that touch the file system (program lookup, `cwd`, `execve`) run on the spawner
/// threads, and the wait for them is bounded by `timeout`.
pub(crate) async fn start(
    iso: &Isolation,
    cmd: &CommandLine,
    timeout: Duration,
) -> Result<Running, ExecError> {
    if iso.require && !iso.unenforced.is_empty() {
        return Err(ExecError::IsolationUnavailable {
            missing: iso.unenforced.join("; "),
        });
    }
    let cstr =
        |field: &'static str, s: &[u8]| CString::new(s).map_err(|_| ExecError::Nul { field });
    let search_path = cmd
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
    let program = if cmd.program.contains('/') {
        spawner::Program::Path(cstr("program", cmd.program.as_bytes())?)
    } else {
        cstr("program", cmd.program.as_bytes())?;
        spawner::Program::Search {
            name: cmd.program.clone(),
            path: search_path.to_owned(),
        }
    };
    let plan = spawn::ExecPlan {
        argv: std::iter::once(cmd.program.as_str())
            .chain(cmd.args.iter().map(String::as_str))
            .map(|a| cstr("argument", a.as_bytes()))
            .collect::<Result<_, _>>()?,
        envp: cmd
            .env
            .iter()
            .map(|(k, v)| cstr("environment", format!("{k}={v}").as_bytes()))
            .collect::<Result<_, _>>()?,
        cwd: cmd
            .cwd
            .as_ref()
            .map(|c| cstr("cwd", c.as_os_str().as_bytes()))
            .transpose()?,
        rlimits: iso
            .rlimits
            .iter()
            .map(|&(res, value)| (res as libc::__rlimit_resource_t, value))
            .collect(),
        caps: iso.caps,
        no_new_privs: iso.no_new_privs,
        run_as: iso.run_as.map(|r| (r.uid, r.gid)),
    };
    // cgroupfs lives in memory: creating the attempt cgroup does not block.
    let cgroup = match &iso.cgroup {
        None => None,
        Some(setup) => match setup.create(&stale::next_attempt_name()) {
            Ok(cg) => Some(cg),
            Err(source) if iso.require => {
                return Err(ExecError::Cgroup {
                    path: setup.parent.clone(),
                    source,
                });
            }
            Err(e) => {
                if !iso.cgroup_failure_warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(parent = %setup.parent.display(), error = %e,
                        "cannot create an attempt cgroup; running without one (limits not enforced, \
                         tree kill by process group only); warned once");
                }
                None
            }
        },
    };
    let spawn_err = |stage, source| ExecError::Spawn {
        program: cmd.program.clone(),
        stage,
        source,
    };
    // The spawner thread gets its own copy of the descriptor, so nothing it uses can be
    // closed (and its number reused) under it.
    let procs = cgroup
        .as_ref()
        .and_then(AttemptCgroup::procs_fd)
        .map(|fd| fd.try_clone_to_owned())
        .transpose()
        .map_err(|e| spawn_err("joining the cgroup", e))?;
    let mut pending =
        spawner::submit(program, plan, procs).map_err(|f| spawn_err(f.stage, f.error))?;
    // On timeout (or if this future is dropped) `pending` is dropped: a child that still
    // starts is killed and reaped, and the cgroup is removed by its own drop.
    let started = match tokio::time::timeout(timeout, pending.reply()).await {
        Err(_) => {
            return Err(ExecError::SpawnTimeout {
                program: cmd.program.clone(),
                timeout,
            });
        }
        Ok(None) => {
            return Err(spawn_err(
                "spawner thread",
                io::Error::other("a spawner thread died"),
            ));
        }
        Ok(Some(Err(spawner::JobError::NotFound))) => {
            return Err(ExecError::CommandNotFound {
                command: cmd.program.clone(),
                path: search_path.to_owned(),
            });
        }
        Ok(Some(Err(spawner::JobError::Failed(f)))) => return Err(spawn_err(f.stage, f.error)),
        Ok(Some(Ok(started))) => started,
    };
    let child = Child::new(started.pid);
    let io_err = |source| ExecError::Spawn {
        program: cmd.program.clone(),
        stage: "output pipes",
        source,
    };
    let stdout = Pipe::from_owned_fd(started.stdout).map_err(io_err)?;
    let stderr = Pipe::from_owned_fd(started.stderr).map_err(io_err)?;
    Ok(Running {
        child,
        cgroup,
        stdout: Some(stdout),
        stderr: Some(stderr),
    })
}

/// Refuses a task user the agent cannot switch to, or one that could write the cgroup
/// files bounding it (the attempt cgroup parent or one of its ancestors is writable by it).
fn check_run_as(run_as: RunAs, cgroup_parent: Option<&Path>) -> Result<(), ExecError> {
    let refuse = |reason: String| ExecError::RunAs {
        uid: run_as.uid,
        gid: run_as.gid,
        reason,
    };
    for cap in [
        ::caps::Capability::CAP_SETUID,
        ::caps::Capability::CAP_SETGID,
    ] {
        match ::caps::has_cap(None, ::caps::CapSet::Effective, cap) {
            Ok(true) => {}
            Ok(false) => {
                return Err(refuse(format!(
                    "the agent lacks {cap}, needed to switch users (run the agent as root)"
                )));
            }
            Err(e) => return Err(refuse(format!("cannot read the agent's capabilities: {e}"))),
        }
    }
    let Some(parent) = cgroup_parent else {
        return Ok(());
    };
    // Moving a process needs write access to the target's cgroup.procs and to that of the
    // common ancestor; limits are files in the attempt cgroup, created by the agent. So the
    // task user must not own (or be able to write) the parent or anything above it.
    let mut dir = Some(parent);
    while let Some(d) = dir {
        if !cgroup::is_cgroup2(d) {
            break;
        }
        for path in [d.to_path_buf(), d.join("cgroup.procs")] {
            if let Ok(meta) = std::fs::metadata(&path)
                && writable_by(&meta, run_as)
            {
                return Err(refuse(format!(
                    "{} is writable by the task user, so tasks could lift their limits or leave \
                     their cgroup; give the agent a cgroup owned by root",
                    path.display()
                )));
            }
        }
        dir = d.parent();
    }
    Ok(())
}

/// Whether `uid`/`gid` (not root) may write a file with these permissions.
fn writable_by(meta: &std::fs::Metadata, run_as: RunAs) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    if run_as.uid == 0 {
        return false;
    }
    let mode = meta.mode();
    (meta.uid() == run_as.uid && mode & 0o200 != 0)
        || (meta.gid() == run_as.gid && mode & 0o020 != 0)
        || mode & 0o002 != 0
}

/// The home directory of `uid` in the password database.
fn home_of(uid: u32) -> Option<String> {
    let user = User::from_uid(Uid::from_raw(uid)).ok()??;
    user.dir
        .to_str()
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
}

/// Why `value` cannot be set for `res` by this agent, if it cannot.
fn rlimit_problem(res: Resource, value: u64) -> Option<String> {
    let hard = match nix::sys::resource::getrlimit(res) {
        Ok((_, hard)) => hard,
        Err(e) => return Some(format!("getrlimit failed: {e}")),
    };
    if value <= hard {
        return None;
    }
    match ::caps::has_cap(
        None,
        ::caps::CapSet::Effective,
        ::caps::Capability::CAP_SYS_RESOURCE,
    ) {
        Ok(true) => None,
        _ => Some(format!(
            "above the agent's hard limit {hard} and no CAP_SYS_RESOURCE"
        )),
    }
}

/// `PATH` used when the child's environment has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
