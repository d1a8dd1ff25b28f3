//! The threads that perform every clone.
//!
//! Children arm `PR_SET_PDEATHSIG(SIGKILL)` so they die with the agent, but the kernel
//! sends that signal when the *thread* that created the child exits, not the process.
//! Attempts are polled on whatever thread the executor picks: a tokio worker lives as long
//! as its runtime, but a worker that ran `block_in_place` continues as a blocking-pool
//! thread, blocking-pool threads exit after ~10 s idle, and a future can be polled by any
//! `block_on` caller. Spawning there would kill tasks early. So clones run on a few
//! dedicated threads that are started once per process and never stop: the death signal
//! then fires exactly when the agent process dies.
//!
//! The caller blocks until its clone is done, as it did when it cloned itself (the vfork
//! suspends the cloning thread until `execve`), so the handoff adds one thread wakeup.

use std::{
    io,
    num::NonZero,
    os::fd::{AsFd as _, OwnedFd},
    sync::{Arc, Mutex, PoisonError, mpsc},
    thread,
};

use super::spawn::{self, ExecPlan, SpawnFailure, Started};

/// One clone request; the reply goes back on `reply`.
struct Job {
    plan: ExecPlan,
    cgroup_procs: Option<OwnedFd>,
    reply: mpsc::SyncSender<Result<Started, SpawnFailure>>,
}

/// Starts `plan` on a spawner thread (see the module docs); `cgroup_procs` is the open
/// `cgroup.procs` of the attempt cgroup the child joins before `execve`.
pub(crate) fn spawn(
    plan: ExecPlan,
    cgroup_procs: Option<OwnedFd>,
) -> Result<Started, SpawnFailure> {
    let fail = |error| SpawnFailure {
        stage: "spawner thread",
        error,
    };
    let queue = queue().map_err(fail)?;
    let (reply, result) = mpsc::sync_channel(1);
    queue
        .send(Job {
            plan,
            cgroup_procs,
            reply,
        })
        .map_err(|_| fail(io::Error::other("the spawner threads are gone")))?;
    result
        .recv()
        .unwrap_or_else(|_| Err(fail(io::Error::other("a spawner thread died"))))
}

/// The job queue, starting the threads on first use. A failure to start them is returned
/// and retried on the next spawn.
fn queue() -> io::Result<mpsc::Sender<Job>> {
    let mut slot = QUEUE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(queue) = slot.as_ref() {
        return Ok(queue.clone());
    }
    let (queue, jobs) = mpsc::channel::<Job>();
    let jobs = Arc::new(Mutex::new(jobs));
    let wanted = thread::available_parallelism()
        .map_or(2, NonZero::get)
        .clamp(2, MAX_THREADS);
    let mut started = 0;
    let mut last_error = None;
    for i in 0..wanted {
        let jobs = Arc::clone(&jobs);
        // Detached on purpose: the thread must outlive every child it created, i.e. live
        // as long as the process.
        match thread::Builder::new()
            .name(format!("solti-spawn-{i}"))
            .stack_size(THREAD_STACK_BYTES)
            .spawn(move || work(&jobs))
        {
            Ok(_) => started += 1,
            Err(e) => last_error = Some(e),
        }
    }
    if started == 0 {
        return Err(last_error.unwrap_or_else(|| io::Error::other("no spawner thread started")));
    }
    *slot = Some(queue.clone());
    Ok(queue)
}

/// A spawner thread: clones for each job until the queue closes (it never does).
fn work(jobs: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        let result = spawn::spawn(&job.plan, job.cgroup_procs.as_ref().map(|fd| fd.as_fd()));
        drop(job.cgroup_procs);
        if let Err(mpsc::SendError(Ok(started))) = job.reply.send(result) {
            // The caller blocks until it gets the reply, so this cannot happen; if it ever
            // does, do not leave an unmanaged child behind.
            // SAFETY: killpg has no memory-safety preconditions; the group id is our
            // unreaped child's pid.
            unsafe { libc::killpg(started.pid, libc::SIGKILL) };
            spawn::reap_blocking(started.pid);
        }
    }
}

/// The job queue of the spawner threads, once started.
static QUEUE: Mutex<Option<mpsc::Sender<Job>>> = Mutex::new(None);
/// Spawns run concurrently on up to this many threads (bounded by the CPU count).
const MAX_THREADS: usize = 4;
/// The threads only prepare pointers and call `clone`; the child has its own stack.
const THREAD_STACK_BYTES: usize = 256 * 1024;
