//! Task specifications: [`TaskSpec`], its builder, and the task kinds.

use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::{
    AdmissionPolicy, BackoffPolicy, Flag, Labels, ModelError, RestartPolicy, RunnerSelector, Slot,
    TaskEnv,
};

/// Largest decoded script body (2 MiB).
pub const MAX_SCRIPT_BYTES: usize = 2 * 1024 * 1024;
/// Longest per-attempt timeout or restart interval accepted (365 days).
pub const MAX_DURATION_MS: u64 = 365 * 24 * 3600 * 1000;
/// Most environment entries on one task.
pub const MAX_ENV_ENTRIES: usize = 1024;
/// Most arguments on one command.
pub const MAX_ARGS: usize = 4096;
/// Longest single string (command, argument, env value, path) in bytes.
pub const MAX_STRING_BYTES: usize = 128 * 1024;
/// Most bytes of all environment keys and values of one task together (the kernel refuses
/// an `execve` whose arguments and environment pass about a quarter of the stack limit).
pub const MAX_ENV_BYTES: usize = 1024 * 1024;
/// Most bytes of all arguments of one command together.
pub const MAX_ARGS_BYTES: usize = 1024 * 1024;

/// An immutable, validated description of a task.
///
/// Built with [`TaskSpec::builder`]; once built it cannot be changed, so every holder sees
/// the same validated values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TaskSpecRepr", into = "TaskSpecRepr")]
pub struct TaskSpec {
    slot: Slot,
    kind: TaskKind,
    timeout_ms: u64,
    restart: RestartPolicy,
    backoff: BackoffPolicy,
    admission: AdmissionPolicy,
    max_retries: Option<u32>,
    runner_selector: Option<RunnerSelector>,
    labels: Labels,
}

impl TaskSpec {
    /// Starts a spec for `slot` running `kind` with a per-attempt timeout of `timeout_ms`.
    ///
    /// Defaults: restart `Never`, backoff full jitter 1000 ms → 30000 ms ×2.0, admission
    /// `DropIfRunning`, unlimited retries, no selector, no labels.
    pub fn builder(
        slot: impl Into<String>,
        kind: TaskKind,
        timeout_ms: impl Into<u64>,
    ) -> TaskSpecBuilder {
        TaskSpecBuilder {
            slot: slot.into(),
            kind,
            timeout_ms: timeout_ms.into(),
            restart: RestartPolicy::Never,
            backoff: BackoffPolicy::default(),
            admission: AdmissionPolicy::DropIfRunning,
            max_retries: None,
            runner_selector: None,
            labels: Labels::new(),
        }
    }

    /// The admission slot.
    #[must_use]
    pub fn slot(&self) -> &Slot {
        &self.slot
    }
    /// What to run.
    #[must_use]
    pub fn kind(&self) -> &TaskKind {
        &self.kind
    }
    /// Per-attempt timeout in milliseconds (> 0).
    #[must_use]
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms
    }
    /// Restart policy.
    #[must_use]
    pub fn restart(&self) -> RestartPolicy {
        self.restart
    }
    /// Backoff between failure retries.
    #[must_use]
    pub fn backoff(&self) -> BackoffPolicy {
        self.backoff
    }
    /// Admission policy for the slot.
    #[must_use]
    pub fn admission(&self) -> AdmissionPolicy {
        self.admission
    }
    /// Failure retries allowed in a row; `None` is unlimited.
    #[must_use]
    pub fn max_retries(&self) -> Option<u32> {
        self.max_retries
    }
    /// Set-based runner selector, if any.
    #[must_use]
    pub fn runner_selector(&self) -> Option<&RunnerSelector> {
        self.runner_selector.as_ref()
    }
    /// Labels a runner must carry with equal values.
    #[must_use]
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// A builder pre-filled with this spec, to derive a changed copy.
    pub fn to_builder(&self) -> TaskSpecBuilder {
        TaskSpecBuilder {
            slot: self.slot.as_str().to_owned(),
            kind: self.kind.clone(),
            timeout_ms: self.timeout_ms,
            restart: self.restart,
            backoff: self.backoff,
            admission: self.admission,
            max_retries: self.max_retries,
            runner_selector: self.runner_selector.clone(),
            labels: self.labels.clone(),
        }
    }
}

/// Builder for [`TaskSpec`]; see [`TaskSpec::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct TaskSpecBuilder {
    slot: String,
    kind: TaskKind,
    timeout_ms: u64,
    restart: RestartPolicy,
    backoff: BackoffPolicy,
    admission: AdmissionPolicy,
    max_retries: Option<u32>,
    runner_selector: Option<RunnerSelector>,
    labels: Labels,
}

