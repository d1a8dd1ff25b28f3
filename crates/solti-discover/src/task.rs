//! [`sync()`]: the heartbeat as an embedded task for the supervisor.

use std::sync::Arc;

use solti_model::{AdmissionPolicy, MAX_DURATION_MS, RestartPolicy, TaskKind, TaskSpec};
use taskvisor::{TaskFn, TaskRef};

use crate::{
    DiscoverConfig, DiscoverError,
    heartbeat::{self, Shared},
    payload::HostInfo,
};

/// The slot of the discovery task.
pub const SLOT: &str = "solti-discover";

/// Builds the discovery heartbeat as an embedded task and its spec; submit both with
/// `SupervisorApi::submit_with_task(task, &spec)`.
///
/// The task sends the first Sync after a random delay in `[0, interval)` and then one per
/// interval on a fixed schedule, until the supervisor cancels it. Retryable failures are
/// handled inside (a control plane that is down never stops the agent); refused credentials
/// end the task with a fatal [`DiscoverError::Unauthorized`], which is not restarted.
///
/// The spec: kind [`TaskKind::Embedded`], slot [`SLOT`], restart `OnFailure` (only an
/// unexpected failure such as a panic restarts it), admission `Replace` (submitting a new
/// discovery task replaces the running one, e.g. after reconfiguration), and a per-attempt
/// timeout of [`MAX_DURATION_MS`], since one attempt runs the whole loop.
///
/// The OS name is read from `/etc/os-release` here, once.
///
/// # Errors
/// [`DiscoverError::Spec`] if the spec cannot be built (not expected: its values are fixed).
pub fn sync(config: DiscoverConfig) -> Result<(TaskRef, TaskSpec), DiscoverError> {
    let spec = TaskSpec::builder(SLOT, TaskKind::Embedded, MAX_DURATION_MS)
        .restart(RestartPolicy::OnFailure)
        .admission(AdmissionPolicy::Replace)
        .build()
        .map_err(DiscoverError::Spec)?;
    let shared = Arc::new(Shared::new(config, HostInfo::detect()));
    let task: TaskRef = TaskFn::arc(move |ctx| heartbeat::run(ctx, Arc::clone(&shared)));
    Ok((task, spec))
}
