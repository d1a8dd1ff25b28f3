//! Timing arithmetic of the heartbeat: the fixed grid, backoff with jitter, and the
//! `retry_after_s` clamp. Pure functions; randomness comes in as an argument.

use std::time::Duration;

use tokio::time::Instant;

/// The first grid point strictly after `now`, where the grid is `anchor + k * interval`
/// (k >= 0). Beats are placed on this grid, never "interval after the last answer", so a
/// slow control plane or a busy agent does not make the heartbeat drift.
pub(crate) fn next_on_grid(anchor: Instant, interval: Duration, now: Instant) -> Instant {
    if now < anchor {
        return anchor;
    }
    let elapsed = now.duration_since(anchor).as_nanos();
    let step = interval.as_nanos().max(1);
    let k = elapsed / step + 1;
    let offset = u64::try_from(step.saturating_mul(k)).unwrap_or(u64::MAX);
    anchor + Duration::from_nanos(offset)
}

/// Delay before retry number `failures` (1 = first retry): the step is `initial * 2^(n-1)`
/// capped at `max`, and the delay is drawn from the step's upper half (`unit` in `[0, 1)`).
/// Equal jitter keeps retries of a fleet apart without ever collapsing to zero.
pub(crate) fn backoff_delay(
    initial: Duration,
    max: Duration,
    failures: u32,
    unit: f64,
) -> Duration {
    let exp = failures.saturating_sub(1).min(32);
    let step = initial.saturating_mul(1u32 << exp.min(31)).min(max);
    let half = step / 2;
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    half + (step - half).mul_f64(unit)
}

/// The control plane's `retry_after_s`: `None` for 0 or less (use normal backoff), else
/// that many seconds, at most [`MAX_RETRY_AFTER`].
pub(crate) fn retry_after(seconds: i64) -> Option<Duration> {
    (seconds > 0).then(|| Duration::from_secs(seconds.unsigned_abs()).min(MAX_RETRY_AFTER))
}

/// A random point in `[0, max)`; zero when `max` is zero.
pub(crate) fn start_jitter(max: Duration, unit: f64) -> Duration {
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let d = max.mul_f64(unit);
    // mul_f64 may round up to `max` for units close to 1: keep the interval half-open.
    if d >= max {
        max.saturating_sub(Duration::from_nanos(1))
    } else {
        d
    }
}

/// Upper bound of a server-requested pause (the contract's clamp).
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn grid_points() {
        let t0 = Instant::now();
        let i = Duration::from_secs(10);
        assert_eq!(next_on_grid(t0, i, t0), t0 + i);
        assert_eq!(
            next_on_grid(t0, i, t0 + Duration::from_millis(9_999)),
            t0 + i
        );
        assert_eq!(next_on_grid(t0, i, t0 + i), t0 + 2 * i);
        assert_eq!(
            next_on_grid(t0, i, t0 + Duration::from_secs(35)),
            t0 + 4 * i
        );
        assert_eq!(next_on_grid(t0 + i, i, t0), t0 + i);
    }

    #[test]
    fn retry_after_clamp() {
        assert_eq!(retry_after(0), None);
        assert_eq!(retry_after(-5), None);
        assert_eq!(retry_after(7), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(1_000_000), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn backoff_doubles_then_caps() {
        let ms = Duration::from_millis;
        assert_eq!(
            backoff_delay(ms(1000), ms(10_000), 1, 0.999_999).as_millis(),
            999
        );
        assert_eq!(backoff_delay(ms(1000), ms(10_000), 1, 0.0), ms(500));
        assert_eq!(backoff_delay(ms(1000), ms(10_000), 3, 0.0), ms(2000));
        assert_eq!(backoff_delay(ms(1000), ms(10_000), 30, 0.0), ms(5000));
        assert_eq!(
            backoff_delay(ms(1000), ms(10_000), u32::MAX, 1.0),
            ms(10_000)
        );
    }

    proptest! {
        #[test]
        fn backoff_stays_in_bounds(initial in 1u64..10_000, extra in 0u64..100_000, n in 0u32..100, unit in 0.0f64..1.0) {
            let initial = Duration::from_millis(initial);
            let max = initial + Duration::from_millis(extra);
            let d = backoff_delay(initial, max, n, unit);
            prop_assert!(d <= max);
            prop_assert!(d >= initial.min(max) / 2);
        }

        #[test]
        fn jitter_is_half_open(max_ms in 0u64..100_000, unit in 0.0f64..=1.0) {
            let max = Duration::from_millis(max_ms);
            let j = start_jitter(max, unit);
            prop_assert!(j < max || max.is_zero());
        }

        #[test]
        fn grid_is_strictly_after_now_and_within_one_interval(
            interval_ms in 1000u64..100_000, elapsed_ms in 0u64..10_000_000,
        ) {
            let t0 = Instant::now();
            let i = Duration::from_millis(interval_ms);
            let now = t0 + Duration::from_millis(elapsed_ms);
            let next = next_on_grid(t0, i, now);
            prop_assert!(next > now);
            prop_assert!(next - now <= i);
            prop_assert_eq!((next - t0).as_nanos() % i.as_nanos(), 0);
        }
    }
}