impl TaskSpecBuilder {
    /// Sets the restart policy.
    ///
    /// # Default
    /// [`RestartPolicy::Never`].
    pub fn restart(mut self, restart: RestartPolicy) -> Self {
        self.restart = restart;
        self
    }
    /// Sets the backoff between failure retries.
    ///
    /// # Default
    /// Full jitter, 1000 ms → 30000 ms, factor 2.0.
    pub fn backoff(mut self, backoff: BackoffPolicy) -> Self {
        self.backoff = backoff;
        self
    }
    /// Sets the admission policy.
    ///
    /// # Default
    /// [`AdmissionPolicy::DropIfRunning`].
    pub fn admission(mut self, admission: AdmissionPolicy) -> Self {
        self.admission = admission;
        self
    }
    /// Limits failure retries in a row (`Some(0)` is rejected by [`build`](Self::build)).
    ///
    /// # Default
    /// `None` (unlimited).
    pub fn max_retries(mut self, max_retries: Option<u32>) -> Self {
        self.max_retries = max_retries;
        self
    }
    /// Sets a set-based runner selector.
    ///
    /// # Default
    /// None.
    pub fn runner_selector(mut self, selector: RunnerSelector) -> Self {
        self.runner_selector = Some(selector);
        self
    }
    /// Sets the labels a runner must carry.
    ///
    /// # Default
    /// Empty.
    pub fn labels(mut self, labels: Labels) -> Self {
        self.labels = labels;
        self
    }
    /// Adds one label a runner must carry.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key, value);
        self
    }

    /// Validates every field and builds the spec.
    ///
    /// # Errors
    /// The first rule broken, naming its field (`slot`, `timeout_ms`, `kind.subprocess.env[0].key`, …).
    pub fn build(self) -> Result<TaskSpec, ModelError> {
        let slot = Slot::try_new(&self.slot)?;
        if self.timeout_ms == 0 || self.timeout_ms > MAX_DURATION_MS {
            return Err(ModelError::invalid(
                "timeout_ms",
                format!("must be 1..={MAX_DURATION_MS} ms, got {}", self.timeout_ms),
            ));
        }
        if let RestartPolicy::Always {
            interval_ms: Some(ms),
        } = self.restart
            && ms > MAX_DURATION_MS
        {
            return Err(ModelError::invalid(
                "restart.interval_ms",
                format!("must be at most {MAX_DURATION_MS} ms, got {ms}"),
            ));
        }
        if self.max_retries == Some(0) {
            return Err(ModelError::invalid(
                "max_retries",
                "must be >= 1 when set (omit it for unlimited), got 0",
            ));
        }
        self.labels.check("labels")?;
        if let Some(sel) = &self.runner_selector {
            sel.check()?;
        }
        self.kind.check()?;
        Ok(TaskSpec {
            slot,
            kind: self.kind,
            timeout_ms: self.timeout_ms,
            restart: self.restart,
            backoff: self.backoff,
            admission: self.admission,
            max_retries: self.max_retries,
            runner_selector: self.runner_selector.filter(|s| !s.is_empty()),
            labels: self.labels,
        })
    }
}

/// What a task runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum TaskKind {
    /// An OS process, run by the subprocess runner.
    Subprocess(SubprocessSpec),
    /// An async Rust closure supplied in code (`submit_with_task`); it has no wire form.
    Embedded,
    /// A WebAssembly module (model only; no runner ships yet).
    Wasm(WasmSpec),
    /// A container (model only; no runner ships yet).
    Container(ContainerSpec),
}

impl TaskKind {
    /// A short name of the kind: `subprocess`, `embedded`, `wasm`, `container`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Subprocess(_) => "subprocess",
            Self::Embedded => "embedded",
            Self::Wasm(_) => "wasm",
            Self::Container(_) => "container",
        }
    }

    fn check(&self) -> Result<(), ModelError> {
        match self {
            Self::Subprocess(s) => s.check().map_err(|e| e.in_field("kind.subprocess")),
            Self::Embedded => Ok(()),
            Self::Wasm(w) => {
                check_str("kind.wasm.module", &w.module, false)?;
                check_list("kind.wasm.args", &w.args)?;
                w.env.check().map_err(|e| e.in_field("kind.wasm"))
            }
            Self::Container(c) => {
                check_str("kind.container.image", &c.image, false)?;
                check_list("kind.container.command", &c.command)?;
                check_list("kind.container.args", &c.args)?;
                c.env.check().map_err(|e| e.in_field("kind.container"))
            }
        }
    }
}

