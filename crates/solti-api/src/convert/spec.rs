//! `pb::CreateSpec` ↔ `solti_model::TaskSpec`.

use solti_model::{
    AdmissionPolicy, BackoffPolicy, ContainerSpec, Flag, JitterPolicy, Labels, MAX_ENV_BYTES,
    MAX_ENV_ENTRIES, MAX_LABELS, MAX_SELECTOR_VALUES, RestartPolicy, RunnerSelector, Runtime,
    SelectorOperator, SelectorRequirement, SubprocessMode, SubprocessSpec, TaskEnv, TaskKind,
    TaskSpec, WasmSpec,
};

use crate::{ApiError, pb};

/// Decodes and validates a submitted spec (the request's `spec` field; errors name
/// `spec.<field>`).
///
/// Strict enums (see `api_v1.md`, "The spec"): `restart`, `admission`, `backoff.jitter` (when
/// `backoff` is present), the script runtime and a selector `operator` must name an accepted
/// value; `*_UNSPECIFIED`, an omitted field and an unknown number are refused with the
/// accepted names (see [`StrictEnum`]). Zero backoff durations and factor still mean "not
/// set" and take the default backoff's values; an absent `backoff` is the default backoff.
pub(crate) fn spec_from_pb(spec: Option<pb::CreateSpec>) -> Result<TaskSpec, ApiError> {
    let spec = spec.ok_or_else(|| ApiError::invalid("spec", "required"))?;
    let kind = kind_from_pb(spec.kind)?;
    let restart = match pb::RestartStrategy::try_from(spec.restart) {
        Ok(pb::RestartStrategy::Never) => RestartPolicy::Never,
        Ok(pb::RestartStrategy::OnFailure) => RestartPolicy::OnFailure,
        Ok(pb::RestartStrategy::Always) => RestartPolicy::Always {
            interval_ms: spec.restart_interval_ms,
        },
        Ok(pb::RestartStrategy::Unspecified) | Err(_) => {
            return Err(StrictEnum::Restart.refusal("spec.restart"));
        }
    };
    let admission = match pb::AdmissionStrategy::try_from(spec.admission) {
        Ok(pb::AdmissionStrategy::DropIfRunning) => AdmissionPolicy::DropIfRunning,
        Ok(pb::AdmissionStrategy::Replace) => AdmissionPolicy::Replace,
        Ok(pb::AdmissionStrategy::Queue) => AdmissionPolicy::Queue,
        Ok(pb::AdmissionStrategy::Unspecified) | Err(_) => {
            return Err(StrictEnum::Admission.refusal("spec.admission"));
        }
    };
    let backoff = backoff_from_pb(spec.backoff)?;
    let labels = labels_from_pb("spec.labels", spec.labels)?;
    let mut builder = TaskSpec::builder(spec.slot, kind, spec.timeout_ms)
        .restart(restart)
        .admission(admission)
        .backoff(backoff)
        .max_retries(spec.max_retries)
        .labels(labels);
    if let Some(sel) = spec.runner_selector {
        builder = builder.runner_selector(selector_from_pb(sel)?);
    }
    builder.build().map_err(|e| ApiError::from_spec_error(&e))
}

/// The enums of `CreateSpec` that have no default: each must name one of its accepted values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StrictEnum {
    /// `spec.restart`.
    Restart,
    /// `spec.admission`.
    Admission,
    /// `spec.backoff.jitter`.
    Jitter,
    /// `spec.kind.subprocess.script.wellKnown` (unless `custom` is given).
    ScriptRuntime,
    /// `spec.runnerSelector.matchExpressions[i].operator`.
    SelectorOperator,
}

