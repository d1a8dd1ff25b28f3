//! Design rationale (documentation only; no code).

/// # Shutdown ordering
///
/// [`SupervisorApi::shutdown`](crate::SupervisorApi::shutdown) runs these steps once; later
/// and concurrent calls wait for the first call's result.
///
/// 1. **Stop accepting.** A flag makes `submit` and `submit_with_task` fail with
///    [`CoreError::ShuttingDown`](crate::CoreError::ShuttingDown). Queries, subscriptions and
///    deletes keep working, so an API layer can still answer while the agent stops.
/// 2. **Name the reason first.** Every active task gets the stop reason
///    `"agent shutting down"` (unless it already has one, e.g. `"replaced by …"`), *before*
///    anything is cancelled, so each task's finalizer can write it with the terminal phase.
/// 3. **taskvisor shutdown.** Every task's cancellation token fires; runners stop their work
///    (a subprocess runner terminates its process tree). taskvisor waits up to the
///    configured `SupervisorConfig::grace` and then force-aborts what is left (the attempt
///    future is dropped; runners clean up in `Drop`). Queued submissions are rejected.
///    A grace overrun is logged, not returned as an error: the tasks are stopped either way.
/// 4. **Finalizers.** taskvisor has now delivered every watched outcome, so the finalizer of
///    each task writes its terminal phase (`Canceled`, with the reason from step 2) and ends
///    its output stream after the final `RunFinished`. The finalizers are tracked by a
///    `TaskTracker`; the wait for them is bounded (5 s) so a wedged runtime cannot hang
///    shutdown.
/// 5. **Sweep up.** Any task whose outcome never arrived is marked `Canceled` here, its open
///    runs are closed, and its output stream ends. After `shutdown` returns no task is
///    `Pending` or `Running` and every subscription yields `None` once drained.
///
/// The sweep task is an embedded task under the same supervisor, so step 3 stops it too.
///
/// Why this order: writing terminal phases only after taskvisor confirmed each outcome keeps
/// run history truthful (a task is never shown stopped while its process still runs within
/// the grace), and naming the reason first keeps the outcome mapping independent of timing.
pub mod shutdown {}

/// # taskvisor limits
///
/// taskvisor bounds everything at 1024 by default, and a plain `add().await` waits forever
/// when ownership runs out. [`SupervisorApi::new`](crate::SupervisorApi::new) therefore sets
/// every limit explicitly, derived from [`StateConfig::max_tasks`](crate::StateConfig)
/// (default 100 000): `N = max_tasks + 16` (room for internal tasks).
///
/// | taskvisor limit | value | why |
/// |---|---|---|
/// | `max_registered_tasks` | `N` | every stored task may be active at once |
/// | `ownership_capacity` | `N + subscribers + N/4` | tasks being torn down still hold a unit |
/// | `bus_capacity` | 65 536 with subscribers, else as given | the default drops 7–10 % of events under load |
/// | `registry_queue_capacity` | 16 384 | command bursts are absorbed without waiting |
/// | controller `queue_capacity`, `admission_capacity`, `identity_operation_capacity` | 16 384 | same |
/// | controller `max_controller_slots`, `max_total_pending` | `N` | one slot per task at most |
/// | controller `max_slot_queue` | as given (default 100) | the per-slot Queue bound is policy, not capacity; keep it at least 1, since a DropIfRunning task admitted right after its slot's previous task finished waits in that queue while taskvisor retires the previous task (with 0 it would end `Failed`, queue full) |
///
/// A value the caller configured higher (or unlimited) is kept; only lower values are raised.
/// `grace`, `max_concurrent` and `subscriber_shutdown_timeout` are taken as given. The
/// command queues allocate lazily, so large bounds cost nothing while idle.
///
/// Request paths never wait without bound: intake uses taskvisor's `ownership_timeout` and
/// an overall 5 s limit, removals a 5 s limit; hitting either returns
/// [`CoreError::Capacity`](crate::CoreError::Capacity). The store refuses a new task with
/// `Capacity` only when it holds `max_tasks` tasks that are all active; otherwise it evicts
/// the oldest terminal task.
pub mod limits {}

/// # Outcome → phase mapping
///
/// The finalizer maps taskvisor's watched outcome to the terminal phase:
///
/// | taskvisor outcome | phase | error text |
/// |---|---|---|
/// | `Completed` | `Succeeded` | — |
/// | `Failed`, reason "retry limit reached …" | `Exhausted` | taskvisor's reason |
/// | `Failed`, last run timed out | `Timeout` | taskvisor's reason |
/// | other `Failed`, `Fatal`, `Panicked` | `Failed` | reason |
/// | `Canceled`, `ForceAborted` | `Canceled` | "canceled", "replaced by &lt;id&gt;", "deleted", "agent shutting down" |
/// | `Rejected(SlotBusy)` | `Canceled` | names the slot (DropIfRunning is refused by the supervisor before taskvisor, naming the owning task id; this row is a fallback) |
/// | `Rejected(QueueFull)` | `Failed` | names the slot and the bound |
/// | `Rejected(SupersededByReplace \| RemovedFromQueue)` | `Canceled` | the stop reason |
/// | `Rejected(ControllerShuttingDown)` | `Canceled` | "agent shutting down" |
/// | other rejections | `Failed` | the rejection kind and reason |
///
/// Runs are recorded by the attempt wrapper: the result in the attempt's `AttemptEnd` gives
/// the run's phase (`Ok` → `Succeeded`, `Timeout` → `Timeout`, `Canceled` or any error after
/// the stop was requested → `Canceled`, else `Failed`). The run's exit code is the one in the
/// `AttemptEnd` (a process that exited by itself, also on success), else the error's own
/// code, else none. When taskvisor drops the
/// future (timeout, force-abort) a drop guard records `Timeout` if the attempt ran for its
/// whole timeout, else `Canceled`. Terminal phases are sticky.
pub mod outcomes {}
