//! Per-attempt cgroups (v2): creation with limits, killing the whole tree, removal.

use std::{
    ffi::CString,
    fs,
    io::{self, Write as _},
    os::{
        fd::{AsFd, BorrowedFd, OwnedFd},
        unix::{ffi::OsStrExt as _, fs::OpenOptionsExt as _},
    },
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// Where attempt cgroups go and what each one gets.
#[derive(Clone, Debug)]
pub(crate) struct CgroupSetup {
    /// Parent directory (inside a cgroup2 mount).
    pub(crate) parent: PathBuf,
    /// `(file, value)` written into each attempt cgroup, e.g. `("memory.max", "67108864")`.
    pub(crate) limits: Vec<(&'static str, String)>,
}

impl CgroupSetup {
    /// Creates the cgroup of one attempt and opens its `cgroup.procs`.
    pub(crate) fn create(&self) -> io::Result<AttemptCgroup> {
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        // The name identifies this agent process, so a restarted agent can recognise and
        // clean up the cgroups of a dead one (see `stale`).
        let dir = self.parent.join(super::stale::attempt_name(seq));
        fs::create_dir(&dir)?;
        let mut cg = AttemptCgroup { dir, procs: None };
        for (file, value) in &self.limits {
            write_file(&cg.dir.join(file), value).map_err(|e| annotate(&e, &cg.dir.join(file)))?;
        }
        if self.limits.iter().any(|(f, _)| *f == "memory.max") {
            // Without this a memory hog swaps instead of being OOM-killed; the file exists
            // only when swap accounting is on, and then setting it must work.
            let swap = cg.dir.join("memory.swap.max");
            if swap.exists() {
                write_file(&swap, "0").map_err(|e| annotate(&e, &swap))?;
            }
        }
        let procs = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(cg.dir.join("cgroup.procs"))?;
        cg.procs = Some(procs.into());
        Ok(cg)
    }
}

/// One attempt's cgroup. Dropping it kills what is left in it and removes it.
#[derive(Debug)]
pub(crate) struct AttemptCgroup {
    dir: PathBuf,
    procs: Option<OwnedFd>,
}

impl AttemptCgroup {
    /// The open `cgroup.procs`, for the child to join before `execve`.
    pub(crate) fn procs_fd(&self) -> Option<BorrowedFd<'_>> {
        self.procs.as_ref().map(AsFd::as_fd)
    }

    /// Sends `sig` to every process in the cgroup. cgroup v2 has no "signal all" file
    /// except `cgroup.kill` (SIGKILL only), so this reads `cgroup.procs`; a pid in there
    /// belongs to this attempt's tree, and only an exit-and-reuse between the read and the
    /// kill (microseconds) could hit a stranger.
    pub(crate) fn signal(&self, sig: libc::c_int) {
        signal_dir(&self.dir, sig);
    }

    /// SIGKILLs everything in the cgroup (`cgroup.kill`, or a signal loop on kernels
    /// before 5.14).
    pub(crate) fn kill(&self) {
        kill_dir(&self.dir);
    }

    /// Whether any process is still in the cgroup.
    pub(crate) fn populated(&self) -> bool {
        match fs::read_to_string(self.dir.join("cgroup.events")) {
            Ok(ev) => ev.lines().any(|l| l.trim() == "populated 1"),
            Err(_) => false,
        }
    }

    /// Kills the rest, waits (async) until the cgroup is empty, and removes it.
    pub(crate) async fn finish(mut self) {
        self.kill();
        let mut wait = Duration::from_micros(200);
        for _ in 0..REMOVE_TRIES {
            if !self.populated() && self.try_remove() {
                return;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(50));
            self.kill();
        }
        // Drop retries once more and then reports.
    }

    fn try_remove(&mut self) -> bool {
        self.procs = None;
        match fs::remove_dir(&self.dir) {
            Ok(()) => {
                self.dir = PathBuf::new();
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.dir = PathBuf::new();
                true
            }
            Err(_) => false,
        }
    }
}

impl Drop for AttemptCgroup {
    /// Synchronous fallback (no runtime to wait on, or `finish` was cut short): SIGKILL
    /// everything and remove the cgroup if it emptied within [`DROP_WAIT`]; otherwise (a
    /// process in uninterruptible sleep) the reaper thread keeps trying, so the runtime
    /// worker running this drop is not blocked.
    fn drop(&mut self) {
        if self.dir.as_os_str().is_empty() {
            return;
        }
        self.kill();
        let mut wait = Duration::from_micros(100);
        let mut waited = Duration::ZERO;
        while waited < DROP_WAIT {
            if !self.populated() && self.try_remove() {
                return;
            }
            std::thread::sleep(wait);
            waited += wait;
            wait = (wait * 2).min(Duration::from_millis(10));
        }
        self.procs = None;
        let job = super::reaper::Job::Cgroup(std::mem::take(&mut self.dir));
        if let Err(job) = super::reaper::hand_off(job) {
            super::reaper::finish_inline(job);
        }
    }
}

/// SIGKILLs every process in the cgroup at `dir` (`cgroup.kill`, or a signal loop over
/// `cgroup.procs` on kernels before 5.14).
pub(crate) fn kill_dir(dir: &Path) {
    if write_file(&dir.join("cgroup.kill"), "1").is_err() {
        signal_dir(dir, libc::SIGKILL);
    }
}

/// Sends `sig` to every process listed in the `cgroup.procs` of the cgroup at `dir`.
fn signal_dir(dir: &Path, sig: libc::c_int) {
    let Ok(list) = fs::read_to_string(dir.join("cgroup.procs")) else {
        return;
    };
    for pid in list
        .lines()
        .filter_map(|l| l.trim().parse::<libc::pid_t>().ok())
    {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Removes the (empty) cgroup at `dir`; `true` when it is gone.
pub(crate) fn try_remove_dir(dir: &Path) -> bool {
    match fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

/// The agent's own cgroup v2 directory, when cgroup2 is mounted.
pub(crate) fn own_cgroup_dir() -> io::Result<PathBuf> {
    let cgroup = fs::read_to_string("/proc/self/cgroup")?;
    let rel = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no cgroup v2 entry in /proc/self/cgroup",
            )
        })?;
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        if post.split_whitespace().next() != Some("cgroup2") {
            continue;
        }
        let fields: Vec<&str> = pre.split_whitespace().collect();
        let (Some(root), Some(mount)) = (fields.get(3), fields.get(4)) else {
            continue;
        };
        let inner = rel.strip_prefix(root.trim_end_matches('/')).unwrap_or(rel);
        return Ok(Path::new(mount).join(inner.trim_start_matches('/')));
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "cgroup2 is not mounted",
    ))
}

