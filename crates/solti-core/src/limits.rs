//! Building the taskvisor supervisor with every limit set from our own config.
//!
//! taskvisor defaults every capacity to 1024 and a plain `add().await` waits forever once it
//! is reached. The supervisor instead derives each capacity from
//! [`StateConfig::max_tasks`](crate::StateConfig::max_tasks) (see [`crate::docs::limits`]):
//! values the caller set lower are raised, values set higher (or unlimited) are kept.

use std::{num::NonZeroUsize, sync::Arc};

use taskvisor::{ControllerConfig, Subscribe, Supervisor, SupervisorConfig};

use crate::{CoreError, StateConfig};

/// The effective capacities, named in [`CoreError::Capacity`] when a request hits one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Capacities {
    /// taskvisor ownership units (0 = unlimited).
    pub(crate) ownership: usize,
    /// Controller command queue depth.
    pub(crate) intake: usize,
    /// Registry management (remove) queue depth.
    pub(crate) management: usize,
}

/// Builds (does not start) the supervisor.
pub(crate) fn build(
    sup: SupervisorConfig,
    ctl: ControllerConfig,
    subscribers: Vec<Arc<dyn Subscribe>>,
    state: &StateConfig,
) -> Result<(Arc<Supervisor>, Capacities), CoreError> {
    let sup = supervisor_config(sup, subscribers.len(), state);
    let ctl = controller_config(ctl, state);
    let capacities = Capacities {
        ownership: sup.ownership_capacity().map_or(0, NonZeroUsize::get),
        intake: ctl.queue_capacity().get(),
        management: sup.registry_queue_capacity().get(),
    };
    Supervisor::builder(sup)
        .with_subscribers(subscribers)
        .with_controller(ctl)
        .try_build()
        .map(|supervisor| (supervisor, capacities))
        .map_err(|e| CoreError::Internal(format!("cannot build the taskvisor supervisor: {e}")))
}

/// The supervisor config with capacities raised to what `state` needs.
pub(crate) fn supervisor_config(
    user: SupervisorConfig,
    subscribers: usize,
    state: &StateConfig,
) -> SupervisorConfig {
    let tasks = task_capacity(state);
    // One ownership unit per live task, one per subscriber, plus room for submissions whose
    // task is still being torn down after its outcome was delivered.
    let ownership = tasks.saturating_add(subscribers).saturating_add(tasks / 4);
    // Without subscribers taskvisor disables the bus; with them, a small bus drops events
    // (7-10 % at 30 k tasks/s with 1024 slots), which only matters to the subscribers.
    let bus = if subscribers == 0 {
        user.bus_capacity()
    } else {
        at_least(user.bus_capacity(), BUS_CAPACITY)
    };
    let registry_queue = at_least(user.registry_queue_capacity(), COMMAND_CAPACITY);
    let registered = raise(user.max_registered_tasks(), tasks);
    let ownership = raise(user.ownership_capacity(), ownership);
    user.with_max_registered_tasks(registered)
        .with_ownership_capacity(ownership)
        .with_bus_capacity(bus)
        .with_registry_queue_capacity(registry_queue)
}

/// The controller config with capacities raised to what `state` needs. `max_slot_queue` (the
/// per-slot Queue bound) is the caller's choice and kept as is.
pub(crate) fn controller_config(user: ControllerConfig, state: &StateConfig) -> ControllerConfig {
    let tasks = task_capacity(state);
    let queue = at_least(user.queue_capacity(), COMMAND_CAPACITY);
    let admission = at_least(user.admission_capacity(), COMMAND_CAPACITY);
    let identity = at_least(user.identity_operation_capacity(), COMMAND_CAPACITY);
    let slots = raise(user.max_controller_slots(), tasks);
    let pending = raise(user.max_total_pending(), tasks);
    user.with_queue_capacity(queue)
        .with_admission_capacity(admission)
        .with_identity_operation_capacity(identity)
        .with_max_controller_slots(slots)
        .with_max_total_pending(pending)
}

/// Live taskvisor tasks we may need: every stored task could be active, plus internal ones.
fn task_capacity(state: &StateConfig) -> usize {
    state.max_tasks.saturating_add(INTERNAL_TASKS)
}

/// `None` (unlimited) stays unlimited; a limit below `need` is raised to it.
fn raise(user: Option<NonZeroUsize>, need: usize) -> Option<NonZeroUsize> {
    user.map(|v| at_least(v, need))
}

fn at_least(user: NonZeroUsize, need: usize) -> NonZeroUsize {
    NonZeroUsize::new(need).map_or(user, |need| user.max(need))
}

/// Internal embedded tasks the SDK may run besides user tasks (sweep, discovery, metrics).
const INTERNAL_TASKS: usize = 16;
/// Event bus slots when subscribers are installed: no loss measured at 100 k tasks/s bursts.
const BUS_CAPACITY: usize = 65_536;
/// Depth of the registry and controller command queues (and concurrent admissions and
/// remove/cancel operations): a burst of this many concurrent requests is absorbed without
/// waiting. These queues allocate lazily, so a large bound costs nothing when idle.
const COMMAND_CAPACITY: usize = 16_384;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raises_defaults_keeps_larger_and_unlimited() {
        let state = StateConfig::default();
        let sup = supervisor_config(SupervisorConfig::default(), 0, &state);
        assert_eq!(
            sup.max_registered_tasks().map(NonZeroUsize::get),
            Some(100_016)
        );
        assert!(sup.ownership_capacity().unwrap().get() > 100_016);
        assert_eq!(
            sup.bus_capacity().get(),
            1024,
            "bus untouched without subscribers"
        );
        assert_eq!(sup.registry_queue_capacity().get(), COMMAND_CAPACITY);
        let unlimited = SupervisorConfig::default().with_max_registered_tasks(None);
        assert_eq!(
            supervisor_config(unlimited, 1, &state).max_registered_tasks(),
            None
        );
        assert_eq!(
            supervisor_config(SupervisorConfig::default(), 1, &state)
                .bus_capacity()
                .get(),
            BUS_CAPACITY
        );
        let ctl = controller_config(ControllerConfig::default(), &state);
        assert_eq!(ctl.max_slot_queue(), 100);
        assert_eq!(
            ctl.max_total_pending().map(NonZeroUsize::get),
            Some(100_016)
        );
        assert_eq!(ctl.queue_capacity().get(), COMMAND_CAPACITY);
    }
}
