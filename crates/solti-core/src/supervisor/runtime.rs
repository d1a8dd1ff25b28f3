//! Live bookkeeping of active tasks: taskvisor ids, slot membership, stop reasons, output.
//!
//! taskvisor exposes neither queued ids nor slot owners, so the supervisor keeps its own index
//! of which tasks are active on which slot, in submission order. An entry lives from submit
//! until the task's finalizer has written its terminal phase.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
};

use solti_model::{Slot, TaskId};
use taskvisor as tv;
use tokio_util::sync::CancellationToken;

use crate::output::OutputChannel;

/// One active task.
pub(crate) struct Active {
    pub(crate) tv_id: tv::TaskId,
    pub(crate) slot: Slot,
    pub(crate) output: Arc<OutputChannel>,
    /// The task that held the slot when this one was submitted (named on a SlotBusy refusal).
    pub(crate) owner_hint: Option<TaskId>,
    stop_reason: Mutex<Option<String>>,
    /// Set by `delete_task`: the task is gone for callers, though it may still be stopping.
    deleted: AtomicBool,
    /// Whether the task is user-visible (not an internal embedded task).
    listed: bool,
    /// Cancelled when the entry is retired (its terminal phase is written).
    finished: CancellationToken,
}

impl Active {
    /// Marks the task deleted; returns whether it already was.
    pub(crate) fn mark_deleted(&self) -> bool {
        self.deleted.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Records why we stop the task, unless a reason is already set (the first one wins:
    /// a task being replaced that is then cancelled still ends "replaced by …").
    pub(crate) fn stop_with(&self, reason: impl FnOnce() -> String) {
        let mut slot = self
            .stop_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(reason());
        }
    }

    /// Forgets the stop reason `reason` when it was set but not acted on (the request that
    /// set it failed); a reason set by someone else stays.
    pub(crate) fn clear_stop_reason(&self, reason: &str) {
        let mut slot = self
            .stop_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.as_deref() == Some(reason) {
            *slot = None;
        }
    }

    /// Completes once the task's terminal phase is written and its entry retired.
    pub(crate) async fn finished(&self) {
        self.finished.cancelled().await;
    }

    pub(crate) fn stop_reason(&self) -> Option<String> {
        self.stop_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl fmt::Debug for Active {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Active")
            .field("tv_id", &self.tv_id)
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

/// Active tasks by id and by slot.
#[derive(Debug, Default)]
pub(crate) struct Runtime {
    inner: Mutex<Maps>,
}

#[derive(Debug, Default)]
struct Maps {
    active: HashMap<TaskId, Arc<Active>>,
    /// Active tasks of each slot, oldest submission first.
    slots: HashMap<Slot, Vec<TaskId>>,
}

impl Runtime {
    /// Registers a task; returns its entry and, when `want_earlier` (a replacement), the
    /// tasks active on its slot before it.
    ///
    /// With `refuse_if_busy` (DropIfRunning) the check and the registration are one step:
    /// when the slot has an active task, nothing is registered and that owner is returned as
    /// the error, so two concurrent submissions to a free slot cannot both get in.
    #[expect(
        clippy::too_many_arguments,
        reason = "a plain record of what the submit path assembled"
    )]
    pub(crate) fn register(
        &self,
        id: &TaskId,
        tv_id: tv::TaskId,
        slot: &Slot,
        output: Arc<OutputChannel>,
        want_earlier: bool,
        refuse_if_busy: bool,
        listed: bool,
    ) -> Result<(Arc<Active>, Vec<Arc<Active>>), TaskId> {
        let mut maps = self.lock();
        if refuse_if_busy && let Some(owner) = maps.slots.get(slot).and_then(|ids| ids.first()) {
            return Err(owner.clone());
        }
        let earlier: Vec<Arc<Active>> = match maps.slots.get(slot) {
            Some(ids) if want_earlier => ids
                .iter()
                .filter_map(|i| maps.active.get(i).cloned())
                .collect(),
            _ => Vec::new(),
        };
        let owner_hint = maps.slots.get(slot).and_then(|ids| ids.first().cloned());
        let entry = Arc::new(Active {
            tv_id,
            slot: slot.clone(),
            output,
            owner_hint,
            stop_reason: Mutex::new(None),
            deleted: AtomicBool::new(false),
            listed,
            finished: CancellationToken::new(),
        });
        maps.active.insert(id.clone(), Arc::clone(&entry));
        maps.slots.entry(slot.clone()).or_default().push(id.clone());
        Ok((entry, earlier))
    }

    /// Whether an internal (unlisted) task is active on `slot`: such slots are closed to
    /// user submissions, so nobody can replace, queue behind or probe an internal task.
    pub(crate) fn slot_is_internal(&self, slot: &Slot) -> bool {
        let maps = self.lock();
        maps.slots.get(slot).is_some_and(|ids| {
            ids.iter()
                .any(|i| maps.active.get(i).is_some_and(|a| !a.listed))
        })
    }

    /// The oldest active task of `slot`: the one holding it (or first in line for it).
    pub(crate) fn slot_owner(&self, slot: &Slot) -> Option<TaskId> {
        self.lock()
            .slots
            .get(slot)
            .and_then(|ids| ids.first().cloned())
    }

    /// Removes a task; returns its entry when it was registered.
    pub(crate) fn unregister(&self, id: &TaskId) -> Option<Arc<Active>> {
        let mut maps = self.lock();
        let entry = maps.active.remove(id)?;
        if let Some(ids) = maps.slots.get_mut(&entry.slot) {
            ids.retain(|i| i != id);
            if ids.is_empty() {
                maps.slots.remove(&entry.slot);
            }
        }
        entry.finished.cancel();
        Some(entry)
    }

    /// The entry of an active task, unless it was deleted.
    pub(crate) fn get(&self, id: &TaskId) -> Option<Arc<Active>> {
        self.lock()
            .active
            .get(id)
            .filter(|a| !a.is_deleted())
            .cloned()
    }

    pub(crate) fn all(&self) -> Vec<(TaskId, Arc<Active>)> {
        self.lock()
            .active
            .iter()
            .map(|(id, a)| (id.clone(), Arc::clone(a)))
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().active.len()
    }

    fn lock(&self) -> MutexGuard<'_, Maps> {
        // Two maps updated together under the lock; no partial update can panic midway.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
