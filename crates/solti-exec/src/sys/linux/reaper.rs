//! Finishing, off the async runtime, what a drop could not finish at once.
//!
//! A dropped attempt SIGKILLs its process group and cgroup and then must reap the child and
//! remove the cgroup. Both are immediate for a process that dies on SIGKILL, but a process in
//! uninterruptible sleep (a hung NFS read, a stuck device) dies only when that sleep ends,
//! which can take minutes. `Drop` runs on a runtime worker, so instead of blocking there it
//! tries once without waiting and hands what is left to one background thread, the reaper,
//! which waits as long as it takes.
//!
//! The reaper is a plain thread started on first use and kept for the life of the process
//! (it sleeps on a channel when idle). If it cannot be started, the caller finishes the job
//! inline (blocking), as before the reaper existed.

use std::{
    path::PathBuf,
    sync::{Mutex, OnceLock, PoisonError, mpsc},
    time::Duration,
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

/// Hands `job` to the reaper thread. Gives it back when the thread cannot be started.
pub(crate) fn hand_off(job: Job) -> Result<(), Job> {
    static REAPER: OnceLock<Option<Mutex<mpsc::Sender<Job>>>> = OnceLock::new();
    let reaper = REAPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("solti-reaper".into())
            .spawn(move || run(&rx))
            .ok()
            .map(|_| Mutex::new(tx))
    });
    match reaper {
        Some(tx) => tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(job)
            .map_err(|e| e.0),
        None => Err(job),
    }
}

/// Does `job` on the calling thread, blocking until it is done (or given up).
pub(crate) fn finish_blocking(job: Job) {
    match job {
        Job::Child(pid) => {
            spawn::reap_blocking(pid);
        }
        Job::Cgroup(dir) => remove_cgroup(&dir),
    }
}

fn run(rx: &mpsc::Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        finish_blocking(job);
    }
}

/// Kills what is in `dir` until it is empty and removes it; gives up with a warning after
/// [`CGROUP_PATIENCE`].
fn remove_cgroup(dir: &std::path::Path) {
    let mut wait = Duration::from_millis(1);
    let mut waited = Duration::ZERO;
    loop {
        cgroup::kill_dir(dir);
        if cgroup::try_remove_dir(dir) {
            return;
        }
        if waited >= CGROUP_PATIENCE {
            tracing::warn!(cgroup = %dir.display(),
                "attempt cgroup still populated after SIGKILL for {} s; left in place",
                CGROUP_PATIENCE.as_secs());
            return;
        }
        std::thread::sleep(wait);
        waited += wait;
        wait = (wait * 2).min(Duration::from_secs(1));
    }
}

/// How long the reaper keeps trying to empty and remove a cgroup.
const CGROUP_PATIENCE: Duration = Duration::from_secs(600);

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
        while std::path::Path::new(&stat).exists() {
            assert!(Instant::now() < deadline, "child {pid} was never reaped");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