impl StrictEnum {
    /// The accepted names, comma-separated, in the proto's order.
    pub(crate) const fn accepted(self) -> &'static str {
        match self {
            Self::Restart => {
                "RESTART_STRATEGY_NEVER, RESTART_STRATEGY_ON_FAILURE, RESTART_STRATEGY_ALWAYS"
            }
            Self::Admission => {
                "ADMISSION_STRATEGY_DROP_IF_RUNNING, ADMISSION_STRATEGY_REPLACE, ADMISSION_STRATEGY_QUEUE"
            }
            Self::Jitter => {
                "JITTER_STRATEGY_NONE, JITTER_STRATEGY_FULL, JITTER_STRATEGY_EQUAL, JITTER_STRATEGY_DECORRELATED"
            }
            Self::ScriptRuntime => {
                "SCRIPT_RUNTIME_BASH, SCRIPT_RUNTIME_PYTHON, SCRIPT_RUNTIME_NODE"
            }
            Self::SelectorOperator => {
                "SELECTOR_OPERATOR_IN, SELECTOR_OPERATOR_NOT_IN, SELECTOR_OPERATOR_EXISTS, SELECTOR_OPERATOR_DOES_NOT_EXIST"
            }
        }
    }

    /// The one refusal for an unset, `*_UNSPECIFIED` or unknown value of this enum at the
    /// wire path `field`: `"<field>: must be one of <names>"`.
    pub(crate) fn refusal(self, field: &str) -> ApiError {
        ApiError::invalid(field, format!("must be one of {}", self.accepted()))
    }

    /// The strict enum at a JSON path of a `SubmitTaskRequest` / `ApplyTaskRequest` body
    /// (`spec.restart`, `spec.runnerSelector.matchExpressions[0].operator`, …), matched on
    /// the field's last segment inside `spec`. Used to word JSON decoding errors (an unknown
    /// name, a number out of range, `null`) exactly as the conversion words them.
    #[cfg_attr(
        not(feature = "http"),
        allow(dead_code, reason = "only JSON bodies need it")
    )]
    pub(crate) fn at_json_path(path: &str) -> Option<Self> {
        let rest = path.strip_prefix("spec.")?;
        let last = rest.rsplit('.').next()?;
        match (rest, last) {
            ("restart", _) => Some(Self::Restart),
            ("admission", _) => Some(Self::Admission),
            ("backoff.jitter", _) => Some(Self::Jitter),
            (_, "wellKnown") if rest.starts_with("kind.subprocess.script.") => {
                Some(Self::ScriptRuntime)
            }
            (_, "operator") if rest.starts_with("runnerSelector.matchExpressions[") => {
                Some(Self::SelectorOperator)
            }
            _ => None,
        }
    }
}

/// Encodes a stored spec for `TaskData.spec`.
pub(crate) fn spec_to_pb(spec: &TaskSpec) -> pb::CreateSpec {
    let (restart, restart_interval_ms) = match spec.restart() {
        RestartPolicy::Never => (pb::RestartStrategy::Never, None),
        RestartPolicy::OnFailure => (pb::RestartStrategy::OnFailure, None),
        RestartPolicy::Always { interval_ms } => (pb::RestartStrategy::Always, interval_ms),
        _ => (pb::RestartStrategy::Unspecified, None),
    };
    let admission = match spec.admission() {
        AdmissionPolicy::DropIfRunning => pb::AdmissionStrategy::DropIfRunning,
        AdmissionPolicy::Replace => pb::AdmissionStrategy::Replace,
        AdmissionPolicy::Queue => pb::AdmissionStrategy::Queue,
        _ => pb::AdmissionStrategy::Unspecified,
    };
    let b = spec.backoff();
    pb::CreateSpec {
        slot: spec.slot().as_str().to_owned(),
        kind: kind_to_pb(spec.kind()),
        timeout_ms: spec.timeout_ms(),
        restart: restart.into(),
        restart_interval_ms,
        backoff: Some(pb::BackoffStrategy {
            jitter: jitter_to_pb(b.jitter()).into(),
            first_ms: b.first_ms(),
            max_ms: b.max_ms(),
            factor: b.factor(),
        }),
        admission: admission.into(),
        labels: spec
            .labels()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        max_retries: spec.max_retries(),
        runner_selector: spec.runner_selector().map(selector_to_pb),
    }
}

