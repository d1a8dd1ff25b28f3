use solti_model::{AdmissionPolicy, JitterPolicy, RestartPolicy, TaskPhase};

#[test]
fn every_policy_spelling_parses() {
    for (input, want) in [
        ("never", RestartPolicy::Never),
        ("on-failure", RestartPolicy::OnFailure),
        ("on_failure", RestartPolicy::OnFailure),
        ("OnFailure", RestartPolicy::OnFailure),
        ("ALWAYS", RestartPolicy::Always { interval_ms: None }),
    ] {
        assert_eq!(input.parse::<RestartPolicy>().unwrap(), want, "{input}");
    }
    for (input, want) in [
        ("none", JitterPolicy::None),
        ("full", JitterPolicy::Full),
        ("Equal", JitterPolicy::Equal),
        ("decorrelated", JitterPolicy::Decorrelated),
    ] {
        assert_eq!(input.parse::<JitterPolicy>().unwrap(), want, "{input}");
    }
    for (input, want) in [
        ("drop-if-running", AdmissionPolicy::DropIfRunning),
        ("drop_if_running", AdmissionPolicy::DropIfRunning),
        ("DropIfRunning", AdmissionPolicy::DropIfRunning),
        ("drop", AdmissionPolicy::DropIfRunning),
        ("replace", AdmissionPolicy::Replace),
        ("queue", AdmissionPolicy::Queue),
    ] {
        assert_eq!(input.parse::<AdmissionPolicy>().unwrap(), want, "{input}");
    }
    for phase in TaskPhase::ALL {
        assert_eq!(phase.as_str().parse::<TaskPhase>().unwrap(), phase);
        let enum_name = format!("TASK_STATUS_{}", phase.as_str().to_uppercase());
        assert_eq!(enum_name.parse::<TaskPhase>().unwrap(), phase);
    }
    // Display and FromStr agree.
    for p in [
        AdmissionPolicy::DropIfRunning,
        AdmissionPolicy::Replace,
        AdmissionPolicy::Queue,
    ] {
        assert_eq!(p.to_string().parse::<AdmissionPolicy>().unwrap(), p);
    }
}

#[test]
fn unknown_spellings_list_the_accepted_ones() {
    assert_eq!(
        "sometimes"
            .parse::<RestartPolicy>()
            .unwrap_err()
            .to_string(),
        "unknown restart policy \"sometimes\"; expected one of: never, on-failure, always"
    );
    assert!(
        "fifo"
            .parse::<AdmissionPolicy>()
            .unwrap_err()
            .to_string()
            .contains("drop-if-running, replace, queue")
    );
    assert!(
        "lots"
            .parse::<JitterPolicy>()
            .unwrap_err()
            .to_string()
            .contains("none, full, equal, decorrelated")
    );
    assert!(
        "done"
            .parse::<TaskPhase>()
            .unwrap_err()
            .to_string()
            .contains("pending, running")
    );
}
