//! [`SubprocessBackendConfig`]: how the subprocess runner kills, bounds and isolates.

use std::{
    path::{Component, Path, PathBuf},
    time::Duration,
};

use crate::ExecError;

/// Settings of one subprocess runner, built with `self`-taking setters.
///
/// Everything is optional; the default runs processes in their own process group with a
/// 5 s kill grace, a 64 KiB line bound and no isolation. Values are checked when the runner
/// is registered ([`register_subprocess_runner_with_backend`]); an invalid value fails the
/// registration with [`ExecError::InvalidConfig`] naming the setting.
///
/// Isolation that is configured but cannot be applied on this host (no cgroup v2
/// controller, no `CAP_SETPCAP`, not Linux) is skipped with one warning per cause, unless
/// [`require_enforcement`](Self::require_enforcement) is set, in which case every attempt
/// fails with a message naming what is missing.
///
/// [`register_subprocess_runner_with_backend`]: crate::subprocess::register_subprocess_runner_with_backend
#[derive(Clone, Debug)]
#[must_use]
pub struct SubprocessBackendConfig {
    pub(crate) kill_grace: Duration,
    pub(crate) max_line_bytes: usize,
    pub(crate) cgroup_parent: Option<PathBuf>,
    pub(crate) cgroup_kill: bool,
    pub(crate) cpu_max: Option<(u64, u64)>,
    pub(crate) memory_max: Option<u64>,
    pub(crate) pids_max: Option<u64>,
    pub(crate) drop_all_capabilities: bool,
    pub(crate) keep_capabilities: Vec<String>,
    pub(crate) no_new_privs: bool,
    pub(crate) rlimits: Rlimits,
    pub(crate) require_enforcement: bool,
    pub(crate) script_dir: Option<PathBuf>,
    pub(crate) inherit_env: bool,
    pub(crate) run_as: Option<RunAs>,
    pub(crate) spawn_timeout: Duration,
}

/// The user and group tasks run as ([`SubprocessBackendConfig::run_as`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RunAs {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// Resource limits applied to the child before `exec` (soft = hard = the value).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Rlimits {
    pub(crate) nofile: Option<u64>,
    pub(crate) fsize: Option<u64>,
    pub(crate) core: Option<u64>,
    pub(crate) address_space: Option<u64>,
    pub(crate) cpu: Option<u64>,
    pub(crate) nproc: Option<u64>,
}

impl SubprocessBackendConfig {
    /// The defaults described on the type.
    pub fn new() -> Self {
        Self {
            kill_grace: DEFAULT_KILL_GRACE,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            cgroup_parent: None,
            cgroup_kill: true,
            cpu_max: None,
            memory_max: None,
            pids_max: None,
            drop_all_capabilities: false,
            keep_capabilities: Vec::new(),
            no_new_privs: false,
            rlimits: Rlimits::default(),
            require_enforcement: false,
            script_dir: None,
            inherit_env: false,
            run_as: None,
            spawn_timeout: DEFAULT_SPAWN_TIMEOUT,
        }
    }

