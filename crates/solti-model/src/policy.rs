//! Supervision policies: restart, backoff with jitter, admission.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Normalises human input for name matching: lowercase, `-` and `_` removed.
pub(crate) fn norm(s: &str) -> String {
    s.trim()
        .chars()
        .filter(|c| !matches!(c, '-' | '_'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// What happens after an attempt ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
#[non_exhaustive]
pub enum RestartPolicy {
    /// Run once; the outcome of the first attempt is final.
    #[default]
    Never,
    /// Retry failed and timed-out attempts (with backoff); stop after a success.
    OnFailure,
    /// Run again after success too (after `interval_ms`), and retry failures with backoff.
    Always {
        /// Pause after a successful attempt before the next one; `None` restarts at once.
        interval_ms: Option<u64>,
    },
}

impl FromStr for RestartPolicy {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match norm(s).as_str() {
            "never" => Ok(Self::Never),
            "onfailure" => Ok(Self::OnFailure),
            "always" => Ok(Self::Always { interval_ms: None }),
            _ => Err(ModelError::unknown(
                "restart policy",
                s,
                "never, on-failure, always",
            )),
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Never => f.write_str("never"),
            Self::OnFailure => f.write_str("on-failure"),
            Self::Always { interval_ms: None } => f.write_str("always"),
            Self::Always {
                interval_ms: Some(ms),
            } => write!(f, "always (every {ms} ms)"),
        }
    }
}

/// How the backoff delay is randomised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum JitterPolicy {
    /// The exact exponential delay.
    None,
    /// Uniform in `[0, base]`.
    #[default]
    Full,
    /// Uniform in `[base/2, base]`.
    Equal,
    /// Uniform in `[first_ms, min(max_ms, 3 * base)]`.
    Decorrelated,
}

impl FromStr for JitterPolicy {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match norm(s).as_str() {
            "none" => Ok(Self::None),
            "full" => Ok(Self::Full),
            "equal" => Ok(Self::Equal),
            "decorrelated" => Ok(Self::Decorrelated),
            _ => Err(ModelError::unknown(
                "jitter policy",
                s,
                "none, full, equal, decorrelated",
            )),
        }
    }
}

impl fmt::Display for JitterPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Full => "full",
            Self::Equal => "equal",
            Self::Decorrelated => "decorrelated",
        })
    }
}

/// Exponential backoff between failure retries: `base(n) = min(first_ms * factor^n, max_ms)`,
/// then jitter. Invariants: `first_ms > 0`, `max_ms >= first_ms`, `factor` finite and `>= 1.0`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BackoffRepr", into = "BackoffRepr")]
pub struct BackoffPolicy {
    jitter: JitterPolicy,
    first_ms: u64,
    max_ms: u64,
    factor: f64,
}

impl BackoffPolicy {
    /// Validates and builds a policy.
    ///
    /// # Errors
    /// When `first_ms` is 0, `max_ms < first_ms`, or `factor` is not finite or below 1.0.
    pub fn new(
        jitter: JitterPolicy,
        first_ms: u64,
        max_ms: u64,
        factor: f64,
    ) -> Result<Self, ModelError> {
        if first_ms == 0 {
            return Err(ModelError::invalid(
                "backoff.first_ms",
                "must be > 0, got 0",
            ));
        }
        if max_ms < first_ms {
            return Err(ModelError::invalid(
                "backoff.max_ms",
                format!("must be >= first_ms ({first_ms}), got {max_ms}"),
            ));
        }
        if !factor.is_finite() || factor < 1.0 {
            return Err(ModelError::invalid(
                "backoff.factor",
                format!("must be a finite number >= 1.0, got {factor}"),
            ));
        }
        Ok(Self {
            jitter,
            first_ms,
            max_ms,
            factor,
        })
    }

    /// The jitter applied to each delay.
    #[must_use]
    pub const fn jitter(&self) -> JitterPolicy {
        self.jitter
    }
    /// The delay before the first retry, before jitter (ms).
    #[must_use]
    pub const fn first_ms(&self) -> u64 {
        self.first_ms
    }
    /// The cap on the delay (ms).
    #[must_use]
    pub const fn max_ms(&self) -> u64 {
        self.max_ms
    }
    /// The growth factor per retry.
    #[must_use]
    pub const fn factor(&self) -> f64 {
        self.factor
    }

    /// The un-jittered delay for retry `n` (0-based): `min(first_ms * factor^n, max_ms)`.
    #[must_use]
    pub fn base_ms(&self, n: u32) -> u64 {
        let exp = i32::try_from(n).unwrap_or(i32::MAX);
        let raw = self.first_ms as f64 * self.factor.powi(exp);
        if !raw.is_finite() || raw >= self.max_ms as f64 {
            self.max_ms
        } else {
            // Truncation is the intent: delays are whole milliseconds.
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "raw is finite, >= 0 and < max_ms"
            )]
            let ms = raw as u64;
            ms
        }
    }

    /// The inclusive range the jittered delay for retry `n` is drawn from (ms), with the
    /// 1 ms floor applied to non-zero delays.
    #[must_use]
    pub fn delay_range_ms(&self, n: u32) -> (u64, u64) {
        let base = self.base_ms(n);
        let (lo, hi) = match self.jitter {
            JitterPolicy::None => (base, base),
            JitterPolicy::Full => (0, base),
            JitterPolicy::Equal => (base / 2, base),
            JitterPolicy::Decorrelated => (
                self.first_ms,
                self.max_ms.min(base.saturating_mul(3)).max(self.first_ms),
            ),
        };
        (lo.max(1), hi.max(1))
    }
}

