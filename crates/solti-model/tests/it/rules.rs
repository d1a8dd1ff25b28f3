use base64::Engine as _;
use solti_model::{
    BackoffPolicy, ContainerSpec, Flag, JitterPolicy, Labels, ModelError, OutputEvent,
    OutputStream, RestartPolicy, RunnerSelector, Runtime, SelectorOperator, SelectorRequirement,
    SubprocessMode, SubprocessSpec, Task, TaskEnv, TaskId, TaskKind, TaskPhase, TaskQuery,
    TaskSpec, TaskSpecBuilder, TaskStatus, Token, WasmSpec,
};

fn cmd(command: &str, args: &[&str]) -> SubprocessSpec {
    SubprocessSpec::command(command, args.iter().copied())
}

fn with(sp: SubprocessSpec) -> TaskSpecBuilder {
    TaskSpec::builder("s", TaskKind::Subprocess(sp), 1_000u64)
}

fn script(runtime: Runtime, body: &str) -> SubprocessSpec {
    SubprocessSpec {
        mode: SubprocessMode::Script {
            runtime,
            body: body.into(),
            args: vec![],
        },
        env: TaskEnv::new(),
        cwd: None,
        fail_on_non_zero: Flag::enabled(),
    }
}

fn err(b: TaskSpecBuilder) -> String {
    b.build().unwrap_err().to_string()
}

/// One failing case per validation rule, each checked by its message.
#[test]
fn every_rule_names_its_field() {
    let ok = || cmd("true", &[]);
    let long = "x".repeat(solti_model::MAX_STRING_BYTES + 1);
    let cases: Vec<(TaskSpecBuilder, &str)> = vec![
        (
            TaskSpec::builder("", TaskKind::Subprocess(ok()), 1u64),
            "slot: must be 1..=64 chars",
        ),
        (
            TaskSpec::builder("a".repeat(65), TaskKind::Subprocess(ok()), 1u64),
            "slot: must be 1..=64 chars of [A-Za-z0-9._-], got 65",
        ),
        (
            TaskSpec::builder("a b", TaskKind::Subprocess(ok()), 1u64),
            "slot: must be 1..=64 chars of [A-Za-z0-9._-], found ' '",
        ),
        (
            TaskSpec::builder("..", TaskKind::Subprocess(ok()), 1u64),
            "slot: must not be \"..\"",
        ),
        (
            TaskSpec::builder("s", TaskKind::Subprocess(ok()), 0u64),
            "timeout_ms: must be 1..=",
        ),
        (
            TaskSpec::builder(
                "s",
                TaskKind::Subprocess(ok()),
                solti_model::MAX_DURATION_MS + 1,
            ),
            "timeout_ms: must be 1..=",
        ),
        (
            with(ok()).restart(RestartPolicy::Always {
                interval_ms: Some(solti_model::MAX_DURATION_MS + 1),
            }),
            "restart.interval_ms: must be at most",
        ),
        (
            with(ok()).max_retries(Some(0)),
            "max_retries: must be >= 1 when set",
        ),
        (
            with(ok()).label("", "v"),
            "labels: keys must be 1..=253 bytes",
        ),
        (
            with(ok()).label("k", "v".repeat(1025)),
            "labels[k]: value must be at most 1024 bytes",
        ),
        (
            with(ok()).labels((0..65).map(|i| (format!("k{i}"), "v")).collect::<Labels>()),
            "labels: at most 64 entries, got 65",
        ),
        (
            with(ok()).runner_selector(RunnerSelector::new().with_expression(
                SelectorRequirement::new("k", SelectorOperator::Exists, ["v"]),
            )),
            "runner_selector.match_expressions[0]: values must be empty for Exists/DoesNotExist",
        ),
        (
            with(cmd("", &[])),
            "kind.subprocess.command.command: must not be empty",
        ),
        (
            with(cmd("a\0b", &[])),
            "kind.subprocess.command.command: must not contain NUL",
        ),
        (
            with(cmd(&long, &[])),
            "kind.subprocess.command.command: must be at most 131072 bytes",
        ),
        (
            with(cmd("true", &["ok", "b\0d"])),
            "kind.subprocess.command.args[1]: must not contain NUL",
        ),
        (
            with(SubprocessSpec {
                env: TaskEnv::new().with("", "v"),
                ..ok()
            }),
            "kind.subprocess.env[0].key: must be 1..=256 bytes without '=' or NUL",
        ),
        (
            with(SubprocessSpec {
                env: TaskEnv::new().with("K", "a\0"),
                ..ok()
            }),
            "kind.subprocess.env[0].value: must not contain NUL",
        ),
        (
            with(SubprocessSpec {
                env: (0..1025).map(|i| (format!("K{i}"), "v")).collect(),
                ..ok()
            }),
            "kind.subprocess.env: at most 1024 entries, got 1025",
        ),
        (
            with(SubprocessSpec {
                cwd: Some("tmp".into()),
                ..ok()
            }),
            "kind.subprocess.cwd: must be an absolute path",
        ),
        (
            with(SubprocessSpec {
                cwd: Some("/tmp/../etc".into()),
                ..ok()
            }),
            "kind.subprocess.cwd: must not contain '..'",
        ),
        (
            with(script(Runtime::Bash, "%%%")),
            "kind.subprocess.script.body: must be standard base64",
        ),
        (
            with(script(
                Runtime::Bash,
                &base64::engine::general_purpose::STANDARD.encode(vec![
                    b'a';
                    solti_model::MAX_SCRIPT_BYTES
                        + 1
                ]),
            )),
            "kind.subprocess.script.body: decoded script must be at most 2097152 bytes",
        ),
        (
            with(script(
                Runtime::Custom {
                    command: String::new(),
                    flag: String::new(),
                },
                "",
            )),
            "kind.subprocess.script.custom.command: must not be empty",
        ),
        (
            with(script(
                Runtime::Custom {
                    command: "../bin/sh".into(),
                    flag: String::new(),
                },
                "",
            )),
            "kind.subprocess.script.custom.command: must not contain '..'",
        ),
        (
            TaskSpec::builder("s", TaskKind::Wasm(WasmSpec::new("")), 1u64),
            "kind.wasm.module: must not be empty",
        ),
        (
            TaskSpec::builder("s", TaskKind::Container(ContainerSpec::new("")), 1u64),
            "kind.container.image: must not be empty",
        ),
    ];
    for (builder, expected) in cases {
        let message = err(builder);
        assert!(
            message.starts_with(expected),
            "expected {expected:?}, got {message:?}"
        );
    }
}

