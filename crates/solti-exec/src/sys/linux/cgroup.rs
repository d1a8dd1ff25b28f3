//! Everything this crate does to cgroupfs (v2): finding and checking hierarchies, preparing
//! the attempt cgroup parent, creating, configuring, joining, signalling, killing, draining
//! and removing cgroups, recursively for the leftovers of a dead agent.
//!
//! The primitives take a directory and do one thing each, so other lifetimes than one
//! cgroup per attempt (a pool of reusable cgroups: [`create`], [`configure`], [`drain`],
//! [`remove`]) are compositions of them. [`AttemptCgroup`] is the per-attempt owner used
//! today. Waiting uses the one backoff of [`poll`](super::poll).

use std::{
    fs,
    io::{self, Write as _},
    os::{
        fd::{AsFd, BorrowedFd, OwnedFd},
        unix::fs::OpenOptionsExt as _,
    },
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use nix::{
    sys::{
        signal::{self, Signal},
        statfs::{CGROUP2_SUPER_MAGIC, statfs},
    },
    unistd::Pid,
};

use super::{poll, reaper};

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

    /// Creates the cgroup `name` under the parent, writes the limits and opens its
    /// `cgroup.procs` for the child to join. Removed again (by the drop) on error. Without
    /// limits, an emptied cgroup from the pool is taken instead when there is one.
    pub(crate) fn create(&self, name: &str) -> io::Result<AttemptCgroup> {
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
                    removed: false,
                    pool: reuse.then(|| Arc::clone(pool)),
                };
                if reuse {
                    return Ok(cg);
                }
            }
        }
        let mut cg = AttemptCgroup {
            dir: create(&self.parent, name)?,
            procs: None,
            removed: false,
            pool,
        };
        configure(&cg.dir, &self.limits)?;
        cg.procs = Some(open_procs(&cg.dir)?);
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
                removed: false,
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
    removed: bool,
    /// Where it goes back once empty (kill-only cgroups).
    pool: Option<Arc<CgroupPool>>,
}

impl AttemptCgroup {
    /// The open `cgroup.procs`, for the child to join before `execve`.
    pub(crate) fn procs_fd(&self) -> Option<BorrowedFd<'_>> {
        self.procs.as_ref().map(AsFd::as_fd)
    }

    /// Sends `sig` to every process in the cgroup (see [`signal`]).
    pub(crate) fn signal(&self, sig: Signal) {
        signal(&self.dir, sig);
    }

    /// SIGKILLs everything in the cgroup (see [`kill`]).
    pub(crate) fn kill(&self) {
        kill(&self.dir);
    }

    /// Kills the rest, waits (async) until the cgroup is empty, and removes it; a cgroup
    /// still populated after [`FINISH_WAIT`] is left to the drop (and then the reaper).
    pub(crate) async fn finish(mut self) {
        // Usually the attempt's processes are gone already: then no `cgroup.kill` is needed.
        if self.release() {
            return;
        }
        self.procs = None;
        let dir = self.dir.clone();
        if poll::until(Some(FINISH_WAIT), || drain(&dir)).await {
            self.removed = true;
        }
    }

    /// When the cgroup is empty: returns it to its pool, or removes it (`rmdir` fails while a
    /// process is inside). `true` (and `removed` set) when done.
    fn release(&mut self) -> bool {
        if let Some(pool) = &self.pool
            && populated_state(&self.dir) == Some(false)
            && let Some(procs) = self.procs.take()
        {
            match pool.put(self.dir.clone(), procs) {
                Ok(()) => {
                    self.removed = true;
                    return true;
                }
                Err((_, procs)) => drop(procs),
            }
        }
        if remove(&self.dir).is_ok() {
            self.removed = true;
        }
        self.removed
    }
}

