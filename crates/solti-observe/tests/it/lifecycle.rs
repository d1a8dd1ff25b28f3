//! LifecycleLogger writes structured lines at the documented levels.

use std::time::Duration;

use serde_json::Value;
use solti_observe::{LIFECYCLE_TARGET, LifecycleLogger, LogFormat, LoggerConfig};
use taskvisor::{Event, EventKind, RejectionKind, Subscribe, TaskId, TaskOutcomeKind};

use crate::capture::Capture;

fn run(level: &str, events: &[Event]) -> Vec<Value> {
    let cap = Capture::default();
    let sub = cap.subscriber(
        &LoggerConfig::new()
            .with_format(LogFormat::Json)
            .with_level(level),
    );
    let logger = LifecycleLogger::new();
    tracing::subscriber::with_default(sub, || events.iter().for_each(|e| logger.on_event(e)));
    cap.lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn failures_and_timeouts_warn_with_fields() {
    let id = TaskId::for_tests();
    let events = [
        Event::new(EventKind::AttemptStarting)
            .with_task("t-1")
            .with_id(id)
            .with_attempt(1),
        Event::new(EventKind::AttemptFailed)
            .with_task("t-1")
            .with_id(id)
            .with_attempt(1)
            .with_duration(Duration::from_millis(40))
            .with_reason("exit status 3")
            .with_exit_code(3),
        Event::new(EventKind::AttemptTimedOut)
            .with_task("t-1")
            .with_attempt(2)
            .with_timeout(Duration::from_secs(5))
            .with_duration(Duration::from_secs(5)),
        Event::new(EventKind::TaskFinished)
            .with_task("t-1")
            .with_outcome_kind(TaskOutcomeKind::Completed),
        Event::new(EventKind::TaskFinished)
            .with_task("t-2")
            .with_outcome_kind(TaskOutcomeKind::Panicked),
        Event::subscriber_overflow("metrics", "queue full").with_dropped(7),
        Event::new(EventKind::ControllerRejected)
            .with_task("slot-a")
            .with_rejection_kind(RejectionKind::SlotBusy),
    ];
    let lines = run("info", &events);
    let got: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l["level"].as_str().unwrap(), l["event"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("WARN", "attempt_failed"),
            ("WARN", "attempt_timed_out"),
            ("INFO", "task_finished"),
            ("ERROR", "task_finished"),
            ("WARN", "subscriber_overflow"),
        ]
    );
    let failed = &lines[0];
    assert_eq!(failed["target"], LIFECYCLE_TARGET);
    assert_eq!(failed["task"], "t-1");
    assert_eq!(failed["run_id"], id.get());
    assert_eq!(failed["attempt"], 1);
    assert_eq!(failed["duration_ms"], 40);
    assert_eq!(failed["exit_code"], 3);
    assert_eq!(failed["reason"], "exit status 3");
    assert_eq!(failed["message"], "attempt failed");
    assert_eq!(lines[1]["timeout_ms"], 5000);
    assert_eq!(lines[2]["outcome"], "completed");
    assert_eq!(lines[3]["outcome"], "panicked");
    assert_eq!(lines[4]["dropped"], 7);
    assert!(
        failed.get("delay_ms").is_none(),
        "absent fields are omitted"
    );
}

#[test]
fn routine_events_are_debug_and_trace() {
    let events = [
        Event::new(EventKind::AttemptStarting)
            .with_task("t")
            .with_attempt(1),
        Event::new(EventKind::AttemptSucceeded)
            .with_task("t")
            .with_attempt(1),
        Event::new(EventKind::BackoffScheduled)
            .with_task("t")
            .with_delay(Duration::from_millis(250))
            .with_backoff_failure(),
        Event::new(EventKind::ControllerRejected)
            .with_task("slot-a")
            .with_rejection_kind(RejectionKind::SlotBusy),
    ];
    let lines = run("solti::lifecycle=trace", &events);
    let levels: Vec<&str> = lines.iter().map(|l| l["level"].as_str().unwrap()).collect();
    assert_eq!(levels, ["TRACE", "DEBUG", "DEBUG", "DEBUG"]);
    assert_eq!(lines[2]["delay_ms"], 250);
    assert_eq!(lines[2]["backoff_source"], "failure");
    assert_eq!(lines[3]["rejection"], "slot_busy");
    assert_eq!(LifecycleLogger::new().name(), "solti-lifecycle-logger");
}