impl Default for BackoffPolicy {
    /// Full jitter, 1000 ms to 30000 ms, factor 2.0.
    fn default() -> Self {
        Self {
            jitter: JitterPolicy::Full,
            first_ms: 1_000,
            max_ms: 30_000,
            factor: 2.0,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BackoffRepr {
    jitter: JitterPolicy,
    first_ms: u64,
    max_ms: u64,
    factor: f64,
}

impl TryFrom<BackoffRepr> for BackoffPolicy {
    type Error = ModelError;
    fn try_from(r: BackoffRepr) -> Result<Self, Self::Error> {
        Self::new(r.jitter, r.first_ms, r.max_ms, r.factor)
    }
}

impl From<BackoffPolicy> for BackoffRepr {
    fn from(b: BackoffPolicy) -> Self {
        Self {
            jitter: b.jitter,
            first_ms: b.first_ms,
            max_ms: b.max_ms,
            factor: b.factor,
        }
    }
}

/// What a submission does when its slot already has a task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum AdmissionPolicy {
    /// Refuse the newcomer while the slot is busy: it ends `Canceled` at once.
    #[default]
    DropIfRunning,
    /// Cancel the running task (and anything queued on the slot); the newcomer starts.
    Replace,
    /// Wait in the slot's FIFO queue (bounded).
    Queue,
}

impl FromStr for AdmissionPolicy {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match norm(s).as_str() {
            "dropifrunning" | "drop" => Ok(Self::DropIfRunning),
            "replace" => Ok(Self::Replace),
            "queue" => Ok(Self::Queue),
            _ => Err(ModelError::unknown(
                "admission policy",
                s,
                "drop-if-running, replace, queue",
            )),
        }
    }
}

impl fmt::Display for AdmissionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::DropIfRunning => "drop-if-running",
            Self::Replace => "replace",
            Self::Queue => "queue",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names() {
        assert_eq!(
            "on-failure".parse::<RestartPolicy>().unwrap(),
            RestartPolicy::OnFailure
        );
        assert_eq!(
            "ON_FAILURE".parse::<RestartPolicy>().unwrap(),
            RestartPolicy::OnFailure
        );
        assert_eq!(
            "drop-if-running".parse::<AdmissionPolicy>().unwrap(),
            AdmissionPolicy::DropIfRunning
        );
        assert_eq!(
            "decorrelated".parse::<JitterPolicy>().unwrap(),
            JitterPolicy::Decorrelated
        );
        let err = "sometimes"
            .parse::<RestartPolicy>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("never, on-failure, always"), "{err}");
    }

    #[test]
    fn backoff_validation() {
        assert!(
            BackoffPolicy::new(JitterPolicy::Full, 0, 10, 2.0)
                .unwrap_err()
                .to_string()
                .starts_with("backoff.first_ms")
        );
        assert!(
            BackoffPolicy::new(JitterPolicy::Full, 10, 5, 2.0)
                .unwrap_err()
                .to_string()
                .starts_with("backoff.max_ms")
        );
        assert!(BackoffPolicy::new(JitterPolicy::Full, 10, 50, f64::NAN).is_err());
        assert!(BackoffPolicy::new(JitterPolicy::Full, 10, 50, 0.5).is_err());
        let d = BackoffPolicy::default();
        assert_eq!(
            (d.first_ms(), d.max_ms(), d.factor(), d.jitter()),
            (1000, 30_000, 2.0, JitterPolicy::Full)
        );
    }

    #[test]
    fn backoff_ranges() {
        let b = BackoffPolicy::new(JitterPolicy::Equal, 100, 1000, 2.0).unwrap();
        assert_eq!(b.base_ms(0), 100);
        assert_eq!(b.base_ms(3), 800);
        assert_eq!(b.base_ms(4), 1000);
        assert_eq!(b.delay_range_ms(1), (100, 200));
        let d = BackoffPolicy::new(JitterPolicy::Decorrelated, 100, 1000, 2.0).unwrap();
        assert_eq!(d.delay_range_ms(0), (100, 300));
        assert_eq!(d.delay_range_ms(5), (100, 1000));
        let f = BackoffPolicy::new(JitterPolicy::Full, 1, 10, 1.0).unwrap();
        assert_eq!(f.delay_range_ms(0), (1, 1));
    }

    proptest::proptest! {
        #[test]
        fn base_is_monotone_and_capped(first in 1u64..10_000, extra in 0u64..100_000, factor in 1.0f64..10.0, n in 0u32..200) {
            let b = BackoffPolicy::new(JitterPolicy::None, first, first + extra, factor).unwrap();
            let x = b.base_ms(n);
            let y = b.base_ms(n + 1);
            proptest::prop_assert!(x <= y);
            proptest::prop_assert!(y <= first + extra);
            proptest::prop_assert!(x >= first.min(first + extra));
        }
    }
}
