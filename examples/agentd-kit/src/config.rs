//! Command-line flags with `SOLTI_*` environment twins (the flag wins over the variable).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, ValueEnum};
use solti_core::StateConfig;
use solti_model::MAX_DURATION_MS;

use crate::ListenAddr;

/// Which API transport an agent serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// HTTP/JSON + SSE.
    Http,
    /// gRPC.
    Grpc,
}

impl TransportKind {
    /// The default API listen address of this transport.
    #[must_use]
    pub const fn default_listen(self) -> &'static str {
        match self {
            Self::Http => "127.0.0.1:8085",
            Self::Grpc => "127.0.0.1:50052",
        }
    }

    /// The reference binary serving this transport.
    #[must_use]
    pub const fn binary_name(self) -> &'static str {
        match self {
            Self::Http => "agentd-http",
            Self::Grpc => "agentd-grpc",
        }
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines with RFC 3339 timestamps.
    Text,
    /// One JSON object per line.
    Json,
    /// The systemd journal (Linux).
    Journald,
}

/// Where task state lives (`--state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StateBackendArg {
    /// In memory: every task is forgotten when the agent exits.
    Memory,
    /// In an embedded store file under `--state-dir`, kept across restarts.
    Disk,
}

/// Log timestamp zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogTimezoneArg {
    /// The host's local offset (`+02:00`), re-read hourly (daylight saving).
    Local,
    /// UTC (`Z`).
    Utc,
}

/// How heartbeats reach the control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PodiumTransportArg {
    /// `POST {control-plane}/api/v1/discovery/sync` with JSON.
    Http,
    /// `solti.discover.v1.DiscoverService/Sync`.
    Grpc,
}

/// Podium dialect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DialectArg {
    /// The shared-proto JSON (camelCase, int64 as strings).
    Proto,
    /// The released Podium's legacy JSON (snake_case, numbers).
    Legacy,
}