/// A subprocess to run: the brief's shape, with public fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[expect(
    clippy::exhaustive_structs,
    reason = "the brief builds this with a struct literal; new knobs go into SubprocessMode or the backend config"
)]
pub struct SubprocessSpec {
    /// Command or script.
    pub mode: SubprocessMode,
    /// Environment for the process, merged over the runner's environment.
    pub env: TaskEnv,
    /// Working directory (absolute, without `..`); `None` inherits the agent's.
    pub cwd: Option<PathBuf>,
    /// Whether a non-zero exit (or death by signal) fails the attempt.
    pub fail_on_non_zero: Flag,
}

impl SubprocessSpec {
    /// A command with arguments, empty env, inherited cwd, failing on non-zero exit.
    pub fn command(
        command: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            mode: SubprocessMode::Command {
                command: command.into(),
                args: args.into_iter().map(Into::into).collect(),
            },
            env: TaskEnv::new(),
            cwd: None,
            fail_on_non_zero: Flag::enabled(),
        }
    }

    fn check(&self) -> Result<(), ModelError> {
        match &self.mode {
            SubprocessMode::Command { command, args } => {
                check_str("command.command", command, false)?;
                check_list("command.args", args)?;
            }
            SubprocessMode::Script {
                runtime,
                body,
                args,
            } => {
                if let Runtime::Custom { command, flag } = runtime {
                    check_str("script.custom.command", command, false)?;
                    check_no_dotdot("script.custom.command", Path::new(command))?;
                    check_str("script.custom.flag", flag, true)?;
                }
                decode_script(body).map_err(|e| e.in_field("script"))?;
                check_list("script.args", args)?;
            }
        }
        self.env.check()?;
        if let Some(cwd) = &self.cwd {
            let s = cwd.to_string_lossy();
            check_str("cwd", &s, false)?;
            if !cwd.is_absolute() {
                return Err(ModelError::invalid(
                    "cwd",
                    format!("must be an absolute path, got {s:?}"),
                ));
            }
            check_no_dotdot("cwd", cwd)?;
        }
        Ok(())
    }
}

/// How the process is started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum SubprocessMode {
    /// Execute `command` (looked up in `PATH`) with `args`.
    Command {
        /// Program name or path.
        command: String,
        /// Arguments.
        args: Vec<String>,
    },
    /// Write `body` to a private temp file and run `<interpreter> <file> <args>`.
    Script {
        /// The interpreter.
        runtime: Runtime,
        /// The script, base64-encoded (at most 2 MiB decoded).
        body: String,
        /// Arguments after the script path.
        args: Vec<String>,
    },
}

/// A script interpreter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Runtime {
    /// `bash`.
    Bash,
    /// `python3`.
    Python,
    /// `node`.
    Node,
    /// Any interpreter: `command [flag] <file> <args>`; an empty `flag` is left out.
    Custom {
        /// Interpreter program.
        command: String,
        /// One flag placed before the script path, or empty.
        flag: String,
    },
}

impl Runtime {
    /// The interpreter program and its optional flag.
    #[must_use]
    pub fn interpreter(&self) -> (&str, Option<&str>) {
        match self {
            Self::Bash => ("bash", None),
            Self::Python => ("python3", None),
            Self::Node => ("node", None),
            Self::Custom { command, flag } => {
                (command, Some(flag.as_str()).filter(|f| !f.is_empty()))
            }
        }
    }
}

