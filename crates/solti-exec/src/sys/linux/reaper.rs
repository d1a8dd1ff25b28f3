//! Finishing, off the async runtime, what a drop could not finish at once.
//!
//! A dropped attempt SIGKILLs its process group and cgroup and then must reap the child and
//! remove the cgroup. Both are immediate for a process that dies on SIGKILL, but a process
//! with a large address space takes a while to die, and one in uninterruptible sleep (a hung
//! NFS read, a stuck device) dies only when that sleep ends, which can take minutes. `Drop`
//! runs on a runtime worker, so instead of blocking there it waits briefly and hands what
//! is left (a [`Leftover`]) to one background thread, the reaper.
//!
//! The reaper keeps every pending leftover and tries them all (one non-blocking try each)
//! on the [`poll`](super::poll) backoff, restarting from its first step whenever a new one
//! arrives, so one stuck process never delays the others. It is started on first use,
//! sleeps on its channel when idle, and lives as long as the process. If it cannot be
//! started (no threads left), the next hand-off tries again, and the caller finishes the
//! leftover inline ([`Leftover::finish_inline`]).
//!
//! This module knows nothing about children or cgroups: `child` and `cgroup` implement
//! [`Leftover`] for what they leave behind.

use std::sync::{Mutex, PoisonError, mpsc};

use super::poll::Backoff;

/// Work a drop could not finish without blocking.
pub(crate) trait Leftover: Send + 'static {
    /// One non-blocking try; `true` when done (or given up, after logging why).
    fn try_finish(&mut self) -> bool;

    /// Finishes on the calling thread, when no reaper thread can be started.
    fn finish_inline(self: Box<Self>);
}

/// Hands `leftover` to the reaper thread (starting it if needed), or finishes it inline
/// when no thread can be started.
pub(crate) fn hand_off(leftover: Box<dyn Leftover>) {
    let mut reaper = REAPER.lock().unwrap_or_else(PoisonError::into_inner);
    let sent = match reaper.as_ref() {
        Some(tx) => tx.send(leftover).map_err(|mpsc::SendError(l)| l),
        None => Err(leftover),
    };
    let Err(leftover) = sent else { return };
    // No thread yet, or it is gone (it only ends when its channel closes): start one.
    let (tx, rx) = mpsc::channel();
    let started = std::thread::Builder::new()
        .name("solti-reaper".into())
        .spawn(move || run(&rx));
    if started.is_err() {
        drop(reaper);
        leftover.finish_inline();
        return;
    }
    // The receiver lives in the thread just started: this send cannot fail.
    let _ = tx.send(leftover);
    *reaper = Some(tx);
}

/// The reaper's channel, once started.
static REAPER: Mutex<Option<mpsc::Sender<Box<dyn Leftover>>>> = Mutex::new(None);

fn run(rx: &mpsc::Receiver<Box<dyn Leftover>>) {
    let mut pending: Vec<Box<dyn Leftover>> = Vec::new();
    let mut backoff = Backoff::new();
    loop {
        // Idle: sleep until something comes. Busy: wait for more at most one backoff step.
        let arrived = if pending.is_empty() {
            match rx.recv() {
                Ok(leftover) => Some(leftover),
                Err(mpsc::RecvError) => return,
            }
        } else {
            let wait = backoff.next();
            match rx.recv_timeout(wait) {
                Ok(leftover) => Some(leftover),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // Nothing more will come; finish what is pending at the same pace.
                    std::thread::sleep(wait);
                    None
                }
            }
        };
        if let Some(leftover) = arrived {
            backoff = Backoff::new();
            pending.push(leftover);
        }
        pending.retain_mut(|l| !l.try_finish());
    }
}