    /// Time between SIGTERM and SIGKILL when an attempt is stopped (cancel, delete,
    /// replace, shutdown, timeout). Keep it below the supervisor's grace. At most 1 hour.
    ///
    /// # Default
    /// 5 s.
    pub fn kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }

    /// Longest output line kept, in bytes (1 ..= 16 MiB). Longer lines are cut, marked
    /// with [`CUT_MARKER`](crate::CUT_MARKER) and their rest is skipped up to the next LF.
    ///
    /// # Default
    /// 64 KiB.
    pub fn max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line_bytes = bytes;
        self
    }

    /// Directory in a cgroup v2 hierarchy under which one cgroup per attempt is created
    /// (e.g. `/sys/fs/cgroup/solti`). Created if missing; the controllers needed by the
    /// limits are enabled in its `cgroup.subtree_control`, so it must not hold processes
    /// itself. Absolute, without `..`.
    ///
    /// # Default
    /// None: attempts get a limit-less cgroup (used only to kill the whole tree) under the
    /// agent's own cgroup when that is writable, and no cgroup otherwise.
    pub fn cgroup_parent(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cgroup_parent = Some(dir.into());
        self
    }

    /// `cpu.max` of each attempt: `quota_us` of CPU time per `period_us` (quota <= period,
    /// period 1000 ..= 1_000_000 µs).
    ///
    /// # Default
    /// Unlimited.
    pub fn cpu_max(mut self, quota_us: u64, period_us: u64) -> Self {
        self.cpu_max = Some((quota_us, period_us));
        self
    }

    /// `memory.max` of each attempt in bytes (> 0). `memory.swap.max` is set to 0 too when
    /// the hierarchy has swap accounting, so the limit cannot be dodged by swapping.
    ///
    /// # Default
    /// Unlimited.
    pub fn memory_max(mut self, bytes: u64) -> Self {
        self.memory_max = Some(bytes);
        self
    }

    /// `pids.max` of each attempt (> 0): at most this many processes and threads.
    ///
    /// # Default
    /// Unlimited.
    pub fn pids_max(mut self, max: u64) -> Self {
        self.pids_max = Some(max);
        self
    }

    /// Drops every capability from the child's bounding, inheritable, permitted and
    /// effective sets (except the [keep-list](Self::keep_capabilities)) and clears the
    /// ambient set before `exec`. Needs `CAP_SETPCAP` in the agent.
    ///
    /// # Default
    /// `false`: the child inherits the agent's capabilities.
    pub fn drop_all_capabilities(mut self, drop_all: bool) -> Self {
        self.drop_all_capabilities = drop_all;
        self
    }

    /// Capabilities kept when [`drop_all_capabilities`](Self::drop_all_capabilities) is on,
    /// by name (`CAP_NET_BIND_SERVICE` or `net_bind_service`). A keep-list without drop-all
    /// is rejected.
    ///
    /// # Default
    /// Empty.
    pub fn keep_capabilities(mut self, caps: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.keep_capabilities = caps.into_iter().map(Into::into).collect();
        self
    }

    /// Sets `PR_SET_NO_NEW_PRIVS` in the child: `exec` of setuid/setgid or file-capability
    /// programs grants nothing.
    ///
    /// # Default
    /// `false`.
    pub fn no_new_privs(mut self, on: bool) -> Self {
        self.no_new_privs = on;
        self
    }

    /// `RLIMIT_NOFILE`: most open file descriptors (> 0).
    ///
    /// # Default
    /// Inherited from the agent.
    pub fn rlimit_nofile(mut self, max: u64) -> Self {
        self.rlimits.nofile = Some(max);
        self
    }

    /// `RLIMIT_FSIZE`: largest file the child may write, in bytes (> 0).
    ///
    /// # Default
    /// Inherited from the agent.
    pub fn rlimit_fsize(mut self, bytes: u64) -> Self {
        self.rlimits.fsize = Some(bytes);
        self
    }

    /// `RLIMIT_CORE`: largest core dump in bytes; 0 disables core dumps.
    ///
    /// # Default
    /// Inherited from the agent.
    pub fn rlimit_core(mut self, bytes: u64) -> Self {
        self.rlimits.core = Some(bytes);
        self
    }

    /// `RLIMIT_AS`: largest virtual address space in bytes (> 0).
    ///
    /// # Default
    /// Inherited from the agent.
    pub fn rlimit_as(mut self, bytes: u64) -> Self {
        self.rlimits.address_space = Some(bytes);
        self
    }

    /// `RLIMIT_CPU`: CPU seconds before SIGXCPU, then SIGKILL (> 0).
    ///
    /// # Default
    /// Inherited from the agent.
    pub fn rlimit_cpu(mut self, seconds: u64) -> Self {
        self.rlimits.cpu = Some(seconds);
        self
    }

    /// `RLIMIT_NPROC`: most processes of the child's user (> 0). Counted per user, not
    /// per task, and not enforced for root; prefer [`pids_max`](Self::pids_max).
    ///
    /// # Default
    /// Inherited from the agent.
    pub fn rlimit_nproc(mut self, max: u64) -> Self {
        self.rlimits.nproc = Some(max);
        self
    }

    /// Whether isolation that cannot be applied fails each attempt (`true`, with a
    /// message naming what is missing) instead of running unconfined with one warning per
    /// cause (`false`).
    ///
    /// # Default
    /// `false`.
    pub fn require_enforcement(mut self, required: bool) -> Self {
        self.require_enforcement = required;
        self
    }

    /// Directory for script files (absolute). Scripts are written there as private (0600)
    /// temp files and removed when the attempt ends.
    ///
    /// # Default
    /// The system temp directory.
    pub fn script_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.script_dir = Some(dir.into());
        self
    }

    /// Whether children start from the agent's whole environment (`true`) or from a clean
    /// one (`false`).
    ///
    /// Clean: only `PATH`, `HOME`, `LANG` and `TZ` are taken from the agent (those it has),
    /// then the runner env and the task env on top. Inherited: every agent variable except
    /// those whose name starts with `SOLTI_` (the agents' own settings, the API token among
    /// them), then the runner and task env. Either way, with [`run_as`](Self::run_as)
    /// `HOME` is the task user's home directory (from the password database, `/` when the
    /// uid has none) unless the runner or task env sets it. A task without `PATH` looks
    /// programs up in `/usr/local/bin:/usr/bin:/bin`.
    ///
    /// # Default
    /// `false`: a variable set for the agent (a cloud credential, say) does not reach tasks.
    pub fn inherit_env(mut self, inherit: bool) -> Self {
        self.inherit_env = inherit;
        self
    }

    /// Runs every process of this runner as user `uid` and group `gid`, with no
    /// supplementary groups (`setgroups(0)`, `setgid`, `setuid` in the child before
    /// `execve`; the working directory is entered as that user). Needs `CAP_SETUID` and
    /// `CAP_SETGID` in the agent (in practice: the agent runs as root); registration fails
    /// with [`ExecError::RunAs`] otherwise.
    ///
    /// With a task user other than the agent's, tasks cannot write the cgroup files that
    /// bound them: attempt cgroups are created by the agent and stay owned by it, so
    /// `memory.max`, `pids.max`, `cpu.max` and every `cgroup.procs` (a task's own, a
    /// sibling's) refuse the task's writes. Registration fails when the cgroup parent is
    /// writable by the task user. Script files are handed to the task user (they stay
    /// 0600). Capabilities kept with [`keep_capabilities`](Self::keep_capabilities) are
    /// carried over the user switch in the ambient set.
    ///
    /// # Default
    /// None: tasks run as the agent's user and group.
    pub fn run_as(mut self, uid: u32, gid: u32) -> Self {
        self.run_as = Some(RunAs { uid, gid });
        self
    }

    /// Longest time starting a process may take: finding the program in `PATH`, checking
    /// `cwd`, and everything up to `execve`. These steps touch the file system and run on
    /// the runner's own threads, never on the async runtime's; a path on a hung mount (a
    /// dead NFS server) blocks them, and the attempt then fails after this long with a
    /// retryable error (the task's restart policy applies). 1 ms ..= 1 h.
    ///
    /// # Default
    /// 30 s.
    pub fn spawn_timeout(mut self, timeout: Duration) -> Self {
        self.spawn_timeout = timeout;
        self
    }

    /// Kills attempt trees through their process group only, never through a per-attempt
    /// cgroup. Processes that leave the group (`setsid`, double fork) then survive a stop.
    /// Meant for benchmarks and hosts where creating cgroups is not wanted.
    ///
    /// # Default
    /// Off: a per-attempt cgroup with `cgroup.kill` is used whenever cgroup v2 is writable.
    pub fn dangerous_process_group_kill_only(mut self) -> Self {
        self.cgroup_kill = false;
        self
    }

    /// Checks every value (see each setter for its rule).
    pub(crate) fn check(&self) -> Result<(), ExecError> {
        if self.kill_grace > MAX_KILL_GRACE {
            return Err(ExecError::invalid(
                "kill_grace",
                format!("must be at most 1 h, got {:?}", self.kill_grace),
            ));
        }
        if self.max_line_bytes == 0 || self.max_line_bytes > MAX_LINE_BYTES_LIMIT {
            return Err(ExecError::invalid(
                "max_line_bytes",
                format!(
                    "must be 1..={MAX_LINE_BYTES_LIMIT}, got {}",
                    self.max_line_bytes
                ),
            ));
        }
        if let Some((quota, period)) = self.cpu_max {
            if !(1000..=1_000_000).contains(&period) {
                return Err(ExecError::invalid(
                    "cpu_max.period_us",
                    format!("must be 1000..=1000000, got {period}"),
                ));
            }
            if quota == 0 || quota > period {
                return Err(ExecError::invalid(
                    "cpu_max.quota_us",
                    format!("must be 1..=period_us ({period}), got {quota}"),
                ));
            }
        }
        nonzero("memory_max", self.memory_max)?;
        nonzero("pids_max", self.pids_max)?;
        nonzero("rlimit_nofile", self.rlimits.nofile)?;
        nonzero("rlimit_fsize", self.rlimits.fsize)?;
        nonzero("rlimit_as", self.rlimits.address_space)?;
        nonzero("rlimit_cpu", self.rlimits.cpu)?;
        nonzero("rlimit_nproc", self.rlimits.nproc)?;
        if !self.keep_capabilities.is_empty() && !self.drop_all_capabilities {
            return Err(ExecError::invalid(
                "keep_capabilities",
                "a keep-list needs drop_all_capabilities(true); without it nothing is dropped",
            ));
        }
        if self.spawn_timeout < Duration::from_millis(1) || self.spawn_timeout > MAX_SPAWN_TIMEOUT {
            return Err(ExecError::invalid(
                "spawn_timeout",
                format!("must be 1 ms ..= 1 h, got {:?}", self.spawn_timeout),
            ));
        }
        if let Some(RunAs { uid, gid }) = self.run_as
            && (uid == u32::MAX || gid == u32::MAX)
        {
            return Err(ExecError::invalid(
                "run_as",
                format!(
                    "uid and gid must be below 4294967295 (which means \"unchanged\"), got {uid}:{gid}"
                ),
            ));
        }
        if let Some(p) = &self.cgroup_parent {
            clean_absolute("cgroup_parent", p)?;
        }
        if let Some(p) = &self.script_dir {
            clean_absolute("script_dir", p)?;
        }
        Ok(())
    }
}