/// Whether `dir` is inside a cgroup2 filesystem.
pub(crate) fn is_cgroup2(dir: &Path) -> bool {
    let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `c` is NUL-terminated and `st` is valid for writes; the result is checked
    // before `st` is read.
    unsafe {
        libc::statfs(c.as_ptr(), st.as_mut_ptr()) == 0
            && st.assume_init().f_type == libc::CGROUP2_SUPER_MAGIC
    }
}

/// Creates `parent` if needed and enables `controllers` for its children. Returns, per
/// controller that cannot be used, why.
pub(crate) fn prepare_parent(
    parent: &Path,
    controllers: &[&'static str],
) -> Result<Vec<(&'static str, String)>, String> {
    if !parent.exists() {
        fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    if !is_cgroup2(parent) {
        return Err(format!(
            "{} is not in a cgroup v2 hierarchy",
            parent.display()
        ));
    }
    let available = fs::read_to_string(parent.join("cgroup.controllers")).unwrap_or_default();
    let enabled = fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap_or_default();
    let mut missing = Vec::new();
    for &c in controllers {
        if enabled.split_whitespace().any(|e| e == c) {
            continue;
        }
        if !available.split_whitespace().any(|e| e == c) {
            missing.push((
                c,
                format!("controller {c} is not available in {} (enable it in the parent's cgroup.subtree_control)", parent.join("cgroup.controllers").display()),
            ));
            continue;
        }
        if let Err(e) = write_file(&parent.join("cgroup.subtree_control"), &format!("+{c}")) {
            missing.push((
                c,
                format!("cannot enable controller {c} in {}: {e}", parent.display()),
            ));
        }
    }
    Ok(missing)
}

/// Whether attempt cgroups can be created under `parent` (tries one).
pub(crate) fn can_create_under(parent: &Path) -> Result<(), String> {
    if !is_cgroup2(parent) {
        return Err(format!(
            "{} is not in a cgroup v2 hierarchy",
            parent.display()
        ));
    }
    let setup = CgroupSetup {
        parent: parent.to_path_buf(),
        limits: Vec::new(),
    };
    setup
        .create()
        .map(drop)
        .map_err(|e| format!("cannot create a cgroup under {}: {e}", parent.display()))
}

fn write_file(path: &Path, value: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
}

fn annotate(e: &io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("writing {}: {e}", path.display()))
}

/// Unique suffix for attempt cgroup names within this agent.
static SEQ: AtomicU64 = AtomicU64::new(0);
const REMOVE_TRIES: usize = 100;
/// Longest a dropped attempt cgroup blocks waiting for its killed processes to exit.
const DROP_WAIT: Duration = Duration::from_millis(20);
