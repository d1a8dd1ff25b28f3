//! PASS/FAIL/SKIP lines and the per-scenario report.

use std::{fmt, time::Duration};

/// Result of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The check held.
    Pass,
    /// The check failed.
    Fail,
    /// The check was not run (said why).
    Skip,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pass => "PASS",
            Self::Fail => "FAIL",
            Self::Skip => "SKIP",
        })
    }
}

/// One check of a scenario.
#[derive(Clone, Debug)]
pub(crate) struct Check {
    pub(crate) name: String,
    pub(crate) verdict: Verdict,
    pub(crate) detail: String,
}

/// What one scenario found. Checks are printed as they are recorded.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) scenario: &'static str,
    pub(crate) checks: Vec<Check>,
    pub(crate) elapsed: Duration,
}

impl Report {
    /// An empty report for `scenario`.
    pub(crate) fn new(scenario: &'static str) -> Self {
        Self {
            scenario,
            checks: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    /// Records a check: PASS when `ok`, FAIL otherwise.
    pub(crate) fn check(&mut self, name: &str, ok: bool, detail: impl Into<String>) -> bool {
        self.push(
            name,
            if ok { Verdict::Pass } else { Verdict::Fail },
            detail.into(),
        );
        ok
    }

    /// Records a skipped check.
    pub(crate) fn skip(&mut self, name: &str, why: impl Into<String>) {
        self.push(name, Verdict::Skip, why.into());
    }

    /// Records an informational line (counted as PASS, used for measurements).
    pub(crate) fn info(&mut self, name: &str, detail: impl Into<String>) {
        self.push(name, Verdict::Pass, detail.into());
    }

    /// Records an error that ended the scenario early.
    pub(crate) fn error(&mut self, err: &anyhow::Error) {
        self.push("error", Verdict::Fail, format!("{err:#}"));
    }

    fn push(&mut self, name: &str, verdict: Verdict, detail: String) {
        println!("  {verdict} {}/{name}: {detail}", self.scenario);
        self.checks.push(Check {
            name: name.to_owned(),
            verdict,
            detail,
        });
    }

    /// Whether every check passed or was skipped.
    pub(crate) fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.verdict != Verdict::Fail)
    }

    /// The failed checks.
    pub(crate) fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.verdict == Verdict::Fail)
    }
}

/// `12.3 MiB` from KiB.
pub(crate) fn mib(kib: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "display only")]
    let m = kib as f64 / 1024.0;
    format!("{m:.1} MiB")
}

/// Percentile `p` (0..=100) of sorted `values`.
pub(crate) fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = (sorted.len() * p / 100).min(sorted.len() - 1);
    sorted[idx]
}

/// `p50=… p99=… max=…` of unsorted `values`.
pub(crate) fn latency_summary(values: &mut [Duration]) -> String {
    values.sort_unstable();
    format!(
        "p50={:.1}ms p99={:.1}ms max={:.1}ms",
        ms(percentile(values, 50)),
        ms(percentile(values, 99)),
        ms(values.last().copied().unwrap_or_default())
    )
}

/// Milliseconds as a float.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let s = latency_summary(&mut v);
        assert_eq!(s, "p50=51.0ms p99=100.0ms max=100.0ms");
        assert_eq!(percentile(&[], 50), Duration::ZERO);
        assert_eq!(mib(2048), "2.0 MiB");
    }

    #[test]
    fn verdicts() {
        let mut r = Report::new("t");
        r.check("a", true, "ok");
        r.skip("b", "n/a");
        assert!(r.passed());
        r.check("c", false, "bad");
        assert!(!r.passed());
        assert_eq!(r.failures().count(), 1);
    }
}
