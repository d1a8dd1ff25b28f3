//! The in-memory [`StateStore`].

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use solti_model::{
    SubprocessMode, Task, TaskEnv, TaskId, TaskKind, TaskPage, TaskPhase, TaskQuery, TaskRun,
};
use solti_runner::now_ms;
use tokio::time::Instant;

use super::{RunEnd, StateStore, SweepReport};
use crate::{CoreError, StateConfig};

/// Tasks and run history in a `std` mutex, bounded by [`StateConfig`]: the library's
/// default store. The lock is never held across an `.await`; every operation is a short map
/// update. Nothing survives the process.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    max_tasks: usize,
    max_spec_bytes: usize,
    max_runs: usize,
    run_ttl: Duration,
    task_ttl: Duration,
}

#[derive(Debug, Default)]
struct Inner {
    /// Boxed: a record is a few hundred bytes; growing the map then moves pointers, and its
    /// spare buckets cost 8 bytes each instead of a whole record.
    tasks: HashMap<TaskId, Box<Record>>,
    /// Every task by creation sequence: queries list oldest first.
    order: BTreeMap<u64, TaskId>,
    /// Terminal tasks by creation sequence: eviction takes the oldest first.
    terminal: BTreeMap<u64, TaskId>,
    next_seq: u64,
    /// Listed tasks per phase, indexed like `TaskPhase::ALL`.
    counts: [u64; TaskPhase::ALL.len()],
    /// Sum of every record's `spec_bytes`.
    spec_bytes: usize,
    /// Most tasks held since the task map was last shrunk. The map's own `capacity()` is no
    /// guide: removals leave tombstones that lower it without freeing anything.
    tasks_high: usize,
}

#[derive(Debug)]
struct Record {
    task: Task,
    seq: u64,
    listed: bool,
    /// The client-controlled size of the spec (see [`spec_bytes`]).
    spec_bytes: usize,
    runs: VecDeque<RunRecord>,
    /// When a terminal task last had no runs; the task TTL counts from here.
    idle_since: Option<Instant>,
}

#[derive(Debug)]
struct RunRecord {
    run: TaskRun,
    /// When the run finished, on the tokio clock (TTL checks work under paused time).
    finished: Option<Instant>,
}

// === impl MemoryStore ===

impl MemoryStore {
    /// An empty store bounded by `cfg` (`max_tasks`, `max_spec_bytes`, `max_runs_per_task`,
    /// the TTLs).
    #[must_use]
    pub fn new(cfg: &StateConfig) -> Self {
        let cfg = cfg.clone().normalized();
        Self {
            inner: Mutex::new(Inner::default()),
            max_tasks: cfg.max_tasks,
            max_spec_bytes: cfg.max_spec_bytes,
            max_runs: cfg.max_runs_per_task,
            run_ttl: cfg.run_ttl,
            task_ttl: cfg.task_ttl,
        }
    }