fn kind_from_pb(kind: Option<pb::TaskKind>) -> Result<TaskKind, ApiError> {
    use pb::task_kind::Kind;
    let kind = kind.ok_or_else(|| ApiError::invalid("spec.kind", "required"))?;
    match kind.kind {
        None => Err(ApiError::invalid(
            "spec.kind",
            "one of subprocess, wasm or container is required",
        )),
        Some(Kind::Subprocess(s)) => Ok(TaskKind::Subprocess(subprocess_from_pb(s)?)),
        Some(Kind::Wasm(w)) => {
            let mut spec = WasmSpec::new(w.module);
            spec.args = w.args;
            spec.env = env_from_pb("spec.kind.wasm.env", w.env)?;
            Ok(TaskKind::Wasm(spec))
        }
        Some(Kind::Container(c)) => {
            let mut spec = ContainerSpec::new(c.image);
            spec.command = c.command;
            spec.args = c.args;
            spec.env = env_from_pb("spec.kind.container.env", c.env)?;
            Ok(TaskKind::Container(spec))
        }
    }
}

fn subprocess_from_pb(s: pb::SubprocessTask) -> Result<SubprocessSpec, ApiError> {
    use pb::{script_mode::Runtime as PbRuntime, subprocess_task::Mode};
    let mode = match s.mode {
        None => {
            return Err(ApiError::invalid(
                "spec.kind.subprocess",
                "one of command or script is required",
            ));
        }
        Some(Mode::Command(c)) => SubprocessMode::Command {
            command: c.command,
            args: c.args,
        },
        Some(Mode::Script(sc)) => {
            const FIELD: &str = "spec.kind.subprocess.script.wellKnown";
            let runtime = match sc.runtime {
                Some(PbRuntime::WellKnown(n)) => match pb::ScriptRuntime::try_from(n) {
                    Ok(pb::ScriptRuntime::Bash) => Runtime::Bash,
                    Ok(pb::ScriptRuntime::Python) => Runtime::Python,
                    Ok(pb::ScriptRuntime::Node) => Runtime::Node,
                    Ok(pb::ScriptRuntime::Unspecified) | Err(_) => {
                        return Err(StrictEnum::ScriptRuntime.refusal(FIELD));
                    }
                },
                Some(PbRuntime::Custom(c)) => Runtime::Custom {
                    command: c.command,
                    flag: c.flag,
                },
                None => return Err(StrictEnum::ScriptRuntime.refusal(FIELD)),
            };
            SubprocessMode::Script {
                runtime,
                body: sc.body,
                args: sc.args,
            }
        }
    };
    Ok(SubprocessSpec {
        mode,
        env: env_from_pb("spec.kind.subprocess.env", s.env)?,
        cwd: s.cwd.map(Into::into),
        fail_on_non_zero: Flag::from(s.fail_on_non_zero),
    })
}

/// Repeated `KeyValue`s; a later entry with the same key wins, as in a shell.
///
/// The count and total size are checked before the entries are de-duplicated (which sorts
/// them), so a hostile list costs one pass over what was already decoded.
fn env_from_pb(field: &str, env: Vec<pb::KeyValue>) -> Result<TaskEnv, ApiError> {
    at_most(field, env.len(), MAX_ENV_ENTRIES)?;
    let bytes: usize = env.iter().map(|kv| kv.key.len() + kv.value.len()).sum();
    if bytes > MAX_ENV_BYTES {
        return Err(ApiError::invalid(
            field,
            format!("at most {MAX_ENV_BYTES} bytes of keys and values in all, got {bytes}"),
        ));
    }
    Ok(env.into_iter().map(|kv| (kv.key, kv.value)).collect())
}

