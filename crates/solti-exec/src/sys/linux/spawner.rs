//! The threads that perform every clone, and everything before it that touches the file
//! system.
//!
//! Children arm `PR_SET_PDEATHSIG(SIGKILL)` so they die with the agent, but the kernel
//! sends that signal when the *thread* that created the child exits, not the process.
//! Attempts are polled on whatever thread the executor picks: a tokio worker lives as long
//! as its runtime, but a worker that ran `block_in_place` continues as a blocking-pool
//! thread, blocking-pool threads exit after ~10 s idle, and a future can be polled by any
//! `block_on` caller. Spawning there would kill tasks early. So clones run on dedicated
//! threads that are started on demand and never stop: the death signal then fires exactly
//! when the agent process dies.
//!
//! The same threads look the program up in `PATH`, and the cloned child enters the task's
//! `cwd` and execs the program. Each of these can block without bound on a hung mount (a
//! dead NFS server). The caller therefore awaits the reply with a timeout instead of
//! blocking a runtime worker: a timed-out job keeps its thread until the file system
//! answers, and a child that starts after its caller gave up is killed and reaped at once.
//! When every thread is busy (a burst, or threads stuck on a hung mount) another one is
//! started, up to [`MAX_THREADS`]; past that, jobs wait in the queue and their callers time
//! out.

use std::{
    ffi::CString,
    io,
    num::NonZero,
    os::{
        fd::{AsFd as _, OwnedFd},
        unix::{ffi::OsStrExt as _, fs::PermissionsExt as _},
    },
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread,
};

use tokio::sync::oneshot;

use super::{
    child,
    spawn::{self, ExecPlan, SpawnFailure, Started},
};

/// The program of a job: a path, or a name to look up in a `PATH` value.
#[derive(Debug)]
pub(crate) enum Program {
    /// Contains a `/`: used as given.
    Path(CString),
    /// Looked up in `path` (`:`-separated; empty entries are skipped).
    Search {
        /// The name as given.
        name: String,
        /// The `PATH` to search.
        path: String,
    },
}

/// Why a job did not start a child.
#[derive(Debug)]
pub(crate) enum JobError {
    /// The program is not an executable file in any `PATH` entry.
    NotFound,
    /// A step failed.
    Failed(SpawnFailure),
}

/// The reply to one job.
pub(crate) type Reply = Result<Started, JobError>;

/// One clone request; the reply goes back on `reply`.
struct Job {
    program: Program,
    plan: ExecPlan,
    cgroup_procs: Option<OwnedFd>,
    reply: oneshot::Sender<Reply>,
}

/// A queued job's reply. Dropping it abandons the job: a child started anyway (now or
/// later) is SIGKILLed and reaped, never left running unmanaged.
#[derive(Debug)]
pub(crate) struct Pending(oneshot::Receiver<Reply>);

impl Pending {
    /// Waits for the reply; `None` if the spawner thread died without one.
    pub(crate) async fn reply(&mut self) -> Option<Reply> {
        (&mut self.0).await.ok()
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // After close() the thread's send fails (and it abandons the child itself); a reply
        // sent before it is still here to take.
        self.0.close();
        if let Ok(Ok(started)) = self.0.try_recv() {
            child::abandon(started.pid);
        }
    }
}

/// Queues a job for a spawner thread (see the module docs); `cgroup_procs` is the open
/// `cgroup.procs` of the attempt cgroup the child joins before `execve`.
pub(crate) fn submit(
    program: Program,
    plan: ExecPlan,
    cgroup_procs: Option<OwnedFd>,
) -> Result<Pending, SpawnFailure> {
    let fail = |error| SpawnFailure {
        stage: "spawner thread",
        error,
    };
    let (reply, result) = oneshot::channel();
    let pool = pool().map_err(fail)?;
    if pool.idle.load(Ordering::Acquire) == 0 {
        pool.grow();
    }
    pool.queue
        .send(Job {
            program,
            plan,
            cgroup_procs,
            reply,
        })
        .map_err(|_| fail(io::Error::other("the spawner threads are gone")))?;
    Ok(Pending(result))
}

/// The spawner threads and their queue.
struct Pool {
    queue: mpsc::Sender<Job>,
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    /// Threads waiting for a job.
    idle: Arc<AtomicUsize>,
    /// Threads started.
    threads: AtomicUsize,
}

