//! Each format produces parseable output.

use solti_observe::{ColorChoice, LogFormat, LoggerConfig, Timezone, init_local_offset};
use time::{OffsetDateTime, UtcOffset, format_description::well_known::Rfc3339};

use crate::capture::Capture;

fn emit_sample() {
    tracing::info!(slot = "backup", attempt = 2u32, "task submitted");
    tracing::debug!("filtered out at info");
    let span = tracing::info_span!("request", route = "/api/v1/tasks/{id}");
    let _entered = span.enter();
    tracing::warn!(exit_code = 3, "attempt failed");
}

#[test]
fn json_lines_parse_and_carry_fields() {
    let cap = Capture::default();
    let sub = cap.subscriber(
        &LoggerConfig::new()
            .with_format(LogFormat::Json)
            .with_color(ColorChoice::Always),
    );
    tracing::subscriber::with_default(sub, emit_sample);
    let lines = cap.lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["level"], "INFO");
    assert_eq!(first["message"], "task submitted");
    assert_eq!(first["slot"], "backup");
    assert_eq!(first["attempt"], 2);
    let ts = first["timestamp"].as_str().unwrap();
    let parsed = OffsetDateTime::parse(ts, &Rfc3339).unwrap();
    assert_eq!(parsed.offset(), UtcOffset::UTC);
    assert!(ts.ends_with('Z'), "{ts}");
    let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(second["level"], "WARN");
    assert_eq!(second["exit_code"], 3);
    assert_eq!(second["span"]["route"], "/api/v1/tasks/{id}");
    assert!(
        !lines[0].contains('\u{1b}'),
        "json never carries colour codes"
    );
}

/// The timestamp is the first whitespace-separated word of a text line.
fn text_timestamp(line: &str) -> OffsetDateTime {
    let word = line.split_whitespace().next().unwrap();
    OffsetDateTime::parse(word, &Rfc3339).unwrap_or_else(|e| panic!("{word:?} in {line:?}: {e}"))
}

#[test]
fn text_has_utc_rfc3339_timestamps_and_no_colour_by_default() {
    let cap = Capture::default();
    let sub = cap.subscriber(&LoggerConfig::new().with_level("info"));
    let before = OffsetDateTime::now_utc();
    tracing::subscriber::with_default(sub, emit_sample);
    let after = OffsetDateTime::now_utc();
    let lines = cap.lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    for line in &lines {
        let ts = text_timestamp(line);
        assert_eq!(ts.offset(), UtcOffset::UTC);
        assert!(line.split_whitespace().next().unwrap().ends_with('Z'));
        assert!(
            before <= ts && ts <= after,
            "{ts} not within [{before}, {after}]"
        );
        assert!(
            !line.contains('\u{1b}'),
            "auto colour is off for a non-terminal writer: {line:?}"
        );
    }
    assert!(
        lines[0].contains("INFO")
            && lines[0].contains("task submitted")
            && lines[0].contains("slot=\"backup\"")
    );
    assert!(lines[1].contains("WARN") && lines[1].contains("exit_code=3"));
}

#[test]
fn text_local_timestamps_use_the_local_offset() {
    let offset = init_local_offset().unwrap();
    let cap = Capture::default();
    let sub = cap.subscriber(&LoggerConfig::new().with_timezone(Timezone::Local));
    tracing::subscriber::with_default(sub, || tracing::info!("hello"));
    let lines = cap.lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(text_timestamp(&lines[0]).offset(), offset);
}

#[test]
fn colour_can_be_forced() {
    let cap = Capture::default();
    let sub = cap.subscriber(&LoggerConfig::new().with_color(ColorChoice::Always));
    tracing::subscriber::with_default(sub, || tracing::info!("hello"));
    assert!(cap.lines()[0].contains('\u{1b}'));
}

#[test]
fn level_expressions_filter_by_target() {
    let cap = Capture::default();
    let sub = cap.subscriber(
        &LoggerConfig::new()
            .with_format(LogFormat::Json)
            .with_level("warn,noisy=off,chatty=trace"),
    );
    tracing::subscriber::with_default(sub, || {
        tracing::info!("dropped");
        tracing::warn!("kept");
        tracing::error!(target: "noisy", "dropped");
        tracing::trace!(target: "chatty", "kept");
    });
    let lines = cap.lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines.iter().all(|l| l.contains("kept")));
}
