//! Submission: build, wrap, store, hand to the controller, and finalize once.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use solti_model::{
    AdmissionPolicy, ModelError, ObjectMeta, Task, TaskId, TaskKind, TaskPhase, TaskSpec,
    TaskStatus,
};
use solti_runner::{OutputPublisher, now_ms};
use taskvisor as tv;

use super::{REQUEST_WAIT, Shared, SupervisorApi, runtime::Active};
use crate::{
    CoreError,
    attempt::{AttemptTask, TaskCell},
    convert::{self, OutcomeContext, SHUTDOWN_REASON},
    limits::Capacities,
    output::OutputChannel,
    store::RunEnd,
};

/// A task about to be admitted.
struct Prepared {
    id: TaskId,
    task: tv::TaskRef,
    runner: Arc<str>,
    output: Arc<OutputChannel>,
    listed: bool,
    /// Restored after an agent restart: the record exists; attempts so far.
    restored: Option<u32>,
}

impl SupervisorApi {
    /// Routes `spec` to a runner, stores the task (`Pending`) and hands it to taskvisor under
    /// the spec's slot and admission policy. Returns the new task's id.
    ///
    /// Admission outcomes are reported through the task, not as errors: on a busy slot a
    /// `DropIfRunning` task ends `Canceled` at once (its error names the owner), `Replace`
    /// cancels the slot's running and queued tasks (`"replaced by <id>"`), and a `Queue` task
    /// over the queue bound ends `Failed`.
    ///
    /// # Errors
    /// - [`CoreError::Runner`] when no runner matches or the runner cannot build the task
    ///   (embedded specs need [`submit_with_task`](Self::submit_with_task));
    /// - [`CoreError::Capacity`] when state or taskvisor is full;
    /// - [`CoreError::ShuttingDown`] after [`shutdown`](Self::shutdown) started.
    pub async fn submit(&self, spec: &TaskSpec) -> Result<TaskId, CoreError> {
        self.check_open()?;
        let id = TaskId::generate();
        let output = self.shared().output.create(&id);
        let ctx = self
            .inner
            .router
            .context(OutputPublisher::new(id.clone(), output.clone()));
        let (task, runner) = match self.inner.router.build(spec, &ctx) {
            Ok(built) => built,
            Err(err) => {
                self.shared().output.free(&id);
                return Err(err.into());
            }
        };
        let prepared = Prepared {
            id,
            task,
            runner: runner.into(),
            output,
            listed: true,
            restored: None,
        };
        self.admit(spec, prepared).await
    }

    /// Submits an embedded task: `task` is the code, `spec` (of kind
    /// [`TaskKind::Embedded`]) carries slot, policies and timeout. Runs and output markers are
    /// recorded as for any task; embedded tasks are not listed by
    /// [`query_tasks`](Self::query_tasks).
    ///
    /// # Errors
    /// [`CoreError::Invalid`] when the spec is not embedded; otherwise as
    /// [`submit`](Self::submit).
    pub async fn submit_with_task(
        &self,
        task: tv::TaskRef,
        spec: &TaskSpec,
    ) -> Result<TaskId, CoreError> {
        self.check_open()?;
        if !matches!(spec.kind(), TaskKind::Embedded) {
            return Err(CoreError::Invalid(ModelError::invalid(
                "kind",
                format!(
                    "must be embedded for submit_with_task, got {}",
                    spec.kind().name()
                ),
            )));
        }
        let id = TaskId::generate();
        let output = self.shared().output.create(&id);
        let prepared = Prepared {
            id,
            task,
            runner: Arc::from(EMBEDDED_RUNNER),
            output,
            listed: false,
            restored: None,
        };
        self.admit(spec, prepared).await
    }

    /// Starts a task restored from the store again, as a new attempt after `attempts`
    /// earlier ones, under its slot and admission policy. Its record already exists.
    pub(super) async fn readmit(&self, task: &Task) -> Result<(), CoreError> {
        let spec = &task.spec;
        let id = task.metadata.id.clone();
        let output = self.shared().output.create_at(&id, restart_offset_base());
        let ctx = self
            .inner
            .router
            .context(OutputPublisher::new(id.clone(), output.clone()));
        let (built, runner) = match self.inner.router.build(spec, &ctx) {
            Ok(built) => built,
            Err(err) => {
                self.shared().output.free(&id);
                return Err(err.into());
            }
        };
        let prepared = Prepared {
            id,
            task: built,
            runner: runner.into(),
            output,
            listed: true,
            restored: Some(task.status.attempt),
        };
        self.admit(spec, prepared).await.map(drop)
    }

    async fn admit(&self, spec: &TaskSpec, p: Prepared) -> Result<TaskId, CoreError> {
        // Admission runs to its end even when the caller stops waiting (a client that
        // disconnects mid-request drops this future): stopped half-way it would leave a stored
        // task that nothing runs, or a slot held by a task that never started. It is bounded
        // (one store commit, then the intake wait).
        let api = self.clone();
        let spec = spec.clone();
        let admission = self.shared().tracker.spawn(async move {
            let id = p.id.clone();
            let result = api.admit_prepared(&spec, p).await;
            if result.is_err() {
                api.shared().output.free(&id);
            }
            result
        });
        admission
            .await
            .unwrap_or_else(|e| Err(CoreError::Internal(format!("admission task failed: {e}"))))
    }

