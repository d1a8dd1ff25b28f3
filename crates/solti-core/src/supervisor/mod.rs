//! [`SupervisorApi`]: the supervision engine's public face.

/// The `what` of the capacity error when a wait on taskvisor runs out: `"<queue> (waited 5 s)"`,
/// the wait being [`REQUEST_WAIT`] (checked at compile time below).
macro_rules! waited_out {
    ($queue:literal) => {
        concat!($queue, " (waited 5 s)")
    };
}

mod recover;
mod runtime;
mod stop;
mod submit;

use std::{
    collections::BTreeMap,
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use solti_model::{Task, TaskId, TaskPage, TaskPhase, TaskQuery, TaskRun};
use solti_runner::{MetricsBackend, RunnerRouter};
use taskvisor as tv;
use tokio::sync::OnceCell;
use tokio_util::task::TaskTracker;

use self::runtime::Runtime;
use crate::{
    CoreError, OutputQuery, OutputSubscription, StateConfig, limits,
    output::{OutputHub, Retention},
    store::{MemoryStore, StateStore},
    sweep,
};

/// The supervision engine: submits tasks to taskvisor under their slot and admission policy,
/// keeps their state and run history, streams their live output, and sweeps old state.
///
/// Cheap to clone (an `Arc` inside). Dropping the last clone without calling
/// [`shutdown`](Self::shutdown) abandons running tasks (taskvisor cancels them without
/// waiting); call `shutdown` for an orderly stop. See [`crate::docs::shutdown`].
#[derive(Clone)]
pub struct SupervisorApi {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    router: RunnerRouter,
    handle: tv::SupervisorHandle,
    /// Keeps the taskvisor runtime alive as long as the API is.
    _supervisor: Arc<tv::Supervisor>,
    shutdown: OnceCell<Result<(), String>>,
}

/// What finalizers, attempt wrappers and the sweep share. Holds no taskvisor handle, so
/// background tasks never keep the supervisor alive.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) runtime: Runtime,
    /// Output windows of every stored task.
    pub(crate) output: OutputHub,
    pub(crate) metrics: Arc<dyn MetricsBackend>,
    pub(crate) config: StateConfig,
    /// Owner of every finalizer task.
    pub(crate) tracker: TaskTracker,
    /// Set when shutdown starts: no new work is accepted.
    pub(crate) closing: AtomicBool,
    /// taskvisor capacities, for error reports.
    pub(crate) capacities: limits::Capacities,
}

// === impl SupervisorApi ===