/// Decodes a base64 script body, enforcing [`MAX_SCRIPT_BYTES`].
///
/// # Errors
/// `body` when it is not valid base64 or decodes to more than 2 MiB.
pub fn decode_script(body: &str) -> Result<Vec<u8>, ModelError> {
    // Cheap pre-check so an oversized body is refused before it is decoded.
    if body.len() / 4 * 3 > MAX_SCRIPT_BYTES + 3 {
        return Err(ModelError::invalid(
            "body",
            format!(
                "decoded script must be at most {MAX_SCRIPT_BYTES} bytes, got about {}",
                body.len() / 4 * 3
            ),
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|e| ModelError::invalid("body", format!("must be standard base64: {e}")))?;
    if bytes.len() > MAX_SCRIPT_BYTES {
        return Err(ModelError::invalid(
            "body",
            format!(
                "decoded script must be at most {MAX_SCRIPT_BYTES} bytes, got {}",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

/// A WebAssembly task (model only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct WasmSpec {
    /// Module reference.
    pub module: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Environment.
    pub env: TaskEnv,
}

impl WasmSpec {
    /// A module with no arguments or environment.
    pub fn new(module: impl Into<String>) -> Self {
        Self {
            module: module.into(),
            ..Self::default()
        }
    }
}

/// A container task (model only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ContainerSpec {
    /// Image reference.
    pub image: String,
    /// Entrypoint override.
    pub command: Vec<String>,
    /// Arguments.
    pub args: Vec<String>,
    /// Environment.
    pub env: TaskEnv,
}

impl ContainerSpec {
    /// An image with default entrypoint and no arguments.
    pub fn new(image: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            ..Self::default()
        }
    }
}

fn check_str(field: &'static str, s: &str, allow_empty: bool) -> Result<(), ModelError> {
    check_str_owned(field.to_owned(), s, allow_empty)
}

pub(crate) fn check_str_owned(field: String, s: &str, allow_empty: bool) -> Result<(), ModelError> {
    if !allow_empty && s.is_empty() {
        return Err(ModelError::invalid(field, "must not be empty"));
    }
    if s.len() > MAX_STRING_BYTES {
        return Err(ModelError::invalid(
            field,
            format!("must be at most {MAX_STRING_BYTES} bytes, got {}", s.len()),
        ));
    }
    if s.contains('\0') {
        return Err(ModelError::invalid(field, "must not contain NUL"));
    }
    Ok(())
}

fn check_list(field: &'static str, items: &[String]) -> Result<(), ModelError> {
    if items.len() > MAX_ARGS {
        return Err(ModelError::invalid(
            field,
            format!("at most {MAX_ARGS} entries, got {}", items.len()),
        ));
    }
    let bytes: usize = items.iter().map(String::len).sum();
    if bytes > MAX_ARGS_BYTES {
        return Err(ModelError::invalid(
            field,
            format!("at most {MAX_ARGS_BYTES} bytes in all, got {bytes}"),
        ));
    }
    for (i, a) in items.iter().enumerate() {
        check_str_owned(format!("{field}[{i}]"), a, true)?;
    }
    Ok(())
}

fn check_no_dotdot(field: &'static str, p: &Path) -> Result<(), ModelError> {
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(ModelError::invalid(
            field,
            format!("must not contain '..', got {:?}", p.display().to_string()),
        ));
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskSpecRepr {
    slot: String,
    kind: TaskKind,
    timeout_ms: u64,
    #[serde(default)]
    restart: RestartPolicy,
    #[serde(default)]
    backoff: BackoffPolicy,
    #[serde(default)]
    admission: AdmissionPolicy,
    #[serde(default)]
    max_retries: Option<u32>,
    #[serde(default)]
    runner_selector: Option<RunnerSelector>,
    #[serde(default)]
    labels: Labels,
}

impl TryFrom<TaskSpecRepr> for TaskSpec {
    type Error = ModelError;
    fn try_from(r: TaskSpecRepr) -> Result<Self, Self::Error> {
        let mut b = Self::builder(r.slot, r.kind, r.timeout_ms)
            .restart(r.restart)
            .backoff(r.backoff)
            .admission(r.admission)
            .max_retries(r.max_retries)
            .labels(r.labels);
        if let Some(sel) = r.runner_selector {
            b = b.runner_selector(sel);
        }
        b.build()
    }
}

impl From<TaskSpec> for TaskSpecRepr {
    fn from(s: TaskSpec) -> Self {
        Self {
            slot: s.slot.into(),
            kind: s.kind,
            timeout_ms: s.timeout_ms,
            restart: s.restart,
            backoff: s.backoff,
            admission: s.admission,
            max_retries: s.max_retries,
            runner_selector: s.runner_selector,
            labels: s.labels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo() -> TaskKind {
        TaskKind::Subprocess(SubprocessSpec::command("echo", ["hi"]))
    }

    #[test]
    fn builder_defaults() {
        let s = TaskSpec::builder("hello", echo(), 30_000u64)
            .build()
            .unwrap();
        assert_eq!(s.restart(), RestartPolicy::Never);
        assert_eq!(s.admission(), AdmissionPolicy::DropIfRunning);
        assert_eq!(s.backoff(), BackoffPolicy::default());
        assert_eq!(s.max_retries(), None);
    }

    #[test]
    fn builder_errors_name_fields() {
        let e = |b: TaskSpecBuilder| b.build().unwrap_err().to_string();
        assert!(e(TaskSpec::builder("x", echo(), 0u64)).starts_with("timeout_ms:"));
        assert!(
            e(TaskSpec::builder("x", echo(), 1u64).max_retries(Some(0)))
                .starts_with("max_retries:")
        );
        assert!(e(TaskSpec::builder("a b", echo(), 1u64)).starts_with("slot:"));
        let mut sp = SubprocessSpec::command("", Vec::<String>::new());
        assert_eq!(
            e(TaskSpec::builder(
                "x",
                TaskKind::Subprocess(sp.clone()),
                1u64
            )),
            "kind.subprocess.command.command: must not be empty"
        );
        sp = SubprocessSpec::command("ls", Vec::<String>::new());
        sp.cwd = Some("/tmp/../etc".into());
        assert!(
            e(TaskSpec::builder(
                "x",
                TaskKind::Subprocess(sp.clone()),
                1u64
            ))
            .starts_with("kind.subprocess.cwd: must not contain '..'")
        );
        sp.cwd = Some("relative".into());
        assert!(
            e(TaskSpec::builder(
                "x",
                TaskKind::Subprocess(sp.clone()),
                1u64
            ))
            .contains("absolute")
        );
        sp.cwd = None;
        sp.env = TaskEnv::new().with("A=B", "c");
        assert!(
            e(TaskSpec::builder(
                "x",
                TaskKind::Subprocess(sp.clone()),
                1u64
            ))
            .starts_with("kind.subprocess.env[0].key")
        );
        sp.env = (0..MAX_ENV_ENTRIES + 1)
            .map(|i| (format!("K{i}"), "v"))
            .collect();
        assert!(
            e(TaskSpec::builder("x", TaskKind::Subprocess(sp), 1u64))
                .starts_with("kind.subprocess.env: at most")
        );
    }

    #[test]
    fn script_limits() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let ok = SubprocessMode::Script {
            runtime: Runtime::Bash,
            body: b64.encode("echo hi"),
            args: vec![],
        };
        let spec = SubprocessSpec {
            mode: ok,
            env: TaskEnv::new(),
            cwd: None,
            fail_on_non_zero: Flag::enabled(),
        };
        assert!(
            TaskSpec::builder("x", TaskKind::Subprocess(spec.clone()), 1u64)
                .build()
                .is_ok()
        );
        let big = SubprocessMode::Script {
            runtime: Runtime::Bash,
            body: b64.encode(vec![b'a'; MAX_SCRIPT_BYTES + 1]),
            args: vec![],
        };
        let err = TaskSpec::builder(
            "x",
            TaskKind::Subprocess(SubprocessSpec {
                mode: big,
                ..spec.clone()
            }),
            1u64,
        )
        .build()
        .unwrap_err();
        assert!(
            err.to_string().starts_with(
                "kind.subprocess.script.body: decoded script must be at most 2097152 bytes"
            ),
            "{err}"
        );
        let bad = SubprocessMode::Script {
            runtime: Runtime::Bash,
            body: "@@@".into(),
            args: vec![],
        };
        let err = TaskSpec::builder(
            "x",
            TaskKind::Subprocess(SubprocessSpec {
                mode: bad,
                ..spec.clone()
            }),
            1u64,
        )
        .build()
        .unwrap_err();
        assert!(err.to_string().contains("base64"), "{err}");
        let trav = SubprocessMode::Script {
            runtime: Runtime::Custom {
                command: "../../bin/sh".into(),
                flag: String::new(),
            },
            body: b64.encode("x"),
            args: vec![],
        };
        assert!(
            TaskSpec::builder(
                "x",
                TaskKind::Subprocess(SubprocessSpec { mode: trav, ..spec }),
                1u64
            )
            .build()
            .is_err()
        );
    }

    #[test]
    fn env_debug_hides_values() {
        let env = TaskEnv::new().with("TOKEN", "s3cret");
        let dbg = format!("{env:?}");
        assert!(dbg.contains("TOKEN") && !dbg.contains("s3cret"));
    }

    #[test]
    fn serde_roundtrip_validates() {
        let s = TaskSpec::builder("hello", echo(), 5u64)
            .restart(RestartPolicy::Always {
                interval_ms: Some(10),
            })
            .build()
            .unwrap();
        let json = serde_json::to_string(&s).unwrap();
        let back: TaskSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        let bad = json.replace("\"timeoutMs\":5", "\"timeoutMs\":0");
        assert!(
            serde_json::from_str::<TaskSpec>(&bad)
                .unwrap_err()
                .to_string()
                .contains("timeout_ms")
        );
    }
}