impl Drop for AttemptCgroup {
    /// Synchronous fallback (no runtime to wait on, or `finish` was cut short): drains the
    /// cgroup for up to [`DROP_WAIT`]; otherwise (a process in uninterruptible sleep) the
    /// reaper thread keeps trying, so the runtime worker running this drop is not blocked.
    fn drop(&mut self) {
        if self.removed || self.release() {
            return;
        }
        self.procs = None;
        if !poll::blocking(DROP_WAIT, || drain(&self.dir)) {
            reaper::hand_off(Box::new(Stuck {
                dir: std::mem::take(&mut self.dir),
                since: std::time::Instant::now(),
            }));
        }
    }
}

/// A cgroup still populated after SIGKILL, handed to the reaper.
struct Stuck {
    dir: PathBuf,
    since: std::time::Instant,
}

impl reaper::Leftover for Stuck {
    fn try_finish(&mut self) -> bool {
        let gone = drain(&self.dir);
        if !gone && self.since.elapsed() >= STUCK_PATIENCE {
            tracing::warn!(cgroup = %self.dir.display(),
                "attempt cgroup still populated after SIGKILL for {} s; left in place (the next agent start removes it)",
                STUCK_PATIENCE.as_secs());
            return true;
        }
        gone
    }

    fn finish_inline(self: Box<Self>) {
        if !poll::blocking(INLINE_WAIT, || drain(&self.dir)) {
            tracing::warn!(cgroup = %self.dir.display(),
                "attempt cgroup still populated after SIGKILL; left in place (the next agent start removes it)");
        }
    }
}

/// Creates the cgroup `name` under `parent`.
pub(crate) fn create(parent: &Path, name: &str) -> io::Result<PathBuf> {
    let dir = parent.join(name);
    fs::create_dir(&dir)?;
    Ok(dir)
}

/// Writes `limits` (`(file, value)`) into the cgroup at `dir`; with `memory.max`, also
/// `memory.swap.max = 0` where swap is accounted.
pub(crate) fn configure(dir: &Path, limits: &[(&'static str, String)]) -> io::Result<()> {
    for (file, value) in limits {
        write(dir, file, value)?;
    }
    // Without this a memory hog swaps instead of being OOM-killed; the file exists only
    // when swap accounting is on, and then setting it must work.
    if limits.iter().any(|(f, _)| *f == "memory.max") && dir.join("memory.swap.max").exists() {
        write(dir, "memory.swap.max", "0")?;
    }
    Ok(())
}

/// Opens the `cgroup.procs` of `dir` for writing (close-on-exec): writing `0` to it moves
/// the writer into the cgroup.
pub(crate) fn open_procs(dir: &Path) -> io::Result<OwnedFd> {
    let file = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(dir.join("cgroup.procs"))?;
    Ok(file.into())
}

/// Writes `value` to the control file `file` of the cgroup at `dir`; the error names the
/// file.
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    let path = dir.join(file);
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))
}

/// Reads the control file `file` of the cgroup at `dir` (empty when unreadable).
pub(crate) fn read(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file)).unwrap_or_default()
}

/// Sends `sig` to every process in the cgroup at `dir`. cgroup v2 has no "signal all"
/// file except `cgroup.kill` (SIGKILL only), so this reads `cgroup.procs`; a pid in there
/// belongs to the cgroup's tree, and only an exit-and-reuse between the read and the kill
/// (microseconds) could hit a stranger.
pub(crate) fn signal(dir: &Path, sig: Signal) {
    for pid in read(dir, "cgroup.procs")
        .lines()
        .filter_map(|l| l.trim().parse::<libc::pid_t>().ok())
    {
        let _ = signal::kill(Pid::from_raw(pid), sig);
    }
}

/// SIGKILLs everything in the cgroup at `dir` and below: `cgroup.kill`, or a signal loop
/// over `cgroup.procs` (kernels before 5.14).
pub(crate) fn kill(dir: &Path) {
    if write(dir, "cgroup.kill", "1").is_ok() {
        return;
    }
    signal(dir, Signal::SIGKILL);
    for sub in children(dir) {
        kill(&sub);
    }
}