    async fn admit_prepared(&self, spec: &TaskSpec, p: Prepared) -> Result<TaskId, CoreError> {
        let shared = self.shared();
        let Prepared {
            id,
            task,
            runner,
            output,
            listed,
            restored,
        } = p;
        if listed && shared.runtime.slot_is_internal(spec.slot()) {
            return Err(CoreError::Invalid(ModelError::invalid(
                "slot",
                format!(
                    "{:?} is reserved by an internal task of the agent",
                    spec.slot().as_str()
                ),
            )));
        }
        shared.metrics.task_submitted();
        // DropIfRunning is decided here, against our own index of active tasks, and never by
        // taskvisor (see `convert::admission`): a slot whose last task is terminal for the
        // caller is free, even while taskvisor's controller is still retiring that task.
        let drop_if_running = spec.admission() == AdmissionPolicy::DropIfRunning;
        if drop_if_running && let Some(owner) = shared.runtime.slot_owner(spec.slot()) {
            shared
                .metrics
                .task_rejected(convert::rejection_label(tv::RejectionKind::SlotBusy));
            // The slot is visibly busy: refuse at once, so the acknowledged task is already
            // terminal when the caller looks.
            let error = convert::slot_busy(spec.slot().as_str(), Some(&owner));
            if restored.is_some() {
                let end = RunEnd::new(TaskPhase::Canceled, now_ms(), Some(error));
                shared.store.finish(&id, end, TaskPhase::Failed);
                output.close();
                return Ok(id);
            }
            let mut status = TaskStatus::new(TaskPhase::Canceled);
            status.error = Some(error);
            let evicted = shared.store.create(
                Task::new(ObjectMeta::new(id.clone(), now_ms()), spec.clone(), status),
                listed,
            )?;
            free_output(shared, &evicted);
            if let Err(err) = shared.store.sync().await {
                shared.store.delete(&id);
                return Err(err);
            }
            output.close();
            return Ok(id);
        }
        let cell = TaskCell::new(
            id.clone(),
            Arc::clone(&output),
            Arc::clone(&shared.store),
            Arc::clone(&shared.metrics),
            runner,
            spec.kind().name(),
            Duration::from_millis(spec.timeout_ms()),
        )
        .with_attempts(restored.unwrap_or(0));
        let wrapped: tv::TaskRef = Arc::new(AttemptTask::new(task, Arc::new(cell)));
        // Names are registry keys, global across slots: make them unique per task.
        let name: Arc<str> = Arc::from(format!("{}/{}", spec.slot(), id));
        let tv_spec = convert::task_spec(name, wrapped, spec)?;
        let controller_spec =
            tv::ControllerSpec::new(convert::admission(spec.admission()), tv_spec)
                .with_slot(spec.slot().as_str());
        let prepared = self
            .inner
            .handle
            .prepare_submission(controller_spec)
            .map_err(|e| controller_error(e, shared.capacities))?;

        if restored.is_none() {
            let record = Task::new(
                ObjectMeta::new(id.clone(), now_ms()),
                spec.clone(),
                TaskStatus::new(TaskPhase::Pending),
            );
            let evicted = shared.store.create(record, listed)?;
            free_output(shared, &evicted);
            // Acknowledged only once durable: a burst of submissions shares one commit.
            if let Err(err) = shared.store.sync().await {
                shared.store.delete(&id);
                output.close();
                return Err(err);
            }
        }
        let replace = spec.admission() == AdmissionPolicy::Replace;
        let registered = shared.runtime.register(
            &id,
            prepared.id(),
            spec.slot(),
            Arc::clone(&output),
            replace,
            drop_if_running,
            listed,
        );
        let (entry, earlier) = match registered {
            Ok(registered) => registered,
            Err(owner) => {
                // A concurrent submission took the slot after the check above: refuse the
                // same way (the prepared submission is dropped unsent, which starts nothing).
                shared
                    .metrics
                    .task_rejected(convert::rejection_label(tv::RejectionKind::SlotBusy));
                let end = RunEnd {
                    phase: TaskPhase::Canceled,
                    finished_at: now_ms(),
                    error: Some(convert::slot_busy(spec.slot().as_str(), Some(&owner))),
                    exit_code: None,
                };
                shared.store.finish(&id, end, TaskPhase::Canceled);
                output.close();
                // The `Pending` record was made durable above: the refusal must be too, or a
                // restart would run a task the caller was told was refused.
                if let Err(err) = shared.store.sync().await {
                    shared.store.delete(&id);
                    return Err(err);
                }
                return Ok(id);
            }
        };
        let replaced_by = format!("replaced by {id}");
        if replace {
            // Set before intake, so the owner's finalizer (which may run right after
            // taskvisor processes the replacement) already sees why it stopped.
            for other in &earlier {
                other.stop_with(|| replaced_by.clone());
            }
        }

        let waiter = match intake(prepared, shared.capacities).await {
            Ok(waiter) => waiter,
            Err(err) => {
                if replace {
                    for other in &earlier {
                        other.clear_stop_reason(&replaced_by);
                    }
                }
                shared.runtime.unregister(&id);
                if restored.is_some() {
                    let end = RunEnd::new(
                        TaskPhase::Failed,
                        now_ms(),
                        Some(format!(
                            "{}; could not start it again: {err}",
                            super::recover::RESTART_REASON
                        )),
                    );
                    shared.store.finish(&id, end, TaskPhase::Failed);
                } else {
                    shared.store.delete(&id);
                }
                entry.output.close();
                return Err(err);
            }
        };
        let tv_id = entry.tv_id;
        let stopped_early = entry.stop_reason().is_some();
        shared
            .tracker
            .spawn(finalize(Arc::clone(shared), id.clone(), entry, waiter));
        if stopped_early {
            // A cancel or delete raced with intake: its remove may have reached taskvisor
            // before the submission did and missed it. Removing again is harmless.
            self.remove_quietly(tv_id).await;
        }

        if replace {
            // taskvisor cancels the owner and supersedes the queue head but keeps the FIFO
            // tail; remove every earlier task of the slot so nothing queued survives. These
            // commands follow the replacement in the controller's order.
            for other in earlier {
                self.remove_quietly(other.tv_id).await;
            }
        }
        Ok(id)
    }
}

