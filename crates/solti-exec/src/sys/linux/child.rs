//! Our unreaped children: waiting for them (pidfd, or the [`poll`] backoff without one),
//! signalling their process group, reaping, and handing a child that does not die at
//! once to the [`reaper`].

use std::{
    os::{
        fd::{FromRawFd as _, OwnedFd},
        unix::process::ExitStatusExt as _,
    },
    process::ExitStatus,
    time::Duration,
};

use nix::{
    errno::Errno,
    sys::{
        signal::{Signal, kill, killpg},
        wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid},
    },
    unistd::Pid,
};
use tokio::io::unix::AsyncFd;

use super::{poll, reaper};

/// Our unreaped child, leader of its own process group. Dropping it unreaped SIGKILLs its
/// group and reaps it (handing it to the reaper if it takes longer than
/// [`DROP_REAP_WAIT`]).
#[derive(Debug)]
pub(crate) struct Child {
    pid: Pid,
    pidfd: Option<AsyncFd<OwnedFd>>,
    reaped: bool,
}

impl Child {
    pub(crate) fn new(pid: libc::pid_t) -> Self {
        // nix has no pidfd_open. SAFETY: the syscall takes a pid and flags and returns a
        // new fd or -1; the pid is our unreaped child, so it cannot name another process.
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
            pid: Pid::from_raw(pid),
            pidfd,
            reaped: false,
        }
    }

    /// The child's pid (also its process-group id).
    pub(crate) fn pid(&self) -> libc::pid_t {
        self.pid.as_raw()
    }

    /// Resolves once the child has exited (not reaped yet).
    pub(crate) async fn exited(&self) {
        if let Some(fd) = &self.pidfd {
            while let Ok(mut guard) = fd.readable().await {
                if self.has_exited() {
                    return;
                }
                guard.clear_ready();
            }
        }
        // No pidfd (kernel < 5.3).
        poll::until(None, || self.has_exited()).await;
    }

    /// Whether the child has exited, without reaping it.
    fn has_exited(&self) -> bool {
        self.reaped
            || !matches!(
                waitid(
                    Id::Pid(self.pid),
                    WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
                ),
                Ok(WaitStatus::StillAlive)
            )
    }

    /// Sends `sig` to the child's process group (nothing once reaped: the id could be
    /// reused).
    pub(crate) fn signal_group(&self, sig: Signal) {
        if !self.reaped {
            let _ = killpg(self.pid, sig);
        }
    }

    /// Collects the exit status of the (exited) child.
    pub(crate) fn reap(&mut self) -> Option<ExitStatus> {
        if std::mem::replace(&mut self.reaped, true) {
            return None;
        }
        reap_blocking(self.pid.as_raw())
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
        self.signal_group(Signal::SIGKILL);
        // Also covers a leader that left its group.
        let _ = kill(self.pid, Signal::SIGKILL);
        if poll::blocking(DROP_REAP_WAIT, || self.has_exited()) {
            self.reap();
            return;
        }
        self.reaped = true;
        reaper::hand_off(Box::new(Unreaped(self.pid)));
    }
}

/// A SIGKILLed child that has not died yet, handed to the reaper.
struct Unreaped(Pid);

impl reaper::Leftover for Unreaped {
    fn try_finish(&mut self) -> bool {
        !matches!(
            waitpid(self.0, Some(WaitPidFlag::WNOHANG)),
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR)
        )
    }

    fn finish_inline(self: Box<Self>) {
        reap_blocking(self.0.as_raw());
    }
}

/// SIGKILLs a started child nobody will manage (its caller gave up) and has it reaped in
/// the background.
pub(crate) fn abandon(pid: libc::pid_t) {
    let pid = Pid::from_raw(pid);
    // `pid` is our unreaped child (and the leader of its group), so neither id can name
    // another process yet.
    let _ = killpg(pid, Signal::SIGKILL);
    let _ = kill(pid, Signal::SIGKILL);
    reaper::hand_off(Box::new(Unreaped(pid)));
}

/// Waits for our child `pid` (blocking), retrying on EINTR. Used only for a child known to
/// be gone or being SIGKILLed.
pub(crate) fn reap_blocking(pid: libc::pid_t) -> Option<ExitStatus> {
    loop {
        return match waitpid(Pid::from_raw(pid), None) {
            Err(Errno::EINTR) => continue,
            Ok(WaitStatus::Exited(_, code)) => Some(ExitStatus::from_raw((code & 0xff) << 8)),
            Ok(WaitStatus::Signaled(_, sig, core)) => Some(ExitStatus::from_raw(
                sig as i32 | if core { 0x80 } else { 0 },
            )),
            _ => None,
        };
    }
}

/// How long a drop waits for a SIGKILLed child before leaving it to the reaper thread.
const DROP_REAP_WAIT: Duration = Duration::from_millis(20);

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// A handed-off child is reaped in the background: handing off does not wait for it
    /// (the child here would live for 60 s), and once it dies no zombie is left.
    #[test]
    fn a_handed_off_child_is_reaped_without_blocking_the_caller() {
        let child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pid = Pid::from_raw(libc::pid_t::try_from(child.id()).unwrap());
        // Ownership of the pid moves to the reaper.
        std::mem::forget(child);
        reaper::hand_off(Box::new(Unreaped(pid)));
        kill(pid, Signal::SIGKILL).unwrap();
        let stat = format!("/proc/{pid}/stat");
        assert!(
            poll::blocking(Duration::from_secs(30), || !Path::new(&stat).exists()),
            "child {pid} was never reaped"
        );
    }
}
