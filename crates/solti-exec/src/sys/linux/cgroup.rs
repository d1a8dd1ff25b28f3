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
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

/// Where attempt cgroups go and what each one gets.
#[derive(Clone, Debug)]
pub(crate) struct CgroupSetup {
    /// Parent directory (inside a cgroup2 mount).
    pub(crate) parent: PathBuf,
    /// `(file, value)` written into each attempt cgroup, e.g. `("memory.max", "67108864")`.
    pub(crate) limits: Vec<(&'static str, String)>,
    /// Emptied attempt cgroups kept for the next attempts (only without limits).
    pub(crate) pool: Arc<CgroupPool>,
}

impl CgroupSetup {
    /// Attempt cgroups under `parent`, each given `limits`.
    pub(crate) fn new(parent: PathBuf, limits: Vec<(&'static str, String)>) -> Self {
        Self {
            parent,
            limits,
            pool: Arc::default(),
        }
    }

    /// Creates the cgroup of one attempt and opens its `cgroup.procs`, or takes an emptied
    /// one from the pool.
    pub(crate) fn create(&self) -> io::Result<AttemptCgroup> {
        // Only kill-only cgroups are reused: one with controllers would carry the previous
        // attempt's charges (page cache against `memory.max`) and counters into the next.
        let pool = self.limits.is_empty().then(|| Arc::clone(&self.pool));
        if let Some(pool) = &pool {
            while let Some((dir, procs)) = pool.take() {
                // Still there and empty (nothing moved into it since): reuse it. Otherwise it
                // is drained and removed like any attempt cgroup, by its drop.
                let reuse = populated_state(&dir) == Some(false);
                let cg = AttemptCgroup {
                    dir,
                    procs: Some(procs),
                    pool: reuse.then(|| Arc::clone(pool)),
                };
                if reuse {
                    return Ok(cg);
                }
            }
        }
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        // The name identifies this agent process, so a restarted agent can recognise and
        // clean up the cgroups of a dead one (see `stale`).
        let dir = self.parent.join(super::stale::attempt_name(seq));
        fs::create_dir(&dir)?;
        let mut cg = AttemptCgroup {
            dir,
            procs: None,
            pool,
        };
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

/// Emptied attempt cgroups (directory and open `cgroup.procs`) of one [`CgroupSetup`]
/// without limits, kept for reuse: creating and removing a cgroup directory (the kernel
/// creates and removes every interface file) was the largest per-attempt cost of the agent
/// in the end-to-end profile (issue #21). At most [`POOL_MAX`]; dropping the pool removes
/// them (a pool lost with its process is swept at the next start like any attempt cgroup,
/// by the dead agent's name).
#[derive(Debug, Default)]
pub(crate) struct CgroupPool(Mutex<Vec<(PathBuf, OwnedFd)>>);

impl CgroupPool {
    fn take(&self) -> Option<(PathBuf, OwnedFd)> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).pop()
    }

    /// Keeps the emptied cgroup, or gives it back when the pool is full.
    fn put(&self, dir: PathBuf, procs: OwnedFd) -> Result<(), (PathBuf, OwnedFd)> {
        let mut pool = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() >= POOL_MAX {
            return Err((dir, procs));
        }
        pool.push((dir, procs));
        Ok(())
    }
}

impl Drop for CgroupPool {
    fn drop(&mut self) {
        let pool = self.0.get_mut().unwrap_or_else(PoisonError::into_inner);
        for (dir, procs) in pool.drain(..) {
            drop(procs);
            // Dropped as an attempt cgroup: killed if anything moved in, then removed.
            drop(AttemptCgroup {
                dir,
                procs: None,
                pool: None,
            });
        }
    }
}

/// One attempt's cgroup. Dropping it kills what is left in it and removes it (or, once
/// empty, returns it to its pool).
#[derive(Debug)]
pub(crate) struct AttemptCgroup {
    dir: PathBuf,
    procs: Option<OwnedFd>,
    /// Where it goes back once empty (kill-only cgroups).
    pool: Option<Arc<CgroupPool>>,
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

