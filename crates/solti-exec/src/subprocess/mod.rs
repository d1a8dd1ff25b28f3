//! The subprocess runner: registration, the [`SubprocessRunner`] type and its `Runner` impl.

mod attempt;
mod output;

use std::{fmt, path::PathBuf, sync::Arc};

use solti_model::{SubprocessMode, SubprocessSpec, TaskEnv, TaskKind, TaskSpec, decode_script};
use solti_runner::{
    Attempt, AttemptEnd, AttemptFn, BuildContext, Runner, RunnerError, RunnerRouter,
};
use taskvisor::TaskRef;
use tokio_util::task::TaskTracker;

use crate::{ExecError, SubprocessBackendConfig, sys::Isolation};

/// Registers a subprocess runner called `name` with the default
/// [`SubprocessBackendConfig`].
///
/// # Errors
/// [`ExecError::Register`] when a runner of that name is already registered (or the name
/// is not 1..=64 characters).
pub fn register_subprocess_runner(router: &mut RunnerRouter, name: &str) -> Result<(), ExecError> {
    register_subprocess_runner_with_backend(router, name, SubprocessBackendConfig::new())
}

/// Registers a subprocess runner called `name` with `config`.
///
/// # Errors
/// [`ExecError::InvalidConfig`] naming the bad setting, or [`ExecError::Register`] for a
/// duplicate or invalid name.
pub fn register_subprocess_runner_with_backend(
    router: &mut RunnerRouter,
    name: &str,
    config: SubprocessBackendConfig,
) -> Result<(), ExecError> {
    if router.contains(name) {
        return Err(ExecError::Register(RunnerError::DuplicateName(
            name.to_owned(),
        )));
    }
    let runner = SubprocessRunner::new(name, config)?;
    router.register(runner).map_err(ExecError::Register)
}

/// Runs [`TaskKind::Subprocess`] specs as OS processes. See the crate docs for the
/// behaviour; build it with [`SubprocessRunner::new`] or let the `register_*` functions do
/// it.
#[derive(Clone)]
pub struct SubprocessRunner {
    name: Arc<str>,
    shared: Arc<Shared>,
}

/// State shared by every task and attempt of one runner.
pub(crate) struct Shared {
    pub(crate) config: SubprocessBackendConfig,
    pub(crate) isolation: Isolation,
    /// Owns the output readers and the reapers of dropped attempts.
    pub(crate) tracker: TaskTracker,
    pub(crate) name: Arc<str>,
}

impl SubprocessRunner {
    /// A runner called `name` with `config`. Checks the config and probes what isolation
    /// this host can enforce; logs one warning per cause that cannot be applied (unless
    /// [`require_enforcement`](SubprocessBackendConfig::require_enforcement) is on, in
    /// which case attempts fail instead).
    ///
    /// When attempts get cgroups, it also kills and removes the attempt cgroups that a dead
    /// agent process (killed with SIGKILL, crashed) left under the same parent, waiting up
    /// to about a second (blocking) for their processes to die, and logs one warning with
    /// their number. Cgroups of live agent processes and foreign cgroups are never touched.
    ///
    /// # Errors
    /// [`ExecError::InvalidConfig`] naming the bad setting.
    pub fn new(name: &str, config: SubprocessBackendConfig) -> Result<Self, ExecError> {
        config.check()?;
        let isolation = Isolation::probe(&config)?;
        for item in isolation.unenforced() {
            if config.require_enforcement {
                tracing::error!(runner = name, missing = %item,
                    "isolation cannot be enforced; every attempt of this runner will fail (require_enforcement)");
            } else {
                tracing::warn!(runner = name, missing = %item, "isolation cannot be enforced; running without it");
            }
        }
        for note in isolation.notes() {
            tracing::warn!(runner = name, "{note}");
        }
        let swept = isolation.sweep_stale();
        if swept.removed > 0 {
            tracing::warn!(runner = name, count = swept.removed,
                parent = %isolation.cgroup_parent().map(|p| p.display().to_string()).unwrap_or_default(),
                "killed and removed attempt cgroups left by an agent process that died (SIGKILL or crash); their tasks were orphans");
        }
        for (cgroup, why) in &swept.left {
            tracing::warn!(runner = name, cgroup = %cgroup.display(),
                "attempt cgroup left by a dead agent process could not be cleaned: {why}; retried at the next start");
        }
        let name: Arc<str> = name.into();
        let shared = Arc::new(Shared {
            config,
            isolation,
            tracker: TaskTracker::new(),
            name: Arc::clone(&name),
        });
        Ok(Self { name, shared })
    }

    /// Configured isolation this host cannot apply, as `item (cause)` (empty when all of
    /// it is enforced).
    #[must_use]
    pub fn unenforced(&self) -> &[String] {
        self.shared.isolation.unenforced()
    }

    /// The directory under which attempt cgroups are created, if attempts get one.
    #[must_use]
    pub fn cgroup_parent(&self) -> Option<&std::path::Path> {
        self.shared.isolation.cgroup_parent()
    }

    /// Number of background tasks (output readers, reapers of dropped attempts) still
    /// running. A reaper ends once its attempt's tree is dead and its output drained: one
    /// kill grace after the drop, plus the time to drain the pipes and empty the cgroup.
    #[must_use]
    pub fn background_tasks(&self) -> usize {
        self.shared.tracker.len()
    }
}

impl Runner for SubprocessRunner {
    fn name(&self) -> &str {
        &self.name
    }

    fn supports(&self, spec: &TaskSpec) -> bool {
        matches!(spec.kind(), TaskKind::Subprocess(_))
    }