/// Frees the output of tasks the store evicted.
fn free_output(shared: &Shared, evicted: &[TaskId]) {
    for id in evicted {
        shared.output.free(id);
    }
}

/// Hands the prepared submission to the controller, never waiting without bound.
async fn intake(
    prepared: tv::PreparedSubmission,
    caps: Capacities,
) -> Result<tv::TaskWaiter, CoreError> {
    let submit = prepared.submit().watch().ownership_timeout(REQUEST_WAIT);
    match tokio::time::timeout(REQUEST_WAIT, submit.execute()).await {
        Ok(result) => result.map_err(|e| controller_error(e, caps)),
        Err(_) => Err(CoreError::Capacity {
            what: waited_out!("taskvisor controller intake queue"),
            limit: caps.intake,
        }),
    }
}

/// Awaits the watched outcome and writes the terminal phase, once; then retires the task's
/// runtime entry and ends its output stream (after the last `RunFinished`).
async fn finalize(shared: Arc<Shared>, id: TaskId, entry: Arc<Active>, waiter: tv::TaskWaiter) {
    let outcome = waiter.wait().await;
    if let Ok(tv::TaskOutcome::Rejected { kind, .. }) = &outcome {
        shared
            .metrics
            .task_rejected(convert::rejection_label(*kind));
    }
    let stop_reason = entry.stop_reason().or_else(|| {
        // Submitted while shutdown was naming reasons: it is stopped by the shutdown too.
        shared
            .closing
            .load(Ordering::Acquire)
            .then(|| SHUTDOWN_REASON.to_owned())
    });
    let last_run = shared.store.last_run_phase(&id);
    let terminal = match &outcome {
        Ok(outcome) => {
            let cx = OutcomeContext {
                stop_reason: stop_reason.as_deref(),
                last_run,
                slot: entry.slot.as_str(),
                owner: entry.owner_hint.as_ref(),
            };
            convert::terminal(outcome, &cx)
        }
        Err(err) => convert::Terminal {
            phase: TaskPhase::Canceled,
            error: Some(stop_reason.unwrap_or_else(|| format!("outcome unavailable: {err}"))),
            exit_code: None,
        },
    };
    tracing::debug!(task_id = %id, phase = %terminal.phase, "task finished");
    let end = RunEnd {
        phase: terminal.phase,
        finished_at: now_ms(),
        error: terminal.error,
        exit_code: terminal.exit_code,
    };
    shared.store.finish(&id, end, TaskPhase::Canceled);
    shared.runtime.unregister(&id);
    entry.output.close();
}

fn controller_error(err: tv::ControllerError, caps: Capacities) -> CoreError {
    match err {
        tv::ControllerError::ResourceLimit {
            resource, limit, ..
        } => CoreError::Capacity {
            what: resource,
            limit,
        },
        tv::ControllerError::OwnershipAdmissionTimeout { .. } => CoreError::Capacity {
            what: waited_out!("taskvisor ownership"),
            limit: caps.ownership,
        },
        tv::ControllerError::Full => CoreError::Capacity {
            what: "taskvisor controller intake queue",
            limit: caps.intake,
        },
        tv::ControllerError::Closed => CoreError::ShuttingDown,
        other => CoreError::Internal(format!("taskvisor controller: {other}")),
    }
}

/// Runner name reported for embedded tasks.
const EMBEDDED_RUNNER: &str = "embedded";

/// The first output offset of a task started again after an agent restart: the start time
/// in milliseconds times 2^20. The previous process started earlier and would have had to
/// publish over a million events per millisecond of its life to reach it, so offsets stay
/// unique across restarts without storing output or counters.
fn restart_offset_base() -> u64 {
    u64::try_from(now_ms()).unwrap_or(0).saturating_mul(1 << 20)
}