/// A secret flag value: `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The secret itself.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Configuration of a reference agent.
#[derive(Clone, Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Config {
    /// API listen address [default: 127.0.0.1:8085 for HTTP, 127.0.0.1:50052 for gRPC], or
    /// `unix:/path/agent.sock` for a Unix socket (local users need write access to it; see
    /// --listen-mode). A non-loopback address needs --token/--token-file or mTLS
    /// (--tls-client-ca), or --insecure-allow-unauthenticated; with a token it also needs TLS
    /// (--tls-cert), or --insecure-allow-cleartext-token.
    #[arg(long, env = "SOLTI_LISTEN")]
    pub listen: Option<ListenAddr>,

    /// File mode of the Unix socket of `--listen unix:…`, in octal. The default lets only the
    /// agent's user connect; `0660` adds the socket's group.
    #[arg(long, env = "SOLTI_LISTEN_MODE", default_value = "0600")]
    pub listen_mode: String,

    /// Most API connections open at once [default: derived from the open-file limit, keeping
    /// a quarter of it for spawning tasks; at most 4096]. At the cap the oldest idle
    /// connection is closed to make room.
    #[arg(long, env = "SOLTI_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Accept a bearer token in clear text on a non-loopback listener without TLS, and send
    /// it to an `http://` control plane that is not on loopback. Anyone who can observe the
    /// network can then read the token.
    #[arg(long, env = "SOLTI_INSECURE_ALLOW_CLEARTEXT_TOKEN")]
    pub insecure_allow_cleartext_token: bool,

    /// Prometheus /metrics (and /healthz, /readyz) listen address, or `off`. The metrics port
    /// never takes the API token (a scraper would carry it in clear text), so a non-loopback
    /// address needs --insecure-allow-unauthenticated.
    #[arg(long, env = "SOLTI_METRICS_LISTEN", default_value = "127.0.0.1:9090")]
    pub metrics_listen: String,

    /// Podium control plane URL (http(s)://host:port). Unset = no discovery.
    #[arg(long, env = "SOLTI_CONTROL_PLANE")]
    pub control_plane: Option<String>,

    /// Podium dialect: JSON shape over HTTP and `endpoint_type` numbers (legacy: 0 = gRPC,
    /// 1 = HTTP; proto: 1 = gRPC, 2 = HTTP) on both heartbeat transports.
    #[arg(
        long,
        env = "SOLTI_PODIUM_DIALECT",
        value_enum,
        default_value = "proto"
    )]
    pub podium_dialect: DialectArg,

    /// Transport of the heartbeats to the control plane [default: the agent's own API kind].
    /// Whatever it is, the agent advertises its own API kind as `endpoint_type`.
    #[arg(long, env = "SOLTI_PODIUM_TRANSPORT", value_enum)]
    pub podium_transport: Option<PodiumTransportArg>,

    /// Heartbeat interval to the control plane, in milliseconds (>= 1000).
    #[arg(long, env = "SOLTI_HEARTBEAT_MS", default_value_t = 10_000)]
    pub heartbeat_ms: u64,

    /// Stable agent id [default: generated once and kept in the state directory].
    #[arg(long, env = "SOLTI_AGENT_ID")]
    pub agent_id: Option<String>,

    /// Human-readable agent name [default: the host name].
    #[arg(long, env = "SOLTI_AGENT_NAME")]
    pub agent_name: Option<String>,

    /// Where the control plane reaches this agent [default: derived from --listen].
    #[arg(long, env = "SOLTI_ADVERTISE")]
    pub advertise: Option<String>,

    /// State directory (holds the agent id) [default: $XDG_STATE_HOME/solti or
    /// ~/.local/state/solti].
    #[arg(long, env = "SOLTI_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Where task state lives: `disk` keeps task specs, phases and run history in
    /// `<state-dir>/<agent>.tasks.redb`, so a restart loses no acknowledged task (docs/state.md);
    /// `memory` forgets every task on exit.
    #[arg(long, env = "SOLTI_STATE", value_enum, default_value = "disk")]
    pub state: StateBackendArg,

    /// Moves the state store file aside (to `<file>.reset-<unix seconds>`) and starts with an
    /// empty one: the way out when the file is corrupted or was written by a newer version.
    #[arg(long, env = "SOLTI_STATE_RESET")]
    pub state_reset: bool,

    /// Bearer token required from API clients and sent to the control plane. Prefer
    /// --token-file: a flag is visible in the process list.
    #[arg(long, env = "SOLTI_AGENT_TOKEN", hide_env_values = true)]
    pub token: Option<Secret>,

    /// File holding the bearer token.
    #[arg(long, env = "SOLTI_AGENT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// PEM certificate chain for the API (enables TLS; needs --tls-key).
    #[arg(long, env = "SOLTI_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for the API certificate.
    #[arg(long, env = "SOLTI_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA bundle; clients must present a certificate it signed (mTLS).
    #[arg(long, env = "SOLTI_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// PEM CA bundle to verify the control plane's certificate.
    #[arg(long, env = "SOLTI_CP_CA")]
    pub cp_ca: Option<PathBuf>,

    /// PEM client certificate presented to the control plane (mTLS; needs --cp-client-key).
    #[arg(long, env = "SOLTI_CP_CLIENT_CERT", requires = "cp_client_key")]
    pub cp_client_cert: Option<PathBuf>,

    /// PEM private key of the control-plane client certificate.
    #[arg(long, env = "SOLTI_CP_CLIENT_KEY", requires = "cp_client_cert")]
    pub cp_client_key: Option<PathBuf>,

    /// Log format.
    #[arg(long, env = "SOLTI_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormatArg,

    /// Zone of the log timestamps (text and JSON formats).
    #[arg(long, env = "SOLTI_LOG_TIMEZONE", value_enum, default_value = "local")]
    pub log_timezone: LogTimezoneArg,

    /// Log level, as a tracing env-filter expression (e.g. `info,solti_exec=debug`).
    #[arg(long, env = "SOLTI_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// How long shutdown waits for tasks to stop before killing them, in milliseconds.
    #[arg(long, env = "SOLTI_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,

    /// Hand freed heap memory back to the OS (glibc `malloc_trim`) at this interval, in
    /// milliseconds; 0 disables. glibc keeps freed memory in its arenas, so without this the
    /// resident size stays near its peak after a burst of tasks has been deleted or swept.
    #[arg(long, env = "SOLTI_MALLOC_TRIM_MS", default_value_t = 10_000)]
    pub malloc_trim_ms: u64,

    /// How long a finished run stays in its task's history, in milliseconds (1 ms to 365
    /// days). The sweep drops older runs.
    #[arg(long, env = "SOLTI_RUN_TTL_MS", default_value_t = 3_600_000)]
    pub run_ttl_ms: u64,

    /// How long a terminal task stays listed once its last run has expired, in milliseconds
    /// (1 ms to 365 days). The sweep then removes it.
    #[arg(long, env = "SOLTI_TASK_TTL_MS", default_value_t = 3_600_000)]
    pub task_ttl_ms: u64,

    /// How often the sweep of expired runs and tasks runs, in milliseconds (100 ms to 365
    /// days; each sweep walks every task under the state lock, so it is not meant to be
    /// continuous).
    #[arg(long, env = "SOLTI_SWEEP_INTERVAL_MS", default_value_t = 300_000)]
    pub sweep_interval_ms: u64,

    /// Task output kept in memory per task, in bytes (a line costs its bytes + 16, a run marker or a batch of lines 128 more), so
    /// `GET …/logs?tail=N` and resuming with `Last-Event-ID` work after the fact, also for
    /// finished tasks until they are deleted or swept. 0 = live only. At most 1 GiB.
    #[arg(long, env = "SOLTI_LOG_RETENTION_BYTES", default_value_t = 1 << 20)]
    pub log_retention_bytes: u64,

    /// Task output kept in memory for all tasks together, in bytes; over it, the output of
    /// the tasks that finished first is dropped first. At least --log-retention-bytes, at
    /// most 64 GiB. Output is never written to disk.
    #[arg(long, env = "SOLTI_LOG_RETENTION_TOTAL_BYTES", default_value_t = 256 << 20)]
    pub log_retention_total_bytes: u64,

    /// Serve a non-loopback address without any authentication. Anyone who can reach the port
    /// can run commands as this agent's user.
    #[arg(long, env = "SOLTI_INSECURE_ALLOW_UNAUTHENTICATED")]
    pub insecure_allow_unauthenticated: bool,

    /// TOML configuration file: any flag as a snake_case key (`metrics_listen = "off"`).
    /// Flags and SOLTI_* variables override it; unknown keys and bad values are refused.
    #[arg(long, env = "SOLTI_CONFIG")]
    pub config: Option<PathBuf>,

    /// Print the effective configuration (TOML, secrets redacted, each value's source) and
    /// exit.
    #[arg(long, env = "SOLTI_PRINT_CONFIG")]
    pub print_config: bool,

    /// cgroup v2 directory under which each task attempt gets its own cgroup carrying the
    /// --task-*-max limits (e.g. /sys/fs/cgroup/solti.slice/agent). Must not hold processes
    /// itself [default: a limit-less cgroup under the agent's own, when writable].
    #[arg(long, env = "SOLTI_CGROUP_PARENT")]
    pub cgroup_parent: Option<PathBuf>,

    /// memory.max of each task attempt, in bytes, or with a K/M/G/T suffix (powers of 1024).
    /// Swap is denied too where it is accounted [default: unlimited].
    #[arg(long, env = "SOLTI_TASK_MEMORY_MAX", value_parser = parse_bytes)]
    pub task_memory_max: Option<u64>,

    /// cpu.max of each task attempt as QUOTA/PERIOD in microseconds (50000/100000 = half a
    /// CPU; period 1000..=1000000) [default: unlimited].
    #[arg(long, env = "SOLTI_TASK_CPU_MAX", value_parser = parse_cpu_max)]
    pub task_cpu_max: Option<CpuMax>,

    /// pids.max of each task attempt: processes and threads [default: unlimited].
    #[arg(long, env = "SOLTI_TASK_PIDS_MAX", value_parser = clap::value_parser!(u64).range(1..))]
    pub task_pids_max: Option<u64>,

    /// Drop every capability from tasks (bounding, permitted, effective, inheritable and
    /// ambient sets) except --keep-capabilities. Needs CAP_SETPCAP in the agent.
    #[arg(long, env = "SOLTI_DROP_CAPABILITIES")]
    pub drop_capabilities: bool,

    /// Capabilities tasks keep under --drop-capabilities, comma-separated
    /// (`CAP_NET_BIND_SERVICE` or `net_bind_service`).
    #[arg(long, env = "SOLTI_KEEP_CAPABILITIES", value_delimiter = ',')]
    pub keep_capabilities: Vec<String>,

    /// Set no_new_privs in tasks: setuid/setgid and file-capability programs gain nothing.
    #[arg(long, env = "SOLTI_NO_NEW_PRIVS")]
    pub no_new_privs: bool,

    /// RLIMIT_NOFILE of tasks: most open files [default: inherited].
    #[arg(long, env = "SOLTI_RLIMIT_NOFILE", value_parser = clap::value_parser!(u64).range(1..))]
    pub rlimit_nofile: Option<u64>,

    /// RLIMIT_FSIZE of tasks: largest file written, bytes or K/M/G/T [default: inherited].
    #[arg(long, env = "SOLTI_RLIMIT_FSIZE", value_parser = parse_bytes)]
    pub rlimit_fsize: Option<u64>,

    /// RLIMIT_CORE of tasks: largest core dump, bytes or K/M/G/T; 0 disables core dumps
    /// [default: inherited].
    #[arg(long, env = "SOLTI_RLIMIT_CORE", value_parser = parse_bytes_or_zero)]
    pub rlimit_core: Option<u64>,

    /// RLIMIT_AS of tasks: largest address space, bytes or K/M/G/T [default: inherited].
    #[arg(long, env = "SOLTI_RLIMIT_AS", value_parser = parse_bytes)]
    pub rlimit_as: Option<u64>,

    /// RLIMIT_CPU of tasks: CPU seconds before SIGXCPU [default: inherited].
    #[arg(long, env = "SOLTI_RLIMIT_CPU", value_parser = clap::value_parser!(u64).range(1..))]
    pub rlimit_cpu: Option<u64>,

    /// RLIMIT_NPROC of tasks: processes of the task's user (per user, not per task; prefer
    /// --task-pids-max) [default: inherited].
    #[arg(long, env = "SOLTI_RLIMIT_NPROC", value_parser = clap::value_parser!(u64).range(1..))]
    pub rlimit_nproc: Option<u64>,

    /// Fail each task attempt when configured isolation cannot be applied on this host,
    /// instead of running it unconfined with one warning per cause.
    #[arg(long, env = "SOLTI_REQUIRE_ISOLATION")]
    pub require_isolation: bool,

    /// Time between SIGTERM and SIGKILL when a task is stopped, in milliseconds (at most 1 h;
    /// keep it below --shutdown-grace-ms).
    #[arg(long, env = "SOLTI_KILL_GRACE_MS", default_value_t = 5_000)]
    pub kill_grace_ms: u64,

    /// Most tasks kept (active and terminal, internal ones included); when full the oldest
    /// terminal task is evicted, and when all are active new submissions get 503.
    #[arg(long, env = "SOLTI_MAX_TASKS", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=16_777_216))]
    pub max_tasks: u64,

    /// Most task attempts running at once; more wait (in backoff or queued) for a place.
    /// 0 = unlimited. The agent's few internal tasks are not counted.
    #[arg(long, env = "SOLTI_MAX_RUNNING", default_value_t = 0)]
    pub max_running: u64,

    /// Node metadata sent to the control plane, KEY=VALUE, repeatable (comma-separated in
    /// SOLTI_METADATA; a `[metadata]` table in the config file).
    #[arg(long, env = "SOLTI_METADATA", value_delimiter = ',', value_parser = parse_key_value)]
    pub metadata: Vec<(String, String)>,

    /// Run tasks as this user: a name or a numeric uid (needs an agent running as root).
    /// Tasks then cannot write the cgroup files that bound them. Their group is the user's
    /// primary group unless --task-group is given; supplementary groups are cleared.
    #[arg(long, env = "SOLTI_TASK_USER")]
    pub task_user: Option<String>,

    /// Run tasks with this group: a name or a numeric gid (needs --task-user).
    #[arg(long, env = "SOLTI_TASK_GROUP", requires = "task_user")]
    pub task_group: Option<String>,

    /// Start tasks from the agent's whole environment (minus its own SOLTI_* variables)
    /// instead of a clean one (PATH, HOME, LANG and TZ, then the task's own env).
    #[arg(long, env = "SOLTI_INHERIT_ENV")]
    pub inherit_env: bool,
}