    fn build_task(&self, spec: &TaskSpec, ctx: &BuildContext) -> Result<TaskRef, RunnerError> {
        let TaskKind::Subprocess(sub) = spec.kind() else {
            return Err(RunnerError::build(
                self.name.as_ref(),
                format!(
                    "the subprocess runner cannot run {} tasks",
                    spec.kind().name()
                ),
            ));
        };
        let plan = Arc::new(TaskPlan::new(sub, ctx, &self.shared).map_err(|e| {
            ctx.metrics().runner_error(&self.name, e.metric_reason());
            RunnerError::build(self.name.as_ref(), e)
        })?);
        let shared = Arc::clone(&self.shared);
        let metrics = Arc::clone(ctx.metrics());
        let task_id = ctx.task_id().clone();
        Ok(AttemptFn::arc(ctx.output(), move |attempt: Attempt| {
            let inputs = attempt::Inputs {
                shared: Arc::clone(&shared),
                plan: Arc::clone(&plan),
                attempt,
                metrics: Arc::clone(&metrics),
                task_id: task_id.clone(),
            };
            async move { (attempt::run(&inputs).await).unwrap_or_else(|e| AttemptEnd::new(Err(e))) }
        }))
    }
}

impl fmt::Debug for SubprocessRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubprocessRunner")
            .field("name", &self.name)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// What one task runs, prepared once at build time.
#[derive(Debug)]
pub(crate) struct TaskPlan {
    pub(crate) program: Program,
    /// The complete child environment (agent env if inherited, runner env, task env).
    pub(crate) env: Vec<(String, String)>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) fail_on_non_zero: bool,
}

/// Command or script.
#[derive(Debug)]
pub(crate) enum Program {
    Command {
        command: String,
        args: Vec<String>,
    },
    Script {
        interpreter: String,
        flag: Option<String>,
        body: Vec<u8>,
        args: Vec<String>,
    },
}

impl TaskPlan {
    fn new(sub: &SubprocessSpec, ctx: &BuildContext, shared: &Shared) -> Result<Self, ExecError> {
        let program = match &sub.mode {
            SubprocessMode::Command { command, args } => Program::Command {
                command: command.clone(),
                args: args.clone(),
            },
            SubprocessMode::Script {
                runtime,
                body,
                args,
            } => {
                let (interpreter, flag) = runtime.interpreter();
                let body = decode_script(body).map_err(|e| ExecError::InvalidSpec {
                    field: "kind.subprocess.script.body",
                    reason: e.to_string(),
                })?;
                Program::Script {
                    interpreter: interpreter.to_owned(),
                    flag: flag.map(str::to_owned),
                    body,
                    args: args.clone(),
                }
            }
            other => {
                return Err(ExecError::InvalidSpec {
                    field: "kind.subprocess.mode",
                    reason: format!("unsupported subprocess mode {other:?}"),
                });
            }
        };
        let task_env = ctx.env().merge(&sub.env);
        let mut base = agent_env(std::env::vars_os(), shared.config.inherit_env);
        if let Some(home) = shared.isolation.task_home() {
            base.push("HOME", home);
        }
        let env = task_env.merged_over(&base);
        Ok(Self {
            program,
            env: env
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            cwd: sub.cwd.clone(),
            fail_on_non_zero: sub.fail_on_non_zero.is_enabled(),
        })
    }
}

/// The part of the agent's environment `vars` a child starts from: all of it but the
/// agents' own `SOLTI_*` settings and the service manager's variables when `inherit`,
/// otherwise only [`PASSED_ENV`]. Variables
/// that are not valid UTF-8 are skipped.
fn agent_env(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    inherit: bool,
) -> TaskEnv {
    vars.filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| {
            if inherit {
                !k.starts_with(AGENT_PREFIX) && !SERVICE_MANAGER_ENV.contains(&k.as_str())
            } else {
                PASSED_ENV.contains(&k.as_str())
            }
        })
        .collect()
}

/// What systemd hands the agent's own process: a task that inherited them could mistake
/// itself for the supervised service (notify the agent's unit, take its sockets).
const SERVICE_MANAGER_ENV: [&str; 8] = [
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "INVOCATION_ID",
    "JOURNAL_STREAM",
];

/// Agent variables a child gets when the environment is not inherited.
const PASSED_ENV: [&str; 4] = ["PATH", "HOME", "LANG", "TZ"];
/// Prefix of the agents' own settings (the API token among them): never inherited.
const AGENT_PREFIX: &str = "SOLTI_";

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)> {
        [
            ("PATH", "/bin"),
            ("HOME", "/root"),
            ("LANG", "C.UTF-8"),
            ("TZ", "UTC"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("SOLTI_AGENT_TOKEN", "y"),
            ("SOLTI_TOKEN", "z"),
            ("NOTIFY_SOCKET", "/run/systemd/notify"),
            ("WATCHDOG_USEC", "30000000"),
            ("LC_ALL", "C"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
    }

    fn keys(env: &TaskEnv) -> Vec<&str> {
        env.iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn clean_environment_passes_only_the_listed_variables() {
        let env = agent_env(vars(), false);
        assert_eq!(keys(&env), ["PATH", "HOME", "LANG", "TZ"]);
    }

    #[test]
    fn inherited_environment_never_carries_agent_or_service_manager_settings() {
        let env = agent_env(vars(), true);
        assert_eq!(
            keys(&env),
            [
                "PATH",
                "HOME",
                "LANG",
                "TZ",
                "AWS_SECRET_ACCESS_KEY",
                "LC_ALL"
            ]
        );
    }
}