    /// Stores a new task like [`StateStore::create`]; returns the ids of the terminal tasks
    /// evicted to make room.
    pub(crate) fn create_evicting(
        &self,
        task: Task,
        listed: bool,
    ) -> Result<Vec<TaskId>, CoreError> {
        let bytes = spec_bytes(&task);
        let mut evicted = Vec::new();
        let mut inner = self.lock();
        while inner.tasks.len() >= self.max_tasks
            || inner.spec_bytes.saturating_add(bytes) > self.max_spec_bytes
        {
            let Some((_, oldest)) = inner.terminal.pop_first() else {
                return Err(if inner.tasks.len() >= self.max_tasks {
                    CoreError::Capacity {
                        what: "tasks (StateConfig::max_tasks, all active)",
                        limit: self.max_tasks,
                    }
                } else {
                    CoreError::Capacity {
                        what: "bytes of task specs (StateConfig::max_spec_bytes, all active)",
                        limit: self.max_spec_bytes,
                    }
                });
            };
            inner.remove(&oldest);
            evicted.push(oldest);
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.insert(seq, task, listed, bytes, VecDeque::new());
        Ok(evicted)
    }

    /// A task's record for persisting: creation sequence, whether listed, task and runs.
    #[cfg(feature = "disk")]
    pub(crate) fn snapshot(&self, id: &TaskId) -> Option<Snapshot> {
        let inner = self.lock();
        let rec = inner.tasks.get(id)?;
        Some(Snapshot {
            seq: rec.seq,
            listed: rec.listed,
            task: rec.task.clone(),
            runs: rec.runs.iter().map(|r| r.run.clone()).collect(),
        })
    }

    /// Puts back a task read from durable storage, with its creation sequence, ignoring the
    /// bounds (a later `create` evicts as usual). Finished runs and a terminal task's idle
    /// time count from their wall-clock times, so the TTLs continue across the restart.
    #[cfg(feature = "disk")]
    pub(crate) fn restore(&self, snap: Snapshot) {
        let now = Instant::now();
        let now_wall = now_ms();
        let at = |wall: i64| {
            let ago = Duration::from_millis(u64::try_from(now_wall - wall).unwrap_or(0));
            now.checked_sub(ago).unwrap_or(now)
        };
        let runs: VecDeque<RunRecord> = snap
            .runs
            .into_iter()
            .map(|run| RunRecord {
                finished: run.finished_at.map(at),
                run,
            })
            .collect();
        let bytes = spec_bytes(&snap.task);
        let updated = snap.task.metadata.updated_at;
        let id = snap.task.metadata.id.clone();
        let terminal = snap.task.status.phase.is_terminal();
        let mut inner = self.lock();
        if inner.tasks.contains_key(&id) {
            return;
        }
        inner.next_seq = inner.next_seq.max(snap.seq.saturating_add(1));
        inner.insert(snap.seq, snap.task, snap.listed, bytes, runs);
        if terminal
            && let Some(rec) = inner.tasks.get_mut(&id)
            && rec.runs.is_empty()
        {
            // The task TTL counts from when it last had no runs: at most its last update.
            rec.idle_since = Some(at(updated));
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves maps that are still structurally valid (every
        // update is a few field writes), so keep serving rather than poisoning the agent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl StateStore for MemoryStore {
    fn create(&self, task: Task, listed: bool) -> Result<Vec<TaskId>, CoreError> {
        self.create_evicting(task, listed)
    }

    fn run_started(&self, id: &TaskId, attempt: u32, started_at: i64) {
        let max_runs = self.max_runs;
        let mut inner = self.lock();
        inner.update(id, |rec| {
            if rec.task.status.phase.is_terminal() {
                return false;
            }
            rec.task.status.phase = TaskPhase::Running;
            rec.task.status.attempt = attempt;
            rec.runs.push_back(RunRecord {
                run: TaskRun::started(attempt, started_at),
                finished: None,
            });
            while rec.runs.len() > max_runs {
                // Drop the oldest finished run; attempts never overlap, so at most one is open.
                let pos = rec
                    .runs
                    .iter()
                    .position(|r| r.finished.is_some())
                    .unwrap_or(0);
                rec.runs.remove(pos);
            }
            true
        });
    }

    fn run_finished(&self, id: &TaskId, attempt: u32, end: RunEnd) {
        let mut inner = self.lock();
        inner.update(id, |rec| {
            let Some(run) = rec.runs.iter_mut().rev().find(|r| r.run.attempt == attempt) else {
                return false;
            };
            if run.finished.is_some() {
                return false;
            }
            close_run(run, &end);
            if !rec.task.status.phase.is_terminal() {
                rec.task.status.exit_code = end.exit_code;
                rec.task.status.error.clone_from(&end.error);
            }
            true
        });
    }

    fn finish(&self, id: &TaskId, end: RunEnd, open_runs: TaskPhase) -> bool {
        let mut inner = self.lock();
        inner.update(id, |rec| {
            if rec.task.status.phase.is_terminal() {
                return false;
            }
            for run in rec.runs.iter_mut().filter(|r| r.finished.is_none()) {
                close_run(
                    run,
                    &RunEnd {
                        phase: open_runs,
                        ..end.clone()
                    },
                );
            }
            rec.task.status.phase = end.phase;
            rec.task.status.error = end.error;
            if end.exit_code.is_some() {
                rec.task.status.exit_code = end.exit_code;
            }
            if rec.runs.is_empty() {
                rec.idle_since = Some(Instant::now());
            }
            true
        })
    }

    fn delete(&self, id: &TaskId) -> bool {
        let mut inner = self.lock();
        let existed = inner.remove(id);
        if existed {
            inner.compact();
        }
        existed
    }

    fn get(&self, id: &TaskId) -> Option<Task> {
        self.lock().tasks.get(id).map(|r| r.task.clone())
    }

    fn contains(&self, id: &TaskId) -> bool {
        self.lock().tasks.contains_key(id)
    }

    fn last_run_phase(&self, id: &TaskId) -> Option<TaskPhase> {
        self.lock()
            .tasks
            .get(id)
            .and_then(|r| r.runs.back())
            .map(|r| r.run.phase)
    }

    fn query(&self, query: &TaskQuery) -> TaskPage<Task> {
        let inner = self.lock();
        let limit = query.effective_limit() as usize;
        let offset = query.offset as usize;
        let mut total = 0u64;
        let mut items = Vec::new();
        // Page first: a spec is copied only while the page stays within its byte budget, so
        // a listing never clones hundreds of megabytes under the lock to refuse them later.
        let budget = query
            .max_bytes
            .map_or(usize::MAX, |b| usize::try_from(b).unwrap_or(usize::MAX));
        let mut bytes = 0usize;
        let mut full = false;
        // Without a slot filter the per-phase counts already give `total`, so the walk stops
        // once the page is complete instead of visiting every task (a client polling
        // `status=succeeded&limit=1` for a count would otherwise scan the whole store under
        // the lock on every request).
        let known = query.slot.is_none().then(|| match query.phase {
            Some(phase) => inner.counts[phase_index(phase)],
            None => inner.counts.iter().sum(),
        });
        for id in inner.order.values() {
            let Some(rec) = inner.tasks.get(id) else {
                continue;
            };
            if !rec.listed || !query.matches(&rec.task) {
                continue;
            }
            let index = total as usize;
            total += 1;
            if index >= offset && items.len() < limit && !full {
                bytes = bytes.saturating_add(rec.spec_bytes);
                if bytes > budget {
                    full = true;
                } else {
                    items.push(rec.task.clone());
                }
            }
            if known.is_some() && (items.len() >= limit || full) {
                break;
            }
        }
        TaskPage::new(items, known.unwrap_or(total))
    }

    fn runs(&self, id: &TaskId) -> Option<Vec<TaskRun>> {
        self.lock()
            .tasks
            .get(id)
            .map(|r| r.runs.iter().map(|r| r.run.clone()).collect())
    }

    fn phase_counts(&self) -> BTreeMap<TaskPhase, u64> {
        let counts = self.lock().counts;
        TaskPhase::ALL.into_iter().zip(counts).collect()
    }

    fn active(&self) -> Vec<Task> {
        let inner = self.lock();
        inner
            .order
            .values()
            .filter_map(|id| inner.tasks.get(id))
            .filter(|r| r.listed && !r.task.status.phase.is_terminal())
            .map(|r| r.task.clone())
            .collect()
    }

    fn sweep(&self, now: Instant) -> SweepReport {
        let (run_ttl, task_ttl) = (self.run_ttl, self.task_ttl);
        let mut inner = self.lock();
        let mut report = SweepReport::default();
        let now_wall = now_ms();
        for rec in inner.tasks.values_mut() {
            let before = rec.runs.len();
            let mut newest_expiry = None;
            rec.runs.retain(|r| match r.finished {
                Some(at) if now.saturating_duration_since(at) >= run_ttl => {
                    newest_expiry = newest_expiry.max(Some(at + run_ttl));
                    false
                }
                _ => true,
            });
            if rec.runs.len() != before {
                report.runs += before - rec.runs.len();
                if rec.runs.is_empty() && rec.task.status.phase.is_terminal() {
                    // A terminal task gets no more runs: free the history entirely.
                    rec.runs = VecDeque::new();
                } else if let Some(keep) =
                    shrink_target(rec.runs.len(), rec.runs.capacity(), MIN_RUNS)
                {
                    rec.runs.shrink_to(keep);
                }
                rec.task.metadata.resource_version += 1;
                rec.task.metadata.updated_at = now_wall;
                if rec.runs.is_empty() && rec.task.status.phase.is_terminal() {
                    rec.idle_since = newest_expiry;
                }
            }
            if rec.task.status.phase.is_terminal()
                && rec.runs.is_empty()
                && rec
                    .idle_since
                    .is_some_and(|at| now.saturating_duration_since(at) >= task_ttl)
            {
                report.tasks.push(rec.task.metadata.id.clone());
            }
        }
        for id in &report.tasks {
            inner.remove(id);
        }
        inner.compact();
        report
    }
}

/// One task's record, as a durable store writes and reads it.
#[cfg(feature = "disk")]
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) seq: u64,
    pub(crate) listed: bool,
    pub(crate) task: Task,
    pub(crate) runs: Vec<TaskRun>,
}

// === impl Inner ===

impl Inner {
    fn insert(
        &mut self,
        seq: u64,
        task: Task,
        listed: bool,
        bytes: usize,
        runs: VecDeque<RunRecord>,
    ) {
        self.spec_bytes += bytes;
        let id = task.metadata.id.clone();
        if listed {
            self.counts[phase_index(task.status.phase)] += 1;
        }
        self.order.insert(seq, id.clone());
        // A task refused at admission is created terminal, with no runs.
        let terminal = task.status.phase.is_terminal();
        if terminal {
            self.terminal.insert(seq, id.clone());
        }
        let idle = terminal && runs.is_empty();
        self.tasks.insert(
            id,
            Box::new(Record {
                task,
                seq,
                listed,
                spec_bytes: bytes,
                runs,
                idle_since: idle.then(Instant::now),
            }),
        );
        self.tasks_high = self.tasks_high.max(self.tasks.len());
    }

    /// Applies `f` to a task; when it reports a change, bumps the version and keeps the phase
    /// indexes in step. Returns whether anything changed.
    fn update(&mut self, id: &TaskId, f: impl FnOnce(&mut Record) -> bool) -> bool {
        let Some(rec) = self.tasks.get_mut(id) else {
            return false;
        };
        let before = rec.task.status.phase;
        if !f(rec) {
            return false;
        }
        rec.task.metadata.resource_version += 1;
        rec.task.metadata.updated_at = now_ms();
        let after = rec.task.status.phase;
        if before != after {
            if rec.listed {
                self.counts[phase_index(before)] -= 1;
                self.counts[phase_index(after)] += 1;
            }
            if after.is_terminal() {
                self.terminal.insert(rec.seq, id.clone());
            }
        }
        true
    }

    /// Gives memory back once the task map is mostly empty (after a sweep or many deletes).
    /// The ordered indexes are B-trees, which free their nodes as entries go.
    fn compact(&mut self) {
        if let Some(keep) = shrink_target(self.tasks.len(), self.tasks_high, MIN_TASKS) {
            self.tasks.shrink_to(keep);
            self.tasks_high = keep;
        }
    }

    fn remove(&mut self, id: &TaskId) -> bool {
        let Some(rec) = self.tasks.remove(id) else {
            return false;
        };
        self.order.remove(&rec.seq);
        self.terminal.remove(&rec.seq);
        self.spec_bytes -= rec.spec_bytes;
        if rec.listed {
            self.counts[phase_index(rec.task.status.phase)] -= 1;
        }
        true
    }
}

/// The client-controlled size of a task's spec: strings of the kind (script bodies,
/// arguments, environment) and labels, plus a fixed overhead for the rest of the record.
fn spec_bytes(task: &Task) -> usize {
    let env = |env: &TaskEnv| env.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    let strings = |items: &[String]| items.iter().map(String::len).sum::<usize>();
    let kind = match task.spec.kind() {
        TaskKind::Subprocess(sub) => {
            let mode = match &sub.mode {
                SubprocessMode::Command { command, args } => command.len() + strings(args),
                SubprocessMode::Script { body, args, .. } => body.len() + strings(args),
                _ => 0,
            };
            mode + env(&sub.env) + sub.cwd.as_ref().map_or(0, |c| c.as_os_str().len())
        }
        TaskKind::Wasm(w) => w.module.len() + strings(&w.args) + env(&w.env),
        TaskKind::Container(c) => {
            c.image.len() + strings(&c.command) + strings(&c.args) + env(&c.env)
        }
        _ => 0,
    };
    let labels: usize = task
        .spec
        .labels()
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    kind + labels + RECORD_OVERHEAD
}

/// The capacity to shrink a collection of `len` entries to, when it holds less than a
/// quarter of its `capacity` (or of the most entries it held since the last shrink); `None`
/// to leave it alone. It then keeps room for twice its
/// length (at least `min`), so the length must halve again, or grow past that room, before
/// the next reallocation: deleting or sweeping tasks one by one costs amortised O(1), and a
/// store hovering around one size never reallocates back and forth.
fn shrink_target(len: usize, capacity: usize, min: usize) -> Option<usize> {
    let keep = len.saturating_mul(2).max(min);
    (len < capacity / 4 && keep < capacity).then_some(keep)
}

/// Task-map capacity kept however empty the store gets (the internal tasks live there too).
const MIN_TASKS: usize = 64;
/// Run-history capacity kept per task when its runs expire.
const MIN_RUNS: usize = 4;

/// Rough fixed cost of a record beyond its client-controlled strings.
const RECORD_OVERHEAD: usize = 512;

fn close_run(run: &mut RunRecord, end: &RunEnd) {
    run.run.phase = end.phase;
    run.run.finished_at = Some(end.finished_at);
    run.run.error.clone_from(&end.error);
    run.run.exit_code = end.exit_code;
    run.finished = Some(Instant::now());
}

fn phase_index(phase: TaskPhase) -> usize {
    TaskPhase::ALL.iter().position(|p| *p == phase).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use solti_model::{ObjectMeta, TaskKind, TaskSpec, TaskStatus};

    use super::*;

    fn task(slot: &str) -> Task {
        let spec = TaskSpec::builder(slot, TaskKind::Embedded, 1_000u64)
            .build()
            .unwrap();
        Task::new(
            ObjectMeta::new(TaskId::generate(), now_ms()),
            spec,
            TaskStatus::new(TaskPhase::Pending),
        )
    }

    fn end(phase: TaskPhase) -> RunEnd {
        RunEnd {
            phase,
            finished_at: now_ms(),
            error: None,
            exit_code: None,
        }
    }

    /// A task carrying `kib` KiB of command arguments (100 KiB each), in `phase`.
    fn heavy(kib: usize, phase: TaskPhase) -> Task {
        let args = (0..kib / 100).map(|_| "x".repeat(100 * 1024));
        let kind = TaskKind::Subprocess(solti_model::SubprocessSpec::command("echo", args));
        let spec = TaskSpec::builder("h", kind, 1_000u64).build().unwrap();
        Task::new(
            ObjectMeta::new(TaskId::generate(), now_ms()),
            spec,
            TaskStatus::new(phase),
        )
    }

    #[test]
    fn spec_bytes_evict_terminal_tasks_then_refuse() {
        let store = MemoryStore::new(
            &StateConfig::default()
                .with_max_spec_bytes(1 << 20)
                .normalized(),
        );
        let first = heavy(400, TaskPhase::Canceled);
        let first_id = first.metadata.id.clone();
        store.create(first, true).unwrap();
        store.create(heavy(400, TaskPhase::Pending), true).unwrap();
        // A third 400 KiB spec does not fit: the terminal one is evicted to make room.
        store.create(heavy(400, TaskPhase::Pending), true).unwrap();
        assert!(store.get(&first_id).is_none());
        // Only active tasks remain: the next one is refused with the bound named.
        let err = store
            .create(heavy(400, TaskPhase::Pending), true)
            .unwrap_err();
        assert!(
            err.to_string().contains("max_spec_bytes")
                || format!("{err:?}").contains("max_spec_bytes"),
            "{err:?}"
        );
        let inner = store.lock();
        let sum: usize = inner.tasks.values().map(|r| r.spec_bytes).sum();
        assert_eq!(inner.spec_bytes, sum);
    }

    #[test]
    fn listing_stops_copying_at_the_byte_budget() {
        let store = MemoryStore::new(&StateConfig::default());
        for _ in 0..5 {
            store.create(heavy(400, TaskPhase::Pending), true).unwrap();
        }
        // Five specs of 400 KiB; a 1 MiB budget copies two, and still counts all five.
        let q = TaskQuery::new().with_max_bytes(1 << 20);
        let page = store.query(&q);
        assert_eq!((page.items.len(), page.total), (2, 5));
        assert_eq!(q.expected_items(page.total), 5);
        let page = store.query(&TaskQuery::new());
        assert_eq!(page.items.len(), 5);
    }

    #[test]
    fn totals_come_from_the_counts_and_pages_stay_oldest_first() {
        let store = MemoryStore::new(&StateConfig::default());
        let mut ids = Vec::new();
        for slot in ["a", "b", "a", "b", "a"] {
            let t = task(slot);
            ids.push(t.metadata.id.clone());
            store.create(t, true).unwrap();
        }
        // Tasks 1..4 (slots b, a, b) succeed; 0 and 4 stay pending.
        for id in &ids[1..4] {
            store.run_started(id, 1, 1);
            assert!(store.finish(id, end(TaskPhase::Succeeded), TaskPhase::Canceled));
        }
        let page_ids = |q: &TaskQuery| {
            let page = store.query(q);
            let items: Vec<TaskId> = page.items.into_iter().map(|t| t.metadata.id).collect();
            (items, page.total)
        };
        let done = TaskQuery::new().with_phase(TaskPhase::Succeeded);
        assert_eq!(
            page_ids(&done.clone().with_limit(1).unwrap()),
            (vec![ids[1].clone()], 3)
        );
        assert_eq!(
            page_ids(&done.clone().with_limit(1).unwrap().with_offset(2)),
            (vec![ids[3].clone()], 3)
        );
        assert_eq!(
            page_ids(&TaskQuery::new().with_limit(2).unwrap()),
            (ids[..2].to_vec(), 5)
        );
        // With a slot filter the total is counted by the walk.
        let b_done = done.with_slot(solti_model::Slot::try_new("b").unwrap());
        assert_eq!(
            page_ids(&b_done.with_limit(1).unwrap()),
            (vec![ids[1].clone()], 2)
        );
        // Unlisted tasks are neither listed nor counted.
        store.create(task("a"), false).unwrap();
        assert_eq!(page_ids(&TaskQuery::new()).1, 5);
    }

    #[test]
    fn versions_and_counts() {
        let store = MemoryStore::new(&StateConfig::default());
        let t = task("a");
        let id = t.metadata.id.clone();
        store.create(t, true).unwrap();
        store.run_started(&id, 1, 1);
        store.run_finished(&id, 1, end(TaskPhase::Succeeded));
        assert!(store.finish(&id, end(TaskPhase::Succeeded), TaskPhase::Canceled));
        assert!(
            !store.finish(&id, end(TaskPhase::Failed), TaskPhase::Canceled),
            "terminal is sticky"
        );
        let got = store.get(&id).unwrap();
        assert_eq!(got.metadata.resource_version, 4);
        assert_eq!(got.status.phase, TaskPhase::Succeeded);
        assert_eq!(store.phase_counts()[&TaskPhase::Succeeded], 1);
        assert_eq!(store.phase_counts()[&TaskPhase::Running], 0);
        assert!(store.delete(&id));
        assert!(!store.delete(&id));
        assert_eq!(store.phase_counts()[&TaskPhase::Succeeded], 0);
    }

    #[tokio::test(start_paused = true)]
    async fn sweep_honours_both_ttls() {
        let ttl = Duration::from_secs(10);
        let store = MemoryStore::new(&StateConfig::default().with_run_ttl(ttl).with_task_ttl(ttl));
        let (done, active) = (task("a"), task("b"));
        let (done_id, active_id) = (done.metadata.id.clone(), active.metadata.id.clone());
        store.create(done, true).unwrap();
        store.create(active, true).unwrap();
        for id in [&done_id, &active_id] {
            store.run_started(id, 1, 1);
            store.run_finished(id, 1, end(TaskPhase::Failed));
        }
        store.finish(&done_id, end(TaskPhase::Failed), TaskPhase::Canceled);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(store.sweep(Instant::now()), SweepReport::default());
        tokio::time::advance(Duration::from_secs(2)).await;
        let report = store.sweep(Instant::now());
        assert_eq!(
            (report.runs, report.tasks.len()),
            (2, 0),
            "runs expire, tasks wait for their own TTL"
        );
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(store.sweep(Instant::now()).tasks, vec![done_id.clone()]);
        assert!(store.get(&done_id).is_none());
        assert!(
            store.get(&active_id).is_some(),
            "active tasks are never swept"
        );
        assert_eq!(store.phase_counts()[&TaskPhase::Failed], 0);
    }

    #[test]
    fn shrink_target_has_hysteresis() {
        assert_eq!(shrink_target(0, 64, 64), None, "never below the minimum");
        assert_eq!(
            shrink_target(300, 1024, 64),
            None,
            "more than a quarter full"
        );
        assert_eq!(shrink_target(200, 1024, 64), Some(400));
        // After shrinking to 400, the next shrink waits until fewer than 100 are left.
        assert_eq!(shrink_target(100, 400, 64), None);
        assert_eq!(shrink_target(99, 400, 64), Some(198));
        assert_eq!(shrink_target(0, 400, 64), Some(64));
        assert_eq!(shrink_target(1, 7, 4), None);
        assert_eq!(shrink_target(0, 16, 4), Some(4));
    }

    #[test]
    fn mass_delete_gives_the_task_map_back() {
        let store = MemoryStore::new(&StateConfig::default());
        let ids: Vec<TaskId> = (0..5_000)
            .map(|i| {
                let t = task(&format!("t{i}"));
                let id = t.metadata.id.clone();
                store.create(t, true).unwrap();
                id
            })
            .collect();
        let full = store.lock().tasks.capacity();
        assert!(full >= 5_000);
        let mut shrinks = 0;
        let mut high = store.lock().tasks_high;
        for id in &ids[..4_000] {
            assert!(store.delete(id));
            let now = store.lock().tasks_high;
            if now != high {
                shrinks += 1;
            }
            high = now;
        }
        // The high-water mark was 5,000 (plus the internal tasks): once fewer than a quarter
        // of it were left (at about 1,250) the map was shrunk once, to room for twice that.
        let (len, cap) = {
            let inner = store.lock();
            (inner.tasks.len(), inner.tasks.capacity())
        };
        assert_eq!(len, 1_000);
        assert!(cap < full && cap >= 2_000, "capacity {cap} of {full}");
        assert_eq!(shrinks, 1, "one reallocation, not one per delete");
        for id in &ids[4_000..] {
            store.delete(id);
        }
        assert!(store.lock().tasks.capacity() < 256);
    }

    #[tokio::test(start_paused = true)]
    async fn sweep_gives_memory_back() {
        let ttl = Duration::from_secs(1);
        let store = MemoryStore::new(&StateConfig::default().with_run_ttl(ttl).with_task_ttl(ttl));
        let restarted = task("r");
        let restarted_id = restarted.metadata.id.clone();
        store.create(restarted, true).unwrap();
        for n in 1..=100 {
            store.run_started(&restarted_id, n, 1);
            store.run_finished(&restarted_id, n, end(TaskPhase::Failed));
        }
        for i in 0..3_000 {
            let t = task(&format!("t{i}"));
            let id = t.metadata.id.clone();
            store.create(t, true).unwrap();
            store.run_started(&id, 1, 1);
            store.run_finished(&id, 1, end(TaskPhase::Succeeded));
            store.finish(&id, end(TaskPhase::Succeeded), TaskPhase::Canceled);
        }
        let full = store.lock().tasks.capacity();
        tokio::time::advance(Duration::from_secs(1)).await;
        let report = store.sweep(Instant::now());
        assert_eq!(report.runs, 3_100);
        {
            let inner = store.lock();
            let runs = &inner.tasks[&restarted_id].runs;
            assert!(
                runs.is_empty() && runs.capacity() < 16,
                "{}",
                runs.capacity()
            );
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(store.sweep(Instant::now()).tasks.len(), 3_000);
        let inner = store.lock();
        assert_eq!(inner.tasks.len(), 1, "the still-active task stays");
        assert!(
            inner.tasks.capacity() < 256,
            "capacity {} after the sweep, {full} before",
            inner.tasks.capacity()
        );
    }

    #[test]
    fn run_cap_and_eviction() {
        let cfg = StateConfig::default()
            .with_max_runs_per_task(2)
            .with_max_tasks(2);
        let store = MemoryStore::new(&cfg);
        let a = task("a");
        let a_id = a.metadata.id.clone();
        store.create(a, true).unwrap();
        for n in 1..=3 {
            store.run_started(&a_id, n, 1);
            store.run_finished(&a_id, n, end(TaskPhase::Failed));
        }
        let runs: Vec<u32> = store
            .runs(&a_id)
            .unwrap()
            .iter()
            .map(|r| r.attempt)
            .collect();
        assert_eq!(runs, vec![2, 3]);
        store.create(task("b"), true).unwrap();
        assert!(matches!(
            store.create(task("c"), true),
            Err(CoreError::Capacity { .. })
        ));
        store.finish(&a_id, end(TaskPhase::Failed), TaskPhase::Canceled);
        store.create(task("c"), true).unwrap();
        assert!(store.get(&a_id).is_none(), "oldest terminal task evicted");
    }
}