/// The user and group tasks run as (`--task-user`, `--task-group`), resolved to ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskIdentity {
    /// The user as given (name or number).
    pub user: String,
    /// Its uid.
    pub uid: u32,
    /// The gid: `--task-group`, else the user's primary group.
    pub gid: u32,
}

/// A `cpu.max` setting: `quota_us` of CPU time per `period_us`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuMax {
    /// CPU time per period, in microseconds.
    pub quota_us: u64,
    /// The period, in microseconds.
    pub period_us: u64,
}

fn parse_cpu_max(s: &str) -> Result<CpuMax, String> {
    let (q, p) = s.split_once('/').ok_or_else(|| {
        format!("expected QUOTA/PERIOD in microseconds (e.g. 50000/100000), got {s:?}")
    })?;
    let num = |v: &str| {
        v.trim()
            .parse::<u64>()
            .map_err(|_| format!("expected QUOTA/PERIOD in microseconds, got {s:?}"))
    };
    let (quota_us, period_us) = (num(q)?, num(p)?);
    if !(1000..=1_000_000).contains(&period_us) {
        return Err(format!("period must be 1000..=1000000 µs, got {period_us}"));
    }
    if quota_us == 0 || quota_us > period_us {
        return Err(format!(
            "quota must be 1..=period ({period_us}) µs, got {quota_us}"
        ));
    }
    Ok(CpuMax {
        quota_us,
        period_us,
    })
}

