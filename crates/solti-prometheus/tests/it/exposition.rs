//! Helpers: parse a scrape and look values up; check it with promtool when installed.

use std::{io::Write as _, process::Command};

use prometheus_parse::{Sample, Scrape, Value};

pub(crate) fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

fn matches(sample: &Sample, name: &str, labels: &[(&str, &str)]) -> bool {
    sample.metric == name
        && labels.len() == sample.labels.len()
        && labels.iter().all(|(k, v)| sample.labels.get(k) == Some(*v))
}

/// The value of the counter, gauge or untyped sample `name{labels}` (labels match exactly).
pub(crate) fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = scrape
        .samples
        .iter()
        .filter(|s| matches(s, name, labels))
        .collect();
    assert_eq!(found.len(), 1, "{name}{labels:?}: {found:#?}");
    match found[0].value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        ref other => panic!("{name}{labels:?} is {other:?}"),
    }
}

/// Runs `promtool check metrics` on `text` when promtool is installed; returns whether it ran.
pub(crate) fn promtool_check(text: &str) -> bool {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool not installed; relying on the parser checks");
        return false;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics:\n{report}\n---\n{text}"
    );
    true
}