/// A label map, refused by count before it is copied into the model's sorted map.
fn labels_from_pb(
    field: &str,
    labels: std::collections::HashMap<String, String>,
) -> Result<Labels, ApiError> {
    at_most(field, labels.len(), MAX_LABELS)?;
    Ok(labels.into_iter().collect())
}

/// `field: at most {max} entries, got {n}` when `n > max`.
fn at_most(field: &str, n: usize, max: usize) -> Result<(), ApiError> {
    if n > max {
        return Err(ApiError::invalid(
            field,
            format!("at most {max} entries, got {n}"),
        ));
    }
    Ok(())
}

fn backoff_from_pb(b: Option<pb::BackoffStrategy>) -> Result<BackoffPolicy, ApiError> {
    let default = BackoffPolicy::default();
    let Some(b) = b else { return Ok(default) };
    let jitter = match pb::JitterStrategy::try_from(b.jitter) {
        Ok(pb::JitterStrategy::None) => JitterPolicy::None,
        Ok(pb::JitterStrategy::Full) => JitterPolicy::Full,
        Ok(pb::JitterStrategy::Equal) => JitterPolicy::Equal,
        Ok(pb::JitterStrategy::Decorrelated) => JitterPolicy::Decorrelated,
        Ok(pb::JitterStrategy::Unspecified) | Err(_) => {
            return Err(StrictEnum::Jitter.refusal("spec.backoff.jitter"));
        }
    };
    // Zero means "not set" in proto3; each unset field takes the default's value.
    let first_ms = if b.first_ms == 0 {
        default.first_ms()
    } else {
        b.first_ms
    };
    let max_ms = if b.max_ms == 0 {
        default.max_ms().max(first_ms)
    } else {
        b.max_ms
    };
    let factor = if b.factor == 0.0 {
        default.factor()
    } else {
        b.factor
    };
    BackoffPolicy::new(jitter, first_ms, max_ms, factor).map_err(|e| ApiError::from_spec_error(&e))
}

fn selector_from_pb(sel: pb::RunnerSelector) -> Result<RunnerSelector, ApiError> {
    let mut out = RunnerSelector::new();
    out.match_labels = labels_from_pb("spec.runnerSelector.matchLabels", sel.match_labels)?;
    at_most(
        "spec.runnerSelector.matchExpressions",
        sel.match_expressions.len(),
        MAX_LABELS,
    )?;
    for (i, e) in sel.match_expressions.into_iter().enumerate() {
        at_most(
            &format!("spec.runnerSelector.matchExpressions[{i}].values"),
            e.values.len(),
            MAX_SELECTOR_VALUES,
        )?;
        let operator = match pb::SelectorOperator::try_from(e.operator) {
            Ok(pb::SelectorOperator::In) => SelectorOperator::In,
            Ok(pb::SelectorOperator::NotIn) => SelectorOperator::NotIn,
            Ok(pb::SelectorOperator::Exists) => SelectorOperator::Exists,
            Ok(pb::SelectorOperator::DoesNotExist) => SelectorOperator::DoesNotExist,
            Ok(pb::SelectorOperator::Unspecified) | Err(_) => {
                return Err(StrictEnum::SelectorOperator.refusal(&format!(
                    "spec.runnerSelector.matchExpressions[{i}].operator"
                )));
            }
        };
        out = out.with_expression(SelectorRequirement::new(e.key, operator, e.values));
    }
    Ok(out)
}

fn kind_to_pb(kind: &TaskKind) -> Option<pb::TaskKind> {
    use pb::task_kind::Kind;
    let kind = match kind {
        TaskKind::Subprocess(s) => Kind::Subprocess(subprocess_to_pb(s)),
        TaskKind::Wasm(w) => Kind::Wasm(pb::WasmTask {
            module: w.module.clone(),
            args: w.args.clone(),
            env: env_to_pb(&w.env),
        }),
        TaskKind::Container(c) => Kind::Container(pb::ContainerTask {
            image: c.image.clone(),
            command: c.command.clone(),
            args: c.args.clone(),
            env: env_to_pb(&c.env),
        }),
        // Embedded tasks carry code, not data: they have no wire form.
        _ => return None,
    };
    Some(pb::TaskKind { kind: Some(kind) })
}