/// Whether any process is in the cgroup at `dir` or below.
pub(crate) fn populated(dir: &Path) -> bool {
    read(dir, "cgroup.events")
        .lines()
        .any(|l| l.trim() == "populated 1")
}

/// Removes the cgroup at `dir` and any cgroups inside it, deepest first; gone already
/// counts as removed. Fails while a process is in it.
pub(crate) fn remove(dir: &Path) -> io::Result<()> {
    // The common case (no cgroups inside) costs one rmdir; the listing only follows a
    // failure.
    let rmdir = |dir: &Path| match fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    };
    if rmdir(dir).is_ok() {
        return Ok(());
    }
    for sub in children(dir) {
        remove(&sub)?;
    }
    rmdir(dir)
}

/// One non-blocking step of emptying the cgroup at `dir`: SIGKILL what is in it and remove
/// it once empty; `true` when it is gone.
pub(crate) fn drain(dir: &Path) -> bool {
    kill(dir);
    !populated(dir) && remove(dir).is_ok()
}

/// The cgroups directly inside `dir`.
pub(crate) fn children(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// The agent's own cgroup v2 directory, when cgroup2 is mounted.
pub(crate) fn own_dir() -> io::Result<PathBuf> {
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
    statfs(dir).is_ok_and(|st| st.filesystem_type() == CGROUP2_SUPER_MAGIC)
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
    let available = read(parent, "cgroup.controllers");
    let enabled = read(parent, "cgroup.subtree_control");
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
        if let Err(e) = write(parent, "cgroup.subtree_control", &format!("+{c}")) {
            missing.push((
                c,
                format!("cannot enable controller {c} in {}: {e}", parent.display()),
            ));
        }
    }
    Ok(missing)
}

/// Whether cgroups can be created under `parent` (creates and removes `probe_name`).
pub(crate) fn can_create_under(parent: &Path, probe_name: &str) -> Result<(), String> {
    if !is_cgroup2(parent) {
        return Err(format!(
            "{} is not in a cgroup v2 hierarchy",
            parent.display()
        ));
    }
    let dir = create(parent, probe_name)
        .map_err(|e| format!("cannot create a cgroup under {}: {e}", parent.display()))?;
    remove(&dir).map_err(|e| format!("cannot remove {}: {e}", dir.display()))
}

/// Longest `finish` waits (async) for the killed processes of an attempt to exit.
const FINISH_WAIT: Duration = Duration::from_secs(5);
/// Most emptied cgroups a pool keeps (more than the attempts that usually run at once).
const POOL_MAX: usize = 64;

/// Whether the cgroup at `dir` holds a process (`cgroup.events`); `None` when unreadable.
fn populated_state(dir: &Path) -> Option<bool> {
    let events = fs::read_to_string(dir.join("cgroup.events")).ok()?;
    Some(events.lines().any(|l| l.trim() == "populated 1"))
}
/// Longest a dropped attempt cgroup blocks waiting for its killed processes to exit.
const DROP_WAIT: Duration = Duration::from_millis(20);
/// How long the reaper keeps trying to empty and remove a stuck cgroup.
const STUCK_PATIENCE: Duration = Duration::from_secs(600);
/// How long a stuck cgroup gets when the reaper cannot be started.
const INLINE_WAIT: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    /// A cgroup parent of this test alone under the process's own cgroup v2 directory, when
    /// this host lets us create one.
    fn private_parent(name: &str) -> Option<PathBuf> {
        let parent = own_dir()
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
        let first = setup.create("solti-t-1").unwrap();
        let dir = first.dir.clone();
        first.finish().await;
        assert!(
            dir.exists(),
            "an emptied kill-only cgroup is kept for the next attempt"
        );
        let second = setup.create("solti-t-2").unwrap();
        assert_eq!(second.dir, dir, "and reused");
        let third = setup.create("solti-t-3").unwrap();
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
        let cg = setup.create("solti-t-1").unwrap();
        let dir = cg.dir.clone();
        cg.finish().await;
        assert!(!dir.exists());
        drop(setup);
        fs::remove_dir(&parent).unwrap();
    }
}