    /// Kills the rest, waits (async) until the cgroup is empty, and removes (or recycles) it.
    pub(crate) async fn finish(mut self) {
        // Usually the attempt's processes are gone already: then no `cgroup.kill` is needed.
        if self.release() {
            return;
        }
        self.kill();
        let mut wait = Duration::from_micros(200);
        for _ in 0..REMOVE_TRIES {
            if self.release() {
                return;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(50));
            self.kill();
        }
        // Drop retries once more and then reports.
    }

    /// When the cgroup is empty: returns it to its pool, or removes it (`rmdir` fails while a
    /// process is inside). `true` when done.
    fn release(&mut self) -> bool {
        if let Some(pool) = &self.pool {
            match populated_state(&self.dir) {
                Some(true) => return false,
                Some(false) => {
                    if let Some(procs) = self.procs.take() {
                        match pool.put(std::mem::take(&mut self.dir), procs) {
                            Ok(()) => return true,
                            Err((dir, _)) => self.dir = dir,
                        }
                    }
                }
                // Unreadable (removed from outside?): removal below settles it.
                None => {}
            }
        }
        self.try_remove()
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
        if self.dir.as_os_str().is_empty() || self.release() {
            return;
        }
        self.kill();
        let mut wait = Duration::from_micros(100);
        let mut waited = Duration::ZERO;
        while waited < DROP_WAIT {
            if self.release() {
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
    let setup = CgroupSetup::new(parent.to_path_buf(), Vec::new());
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
/// Most emptied cgroups a pool keeps (more than the attempts that usually run at once).
const POOL_MAX: usize = 64;
/// Longest a dropped attempt cgroup blocks waiting for its killed processes to exit.
const DROP_WAIT: Duration = Duration::from_millis(20);

/// Whether the cgroup at `dir` holds a process (`cgroup.events`); `None` when unreadable.
fn populated_state(dir: &Path) -> Option<bool> {
    let events = fs::read_to_string(dir.join("cgroup.events")).ok()?;
    Some(events.lines().any(|l| l.trim() == "populated 1"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    /// A cgroup parent of this test alone under the process's own cgroup v2 directory, when
    /// this host lets us create one.
    fn private_parent(name: &str) -> Option<PathBuf> {
        let parent = own_cgroup_dir()
            .ok()?
            .join(format!("pooltest-{name}-{}", std::process::id()));
        match fs::create_dir(&parent) {
            Ok(()) => Some(parent),
            Err(e) => {
                eprintln!("no writable cgroup v2 directory here ({e}); nothing to check");
                None
            }
        }
    }

    #[tokio::test]
    async fn emptied_kill_only_cgroups_are_reused_then_removed_with_the_pool() {
        let Some(parent) = private_parent("reuse") else {
            return;
        };
        let setup = CgroupSetup::new(parent.clone(), Vec::new());
        let first = setup.create().unwrap();
        let dir = first.dir.clone();
        first.finish().await;
        assert!(
            dir.exists(),
            "an emptied kill-only cgroup is kept for the next attempt"
        );
        let second = setup.create().unwrap();
        assert_eq!(second.dir, dir, "and reused");
        let third = setup.create().unwrap();
        assert_ne!(third.dir, dir, "a busy one is never handed out twice");
        let third_dir = third.dir.clone();
        drop(second);
        drop(third);
        drop(setup);
        assert!(
            !dir.exists() && !third_dir.exists(),
            "dropping the pool removes them"
        );
        fs::remove_dir(&parent).unwrap();
    }

    #[tokio::test]
    async fn cgroups_with_limits_are_removed_not_pooled() {
        let Some(parent) = private_parent("limits") else {
            return;
        };
        // A limit file that exists in every cgroup v2 directory, controllers or not.
        let setup = CgroupSetup::new(parent.clone(), vec![("cgroup.max.descendants", "1".into())]);
        let cg = setup.create().unwrap();
        let dir = cg.dir.clone();
        cg.finish().await;
        assert!(!dir.exists());
        drop(setup);
        fs::remove_dir(&parent).unwrap();
    }
}