fn subprocess_to_pb(s: &SubprocessSpec) -> pb::SubprocessTask {
    use pb::{script_mode::Runtime as PbRuntime, subprocess_task::Mode};
    let mode = match &s.mode {
        SubprocessMode::Command { command, args } => Some(Mode::Command(pb::CommandMode {
            command: command.clone(),
            args: args.clone(),
        })),
        SubprocessMode::Script {
            runtime,
            body,
            args,
        } => {
            let runtime = match runtime {
                Runtime::Bash => Some(PbRuntime::WellKnown(pb::ScriptRuntime::Bash.into())),
                Runtime::Python => Some(PbRuntime::WellKnown(pb::ScriptRuntime::Python.into())),
                Runtime::Node => Some(PbRuntime::WellKnown(pb::ScriptRuntime::Node.into())),
                Runtime::Custom { command, flag } => Some(PbRuntime::Custom(pb::CustomRuntime {
                    command: command.clone(),
                    flag: flag.clone(),
                })),
                _ => None,
            };
            Some(Mode::Script(pb::ScriptMode {
                runtime,
                body: body.clone(),
                args: args.clone(),
            }))
        }
        _ => None,
    };
    pb::SubprocessTask {
        mode,
        env: env_to_pb(&s.env),
        cwd: s.cwd.as_ref().map(|p| p.to_string_lossy().into_owned()),
        fail_on_non_zero: s.fail_on_non_zero.is_enabled(),
    }
}

fn env_to_pb(env: &TaskEnv) -> Vec<pb::KeyValue> {
    env.iter()
        .map(|(k, v)| pb::KeyValue {
            key: k.to_owned(),
            value: v.to_owned(),
        })
        .collect()
}

fn jitter_to_pb(j: JitterPolicy) -> pb::JitterStrategy {
    match j {
        JitterPolicy::None => pb::JitterStrategy::None,
        JitterPolicy::Full => pb::JitterStrategy::Full,
        JitterPolicy::Equal => pb::JitterStrategy::Equal,
        JitterPolicy::Decorrelated => pb::JitterStrategy::Decorrelated,
        _ => pb::JitterStrategy::Unspecified,
    }
}

