//! [`PhaseCollector`]: task counts by phase, read at scrape time.

use std::{collections::BTreeMap, fmt};

use prometheus::{
    IntGaugeVec, Opts,
    core::{Collector, Desc},
    proto::MetricFamily,
};
use solti_model::TaskPhase;

use crate::{
    MetricsError,
    names::{LABEL_PHASE, SV_TASKS_BY_PHASE},
};

/// A collector that asks a closure for the number of tasks in each phase whenever the
/// registry is gathered, and exposes them as the `solti_sv_tasks_by_phase{phase}` gauge. Every phase is
/// reported, with 0 when the closure has no entry for it.
///
/// The closure keeps this crate independent of `solti-core`; the agent passes
/// `move || api.phase_counts()`. It runs on the scrape path, so it must be cheap and must
/// not block.
///
/// ```
/// use std::collections::BTreeMap;
///
/// use solti_model::TaskPhase;
/// use solti_prometheus::PhaseCollector;
///
/// let registry = prometheus::Registry::new();
/// let collector = PhaseCollector::new(|| BTreeMap::from([(TaskPhase::Running, 3)]))?;
/// registry.register(Box::new(collector)).expect("registered once");
/// let text = solti_prometheus::encode_text(&registry)?;
/// assert!(text.contains(r#"solti_sv_tasks_by_phase{phase="running"} 3"#));
/// assert!(text.contains(r#"solti_sv_tasks_by_phase{phase="failed"} 0"#));
/// # Ok::<(), solti_prometheus::MetricsError>(())
/// ```
pub struct PhaseCollector {
    source: Box<dyn Fn() -> BTreeMap<TaskPhase, u64> + Send + Sync>,
    gauge: IntGaugeVec,
}

impl PhaseCollector {
    /// A collector reading counts from `source`. Register it with
    /// `registry.register(Box::new(collector))`, or use
    /// [`SoltiMetrics::register_phase_counts`](crate::SoltiMetrics::register_phase_counts).
    ///
    /// # Errors
    /// Never in practice: the family's name and label are constants the registry accepts.
    pub fn new<F>(source: F) -> Result<Self, MetricsError>
    where
        F: Fn() -> BTreeMap<TaskPhase, u64> + Send + Sync + 'static,
    {
        let gauge = IntGaugeVec::new(
            Opts::new(
                SV_TASKS_BY_PHASE,
                "Listed tasks by phase, read at scrape time.",
            ),
            &[LABEL_PHASE],
        )
        .map_err(|source| MetricsError::Register {
            name: SV_TASKS_BY_PHASE,
            source,
        })?;
        Ok(Self {
            source: Box::new(source),
            gauge,
        })
    }
}

impl Collector for PhaseCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let counts = (self.source)();
        for phase in TaskPhase::ALL {
            let n = counts.get(&phase).copied().unwrap_or(0);
            self.gauge
                .with_label_values(&[phase.as_str()])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.gauge.collect()
    }
}

impl fmt::Debug for PhaseCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhaseCollector").finish_non_exhaustive()
    }
}
