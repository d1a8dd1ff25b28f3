//! The embedded task that keeps the log timer's local offset current.

use std::time::Duration;

use solti_model::{MAX_DURATION_MS, RestartPolicy, TaskKind, TaskSpec};
use taskvisor::{TaskContext, TaskError, TaskFn, TaskRef};
use tokio::time::MissedTickBehavior;

use crate::clock::refresh_local_offset;

/// The admission slot of the [`timezone_sync`] task.
pub const TIMEZONE_SYNC_SLOT: &str = "solti-timezone-sync";

/// How often [`timezone_sync`] re-reads the offset when no other period is given.
pub const DEFAULT_TIMEZONE_SYNC_PERIOD: Duration = Duration::from_secs(3600);

/// An embedded task that re-reads the host's UTC offset at start and then every hour, so
/// local timestamps follow daylight-saving changes. Submit it with
/// `SupervisorApi::submit_with_task(task, &spec)`.
///
/// The spec: slot `solti-timezone-sync`, kind [`TaskKind::Embedded`], restart `OnFailure`,
/// and a per-attempt timeout of [`MAX_DURATION_MS`] (the attempt runs until cancelled). A
/// failed read is logged at WARN and the previous offset is kept; the task does not fail.
///
/// ```
/// let (task, spec) = solti_observe::timezone_sync();
/// assert_eq!(spec.slot().as_str(), "solti-timezone-sync");
/// # drop(task);
/// ```
#[must_use]
pub fn timezone_sync() -> (TaskRef, TaskSpec) {
    timezone_sync_every(DEFAULT_TIMEZONE_SYNC_PERIOD)
}

/// [`timezone_sync`] with a custom period (a zero period is raised to one second).
#[must_use]
pub fn timezone_sync_every(period: Duration) -> (TaskRef, TaskSpec) {
    let period = period.max(Duration::from_secs(1));
    let task: TaskRef = TaskFn::arc(move |ctx: TaskContext| sync_loop(ctx, period));
    (task, spec())
}

async fn sync_loop(ctx: TaskContext, period: Duration) -> Result<(), TaskError> {
    let mut ticks = tokio::time::interval(period);
    // After a suspend there is no point catching up on missed reads.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = ctx.cancelled() => return Err(TaskError::Canceled),
            _ = ticks.tick() => match refresh_local_offset() {
                Ok(offset) => tracing::debug!(offset = %offset, "local utc offset refreshed"),
                Err(error) => tracing::warn!(%error, "keeping the previous local utc offset"),
            },
        }
    }
}

fn spec() -> TaskSpec {
    // Every value here is a constant the model accepts (the slot name is valid, the timeout is
    // the model's maximum); a test pins that, so the fallback is never taken.
    #[expect(clippy::expect_used, reason = "constant spec; covered by tests")]
    TaskSpec::builder(TIMEZONE_SYNC_SLOT, TaskKind::Embedded, MAX_DURATION_MS)
        .restart(RestartPolicy::OnFailure)
        .build()
        .expect("the timezone-sync spec is valid")
}

#[cfg(test)]
mod tests {
    use time::macros::offset;

    use super::*;
    use crate::clock::{local_offset, store_local_offset};

    #[test]
    fn spec_is_embedded_in_its_slot() {
        let (_task, spec) = timezone_sync();
        assert_eq!(spec.slot().as_str(), TIMEZONE_SYNC_SLOT);
        assert_eq!(spec.kind(), &TaskKind::Embedded);
        assert_eq!(spec.restart(), RestartPolicy::OnFailure);
    }

    #[tokio::test(start_paused = true)]
    #[expect(
        clippy::await_holding_lock,
        reason = "single-threaded test runtime; serialises a global"
    )]
    async fn rereads_every_period_until_cancelled() {
        let _guard = crate::clock::tests::OFFSET_LOCK.lock().unwrap();
        let actual = refresh_local_offset().unwrap();
        let bogus = if actual == offset!(+13:45) {
            offset!(-11:00)
        } else {
            offset!(+13:45)
        };
        let (task, _spec) = timezone_sync_every(Duration::from_secs(60));
        let ctx = TaskContext::detached();
        let run = tokio::spawn(task.spawn(ctx.clone()));
        tokio::task::yield_now().await;
        store_local_offset(bogus);
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert_eq!(local_offset(), actual, "the next tick re-read the offset");
        ctx.cancellation_token().cancel();
        assert!(matches!(run.await.unwrap(), Err(TaskError::Canceled)));
    }
}
