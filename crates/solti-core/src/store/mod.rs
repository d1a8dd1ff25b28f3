//! The state store: one interface every state change goes through.
//!
//! The supervisor writes through [`StateStore`] only, so a durable implementation can replace
//! the in-memory [`MemoryStore`] without touching the supervision logic. Every change bumps the
//! task's `resource_version` and `updated_at`.
//!
//! # Contract
//! - **Synchronous and short.** Every method is called from request handlers, attempt
//!   wrappers and finalizers, on runtime threads: it must not block on I/O. A durable store
//!   keeps an in-memory view that answers reads and applies writes at once, and persists them
//!   in the background.
//! - **Durability points.** [`create`](StateStore::create) must be durable once the future of
//!   a later [`sync`](StateStore::sync) resolves `Ok`: the supervisor calls `sync` after
//!   storing a new task and acknowledges the submission only then. Every other write
//!   (`run_started`, `run_finished`, `finish`, `delete`, sweep removals) may be batched and
//!   persisted later; after a crash a store may come back with any prefix of those writes, but
//!   each task must come back whole (one task's record is written atomically).
//! - **Grouping.** `sync` may wait for a batch: many concurrent `sync` calls may be served by
//!   one write (group commit).
//! - **Restore.** A store opened on existing data presents it before the supervisor is built:
//!   `get`, `query`, `runs` and [`active`](StateStore::active) see the tasks as last persisted,
//!   in their original creation order. The supervisor then closes the runs left open and
//!   starts again, or fails, every task that [`active`](StateStore::active) returns (see
//!   [`SupervisorApi::with_store`](crate::SupervisorApi::with_store)). Unlisted (embedded)
//!   tasks carry code, not data: durable stores do not keep them.
//! - Writes to an unknown (deleted or swept) task are ignored. Terminal phases are sticky.

#[cfg(feature = "disk")]
mod disk;
mod memory;

use std::{collections::BTreeMap, fmt};

use futures_util::future::{self, BoxFuture};
use solti_model::{Task, TaskId, TaskPage, TaskPhase, TaskQuery, TaskRun};
use tokio::time::Instant;

#[cfg(feature = "disk")]
#[cfg_attr(docsrs, doc(cfg(feature = "disk")))]
pub use disk::{DiskStore, DiskStoreError, FORMAT_VERSION};
pub use memory::MemoryStore;

use crate::CoreError;

/// How one attempt (or the whole task) ended, as written to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunEnd {
    /// The phase the run (or task) ended in.
    pub phase: TaskPhase,
    /// When, Unix ms.
    pub finished_at: i64,
    /// Why it failed or was stopped.
    pub error: Option<String>,
    /// The exit code, when the process exited by itself.
    pub exit_code: Option<i32>,
}

impl RunEnd {
    /// An end in `phase` at `finished_at` with an optional error text.
    #[must_use]
    pub const fn new(phase: TaskPhase, finished_at: i64, error: Option<String>) -> Self {
        Self {
            phase,
            finished_at,
            error,
            exit_code: None,
        }
    }
}

/// What a sweep removed.
#[derive(Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SweepReport {
    /// Finished runs dropped.
    pub runs: usize,
    /// Tasks removed.
    pub tasks: Vec<TaskId>,
}

/// Storage of tasks and their run history (see the [module contract](self)).
///
/// Implementations must be cheap and non-blocking: they are called from attempt wrappers.
/// Writes to an unknown (deleted or swept) task are ignored. Terminal phases are sticky.
pub trait StateStore: Send + Sync + 'static {
    /// Stores a new task. `listed` = visible in queries and phase counts. Returns the
    /// terminal tasks evicted to make room (the caller frees their output).
    ///
    /// # Errors
    /// [`CoreError::Capacity`] when the store is full of active tasks; a durable store may
    /// also refuse with [`CoreError::Storage`] when it already knows it cannot persist.
    fn create(&self, task: Task, listed: bool) -> Result<Vec<TaskId>, CoreError>;
    /// Records the start of attempt `attempt` (the task becomes `Running`).
    fn run_started(&self, id: &TaskId, attempt: u32, started_at: i64);
    /// Records the end of attempt `attempt`; ignored when that run is already finished.
    fn run_finished(&self, id: &TaskId, attempt: u32, end: RunEnd);
    /// Writes the terminal phase once; later calls are ignored. Runs still open are closed
    /// with `open_runs` (the attempt future was abandoned). Returns whether it was written.
    fn finish(&self, id: &TaskId, end: RunEnd, open_runs: TaskPhase) -> bool;
    /// Removes a task and its history. Returns whether it existed.
    fn delete(&self, id: &TaskId) -> bool;
    /// One task.
    fn get(&self, id: &TaskId) -> Option<Task>;
    /// Whether the task is stored (cheaper than [`get`](Self::get)).
    fn contains(&self, id: &TaskId) -> bool;
    /// The phase of the task's newest run.
    fn last_run_phase(&self, id: &TaskId) -> Option<TaskPhase>;
    /// Listed tasks matching `query`, oldest first.
    fn query(&self, query: &TaskQuery) -> TaskPage<Task>;
    /// Run history, oldest first; `None` for an unknown task.
    fn runs(&self, id: &TaskId) -> Option<Vec<TaskRun>>;
    /// Count of listed tasks per phase.
    fn phase_counts(&self) -> BTreeMap<TaskPhase, u64>;
    /// Drops finished runs older than the run TTL, then terminal tasks without runs that
    /// have been so for the task TTL.
    fn sweep(&self, now: Instant) -> SweepReport;
    /// Listed tasks that are not terminal, oldest first. Called once, when a supervisor is
    /// built on this store, to find the tasks an earlier process left unfinished.
    fn active(&self) -> Vec<Task>;
    /// Resolves once every write made before the call is durable. The in-memory store has
    /// nothing to wait for.
    ///
    /// # Errors
    /// [`CoreError::Storage`] when the writes could not be persisted (disk full, read-only
    /// file system, I/O error); the message says what failed.
    fn sync(&self) -> BoxFuture<'static, Result<(), CoreError>> {
        Box::pin(future::ready(Ok(())))
    }
}

impl fmt::Debug for dyn StateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn StateStore")
    }
}
