//! [`DiskStore`]: the durable [`StateStore`], an in-memory view persisted to a redb file.

use std::{
    collections::{BTreeMap, HashSet},
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    thread::JoinHandle,
    time::Duration,
};

use futures_util::future::BoxFuture;
use redb::{
    Database, ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _,
    TableDefinition,
};
use serde::{Deserialize, Serialize};
use solti_model::{Task, TaskId, TaskPage, TaskPhase, TaskQuery, TaskRun};
use tokio::{sync::oneshot, time::Instant};

use super::{MemoryStore, RunEnd, StateStore, SweepReport, memory::Snapshot};
use crate::{CoreError, StateConfig};

/// The on-disk format this build writes and reads. A file written by a newer format is
/// refused at open (see [`DiskStoreError::NewerFormat`]).
pub const FORMAT_VERSION: u64 = 1;

/// Task records: task id → JSON of [`Stored`].
const TASKS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("tasks");
/// File metadata: `format` → [`FORMAT_VERSION`] of the writer.
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

/// How long the writer waits before retrying writes that failed (disk full, read-only file
/// system) when nobody is waiting for them.
const RETRY: Duration = Duration::from_secs(1);

/// Why a [`DiskStore`] could not be opened. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiskStoreError {
    /// The file was written by a newer version of the format.
    #[error(
        "{path}: state store format {found} is newer than this build understands \
         ({FORMAT_VERSION}); run the newer version, or move the file aside"
    )]
    NewerFormat {
        /// The store file.
        path: PathBuf,
        /// The format version found in the file.
        found: u64,
    },
    /// The file (or one of its records) cannot be read: it is corrupted or not a state store.
    #[error("{path}: state store is corrupted or not a state store: {detail}; move the file aside")]
    Corrupted {
        /// The store file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Another process holds the file open.
    #[error("{path}: state store is in use by another process")]
    InUse {
        /// The store file.
        path: PathBuf,
    },
    /// The file cannot be opened or created (permissions, missing directory, I/O error).
    #[error("{path}: cannot open the state store: {detail}")]
    Io {
        /// The store file.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
}

/// The durable store: the tasks live in a [`MemoryStore`] that answers every read, and a
/// writer thread persists every listed task's record (spec, status, run history, creation
/// order) to one redb file. Output is never stored; unlisted (embedded) tasks neither.
///
/// Writes are grouped: a task changed several times between two commits is written once,
/// and every [`sync`](StateStore::sync) waiting when a commit starts is answered by it, so a
/// burst of submissions costs one fsync per batch, not one per task. A failed commit (disk
/// full, read-only file system) is answered with [`CoreError::Storage`] and retried with
/// the next batch; reads and running tasks are not affected. While writes keep failing,
/// [`create`](StateStore::create) of a listed task is refused with that error before the
/// task is stored, so a flood of submissions against a full disk costs nothing: the changes
/// waiting for the disk are bounded by the tasks already held (each is written once, however
/// often it changed), and the writer retries them about once a second.
///
/// The file format and the recovery rules are described in `docs/state.md`.
pub struct DiskStore {
    mirror: Arc<MemoryStore>,
    queue: Arc<Queue>,
    path: PathBuf,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// One task's record on disk.
#[derive(Serialize, Deserialize)]
struct Stored {
    /// Creation order across the store.
    seq: u64,
    task: Task,
    runs: Vec<TaskRun>,
}

/// Work for the writer thread.
#[derive(Default)]
struct Queue {
    state: Mutex<Pending>,
    wake: Condvar,
}

#[derive(Default)]
struct Pending {
    /// Tasks changed since the last commit started.
    dirty: HashSet<TaskId>,
    /// Callers of `sync` waiting for the next commit.
    waiters: Vec<oneshot::Sender<Result<(), String>>>,
    closed: bool,
    /// Changes after [`DiskStore::freeze`] are no longer persisted.
    frozen: bool,
    /// Commits done (successful write transactions).
    commits: u64,
    /// The error of the last commit, while writes keep failing.
    failing: Option<String>,
    /// Tests: make every commit fail as a full disk would.
    #[cfg(test)]
    fail_writes: bool,
}

// === impl DiskStore ===

impl DiskStore {
    /// Opens (or creates) the store file at `path` and loads every task it holds; the
    /// in-memory view is bounded by `cfg` like a [`MemoryStore`].
    ///
    /// # Errors
    /// [`DiskStoreError`], naming the file: written by a newer format, corrupted, in use by
    /// another process, or not openable.
    pub fn open(path: impl AsRef<Path>, cfg: &StateConfig) -> Result<Self, DiskStoreError> {
        let path = path.as_ref().to_path_buf();
        let db = open_db(&path)?;
        let mirror = Arc::new(MemoryStore::new(cfg));
        load(&db, &path, &mirror)?;
        let queue = Arc::new(Queue::default());
        let writer = {
            let (mirror, queue, file) = (Arc::clone(&mirror), Arc::clone(&queue), path.clone());
            std::thread::Builder::new()
                .name("solti-state".to_owned())
                .spawn(move || write_loop(Some(db), &file, &mirror, &queue))
                .map_err(|e| DiskStoreError::Io {
                    path: path.clone(),
                    detail: format!("cannot start the writer thread: {e}"),
                })?
        };
        Ok(Self {
            mirror,
            queue,
            path,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// The store file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The error of the last commit while writes keep failing; `None` when healthy.
    #[must_use]
    pub fn failing(&self) -> Option<String> {
        self.queue.lock().failing.clone()
    }

    /// How many write transactions were committed since the store was opened (each is one
    /// fsync; a burst of submissions shares them).
    #[must_use]
    pub fn commits(&self) -> u64 {
        self.queue.lock().commits
    }

    /// Stops persisting changes from now on (what is already pending is still written). An
    /// agent calls it when its shutdown starts: the tasks it then stops are stored as they
    /// were when the shutdown began (running, queued), so the next start treats them like
    /// after a crash and starts again those whose restart policy allows it, instead of
    /// finding them `Canceled` by the shutdown.
    pub fn freeze(&self) {
        self.queue.lock().frozen = true;
    }

    /// Persists what is pending and stops the writer thread. Called on drop too.
    pub fn close(&self) {
        self.queue.lock().closed = true;
        self.queue.wake.notify_all();
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle
            && handle.join().is_err()
        {
            tracing::error!(path = %self.path.display(), "state store writer panicked");
        }
    }

    fn touch(&self, id: &TaskId) {
        let mut queue = self.queue.lock();
        if queue.frozen {
            return;
        }
        queue.dirty.insert(id.clone());
        drop(queue);
        self.queue.wake.notify_one();
    }
}

impl Drop for DiskStore {
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiskStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl StateStore for DiskStore {
    fn create(&self, task: Task, listed: bool) -> Result<Vec<TaskId>, CoreError> {
        if listed {
            // Refused before anything is stored: while the disk keeps failing, submissions
            // must not grow the mirror or the set of changes waiting for the disk.
            let queue = self.queue.lock();
            if !queue.frozen
                && let Some(error) = &queue.failing
            {
                return Err(CoreError::Storage(error.clone()));
            }
        }
        let id = task.metadata.id.clone();
        let evicted = self.mirror.create_evicting(task, listed)?;
        let mut queue = self.queue.lock();
        if !queue.frozen {
            queue.dirty.extend(evicted.iter().cloned());
            if listed {
                queue.dirty.insert(id);
            }
        }
        drop(queue);
        self.queue.wake.notify_one();
        Ok(evicted)
    }

    fn run_started(&self, id: &TaskId, attempt: u32, started_at: i64) {
        self.mirror.run_started(id, attempt, started_at);
        self.touch(id);
    }

    fn run_finished(&self, id: &TaskId, attempt: u32, end: RunEnd) {
        self.mirror.run_finished(id, attempt, end);
        self.touch(id);
    }

    fn finish(&self, id: &TaskId, end: RunEnd, open_runs: TaskPhase) -> bool {
        let written = self.mirror.finish(id, end, open_runs);
        if written {
            self.touch(id);
        }
        written
    }

    fn delete(&self, id: &TaskId) -> bool {
        let existed = self.mirror.delete(id);
        if existed {
            let mut queue = self.queue.lock();
            if queue.frozen {
                // Nothing is persisted any more, but a change recorded before the freeze
                // (a submission refused by it, say) must not be written by `close` either.
                queue.dirty.remove(id);
            } else {
                drop(queue);
                self.touch(id);
            }
        }
        existed
    }

    fn get(&self, id: &TaskId) -> Option<Task> {
        self.mirror.get(id)
    }

    fn contains(&self, id: &TaskId) -> bool {
        self.mirror.contains(id)
    }

    fn last_run_phase(&self, id: &TaskId) -> Option<TaskPhase> {
        self.mirror.last_run_phase(id)
    }

    fn query(&self, query: &TaskQuery) -> TaskPage<Task> {
        self.mirror.query(query)
    }

    fn runs(&self, id: &TaskId) -> Option<Vec<TaskRun>> {
        self.mirror.runs(id)
    }

    fn phase_counts(&self) -> BTreeMap<TaskPhase, u64> {
        self.mirror.phase_counts()
    }

    fn sweep(&self, now: Instant) -> SweepReport {
        // Expired runs are not rewritten: a restore drops them again by their finish time.
        let report = self.mirror.sweep(now);
        for id in &report.tasks {
            self.touch(id);
        }
        report
    }

    fn active(&self) -> Vec<Task> {
        self.mirror.active()
    }

    fn sync(&self) -> BoxFuture<'static, Result<(), CoreError>> {
        let (tx, rx) = oneshot::channel();
        {
            let mut queue = self.queue.lock();
            if queue.closed || queue.frozen {
                return Box::pin(async { Err(CoreError::ShuttingDown) });
            }
            queue.waiters.push(tx);
        }
        self.queue.wake.notify_one();
        Box::pin(async move {
            match rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(CoreError::Storage(e)),
                Err(_) => Err(CoreError::Storage(
                    "the state store writer stopped".to_owned(),
                )),
            }
        })
    }
}

// === impl Queue ===

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // Plain collections updated in single calls: still valid after a panic elsewhere.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// === the writer ===

/// Commits batches until the store is closed and nothing is pending.
fn write_loop(mut db: Option<Database>, path: &Path, mirror: &MemoryStore, queue: &Queue) {
    loop {
        let (dirty, waiters, closed) = {
            let mut state = queue.lock();
            while state.dirty.is_empty() && state.waiters.is_empty() && !state.closed {
                state = queue
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            (
                std::mem::take(&mut state.dirty),
                std::mem::take(&mut state.waiters),
                state.closed,
            )
        };
        let result = if dirty.is_empty() {
            Ok(())
        } else if let Some(injected) = injected_failure(queue, path) {
            Err(injected)
        } else {
            commit(&mut db, path, mirror, &dirty)
        };
        let failed = result.is_err();
        settle(queue, path, dirty, waiters, &result);
        if closed && (failed || queue.lock().dirty.is_empty()) {
            return;
        }
        if failed {
            wait_before_retry(queue);
        }
    }
}

/// Tests: the error a full disk would give, while `fail_writes` is set.
#[cfg(test)]
fn injected_failure(queue: &Queue, path: &Path) -> Option<String> {
    queue.lock().fail_writes.then(|| {
        format!(
            "cannot write the state store {}: No space left on device (injected)",
            path.display()
        )
    })
}

#[cfg(not(test))]
const fn injected_failure(_queue: &Queue, _path: &Path) -> Option<String> {
    None
}

/// Records the outcome of one commit of `dirty` and answers `waiters` with it. A failed
/// batch goes back to the dirty set, to be retried with the next one.
fn settle(
    queue: &Queue,
    path: &Path,
    dirty: HashSet<TaskId>,
    waiters: Vec<oneshot::Sender<Result<(), String>>>,
    result: &Result<(), String>,
) {
    {
        let mut state = queue.lock();
        match result {
            Ok(()) => {
                if !dirty.is_empty() {
                    state.commits += 1;
                }
                if state.failing.take().is_some() {
                    tracing::info!(path = %path.display(), "state store writes work again");
                }
            }
            Err(e) => {
                if state.failing.as_deref() != Some(e.as_str()) {
                    tracing::error!(path = %path.display(), error = %e, "state store write failed");
                }
                state.failing = Some(e.clone());
                // Retried with the next batch: a later sync reports it until it succeeds.
                state.dirty.extend(dirty);
            }
        }
    }
    for waiter in waiters {
        let _ = waiter.send(result.clone());
    }
}

/// After a failed commit: waits [`RETRY`] before the next attempt, or less when the store
/// is closed or somebody waits in [`sync`](StateStore::sync). Changes to tasks do not
/// shorten the wait, so a failing disk is not retried once per task change.
fn wait_before_retry(queue: &Queue) {
    let deadline = std::time::Instant::now() + RETRY;
    let mut state = queue.lock();
    while state.waiters.is_empty() && !state.closed {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        state = queue
            .wake
            .wait_timeout(state, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

/// Writes the current record of every task in `dirty` (or removes it) in one transaction.
fn commit(
    db: &mut Option<Database>,
    path: &Path,
    mirror: &MemoryStore,
    dirty: &HashSet<TaskId>,
) -> Result<(), String> {
    let handle = match db.take() {
        Some(handle) => handle,
        // A failed commit can leave redb refusing every later write: reopen.
        None => open_db(path).map_err(|e| e.to_string())?,
    };
    match write_batch(&handle, mirror, dirty) {
        Ok(()) => {
            *db = Some(handle);
            Ok(())
        }
        Err(e) => Err(format!(
            "cannot write the state store {}: {e}",
            path.display()
        )),
    }
}

fn write_batch(
    db: &Database,
    mirror: &MemoryStore,
    dirty: &HashSet<TaskId>,
) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut table = txn.open_table(TASKS)?;
        for id in dirty {
            match mirror.snapshot(id) {
                Some(snap) if snap.listed => {
                    let stored = Stored {
                        seq: snap.seq,
                        task: snap.task,
                        runs: snap.runs,
                    };
                    let bytes = serde_json::to_vec(&stored).map_err(|e| {
                        redb::Error::Io(std::io::Error::other(format!(
                            "cannot encode task {id}: {e}"
                        )))
                    })?;
                    table.insert(id.as_str(), bytes.as_slice())?;
                }
                Some(_) => {}
                None => {
                    table.remove(id.as_str())?;
                }
            }
        }
    }
    txn.commit()?;
    Ok(())
}

// === open and load ===

fn open_db(path: &Path) -> Result<Database, DiskStoreError> {
    let db = Database::create(path).map_err(|e| open_error(path, e))?;
    // Stamp (or check) the format before anything else is written.
    let found = {
        let txn = db.begin_read().map_err(|e| corrupted(path, &e))?;
        match txn.open_table(META) {
            Ok(meta) => meta
                .get("format")
                .map_err(|e| corrupted(path, &e))?
                .map(|v| v.value()),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(corrupted(path, &e)),
        }
    };
    match found {
        Some(found) if found > FORMAT_VERSION => Err(DiskStoreError::NewerFormat {
            path: path.to_path_buf(),
            found,
        }),
        Some(_) => Ok(db),
        None => {
            let stamp = || -> Result<(), redb::Error> {
                let txn = db.begin_write()?;
                txn.open_table(META)?.insert("format", FORMAT_VERSION)?;
                txn.open_table(TASKS)?;
                txn.commit()?;
                Ok(())
            };
            stamp().map_err(|e| DiskStoreError::Io {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
            Ok(db)
        }
    }
}

fn open_error(path: &Path, err: redb::DatabaseError) -> DiskStoreError {
    let path = path.to_path_buf();
    match err {
        redb::DatabaseError::DatabaseAlreadyOpen => DiskStoreError::InUse { path },
        redb::DatabaseError::UpgradeRequired(v) => DiskStoreError::Corrupted {
            path,
            detail: format!("redb file format {v} needs an upgrade"),
        },
        redb::DatabaseError::Storage(redb::StorageError::Io(e))
            if e.kind() != std::io::ErrorKind::InvalidData =>
        {
            DiskStoreError::Io {
                path,
                detail: e.to_string(),
            }
        }
        other => DiskStoreError::Corrupted {
            path,
            detail: other.to_string(),
        },
    }
}

fn corrupted(path: &Path, err: &dyn fmt::Display) -> DiskStoreError {
    DiskStoreError::Corrupted {
        path: path.to_path_buf(),
        detail: err.to_string(),
    }
}

/// Reads every record into `mirror`, in creation order.
fn load(db: &Database, path: &Path, mirror: &MemoryStore) -> Result<(), DiskStoreError> {
    let txn = db.begin_read().map_err(|e| corrupted(path, &e))?;
    let table = txn.open_table(TASKS).map_err(|e| corrupted(path, &e))?;
    let mut records = Vec::with_capacity(
        usize::try_from(table.len().map_err(|e| corrupted(path, &e))?).unwrap_or(0),
    );
    for entry in table.iter().map_err(|e| corrupted(path, &e))? {
        let (key, value) = entry.map_err(|e| corrupted(path, &e))?;
        let stored: Stored = serde_json::from_slice(value.value())
            .map_err(|e| corrupted(path, &format!("record {:?}: {e}", key.value())))?;
        if stored.task.metadata.id.as_str() != key.value() {
            return Err(corrupted(
                path,
                &format!(
                    "record {:?} holds task {}",
                    key.value(),
                    stored.task.metadata.id
                ),
            ));
        }
        records.push(stored);
    }
    records.sort_unstable_by_key(|r| r.seq);
    for r in records {
        mirror.restore(Snapshot {
            seq: r.seq,
            listed: true,
            task: r.task,
            runs: r.runs,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use solti_model::{ObjectMeta, TaskKind, TaskSpec, TaskStatus};
    use solti_runner::now_ms;

    use super::*;

    fn task(slot: &str, phase: TaskPhase) -> Task {
        let spec = TaskSpec::builder(slot, TaskKind::Embedded, 1_000u64)
            .build()
            .unwrap();
        Task::new(
            ObjectMeta::new(TaskId::generate(), now_ms()),
            spec,
            TaskStatus::new(phase),
        )
    }

    fn end(phase: TaskPhase) -> RunEnd {
        RunEnd::new(phase, now_ms(), None)
    }

    #[tokio::test]
    async fn records_come_back_in_creation_order_with_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let cfg = StateConfig::default();
        let mut ids = Vec::new();
        {
            let store = DiskStore::open(&path, &cfg).unwrap();
            for i in 0..50 {
                let t = task(&format!("s{i}"), TaskPhase::Pending);
                ids.push(t.metadata.id.clone());
                store.create(t, true).unwrap();
            }
            store
                .create(task("hidden", TaskPhase::Pending), false)
                .unwrap();
            store.sync().await.unwrap();
            store.run_started(&ids[0], 1, 10);
            store.run_finished(&ids[0], 1, end(TaskPhase::Failed));
            store.finish(&ids[0], end(TaskPhase::Failed), TaskPhase::Canceled);
            store.run_started(&ids[1], 1, 20);
            assert!(store.delete(&ids[2]));
            store.sync().await.unwrap();
        }
        let store = DiskStore::open(&path, &cfg).unwrap();
        let page = store.query(&TaskQuery::default());
        let listed: Vec<TaskId> = page.items.iter().map(|t| t.metadata.id.clone()).collect();
        let mut expected = ids.clone();
        expected.remove(2);
        assert_eq!(
            listed, expected,
            "creation order kept, deleted task gone, unlisted not stored"
        );
        let first = store.get(&ids[0]).unwrap();
        assert_eq!(first.status.phase, TaskPhase::Failed);
        assert_eq!(first.metadata.resource_version, 4);
        assert_eq!(store.runs(&ids[0]).unwrap().len(), 1);
        assert_eq!(store.runs(&ids[1]).unwrap()[0].finished_at, None);
        let active: Vec<TaskId> = store
            .active()
            .iter()
            .map(|t| t.metadata.id.clone())
            .collect();
        assert_eq!(active, expected[1..].to_vec());
        // New tasks are ordered after the restored ones.
        let t = task("late", TaskPhase::Pending);
        let late = t.metadata.id.clone();
        store.create(t, true).unwrap();
        let last = store
            .query(&TaskQuery::default())
            .items
            .last()
            .unwrap()
            .metadata
            .id
            .clone();
        assert_eq!(last, late);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_shares_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(DiskStore::open(dir.path().join("s.redb"), &StateConfig::default()).unwrap());
        let mut joins = Vec::new();
        for i in 0..200 {
            let store = Arc::clone(&store);
            joins.push(tokio::spawn(async move {
                store
                    .create(task(&format!("b{i}"), TaskPhase::Pending), true)
                    .unwrap();
                store.sync().await.unwrap();
            }));
        }
        for j in joins {
            j.await.unwrap();
        }
        let commits = store.commits();
        assert!(
            (1..200).contains(&commits),
            "{commits} commits for 200 tasks"
        );
        assert_eq!(store.query(&TaskQuery::default()).total, 200);
    }

    #[tokio::test]
    async fn a_failing_disk_refuses_new_tasks_before_storing_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let cfg = StateConfig::default();
        let store = DiskStore::open(&path, &cfg).unwrap();
        let kept = task("kept", TaskPhase::Pending);
        let kept_id = kept.metadata.id.clone();
        store.create(kept, true).unwrap();
        store.sync().await.unwrap();

        store.queue.lock().fail_writes = true;
        // The first submission after the disk fills is stored, then refused by its sync
        // (the supervisor deletes it, as it does here).
        let first = task("first", TaskPhase::Pending);
        let first_id = first.metadata.id.clone();
        store.create(first, true).unwrap();
        let err = store.sync().await.unwrap_err();
        assert!(
            matches!(err, CoreError::Storage(ref e) if e.contains("state.redb")),
            "{err}"
        );
        store.delete(&first_id);
        assert!(store.failing().is_some());

        // From now on, refused before anything is stored: a flood adds nothing.
        for i in 0..10_000 {
            let err = store
                .create(task(&format!("flood{i}"), TaskPhase::Pending), true)
                .unwrap_err();
            assert!(matches!(err, CoreError::Storage(_)), "{err}");
        }
        // Changes to the tasks already held are kept once each.
        for attempt in 1..=1_000 {
            store.run_started(&kept_id, attempt, 10);
            store.run_finished(&kept_id, attempt, end(TaskPhase::Failed));
        }
        assert_eq!(store.query(&TaskQuery::default()).total, 1);
        let pending = store.queue.lock().dirty.len();
        assert!(pending <= 2, "{pending} changes wait for the disk");
        // Unlisted (embedded) tasks are never persisted, so they are still accepted.
        store
            .create(task("embedded", TaskPhase::Pending), false)
            .unwrap();

        // Space again: a sync makes the writer retry at once.
        store.queue.lock().fail_writes = false;
        store.sync().await.unwrap();
        assert!(store.failing().is_none());
        let late = task("late", TaskPhase::Pending);
        let late_id = late.metadata.id.clone();
        store.create(late, true).unwrap();
        store.sync().await.unwrap();
        drop(store);

        let store = DiskStore::open(&path, &cfg).unwrap();
        let listed: Vec<TaskId> = store
            .query(&TaskQuery::default())
            .items
            .iter()
            .map(|t| t.metadata.id.clone())
            .collect();
        assert_eq!(listed, vec![kept_id.clone(), late_id]);
        let runs = store.runs(&kept_id).unwrap();
        assert_eq!(
            runs.last().unwrap().attempt,
            1_000,
            "the last change was written"
        );
    }

    #[test]
    fn a_newer_format_is_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("format", FORMAT_VERSION + 1)
                .unwrap();
            txn.commit().unwrap();
        }
        let err = DiskStore::open(&path, &StateConfig::default()).unwrap_err();
        assert!(
            matches!(err, DiskStoreError::NewerFormat { found: 2, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("state.redb"), "{err}");
    }

    #[test]
    fn garbage_is_refused_as_corrupted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        std::fs::write(&path, vec![0x5a_u8; 64 * 1024]).unwrap();
        let err = DiskStore::open(&path, &StateConfig::default()).unwrap_err();
        assert!(matches!(err, DiskStoreError::Corrupted { .. }), "{err:?}");
        assert!(err.to_string().contains("state.redb"), "{err}");
    }

    #[test]
    fn a_bad_record_is_refused_as_corrupted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        drop(DiskStore::open(&path, &StateConfig::default()).unwrap());
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(TASKS)
                .unwrap()
                .insert("tsk_x", b"{not json".as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let err = DiskStore::open(&path, &StateConfig::default()).unwrap_err();
        assert!(err.to_string().contains("tsk_x"), "{err}");
    }

    #[test]
    fn a_second_opener_is_told_the_file_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let _first = DiskStore::open(&path, &StateConfig::default()).unwrap();
        let err = DiskStore::open(&path, &StateConfig::default()).unwrap_err();
        assert!(matches!(err, DiskStoreError::InUse { .. }), "{err:?}");
    }
}