#[test]
fn policy_and_query_rules() {
    let e = |r: Result<BackoffPolicy, ModelError>| r.unwrap_err().to_string();
    assert_eq!(
        e(BackoffPolicy::new(JitterPolicy::Full, 0, 1, 2.0)),
        "backoff.first_ms: must be > 0, got 0"
    );
    assert_eq!(
        e(BackoffPolicy::new(JitterPolicy::Full, 5, 4, 2.0)),
        "backoff.max_ms: must be >= first_ms (5), got 4"
    );
    assert_eq!(
        e(BackoffPolicy::new(JitterPolicy::Full, 1, 4, 0.5)),
        "backoff.factor: must be a finite number >= 1.0, got 0.5"
    );
    assert_eq!(
        TaskQuery::new().with_limit(1001).unwrap_err().to_string(),
        "limit: must be at most 1000, got 1001"
    );
    assert_eq!(
        TaskId::try_new("x".repeat(257)).unwrap_err().to_string(),
        "task_id: must be 1..=256 chars of [A-Za-z0-9._-], got 257"
    );
    assert!(
        solti_model::AgentId::try_new("a/b")
            .unwrap_err()
            .to_string()
            .starts_with("agent_id:")
    );
    assert_eq!(
        Token::new("").unwrap_err().to_string(),
        "token: must be 1..=4096 characters, got 0"
    );
    assert_eq!(
        Token::new("a b").unwrap_err().to_string(),
        "token: must be visible ASCII without spaces"
    );
}

#[test]
fn task_ids_are_unique_and_sort_by_creation_time() {
    let first = TaskId::generate();
    std::thread::sleep(std::time::Duration::from_millis(2));
    let second = TaskId::generate();
    assert!(first < second, "{first} < {second}");
    let many: std::collections::HashSet<_> = (0..10_000).map(|_| TaskId::generate()).collect();
    assert_eq!(many.len(), 10_000);
}

#[test]
fn token_never_shows_its_secret() {
    let token = Token::new("super-secret-value").unwrap();
    let shown = format!("{token:?} {:?}", Some(&token));
    assert!(!shown.contains("super-secret-value"), "{shown}");
}

#[test]
fn serde_round_trips() {
    let spec = with(SubprocessSpec {
        env: TaskEnv::new().with("A", "1"),
        cwd: Some("/tmp".into()),
        ..cmd("echo", &["hi"])
    })
    .restart(RestartPolicy::OnFailure)
    .backoff(BackoffPolicy::new(JitterPolicy::Decorrelated, 10, 100, 1.5).unwrap())
    .max_retries(Some(3))
    .runner_selector(RunnerSelector::new().with_label("pool", "a"))
    .label("zone", "z")
    .build()
    .unwrap();
    let task = Task::new(
        solti_model::ObjectMeta::new(TaskId::generate(), 5),
        spec,
        TaskStatus::new(TaskPhase::Running),
    );
    let back: Task = serde_json::from_str(&serde_json::to_string(&task).unwrap()).unwrap();
    assert_eq!(back, task);
    let events = [
        OutputEvent::RunStarted {
            attempt: 1,
            started_at: 2,
        },
        OutputEvent::Chunk {
            attempt: 1,
            stream: OutputStream::Stderr,
            seq: 3,
            ts: 4,
            line: bytes::Bytes::from_static(b"x\xff"),
        },
        OutputEvent::RunFinished {
            attempt: 1,
            exit_code: None,
            finished_at: 5,
        },
        OutputEvent::Lagged { skipped: 7 },
    ];
    for event in events {
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            serde_json::from_str::<OutputEvent>(&json).unwrap(),
            event,
            "{json}"
        );
    }
}
