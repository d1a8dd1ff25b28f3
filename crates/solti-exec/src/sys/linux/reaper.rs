//! Finishing, off the async runtime, what a drop could not finish at once.
//!
//! A dropped attempt SIGKILLs its process group and cgroup and then must reap the child and
//! remove the cgroup. Both are immediate for a process that dies on SIGKILL, but a process
//! with a large address space takes a while to die, and one in uninterruptible sleep (a hung
//! NFS read, a stuck device) dies only when that sleep ends, which can take minutes. `Drop`
//! runs on a runtime worker, so instead of blocking there it waits briefly and hands what
//! is left to one background thread, the reaper.
//!
//! The reaper keeps every pending job and polls them all (`waitpid(WNOHANG)`, one removal
//! attempt per cgroup) with a backoff from 1 ms to 1 s, so one stuck process never delays
//! the others. It is started on first use, sleeps on its channel when idle, and lives as
//! long as the process. If it cannot be started (no threads left), the next hand-off tries
//! again, and the caller finishes the job inline: a child is reaped (blocking, as a plain
//! `waitpid` would), a cgroup gets [`INLINE_CGROUP_WAIT`] and is otherwise left in place
//! with a WARN (the next agent start removes it).

use std::{
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError, mpsc},
    time::{Duration, Instant},
};

use super::{cgroup, spawn};

/// Work left over by a drop.
#[derive(Debug)]
pub(crate) enum Job {
    /// Our SIGKILLed, unreaped child: wait for it.
    Child(libc::pid_t),
    /// An attempt cgroup still populated after SIGKILL: kill again until empty, then remove.
    Cgroup(PathBuf),
}

/// The reaper's channel, once started.
static REAPER: Mutex<Option<mpsc::Sender<Job>>> = Mutex::new(None);

/// Hands `job` to the reaper thread, starting it if needed. Gives the job back when no
/// thread can be started.
pub(crate) fn hand_off(job: Job) -> Result<(), Job> {
    let mut reaper = REAPER.lock().unwrap_or_else(PoisonError::into_inner);
    let job = match reaper.as_ref() {
        Some(tx) => match tx.send(job) {
            Ok(()) => return Ok(()),
            // The thread is gone (it only ends when its channel closes): start another.
            Err(mpsc::SendError(job)) => job,
        },
        None => job,
    };
    let (tx, rx) = mpsc::channel();
    if std::thread::Builder::new()
        .name("solti-reaper".into())
        .spawn(move || run(&rx))
        .is_err()
    {
        return Err(job);
    }
    let sent = tx.send(job).map_err(|e| e.0);
    *reaper = Some(tx);
    sent
}

/// Does `job` on the calling thread: reaps a child (blocking until it dies), or gives a
/// cgroup [`INLINE_CGROUP_WAIT`] to empty and leaves it in place with a WARN otherwise.
pub(crate) fn finish_inline(job: Job) {
    match job {
        Job::Child(pid) => {
            spawn::reap_blocking(pid);
        }
        Job::Cgroup(dir) => {
            let started = Instant::now();
            let mut wait = Duration::from_millis(1);
            while !try_remove_cgroup(&dir) {
                if started.elapsed() >= INLINE_CGROUP_WAIT {
                    tracing::warn!(cgroup = %dir.display(),
                        "attempt cgroup still populated after SIGKILL; left in place");
                    return;
                }
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_millis(50));
            }
        }
    }
}

/// A job and when it arrived.
struct Pending {
    job: Job,
    since: Instant,
}

impl Pending {
    /// One non-blocking try; `true` when the job is done (or given up).
    fn try_finish(&self) -> bool {
        match &self.job {
            Job::Child(pid) => spawn::reap_nohang(*pid),
            Job::Cgroup(dir) => {
                if try_remove_cgroup(dir) {
                    return true;
                }
                if self.since.elapsed() >= CGROUP_PATIENCE {
                    tracing::warn!(cgroup = %dir.display(),
                        "attempt cgroup still populated after SIGKILL for {} s; left in place",
                        CGROUP_PATIENCE.as_secs());
                    return true;
                }
                false
            }
        }
    }
}

fn run(rx: &mpsc::Receiver<Job>) {
    let mut pending: Vec<Pending> = Vec::new();
    let mut tick = MIN_TICK;
    loop {
        // Idle: sleep until a job comes. Busy: take jobs for at most one tick.
        let arrived = if pending.is_empty() {
            match rx.recv() {
                Ok(job) => Some(job),
                Err(mpsc::RecvError) => return,
            }
        } else {
            match rx.recv_timeout(tick) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // Nothing more will come; finish what is pending at the same pace.
                    std::thread::sleep(tick);
                    None
                }
            }
        };
        tick = if arrived.is_some() {
            MIN_TICK
        } else {
            (tick * 2).min(MAX_TICK)
        };
        pending.extend(arrived.map(|job| Pending {
            job,
            since: Instant::now(),
        }));
        pending.retain(|p| !p.try_finish());
    }
}

/// SIGKILLs what is in the cgroup at `dir` and removes it; `true` when it is gone.
fn try_remove_cgroup(dir: &Path) -> bool {
    cgroup::kill_dir(dir);
    cgroup::try_remove_dir(dir)
}

/// How long the reaper keeps trying to empty and remove a cgroup.
const CGROUP_PATIENCE: Duration = Duration::from_secs(600);
/// How long a cgroup gets when the reaper cannot be started.
const INLINE_CGROUP_WAIT: Duration = Duration::from_millis(500);
/// Polling interval of pending jobs: from this, doubling while nothing new arrives ...
const MIN_TICK: Duration = Duration::from_millis(1);
/// ... up to this.
const MAX_TICK: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A handed-off child is reaped in the background: handing off does not wait for it
    /// (the child here would live for 60 s), and once it dies no zombie is left.
    #[test]
    fn a_handed_off_child_is_reaped_without_blocking_the_caller() {
        let child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // Ownership of the pid moves to the reaper.
        std::mem::forget(child);
        hand_off(Job::Child(pid)).unwrap();
        // SAFETY: kill has no memory-safety preconditions; `pid` is our unreaped child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let stat = format!("/proc/{pid}/stat");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Path::new(&stat).exists() {
            assert!(Instant::now() < deadline, "child {pid} was never reaped");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