/// Bytes with an optional binary suffix (`K`, `M`, `G`, `T`, also `KiB`…), at least 1.
fn parse_bytes(s: &str) -> Result<u64, String> {
    match parse_bytes_or_zero(s)? {
        0 => Err("must be at least 1 byte".to_owned()),
        n => Ok(n),
    }
}

fn parse_bytes_or_zero(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    let shift = match suffix.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => {
            return Err(format!(
                "expected bytes, optionally with K/M/G/T, got {s:?}"
            ));
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("expected bytes, optionally with K/M/G/T, got {s:?}"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Most metadata pairs, and the longest key and value accepted.
const MAX_METADATA_KEY: usize = 63;
const MAX_METADATA_VALUE: usize = 256;

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))?;
    let k = k.trim();
    if k.is_empty()
        || k.len() > MAX_METADATA_KEY
        || !k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'))
    {
        return Err(format!(
            "key must be 1..={MAX_METADATA_KEY} characters of [A-Za-z0-9._/-], got {k:?}"
        ));
    }
    if v.len() > MAX_METADATA_VALUE || v.chars().any(char::is_control) {
        return Err(format!(
            "value of {k:?} must be at most {MAX_METADATA_VALUE} bytes without control characters"
        ));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// The shortest sweep interval accepted: each sweep walks every task under the state lock.
const MIN_SWEEP_INTERVAL_MS: u64 = 100;

impl Config {
    /// The API listen address for `transport`.
    #[must_use]
    pub fn listen_addr(&self, transport: TransportKind) -> ListenAddr {
        self.listen.clone().unwrap_or_else(|| {
            // The defaults are literals that always parse.
            ListenAddr::Tcp(
                transport
                    .default_listen()
                    .parse()
                    .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))),
            )
        })
    }

    /// The metrics listen address, or `None` when disabled with `off`.
    ///
    /// # Errors
    /// When the value is neither `off` nor a socket address.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>> {
        if self.metrics_listen.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        self.metrics_listen.parse().map(Some).with_context(|| {
            format!(
                "--metrics-listen: expected host:port or `off`, got {:?}",
                self.metrics_listen
            )
        })
    }

    /// The retention of task state (`--run-ttl-ms`, `--task-ttl-ms`,
    /// `--sweep-interval-ms`) over the supervisor's other defaults.
    ///
    /// # Errors
    /// When a value is 0 (a sweep interval below 100 ms) or above 365 days; the message names
    /// the flag and its variable.
    pub fn state_config(&self) -> Result<StateConfig> {
        let ms = |value: u64, min: u64, flag: &str, env: &str| -> Result<Duration> {
            if value < min || value > MAX_DURATION_MS {
                bail!(
                    "{flag} / {env}: expected {min} to {MAX_DURATION_MS} milliseconds (365 days), got {value}"
                );
            }
            Ok(Duration::from_millis(value))
        };
        Ok(StateConfig::default()
            .with_max_tasks(usize::try_from(self.max_tasks).unwrap_or(usize::MAX))
            .with_run_ttl(ms(self.run_ttl_ms, 1, "--run-ttl-ms", "SOLTI_RUN_TTL_MS")?)
            .with_task_ttl(ms(
                self.task_ttl_ms,
                1,
                "--task-ttl-ms",
                "SOLTI_TASK_TTL_MS",
            )?)
            .with_sweep_interval(ms(
                self.sweep_interval_ms,
                MIN_SWEEP_INTERVAL_MS,
                "--sweep-interval-ms",
                "SOLTI_SWEEP_INTERVAL_MS",
            )?)
            .with_output_retention_bytes(self.log_retention()?.0)
            .with_output_retention_total_bytes(self.log_retention()?.1))
    }

    /// `--log-retention-bytes` and `--log-retention-total-bytes`, checked.
    fn log_retention(&self) -> Result<(usize, usize)> {
        const MAX_PER_TASK: u64 = 1 << 30;
        const MAX_TOTAL: u64 = 64 << 30;
        let (per_task, total) = (self.log_retention_bytes, self.log_retention_total_bytes);
        if per_task > MAX_PER_TASK {
            bail!(
                "--log-retention-bytes / SOLTI_LOG_RETENTION_BYTES: expected 0 to {MAX_PER_TASK} bytes (1 GiB), got {per_task}"
            );
        }
        if total > MAX_TOTAL || total < per_task {
            bail!(
                "--log-retention-total-bytes / SOLTI_LOG_RETENTION_TOTAL_BYTES: expected --log-retention-bytes ({per_task}) to {MAX_TOTAL} bytes (64 GiB), got {total}"
            );
        }
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        Ok((size(per_task), size(total)))
    }

    /// The subprocess runner's isolation and kill settings from the flags.
    ///
    /// # Errors
    /// When --keep-capabilities is given without --drop-capabilities, or --kill-grace-ms is
    /// above 1 hour; the runner checks the rest when it is registered, naming the setting.
    pub fn backend_config(&self) -> Result<solti_exec::SubprocessBackendConfig> {
        if !self.keep_capabilities.is_empty() && !self.drop_capabilities {
            bail!("--keep-capabilities / SOLTI_KEEP_CAPABILITIES needs --drop-capabilities");
        }
        if self.kill_grace_ms > 3_600_000 {
            bail!(
                "--kill-grace-ms / SOLTI_KILL_GRACE_MS: expected at most 3600000 (1 h), got {}",
                self.kill_grace_ms
            );
        }
        let mut b = solti_exec::SubprocessBackendConfig::new()
            .kill_grace(Duration::from_millis(self.kill_grace_ms))
            .drop_all_capabilities(self.drop_capabilities)
            .keep_capabilities(self.keep_capabilities.iter().cloned())
            .no_new_privs(self.no_new_privs)
            .require_enforcement(self.require_isolation);
        if let Some(dir) = &self.cgroup_parent {
            b = b.cgroup_parent(dir);
        }
        if let Some(bytes) = self.task_memory_max {
            b = b.memory_max(bytes);
        }
        if let Some(cpu) = self.task_cpu_max {
            b = b.cpu_max(cpu.quota_us, cpu.period_us);
        }
        if let Some(n) = self.task_pids_max {
            b = b.pids_max(n);
        }
        type Backend = solti_exec::SubprocessBackendConfig;
        type Setter = fn(Backend, u64) -> Backend;
        let limits: [(Option<u64>, Setter); 6] = [
            (self.rlimit_nofile, Backend::rlimit_nofile),
            (self.rlimit_fsize, Backend::rlimit_fsize),
            (self.rlimit_core, Backend::rlimit_core),
            (self.rlimit_as, Backend::rlimit_as),
            (self.rlimit_cpu, Backend::rlimit_cpu),
            (self.rlimit_nproc, Backend::rlimit_nproc),
        ];
        for (value, set) in limits {
            if let Some(v) = value {
                b = set(b, v);
            }
        }
        Ok(b)
    }

    /// The most attempts running at once (`--max-running`), or `None` for no bound.
    #[must_use]
    pub fn max_running(&self) -> Option<std::num::NonZeroUsize> {
        std::num::NonZeroUsize::new(usize::try_from(self.max_running).unwrap_or(usize::MAX))
    }

    /// The node metadata sent to the control plane (`--metadata`), later pairs winning.
    #[must_use]
    pub fn metadata(&self) -> std::collections::BTreeMap<String, String> {
        self.metadata.iter().cloned().collect()
    }

    /// Resolves `--task-user` / `--task-group` (names through the system's user and group
    /// databases, numbers as they are).
    ///
    /// # Errors
    /// An unknown name, or a numeric uid without a password entry and no `--task-group`;
    /// the message names the flag and its variable.
    pub fn task_identity(&self) -> Result<Option<TaskIdentity>> {
        use nix::unistd::{Group, Uid, User};

        let Some(user) = &self.task_user else {
            return Ok(None);
        };
        let flag = "--task-user / SOLTI_TASK_USER";
        let entry = match user.parse::<u32>() {
            Ok(uid) => User::from_uid(Uid::from_raw(uid)),
            Err(_) => User::from_name(user),
        }
        .with_context(|| format!("{flag}: cannot read the user database"))?;
        let uid = match (&entry, user.parse::<u32>()) {
            (Some(e), _) => e.uid.as_raw(),
            (None, Ok(uid)) => uid,
            (None, Err(_)) => bail!("{flag}: no user named {user:?}"),
        };
        let gid = match &self.task_group {
            Some(group) => {
                let flag = "--task-group / SOLTI_TASK_GROUP";
                match group.parse::<u32>() {
                    Ok(gid) => gid,
                    Err(_) => Group::from_name(group)
                        .with_context(|| format!("{flag}: cannot read the group database"))?
                        .map(|g| g.gid.as_raw())
                        .with_context(|| format!("{flag}: no group named {group:?}"))?,
                }
            }
            None => match &entry {
                Some(e) => e.gid.as_raw(),
                None => bail!(
                    "{flag}: uid {uid} has no entry in the user database, so it has no primary \
                     group: give --task-group / SOLTI_TASK_GROUP"
                ),
            },
        };
        Ok(Some(TaskIdentity {
            user: user.clone(),
            uid,
            gid,
        }))
    }

    /// The state directory.
    #[must_use]
    pub fn state_dir(&self) -> PathBuf {
        if let Some(dir) = &self.state_dir {
            return dir.clone();
        }
        if let Some(xdg) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(xdg).join("solti");
        }
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        home.join(".local/state/solti")
    }

    /// Whether API clients must authenticate (token or mTLS).
    #[must_use]
    pub fn has_auth(&self) -> bool {
        self.token.is_some() || self.token_file.is_some() || self.tls_client_ca.is_some()
    }

    /// Refuses to serve a non-loopback address without authentication unless the insecure
    /// flag is given.
    ///
    /// # Errors
    /// Names the address and the ways to fix it.
    pub fn check_safe_listen(&self, addr: SocketAddr, what: &str) -> Result<()> {
        if addr.ip().is_loopback() || self.has_auth() || self.insecure_allow_unauthenticated {
            return Ok(());
        }
        bail!(
            "refusing to serve the {what} on non-loopback address {addr} without authentication: \
             set --token-file (or --token / SOLTI_AGENT_TOKEN), or require client certificates with \
             --tls-client-ca, or pass --insecure-allow-unauthenticated if anyone who can reach \
             this port may run commands on this host"
        )
    }

    /// The agent's display name.
    #[must_use]
    pub fn agent_name(&self) -> String {
        self.agent_name.clone().unwrap_or_else(hostname)
    }

    /// Where the control plane reaches this agent, in the form of the transport.
    #[must_use]
    pub fn advertise(&self, transport: TransportKind, addr: SocketAddr) -> String {
        if let Some(a) = &self.advertise {
            return a.clone();
        }
        let host = if addr.ip().is_unspecified() {
            hostname()
        } else {
            addr.ip().to_string()
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        match transport {
            TransportKind::Http if self.tls_cert.is_some() => {
                format!("https://{host}:{}", addr.port())
            }
            TransportKind::Http => format!("http://{host}:{}", addr.port()),
            TransportKind::Grpc => format!("{host}:{}", addr.port()),
        }
    }
}

