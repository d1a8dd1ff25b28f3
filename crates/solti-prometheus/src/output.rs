//! The output hub's families: bytes of task output retained, events dropped from windows,
//! events readers missed. Reported through [`MetricsBackend`](solti_runner::MetricsBackend)
//! by [`RunnerMetrics`](crate::RunnerMetrics).

use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

use crate::{MetricsError, family};

/// `solti_output_retained_bytes` (gauge): bytes of task output kept in memory for all tasks
/// (each line charged its bytes + 16, each stored publish 128 more).
pub const OUTPUT_RETAINED_BYTES: &str = "solti_output_retained_bytes";
/// `solti_output_trimmed_events_total` (counter; `reason` = `task_bytes` | `global_bytes`):
/// events dropped from the front of a task's output window by the per-task bound or the
/// global budget.
pub const OUTPUT_TRIMMED_EVENTS_TOTAL: &str = "solti_output_trimmed_events_total";
/// `solti_output_lagged_events_total` (counter): events readers missed because they fell
/// behind a task's output window (the sum of the `skipped` of every `lagged` sent).
pub const OUTPUT_LAGGED_EVENTS_TOTAL: &str = "solti_output_lagged_events_total";

/// The trim reasons, initialised at zero.
pub const TRIM_REASONS: &[&str] = &["task_bytes", "global_bytes"];

/// The output families.
#[derive(Clone, Debug)]
pub(crate) struct OutputMetrics {
    retained: IntGauge,
    trimmed: IntCounterVec,
    lagged: IntCounter,
}

impl OutputMetrics {
    pub(crate) fn new(registry: &Registry) -> Result<Self, MetricsError> {
        let metrics = Self {
            retained: family::gauge(
                registry,
                OUTPUT_RETAINED_BYTES,
                "Bytes of task output kept in memory for all tasks (line bytes + 16 per line + 128 per publish).",
            )?,
            trimmed: family::counter_vec(
                registry,
                OUTPUT_TRIMMED_EVENTS_TOTAL,
                "Output events dropped from task windows, by bound (task_bytes, global_bytes).",
                &["reason"],
            )?,
            lagged: family::counter(
                registry,
                OUTPUT_LAGGED_EVENTS_TOTAL,
                "Output events readers missed because they fell behind the retained window.",
            )?,
        };
        for reason in TRIM_REASONS {
            metrics.trimmed.with_label_values(&[reason]);
        }
        Ok(metrics)
    }

    pub(crate) fn retained(&self, bytes: u64) {
        self.retained.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    pub(crate) fn trimmed(&self, reason: &'static str, events: u64) {
        // Only the known reasons: a label value never comes from input.
        let reason = if TRIM_REASONS.contains(&reason) {
            reason
        } else {
            "other"
        };
        self.trimmed.with_label_values(&[reason]).inc_by(events);
    }

    pub(crate) fn lagged(&self, events: u64) {
        self.lagged.inc_by(events);
    }
}

#[cfg(test)]
mod tests {
    use solti_runner::MetricsBackend as _;

    use crate::RunnerMetrics;

    #[test]
    fn output_families_are_reported_through_the_runner_backend() {
        let registry = prometheus::Registry::new();
        let backend = RunnerMetrics::new(&registry).unwrap();
        backend.output_retained_bytes(1234);
        backend.output_trimmed("global_bytes", 7);
        backend.output_lagged(42);
        let text = crate::encode_text(&registry).unwrap();
        assert!(text.contains("solti_output_retained_bytes 1234"), "{text}");
        assert!(
            text.contains("solti_output_trimmed_events_total{reason=\"global_bytes\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("solti_output_trimmed_events_total{reason=\"task_bytes\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("solti_output_lagged_events_total 42"),
            "{text}"
        );
    }
}
