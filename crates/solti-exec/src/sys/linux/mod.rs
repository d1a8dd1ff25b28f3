//! Linux backend: `clone(CLONE_VM | CLONE_VFORK)` spawner, pidfd-based waiting, per-attempt
//! cgroups, capabilities and rlimits.

mod caps;
mod cgroup;
mod reaper;
mod spawn;
mod spawner;
mod stale;

use std::{
    ffi::CString,
    io,
    os::{
        fd::{FromRawFd as _, OwnedFd},
        unix::{ffi::OsStrExt as _, fs::PermissionsExt as _, process::ExitStatusExt as _},
    },
    path::{Path, PathBuf},
    process::ExitStatus,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use tokio::{io::unix::AsyncFd, net::unix::pipe};

use self::{caps::CapPlan, cgroup::AttemptCgroup, cgroup::CgroupSetup};
use super::CommandLine;
use crate::{ExecError, SubprocessBackendConfig};

/// The read end of a child's stdout or stderr.
pub(crate) type Pipe = pipe::Receiver;

/// What isolation this runner applies, decided once at registration.
#[derive(Debug)]
pub(crate) struct Isolation {
    cgroup: Option<CgroupSetup>,
    caps: Option<CapPlan>,
    no_new_privs: bool,
    rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
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
            ("rlimit_nofile", libc::RLIMIT_NOFILE, r.nofile),
            ("rlimit_fsize", libc::RLIMIT_FSIZE, r.fsize),
            ("rlimit_core", libc::RLIMIT_CORE, r.core),
            ("rlimit_as", libc::RLIMIT_AS, r.address_space),
            ("rlimit_cpu", libc::RLIMIT_CPU, r.cpu),
            ("rlimit_nproc", libc::RLIMIT_NPROC, r.nproc),
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
                    cgroup = Some(CgroupSetup {
                        parent: parent.clone(),
                        limits: kept,
                    });
                }
                Err(why) => {
                    for (_, file, _) in limits {
                        unenforced.push(format!("{file} ({why})"));
                    }
                }
            }
        }
        if cgroup.is_none() && config.cgroup_kill {
            match cgroup::own_cgroup_dir().map_err(|e| e.to_string()).and_then(|dir| {
                cgroup::can_create_under(&dir)?;
                Ok(dir)
            }) {
                Ok(dir) => cgroup = Some(CgroupSetup { parent: dir, limits: Vec::new() }),
                Err(why) => notes.push(format!(
                    "no per-attempt cgroup ({why}); stopping a task kills its process group only, so processes \
                     that leave it (setsid, double fork) can survive"
                )),
            }
        }

        Ok(Self {
            cgroup,
            caps,
            no_new_privs: config.no_new_privs,
            rlimits,
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
        self.child.pid
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
        self.signal(libc::SIGTERM);
    }

    /// SIGKILL to the process group and everything in the cgroup. Must be called before
    /// [`reap`](Self::reap) (afterwards the group id could in theory be reused).
    pub(crate) fn kill(&self) {
        if let Some(cg) = &self.cgroup {
            cg.kill();
        }
        self.child.signal_group(libc::SIGKILL);
    }

    fn signal(&self, sig: libc::c_int) {
        self.child.signal_group(sig);
        if let Some(cg) = &self.cgroup {
            cg.signal(sig);
        }
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

/// Starts one attempt.
pub(crate) fn spawn(iso: &Isolation, cmd: &CommandLine) -> Result<Running, ExecError> {
    if iso.require && !iso.unenforced.is_empty() {
        return Err(ExecError::IsolationUnavailable {
            missing: iso.unenforced.join("; "),
        });
    }
    let program = resolve(&cmd.program, &cmd.env)?;
    let cstr =
        |field: &'static str, s: &[u8]| CString::new(s).map_err(|_| ExecError::Nul { field });
    let plan = spawn::ExecPlan {
        program: cstr("program", program.as_os_str().as_bytes())?,
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
        rlimits: iso.rlimits.clone(),
        caps: iso.caps,
        no_new_privs: iso.no_new_privs,
    };
    let cgroup = match &iso.cgroup {
        None => None,
        Some(setup) => match setup.create() {
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
    let started = spawner::spawn(plan, procs).map_err(|f| spawn_err(f.stage, f.error))?;
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

/// Finds `program` in the `PATH` of `env` (or the default path) unless it contains `/`.
fn resolve(program: &str, env: &[(String, String)]) -> Result<PathBuf, ExecError> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let path = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
    // Empty entries (the current directory) are not searched: the child's cwd differs
    // from ours and implicit cwd lookup is a classic hijack.
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(program);
        if let Ok(meta) = std::fs::metadata(&candidate)
            && meta.is_file()
            && meta.permissions().mode() & 0o111 != 0
        {
            return Ok(candidate);
        }
    }
    Err(ExecError::CommandNotFound {
        command: program.to_owned(),
        path: path.to_owned(),
    })
}

/// Why `value` cannot be set for `res` by this agent, if it cannot.
fn rlimit_problem(res: libc::__rlimit_resource_t, value: u64) -> Option<String> {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `cur` is a valid out-pointer.
    if unsafe { libc::getrlimit(res, &raw mut cur) } != 0 {
        return Some(format!("getrlimit failed: {}", io::Error::last_os_error()));
    }
    if value <= cur.rlim_max {
        return None;
    }
    match ::caps::has_cap(
        None,
        ::caps::CapSet::Effective,
        ::caps::Capability::CAP_SYS_RESOURCE,
    ) {
        Ok(true) => None,
        _ => Some(format!(
            "above the agent's hard limit {} and no CAP_SYS_RESOURCE",
            cur.rlim_max
        )),
    }
}

/// Our unreaped child. Dropping it unreaped SIGKILLs its group and reaps it (blocking).
#[derive(Debug)]
struct Child {
    pid: libc::pid_t,
    pidfd: Option<AsyncFd<OwnedFd>>,
    reaped: bool,
}

impl Child {
    fn new(pid: libc::pid_t) -> Self {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1. The pid is
        // our unreaped child, so it cannot name another process.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let pidfd = if fd >= 0 {
            // SAFETY: the syscall returned a fresh fd that nothing else owns.
            let owned = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
            // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays open and the
            // same for the AsyncFd's whole lifetime.
            unsafe { AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }.ok()
        } else {
            None
        };
        Self {
            pid,
            pidfd,
            reaped: false,
        }
    }

    async fn exited(&self) {
        if let Some(fd) = &self.pidfd {
            while let Ok(mut guard) = fd.readable().await {
                if self.has_exited() {
                    return;
                }
                guard.clear_ready();
            }
        }
        // No pidfd (kernel < 5.3): poll, backing off to 20 ms.
        let mut wait = Duration::from_micros(100);
        while !self.has_exited() {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(20));
        }
    }

    /// Whether the child has exited, without reaping it.
    fn has_exited(&self) -> bool {
        if self.reaped {
            return true;
        }
        // SAFETY: an all-zero siginfo_t is a valid value to be overwritten.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid out-pointer; WNOWAIT leaves the child waitable.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                self.pid as libc::id_t,
                &raw mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: si_pid is the field waitid fills for WEXITED (0 when nothing changed).
        r != 0 || unsafe { info.si_pid() } != 0
    }

    fn signal_group(&self, sig: libc::c_int) {
        if !self.reaped {
            // SAFETY: killpg has no memory-safety preconditions; the group id is our
            // unreaped child's pid, which cannot be reused yet.
            unsafe { libc::killpg(self.pid, sig) };
        }
    }

    fn reap(&mut self) -> Option<ExitStatus> {
        if self.reaped {
            return None;
        }
        let status = spawn::reap_blocking(self.pid);
        self.reaped = true;
        status.map(ExitStatus::from_raw)
    }
}

impl Drop for Child {
    /// SIGKILLs the group and reaps the child if it is gone within [`DROP_REAP_WAIT`];
    /// otherwise (a process in uninterruptible sleep dies only when that sleep ends) the
    /// reaper thread waits for it, so the runtime worker running this drop is not blocked.
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        self.signal_group(libc::SIGKILL);
        // SAFETY: as above; also covers a leader that left its group.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        let mut wait = Duration::from_micros(50);
        let mut waited = Duration::ZERO;
        while waited < DROP_REAP_WAIT {
            if self.has_exited() {
                self.reap();
                return;
            }
            std::thread::sleep(wait);
            waited += wait;
            wait = (wait * 2).min(Duration::from_millis(5));
        }
        self.reaped = true;
        if let Err(job) = reaper::hand_off(reaper::Job::Child(self.pid)) {
            reaper::finish_inline(job);
        }
    }
}

/// How long a drop waits for a SIGKILLed child before leaving it to the reaper thread.
const DROP_REAP_WAIT: Duration = Duration::from_millis(20);

/// `PATH` used when the child's environment has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