impl Default for SubprocessBackendConfig {
    fn default() -> Self {
        Self::new()
    }
}

fn nonzero(field: &'static str, v: Option<u64>) -> Result<(), ExecError> {
    if v == Some(0) {
        return Err(ExecError::invalid(
            field,
            "must be greater than 0 when set, got 0",
        ));
    }
    Ok(())
}

fn clean_absolute(field: &'static str, p: &Path) -> Result<(), ExecError> {
    if !p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
        return Err(ExecError::invalid(
            field,
            format!(
                "must be an absolute path without '..', got {:?}",
                p.display()
            ),
        ));
    }
    Ok(())
}

/// Default SIGTERM → SIGKILL grace.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);
/// Default output line bound.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024;
/// Default bound on starting one process ([`SubprocessBackendConfig::spawn_timeout`]).
pub const DEFAULT_SPAWN_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_SPAWN_TIMEOUT: Duration = Duration::from_secs(3600);
const MAX_KILL_GRACE: Duration = Duration::from_secs(3600);
const MAX_LINE_BYTES_LIMIT: usize = 16 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn err(c: &SubprocessBackendConfig) -> String {
        c.check().unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_valid() {
        let c = SubprocessBackendConfig::default();
        c.check().unwrap();
        assert_eq!(c.kill_grace, Duration::from_secs(5));
        assert_eq!(c.max_line_bytes, 64 * 1024);
        assert!(c.cpu_max.is_none() && c.memory_max.is_none() && c.pids_max.is_none());
        assert!(!c.require_enforcement && !c.inherit_env && c.cgroup_kill);
        assert!(c.run_as.is_none());
        assert_eq!(c.spawn_timeout, Duration::from_secs(30));
    }

    #[test]
    fn invalid_values_name_the_setting() {
        let base = SubprocessBackendConfig::new;
        assert!(
            err(&base().cpu_max(200_000, 100_000))
                .contains("cpu_max.quota_us: must be 1..=period_us")
        );
        assert!(err(&base().cpu_max(0, 100_000)).contains("cpu_max.quota_us"));
        assert!(err(&base().cpu_max(10, 10)).contains("cpu_max.period_us"));
        assert!(err(&base().memory_max(0)).contains("memory_max: must be greater than 0"));
        assert!(err(&base().pids_max(0)).contains("pids_max"));
        assert!(err(&base().rlimit_nofile(0)).contains("rlimit_nofile"));
        assert!(err(&base().rlimit_as(0)).contains("rlimit_as"));
        assert!(
            err(&base().keep_capabilities(["CAP_NET_RAW"]))
                .contains("keep_capabilities: a keep-list needs")
        );
        assert!(err(&base().max_line_bytes(0)).contains("max_line_bytes"));
        assert!(err(&base().kill_grace(Duration::from_secs(7200))).contains("kill_grace"));
        assert!(
            err(&base().cgroup_parent("rel/dir"))
                .contains("cgroup_parent: must be an absolute path")
        );
        assert!(err(&base().script_dir("/tmp/../etc")).contains("script_dir"));
        assert!(err(&base().spawn_timeout(Duration::ZERO)).contains("spawn_timeout: must be 1 ms"));
        assert!(err(&base().spawn_timeout(Duration::from_secs(7200))).contains("spawn_timeout"));
        assert!(err(&base().run_as(u32::MAX, 0)).contains("run_as: uid and gid must be below"));
        assert!(err(&base().run_as(0, u32::MAX)).contains("run_as"));
        assert!(err(&base().memory_max(0)).starts_with("invalid subprocess backend config: "));
    }

    #[test]
    fn valid_isolation_passes() {
        let c = SubprocessBackendConfig::new()
            .cpu_max(50_000, 100_000)
            .memory_max(64 << 20)
            .pids_max(64)
            .drop_all_capabilities(true)
            .keep_capabilities(["CAP_NET_BIND_SERVICE"])
            .no_new_privs(true)
            .rlimit_core(0)
            .rlimit_nofile(256);
        c.check().unwrap();
    }
}