impl Pool {
    /// Starts one more thread unless [`MAX_THREADS`] run already. A failure to start one
    /// is not an error: the job waits for a busy thread instead.
    fn grow(&self) -> Option<io::Error> {
        let n = self.threads.fetch_add(1, Ordering::AcqRel);
        if n >= MAX_THREADS {
            self.threads.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let jobs = Arc::clone(&self.jobs);
        let idle = Arc::clone(&self.idle);
        // Detached on purpose: the thread must outlive every child it created, i.e. live
        // as long as the process.
        match thread::Builder::new()
            .name(format!("solti-spawn-{n}"))
            .stack_size(THREAD_STACK_BYTES)
            .spawn(move || work(&jobs, &idle))
        {
            Ok(_) => None,
            Err(e) => {
                self.threads.fetch_sub(1, Ordering::AcqRel);
                Some(e)
            }
        }
    }
}

/// The pool, starting its first threads on first use. A failure to start any is returned
/// and retried on the next spawn.
fn pool() -> io::Result<&'static Pool> {
    let mut slot = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(pool) = *slot {
        return Ok(pool);
    }
    let (queue, jobs) = mpsc::channel::<Job>();
    let pool = Pool {
        queue,
        jobs: Arc::new(Mutex::new(jobs)),
        idle: Arc::new(AtomicUsize::new(0)),
        threads: AtomicUsize::new(0),
    };
    let wanted = thread::available_parallelism()
        .map_or(2, NonZero::get)
        .clamp(2, BASE_THREADS);
    let mut last_error = None;
    for _ in 0..wanted {
        if let Some(e) = pool.grow() {
            last_error = Some(e);
        }
    }
    if pool.threads.load(Ordering::Acquire) == 0 {
        return Err(last_error.unwrap_or_else(|| io::Error::other("no spawner thread started")));
    }
    // One pool per process, alive as long as the process (like its threads).
    let pool: &'static Pool = Box::leak(Box::new(pool));
    *slot = Some(pool);
    Ok(pool)
}

/// A spawner thread: looks up and clones for each job until the queue closes (it never
/// does).
fn work(jobs: &Mutex<mpsc::Receiver<Job>>, idle: &AtomicUsize) {
    loop {
        idle.fetch_add(1, Ordering::AcqRel);
        let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        idle.fetch_sub(1, Ordering::AcqRel);
        let Ok(job) = job else { return };
        if job.reply.is_closed() {
            // The caller timed out while the job was queued.
            continue;
        }
        let result = match resolve(job.program) {
            Some(program) => spawn::clone_and_exec(
                &program,
                &job.plan,
                job.cgroup_procs.as_ref().map(|fd| fd.as_fd()),
            )
            .map_err(JobError::Failed),
            None => Err(JobError::NotFound),
        };
        drop(job.cgroup_procs);
        if let Err(Ok(started)) = job.reply.send(result) {
            // The caller gave up (spawn timeout, dropped attempt) while we were blocked:
            // nobody manages this child, so it must not run.
            child::abandon(started.pid);
        }
    }
}

/// The path to exec, or `None` when a searched name is not found.
fn resolve(program: Program) -> Option<CString> {
    match program {
        Program::Path(path) => Some(path),
        Program::Search { name, path } => {
            find_in_path(&name, &path).and_then(|p| CString::new(p.as_os_str().as_bytes()).ok())
        }
    }
}

/// The first executable regular file `dir/name` over the entries of `path`. Empty entries
/// (the current directory) are not searched: the child's cwd differs from ours and implicit
/// cwd lookup is a classic hijack.
fn find_in_path(name: &str, path: &str) -> Option<PathBuf> {
    path.split(':').filter(|d| !d.is_empty()).find_map(|dir| {
        let candidate = Path::new(dir).join(name);
        let meta = std::fs::metadata(&candidate).ok()?;
        (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(candidate)
    })
}

/// The pool, once started.
static POOL: Mutex<Option<&'static Pool>> = Mutex::new(None);
/// Threads started up front (bounded by the CPU count, at least 2).
const BASE_THREADS: usize = 4;
/// Most threads ever started: more only while the others are busy (stuck on a hung mount).
const MAX_THREADS: usize = 32;
/// The threads only prepare pointers, stat `PATH` entries and call `clone`; the child has
/// its own stack.
const THREAD_STACK_BYTES: usize = 256 * 1024;