/// The host name, or `localhost` when it cannot be read.
#[must_use]
pub(crate) fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        Config::try_parse_from(std::iter::once("agentd").chain(args.iter().copied())).unwrap()
    }

    fn tcp(c: &Config) -> SocketAddr {
        match c.listen_addr(TransportKind::Http) {
            ListenAddr::Tcp(addr) => addr,
            ListenAddr::Unix(p) => panic!("unix listen {}", p.display()),
        }
    }

    #[test]
    fn defaults() {
        let c = parse(&[]);
        assert_eq!(
            c.listen_addr(TransportKind::Http).to_string(),
            "127.0.0.1:8085"
        );
        assert_eq!(c.listen_mode, "0600");
        assert!(!c.insecure_allow_cleartext_token);
        assert_eq!(
            c.listen_addr(TransportKind::Grpc).to_string(),
            "127.0.0.1:50052"
        );
        assert_eq!(
            c.metrics_addr().unwrap().unwrap().to_string(),
            "127.0.0.1:9090"
        );
        assert_eq!(c.heartbeat_ms, 10_000);
        assert_eq!(c.log_timezone, LogTimezoneArg::Local);
        assert_eq!(c.podium_transport, None);
    }

    #[test]
    fn log_timezone_and_podium_transport() {
        assert_eq!(
            parse(&["--log-timezone", "utc"]).log_timezone,
            LogTimezoneArg::Utc
        );
        assert!(Config::try_parse_from(["agentd", "--log-timezone", "mars"]).is_err());
        assert_eq!(
            parse(&["--podium-transport", "grpc"]).podium_transport,
            Some(PodiumTransportArg::Grpc)
        );
    }

    #[test]
    fn non_loopback_needs_auth() {
        let c = parse(&["--listen", "0.0.0.0:8085"]);
        let err = c.check_safe_listen(tcp(&c), "API").unwrap_err().to_string();
        assert!(err.contains("insecure"), "{err}");
        let c = parse(&[
            "--listen",
            "0.0.0.0:8085",
            "--insecure-allow-unauthenticated",
        ]);
        assert!(c.check_safe_listen(tcp(&c), "API").is_ok());
        let c = parse(&["--listen", "0.0.0.0:8085", "--token-file", "/x"]);
        assert!(c.check_safe_listen(tcp(&c), "API").is_ok());
    }

    #[test]
    fn token_is_redacted_in_debug() {
        let c = parse(&["--token", "abc-secret"]);
        assert!(!format!("{c:?}").contains("abc-secret"));
        assert_eq!(c.token.unwrap().expose(), "abc-secret");
    }

    #[test]
    fn metrics_off_and_bad() {
        assert!(
            parse(&["--metrics-listen", "off"])
                .metrics_addr()
                .unwrap()
                .is_none()
        );
        assert!(parse(&["--metrics-listen", "nope"]).metrics_addr().is_err());
    }

    #[test]
    fn retention_flags() {
        let c = parse(&[]).state_config().unwrap();
        assert_eq!(c.run_ttl, Duration::from_secs(3600));
        assert_eq!(c.task_ttl, Duration::from_secs(3600));
        assert_eq!(c.sweep_interval, Duration::from_secs(300));
        let c = parse(&[
            "--run-ttl-ms",
            "1000",
            "--task-ttl-ms",
            "2000",
            "--sweep-interval-ms",
            "500",
        ])
        .state_config()
        .unwrap();
        assert_eq!(c.run_ttl, Duration::from_secs(1));
        assert_eq!(c.task_ttl, Duration::from_secs(2));
        assert_eq!(c.sweep_interval, Duration::from_millis(500));
    }

    #[test]
    fn retention_flags_refuse_zero_and_huge_values_by_name() {
        for (flag, env) in [
            ("--run-ttl-ms", "SOLTI_RUN_TTL_MS"),
            ("--task-ttl-ms", "SOLTI_TASK_TTL_MS"),
            ("--sweep-interval-ms", "SOLTI_SWEEP_INTERVAL_MS"),
        ] {
            for bad in ["0", "31536000001"] {
                let err = parse(&[flag, bad]).state_config().unwrap_err().to_string();
                assert!(err.contains(flag) && err.contains(env), "{err}");
                assert!(err.contains(&format!("got {bad}")), "{err}");
            }
        }
        let err = parse(&["--sweep-interval-ms", "99"])
            .state_config()
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected 100 to"), "{err}");
        let err = Config::try_parse_from(["agentd", "--run-ttl-ms", "soon"]).unwrap_err();
        assert!(err.to_string().contains("--run-ttl-ms"), "{err}");
    }

    #[test]
    fn log_retention_flags() {
        let c = parse(&[]).state_config().unwrap();
        assert_eq!(
            (c.output_retention_bytes, c.output_retention_total_bytes),
            (1 << 20, 256 << 20)
        );
        let c = parse(&[
            "--log-retention-bytes",
            "0",
            "--log-retention-total-bytes",
            "1000",
        ])
        .state_config()
        .unwrap();
        assert_eq!(
            (c.output_retention_bytes, c.output_retention_total_bytes),
            (0, 1000)
        );
        let err = parse(&["--log-retention-bytes", "2000000000"])
            .state_config()
            .unwrap_err()
            .to_string();
        assert!(err.contains("SOLTI_LOG_RETENTION_BYTES"), "{err}");
        let err = parse(&["--log-retention-total-bytes", "10"])
            .state_config()
            .unwrap_err()
            .to_string();
        assert!(err.contains("--log-retention-total-bytes"), "{err}");
        let err = Config::try_parse_from(["agentd", "--log-retention-bytes", "lots"]).unwrap_err();
        assert!(err.to_string().contains("--log-retention-bytes"), "{err}");
    }

    #[test]
    fn task_user_and_group_resolve_names_and_numbers() {
        assert_eq!(parse(&[]).task_identity().unwrap(), None);
        let id = parse(&["--task-user", "root"])
            .task_identity()
            .unwrap()
            .unwrap();
        assert_eq!((id.uid, id.gid), (0, 0));
        let id = parse(&["--task-user", "0", "--task-group", "12345"])
            .task_identity()
            .unwrap()
            .unwrap();
        assert_eq!((id.uid, id.gid), (0, 12345));
        let id = parse(&["--task-user", "4000000", "--task-group", "4000000"])
            .task_identity()
            .unwrap()
            .unwrap();
        assert_eq!((id.uid, id.gid), (4_000_000, 4_000_000));
    }

    #[test]
    fn task_user_errors_name_the_flag() {
        let err = parse(&["--task-user", "solti-no-such-user"])
            .task_identity()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--task-user / SOLTI_TASK_USER: no user named \"solti-no-such-user\""),
            "{err}"
        );
        let err = parse(&["--task-user", "4000000"])
            .task_identity()
            .unwrap_err()
            .to_string();
        assert!(err.contains("give --task-group"), "{err}");
        let err = parse(&["--task-user", "root", "--task-group", "solti-no-such-group"])
            .task_identity()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--task-group / SOLTI_TASK_GROUP: no group named"),
            "{err}"
        );
        let err = Config::try_parse_from(["agentd", "--task-group", "0"]).unwrap_err();
        assert!(err.to_string().contains("--task-user"), "{err}");
    }

    #[test]
    fn inherit_env_is_off_by_default() {
        assert!(!parse(&[]).inherit_env);
        assert!(parse(&["--inherit-env"]).inherit_env);
    }

    #[test]
    fn advertise_forms() {
        let c = parse(&[]);
        let addr: SocketAddr = "127.0.0.1:8085".parse().unwrap();
        assert_eq!(
            c.advertise(TransportKind::Http, addr),
            "http://127.0.0.1:8085"
        );
        assert_eq!(c.advertise(TransportKind::Grpc, addr), "127.0.0.1:8085");
    }
}