impl SupervisorApi {
    /// Builds and starts the supervisor: taskvisor supervisor and controller (limits derived
    /// from `state`, see [`crate::docs::limits`]), the in-memory store, and the sweep task.
    ///
    /// `subscribers` receive taskvisor's lifecycle events as they are; the core's own
    /// bookkeeping does not depend on them.
    ///
    /// # Errors
    /// [`CoreError::Internal`] when taskvisor refuses the configuration or cannot start.
    pub async fn new(
        sup: tv::SupervisorConfig,
        ctl: tv::ControllerConfig,
        subscribers: Vec<Arc<dyn tv::Subscribe>>,
        router: RunnerRouter,
        state: StateConfig,
    ) -> Result<Self, CoreError> {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new(&state));
        Self::with_store(sup, ctl, subscribers, router, state, store).await
    }

    /// As [`new`](Self::new), on `store` (for instance a durable
    /// `DiskStore` (feature `disk`) opened with the same `state` bounds), then
    /// recovers what an earlier process left unfinished, in creation order:
    ///
    /// - every run still open is closed `Failed`, "agent restarted during the run";
    /// - a task whose restart policy allows another attempt (`Always`, `OnFailure`) is
    ///   submitted again under its slot and admission policy, with its id, as a new attempt
    ///   (numbered after its earlier ones);
    /// - any other task ends `Failed` with that reason.
    ///
    /// Terminal tasks are served as stored; the sweep applies their TTLs from their
    /// wall-clock times. See `docs/state.md` for the admission semantics across a restart.
    ///
    /// # Errors
    /// [`CoreError::Internal`] when taskvisor refuses the configuration or cannot start.
    /// A task that cannot be started again is finished `Failed` (the reason says why), not
    /// reported as an error.
    pub async fn with_store(
        sup: tv::SupervisorConfig,
        ctl: tv::ControllerConfig,
        subscribers: Vec<Arc<dyn tv::Subscribe>>,
        router: RunnerRouter,
        state: StateConfig,
        store: Arc<dyn StateStore>,
    ) -> Result<Self, CoreError> {
        let state = state.normalized();
        let (supervisor, capacities) = limits::build(sup, ctl, subscribers, &state)?;
        let handle = supervisor
            .serve()
            .map_err(|e| CoreError::Internal(format!("cannot start the taskvisor runtime: {e}")))?;
        let retention = Retention {
            per_task: state.output_retention_bytes,
            total: state.output_retention_total_bytes,
        };
        let shared = Arc::new(Shared {
            store,
            runtime: Runtime::default(),
            output: OutputHub::new(retention, Arc::clone(router.metrics())),
            metrics: Arc::clone(router.metrics()),
            config: state,
            tracker: TaskTracker::new(),
            closing: AtomicBool::new(false),
            capacities,
        });
        let api = Self {
            inner: Arc::new(Inner {
                shared,
                router,
                handle,
                _supervisor: supervisor,
                shutdown: OnceCell::new(),
            }),
        };
        sweep::start(&api).await?;
        api.recover().await;
        Ok(api)
    }

    /// One task by id; `None` when unknown (never submitted, deleted, or swept).
    ///
    /// # Errors
    /// None today; the `Result` leaves room for fallible stores.
    pub async fn get_task(&self, id: &TaskId) -> Result<Option<Task>, CoreError> {
        Ok(self.shared().store.get(id))
    }

    /// Listed tasks matching `q`, ordered by creation (oldest first); `total` counts every
    /// match. Embedded tasks (internal ones: sweep, discovery, metrics server) are never listed.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for fallible stores.
    pub async fn query_tasks(&self, q: &TaskQuery) -> Result<TaskPage<Task>, CoreError> {
        Ok(self.shared().store.query(q))
    }

    /// The task's runs, oldest first; `None` for an unknown task.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for fallible stores.
    pub async fn list_task_runs(&self, id: &TaskId) -> Result<Option<Vec<TaskRun>>, CoreError> {
        Ok(self.shared().store.runs(id))
    }

    /// A cursor into the task's output: from now on ([`OutputQuery::live`]), the last N
    /// retained lines, everything retained, since a timestamp or after an offset
    /// ([`OutputStart`](crate::OutputStart)), following the live output or not. `None` for
    /// an unknown task. A live subscription of a terminal task ends at once; its retained
    /// output stays readable with the other starts until the task is deleted or swept.
    ///
    /// # Errors
    /// [`CoreError::Invalid`] naming `after_offset` when resuming after an offset this task
    /// never published.
    pub async fn subscribe_output(
        &self,
        id: &TaskId,
        query: impl Into<OutputQuery>,
    ) -> Result<Option<OutputSubscription>, CoreError> {
        let shared = self.shared();
        if !shared.store.contains(id) {
            return Ok(None);
        }
        match shared.output.get(id) {
            Some(channel) => channel.subscribe(query.into()).map(Some),
            None => Ok(Some(OutputSubscription::ended())),
        }
    }

    /// Bytes of output retained for all tasks together (charged as
    /// [`StateConfig::output_retention_bytes`] describes); at most
    /// [`StateConfig::output_retention_total_bytes`] once publishing settles.
    #[must_use]
    pub fn output_retained_bytes(&self) -> usize {
        self.shared().output.retained_bytes()
    }

    /// Count of listed (non-embedded) tasks per phase, every phase present. Cheap: kept up to
    /// date by the store, meant for a metrics collector.
    #[must_use]
    pub fn phase_counts(&self) -> BTreeMap<TaskPhase, u64> {
        self.shared().store.phase_counts()
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    fn check_open(&self) -> Result<(), CoreError> {
        if self.shared().closing.load(Ordering::Acquire) {
            Err(CoreError::ShuttingDown)
        } else {
            Ok(())
        }
    }
}

impl fmt::Debug for SupervisorApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorApi")
            .field("active", &self.shared().runtime.len())
            .field("closing", &self.shared().closing.load(Ordering::Relaxed))
            .field("router", &self.inner.router)
            .finish_non_exhaustive()
    }
}

/// Bound on request-path waits for taskvisor command capacity (submit, cancel, delete). With
/// the capacities from [`crate::limits`] this only expires when taskvisor is wedged.
pub(crate) const REQUEST_WAIT: Duration = Duration::from_secs(5);
const _: () = assert!(
    REQUEST_WAIT.as_secs() == 5,
    "update waited_out! with REQUEST_WAIT"
);
