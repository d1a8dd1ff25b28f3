//! Periodic return of freed heap memory to the OS.
//!
//! glibc's allocator keeps freed chunks in its arenas; after a burst of thousands of tasks is
//! deleted or swept, the agent's resident size would stay near its peak. `malloc_trim(0)`
//! releases free pages at the top of each heap and `madvise`s free pages inside them.

use std::time::Duration;

use solti_model::{MAX_DURATION_MS, RestartPolicy, TaskKind, TaskSpec};
use taskvisor::{TaskContext, TaskError, TaskFn, TaskRef};

/// Slot of the internal trim task.
const SLOT: &str = "solti-malloc-trim";

/// An embedded task that trims the heap every `every` until cancelled.
pub(crate) fn periodic(every: Duration) -> (TaskRef, TaskSpec) {
    let task: TaskRef = TaskFn::arc(move |ctx: TaskContext| async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = ctx.cancelled() => return Err(TaskError::Canceled),
                _ = tick.tick() => trim(),
            }
        }
    });
    let spec = TaskSpec::builder(SLOT, TaskKind::Embedded, MAX_DURATION_MS)
        .restart(RestartPolicy::OnFailure)
        .build();
    // The spec is a constant shape (valid slot, kind, timeout); building it cannot fail.
    #[expect(clippy::expect_used, reason = "constant, valid spec")]
    (task, spec.expect("the trim task spec is valid"))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    #[expect(unsafe_code, reason = "FFI call into glibc")]
    // SAFETY: malloc_trim takes a plain integer, touches only the allocator's own state under
    // its own locks, and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
