//! The one way this backend waits for something the kernel does not announce (a child
//! exiting without a pidfd, a cgroup emptying, a stuck process being reaped): check, sleep,
//! check again, the sleep doubling from [`FIRST`] up to [`CAP`].
//!
//! [`CAP`] bounds how late a change is noticed (at most one cap after it happened) and how
//! often a long wait costs a check (at most 1/[`CAP`] per second), for every caller alike.

use std::time::{Duration, Instant};

/// The first sleep.
pub(crate) const FIRST: Duration = Duration::from_micros(100);
/// The longest sleep between two checks.
pub(crate) const CAP: Duration = Duration::from_millis(50);

/// Bounded doubling backoff: [`FIRST`], twice that, ... up to [`CAP`].
#[derive(Debug)]
pub(crate) struct Backoff(Duration);

impl Backoff {
    pub(crate) fn new() -> Self {
        Self(FIRST)
    }

    /// The next sleep (then doubles, up to [`CAP`]).
    pub(crate) fn next(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (wait * 2).min(CAP);
        wait
    }
}

/// Checks `done` until it returns `true` or `budget` has passed, blocking the thread in
/// between; whether it became `true`. `done` is always checked at least once, and once
/// more at the end of the budget.
pub(crate) fn blocking(budget: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + budget;
    let mut backoff = Backoff::new();
    loop {
        if done() {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        std::thread::sleep(backoff.next().min(left));
    }
}

/// [`blocking`] on the async runtime (tokio's clock, so paused time applies); no budget
/// (`None`) waits until `done`.
pub(crate) async fn until(budget: Option<Duration>, mut done: impl FnMut() -> bool) -> bool {
    let deadline = budget.map(|b| tokio::time::Instant::now() + b);
    let mut backoff = Backoff::new();
    loop {
        if done() {
            return true;
        }
        let mut wait = backoff.next();
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            wait = wait.min(left);
        }
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_the_cap_and_blocking_polls_stop_when_done() {
        let mut b = Backoff::new();
        let waits: Vec<Duration> = (0..12).map(|_| b.next()).collect();
        assert_eq!(waits[..2], [FIRST, FIRST * 2]);
        assert_eq!(waits[11], CAP);
        let mut n = 0;
        assert!(blocking(Duration::from_secs(60), || {
            n += 1;
            n == 3
        }));
        assert!(!blocking(Duration::ZERO, || false));
    }

    #[tokio::test(start_paused = true)]
    async fn async_polling_gives_up_after_its_budget() {
        let start = tokio::time::Instant::now();
        assert!(!until(Some(Duration::from_secs(1)), || false).await);
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }
}
