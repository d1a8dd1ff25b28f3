//! The state store: one interface every state change goes through.
//!
//! The supervisor writes through [`StateStore`] only, so a durable implementation (and
//! re-adopting tasks after an agent restart) can replace [`MemoryStore`] without touching the
//! supervision logic. Every change bumps the task's `resource_version` and `updated_at`.

mod memory;

use std::collections::BTreeMap;

use solti_model::{Task, TaskId, TaskPage, TaskPhase, TaskQuery, TaskRun};
use tokio::time::Instant;

pub(crate) use memory::MemoryStore;

use crate::CoreError;

/// How one attempt ended, as written to the store.
#[derive(Clone, Debug)]
pub(crate) struct RunEnd {
    pub(crate) phase: TaskPhase,
    pub(crate) finished_at: i64,
    pub(crate) error: Option<String>,
    pub(crate) exit_code: Option<i32>,
}

/// What a sweep removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SweepReport {
    pub(crate) runs: usize,
    pub(crate) tasks: Vec<TaskId>,
}

/// Storage of tasks and their run history.
///
/// Implementations must be cheap and non-blocking: they are called from attempt wrappers.
/// Writes to an unknown (deleted or swept) task are ignored. Terminal phases are sticky.
pub(crate) trait StateStore: Send + Sync + 'static {
    /// Stores a new task. `listed` = visible in queries and phase counts. Returns the
    /// terminal tasks evicted to make room (their output is freed by the caller).
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
}