fn selector_to_pb(sel: &RunnerSelector) -> pb::RunnerSelector {
    pb::RunnerSelector {
        match_labels: sel
            .match_labels
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        match_expressions: sel
            .match_expressions
            .iter()
            .map(|e| pb::SelectorRequirement {
                key: e.key.clone(),
                operator: match e.operator {
                    SelectorOperator::In => pb::SelectorOperator::In,
                    SelectorOperator::NotIn => pb::SelectorOperator::NotIn,
                    SelectorOperator::Exists => pb::SelectorOperator::Exists,
                    SelectorOperator::DoesNotExist => pb::SelectorOperator::DoesNotExist,
                    _ => pb::SelectorOperator::Unspecified,
                }
                .into(),
                values: e.values.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo() -> pb::CreateSpec {
        pb::CreateSpec {
            slot: "s".into(),
            kind: Some(pb::TaskKind {
                kind: Some(pb::task_kind::Kind::Subprocess(pb::SubprocessTask {
                    mode: Some(pb::subprocess_task::Mode::Command(pb::CommandMode {
                        command: "echo".into(),
                        args: vec!["hi".into()],
                    })),
                    ..Default::default()
                })),
            }),
            timeout_ms: 1000,
            restart: pb::RestartStrategy::Never.into(),
            admission: pb::AdmissionStrategy::DropIfRunning.into(),
            ..Default::default()
        }
    }

    fn script(runtime: Option<pb::script_mode::Runtime>) -> pb::TaskKind {
        pb::TaskKind {
            kind: Some(pb::task_kind::Kind::Subprocess(pb::SubprocessTask {
                mode: Some(pb::subprocess_task::Mode::Script(pb::ScriptMode {
                    runtime,
                    body: "ZWNobyBoaQ==".into(),
                    args: Vec::new(),
                })),
                ..Default::default()
            })),
        }
    }

    fn err(spec: pb::CreateSpec) -> String {
        spec_from_pb(Some(spec)).unwrap_err().to_string()
    }

    #[test]
    fn absent_backoff_and_zero_backoff_fields_take_defaults() {
        let spec = spec_from_pb(Some(echo())).unwrap();
        assert_eq!(spec.restart(), RestartPolicy::Never);
        assert_eq!(spec.admission(), AdmissionPolicy::DropIfRunning);
        assert_eq!(spec.backoff(), BackoffPolicy::default());
        let mut p = echo();
        p.backoff = Some(pb::BackoffStrategy {
            jitter: pb::JitterStrategy::Full.into(),
            ..Default::default()
        });
        assert_eq!(
            spec_from_pb(Some(p)).unwrap().backoff(),
            BackoffPolicy::default()
        );
        let mut p = echo();
        p.backoff = Some(pb::BackoffStrategy {
            jitter: pb::JitterStrategy::Equal.into(),
            first_ms: 60_000,
            ..Default::default()
        });
        let b = spec_from_pb(Some(p)).unwrap().backoff();
        assert_eq!(
            (b.jitter(), b.first_ms(), b.max_ms(), b.factor()),
            (JitterPolicy::Equal, 60_000, 60_000, 2.0)
        );
    }

    #[test]
    fn strict_enums_refuse_unspecified_and_unknown_values() {
        const RESTART: &str = "spec.restart: must be one of RESTART_STRATEGY_NEVER, RESTART_STRATEGY_ON_FAILURE, RESTART_STRATEGY_ALWAYS";
        const ADMISSION: &str = "spec.admission: must be one of ADMISSION_STRATEGY_DROP_IF_RUNNING, ADMISSION_STRATEGY_REPLACE, ADMISSION_STRATEGY_QUEUE";
        const JITTER: &str = "spec.backoff.jitter: must be one of JITTER_STRATEGY_NONE, JITTER_STRATEGY_FULL, JITTER_STRATEGY_EQUAL, JITTER_STRATEGY_DECORRELATED";
        const RUNTIME: &str = "spec.kind.subprocess.script.wellKnown: must be one of SCRIPT_RUNTIME_BASH, SCRIPT_RUNTIME_PYTHON, SCRIPT_RUNTIME_NODE";
        const OPERATOR: &str = "spec.runnerSelector.matchExpressions[1].operator: must be one of SELECTOR_OPERATOR_IN, SELECTOR_OPERATOR_NOT_IN, SELECTOR_OPERATOR_EXISTS, SELECTOR_OPERATOR_DOES_NOT_EXIST";
        for bad in [0, 4, -1, i32::MAX] {
            let mut p = echo();
            p.restart = bad;
            assert_eq!(err(p), RESTART, "restart {bad}");
            let mut p = echo();
            p.admission = bad;
            assert_eq!(err(p), ADMISSION, "admission {bad}");
            let mut p = echo();
            p.backoff = Some(pb::BackoffStrategy {
                jitter: if bad == 4 { 5 } else { bad },
                ..Default::default()
            });
            assert_eq!(err(p), JITTER, "jitter {bad}");
            let mut p = echo();
            p.kind = Some(script(Some(pb::script_mode::Runtime::WellKnown(bad))));
            assert_eq!(err(p), RUNTIME, "runtime {bad}");
            let mut p = echo();
            let mut ok = pb::SelectorRequirement {
                key: "k".into(),
                operator: pb::SelectorOperator::Exists.into(),
                ..Default::default()
            };
            let mut broken = ok.clone();
            broken.operator = if bad == 4 { 5 } else { bad };
            ok.key = "j".into();
            p.runner_selector = Some(pb::RunnerSelector {
                match_expressions: vec![ok, broken],
                ..Default::default()
            });
            assert_eq!(err(p), OPERATOR, "operator {bad}");
        }
        // A script with neither wellKnown nor custom.
        let mut p = echo();
        p.kind = Some(script(None));
        assert_eq!(err(p), RUNTIME);
        // A custom runtime needs no wellKnown.
        let mut p = echo();
        p.kind = Some(script(Some(pb::script_mode::Runtime::Custom(
            pb::CustomRuntime {
                command: "/bin/sh".into(),
                flag: "-c".into(),
            },
        ))));
        assert!(spec_from_pb(Some(p)).is_ok());
        // ApplyTask decodes through the same rule before forcing Replace.
        let mut p = echo();
        p.admission = 0;
        assert_eq!(
            super::super::apply_spec_from_pb(Some(p))
                .unwrap_err()
                .to_string(),
            ADMISSION
        );
    }

    #[test]
    fn strict_enum_json_paths() {
        for (path, want) in [
            ("spec.restart", Some(StrictEnum::Restart)),
            ("spec.admission", Some(StrictEnum::Admission)),
            ("spec.backoff.jitter", Some(StrictEnum::Jitter)),
            (
                "spec.kind.subprocess.script.wellKnown",
                Some(StrictEnum::ScriptRuntime),
            ),
            (
                "spec.runnerSelector.matchExpressions[3].operator",
                Some(StrictEnum::SelectorOperator),
            ),
            ("spec.timeoutMs", None),
            ("restart", None),
            ("spec.labels.restart", None),
        ] {
            assert_eq!(StrictEnum::at_json_path(path), want, "{path}");
        }
    }

    #[test]
    fn errors_name_wire_fields() {
        assert_eq!(
            spec_from_pb(None).unwrap_err().to_string(),
            "spec: required"
        );
        let mut p = echo();
        p.timeout_ms = 0;
        assert_eq!(err(p), "spec.timeoutMs: must be 1..=31536000000 ms, got 0");
        let mut p = echo();
        p.kind = None;
        assert_eq!(err(p), "spec.kind: required");
        let mut p = echo();
        p.max_retries = Some(0);
        assert!(err(p).starts_with("spec.maxRetries: must be >= 1"));
        let mut p = echo();
        p.backoff = Some(pb::BackoffStrategy {
            jitter: pb::JitterStrategy::None.into(),
            factor: 0.5,
            ..Default::default()
        });
        assert_eq!(
            err(p),
            "spec.backoff.factor: must be a finite number >= 1.0, got 0.5"
        );
        let mut p = echo();
        p.slot = "a b".into();
        assert!(err(p).starts_with("spec.slot: must be 1..=64 chars"));
        let mut p = echo();
        p.runner_selector = Some(pb::RunnerSelector {
            match_expressions: vec![pb::SelectorRequirement {
                key: "k".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert!(err(p).starts_with("spec.runnerSelector.matchExpressions[0].operator: must be"));
    }

    #[test]
    fn roundtrip() {
        let mut p = echo();
        p.restart = pb::RestartStrategy::Always.into();
        p.restart_interval_ms = Some(5);
        p.admission = pb::AdmissionStrategy::Queue.into();
        p.max_retries = Some(3);
        p.labels.insert("zone".into(), "a".into());
        let spec = spec_from_pb(Some(p.clone())).unwrap();
        let back = spec_to_pb(&spec);
        assert_eq!(back.restart_interval_ms, Some(5));
        assert_eq!(back.admission, i32::from(pb::AdmissionStrategy::Queue));
        assert_eq!(back.max_retries, Some(3));
        assert_eq!(spec_from_pb(Some(back)).unwrap(), spec);
    }
}
