//! The command line: global flags with `SOLTI_*` environment twins, and the subcommands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit codes:
  0    done
  1    the agent refused or failed, the task is unknown, or the agent is unreachable
  2    bad command line (flag, value, file); nothing was sent
With run --wait, run --follow and wait, the task's outcome is the exit code:
  0    the task succeeded
  N    the task's own exit code
  1    the task failed without an exit code, or was cancelled
  124  the task timed out
  125  solti itself failed (agent unreachable, refused, ...)
  130  interrupted (Ctrl-C): solti stopped following or waiting; the task goes on

Addresses: http://HOST:PORT (agentd-http), grpc://HOST:PORT (agentd-grpc), https://, grpcs://
(TLS, with --ca), unix:/PATH (HTTP over a Unix socket), grpc+unix:/PATH.
Durations: 500ms, 30s, 5m, 2h, 1d, 1m30s. IDs: a unique prefix is enough (with or without tsk_).";

/// `solti`: drive a Solti agent (agentd-http or agentd-grpc) from the shell.
#[derive(Debug, Parser)]
#[command(name = "solti", version, about, after_help = EXIT_CODES, after_long_help = EXIT_CODES)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub(crate) struct Global {
    /// The agent's API address (see below for the forms).
    #[arg(
        long,
        short = 'a',
        env = "SOLTI_ADDR",
        default_value = "http://127.0.0.1:8085",
        global = true
    )]
    pub(crate) addr: String,

    /// File holding the agent's bearer token (first line; surrounding whitespace is ignored).
    /// Without it, the token is read from SOLTI_TOKEN.
    #[arg(long, env = "SOLTI_TOKEN_FILE", global = true, value_name = "FILE")]
    pub(crate) token_file: Option<PathBuf>,

    /// PEM CA bundle that signed the agent's certificate (https:// and grpcs://).
    #[arg(long, env = "SOLTI_CA", global = true, value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,

    /// PEM client certificate for an agent that requires mTLS (needs --key).
    #[arg(long, env = "SOLTI_CERT", global = true, value_name = "FILE")]
    pub(crate) cert: Option<PathBuf>,

    /// PEM private key of --cert.
    #[arg(long, env = "SOLTI_KEY", global = true, value_name = "FILE")]
    pub(crate) key: Option<PathBuf>,

    /// Name to verify in the agent's certificate [default: the host of --addr].
    #[arg(long, env = "SOLTI_SERVER_NAME", global = true, value_name = "NAME")]
    pub(crate) server_name: Option<String>,

    /// How long to wait for the connection (and TLS handshake).
    #[arg(
        long,
        env = "SOLTI_CONNECT_TIMEOUT",
        default_value = "5s",
        global = true,
        value_name = "DURATION"
    )]
    pub(crate) connect_timeout: String,

    /// Send the token over a cleartext connection to a non-loopback address (it can be read
    /// on the way: prefer https:// or grpcs://).
    #[arg(long, env = "SOLTI_INSECURE_CLEARTEXT_TOKEN", global = true)]
    pub(crate) insecure_cleartext_token: bool,

    /// Output format: aligned tables for people, or one proto3-JSON object per line.
    #[arg(
        long,
        short = 'o',
        env = "SOLTI_OUTPUT",
        value_enum,
        default_value = "table",
        global = true
    )]
    pub(crate) output: Output,
}

/// `--output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// Tables and lines for people (colours on a terminal, unless NO_COLOR is set).
    Table,
    /// One proto3-JSON object per line, for scripts.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Submit a command (or a script) as a task; prints its id.
    Run(RunArgs),
    /// Submit a proto3-JSON CreateSpec with admission REPLACE (PUT / ApplyTask); prints the id.
    Apply(ApplyArgs),
    /// List tasks, newest last.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show one task.
    Get(IdArg),
    /// Show the runs (attempts) of a task, oldest first.
    Runs(IdArg),
    /// Print a task's output (retained output; -f follows it live).
    Logs(LogsArgs),
    /// Stop a task and keep it with its history and output (phase CANCELED).
    Cancel(IdArg),
    /// Stop a task if it runs, and forget it with its history.
    #[command(visible_alias = "delete")]
    Rm(IdArg),
    /// Wait until a task is finished; exits with its exit code (see below).
    Wait(IdArg),
    /// Check that the agent is up and ready.
    Health,
    /// Print a shell completion script: `solti completions bash > /etc/bash_completion.d/solti`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `solti run`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example: solti run --follow -- sh -c 'echo hello; sleep 1; echo bye'",
    arg_required_else_help = true
)]
pub(crate) struct RunArgs {
    /// Slot (at most one task runs per slot) [default: a name made from the command, e.g.
    /// `sh-c-echo-hello`].
    #[arg(long)]
    pub(crate) slot: Option<String>,

    /// When the task runs again after an attempt ends.
    #[arg(long, value_enum, default_value = "never")]
    pub(crate) restart: Restart,

    /// Failure retries allowed in a row (1 or more) [default: unlimited while --restart
    /// retries].
    #[arg(long, value_name = "N")]
    pub(crate) retries: Option<u32>,

    /// Time limit of each attempt.
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub(crate) timeout: String,

    /// Pause after a successful attempt under --restart always.
    #[arg(long, value_name = "DURATION")]
    pub(crate) restart_interval: Option<String>,

    /// Backoff between failure retries: FIRST..MAX (e.g. 1s..30s) or just FIRST.
    #[arg(long, default_value = "1s..30s", value_name = "FIRST..MAX")]
    pub(crate) backoff: String,

    /// Randomisation of the backoff delay.
    #[arg(long, value_enum, default_value = "full")]
    pub(crate) jitter: Jitter,

    /// What to do when the slot is busy.
    #[arg(long, value_enum, default_value = "drop-if-running")]
    pub(crate) admission: Admission,

    /// Environment variable of the task (repeatable).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    pub(crate) env: Vec<String>,

    /// Working directory of the task.
    #[arg(long, value_name = "DIR")]
    pub(crate) cwd: Option<String>,

    /// Runner label the task requires, by equality (repeatable).
    #[arg(long = "label", short = 'l', value_name = "KEY=VALUE")]
    pub(crate) labels: Vec<String>,

    /// Runner selector expression (repeatable): `KEY in (A,B)`, `KEY notin (A,B)`, `KEY`
    /// (exists), `!KEY` (does not exist), `KEY=VALUE`.
    #[arg(long = "selector", value_name = "EXPR")]
    pub(crate) selectors: Vec<String>,

    /// Run this script file instead of a command; the words after `--` are its arguments.
    #[arg(long, value_name = "FILE")]
    pub(crate) script: Option<PathBuf>,

    /// Interpreter of --script [default: from the file extension: .sh bash, .py python, .js
    /// node].
    #[arg(long, value_enum, requires = "script")]
    pub(crate) runtime: Option<Runtime>,

    /// Print the task's output as it runs, until the task is finished; then exit as --wait.
    #[arg(long, short = 'f')]
    pub(crate) follow: bool,

    /// Wait until the task is finished and exit with its exit code.
    #[arg(long, short = 'w')]
    pub(crate) wait: bool,

    /// The command and its arguments (after `--`).
    #[arg(last = true, value_name = "CMD")]
    pub(crate) command: Vec<String>,
}

/// `--restart`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Restart {
    /// Run once.
    Never,
    /// Run again after a failed attempt (with backoff).
    OnFailure,
    /// Run again after every attempt.
    Always,
}

/// `--jitter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Jitter {
    None,
    Full,
    Equal,
    Decorrelated,
}

/// `--admission`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Admission {
    /// Refuse the new task while the slot's task runs (it ends CANCELED at once).
    DropIfRunning,
    /// Stop the running task and start this one.
    Replace,
    /// Start this one when the slot is free.
    Queue,
}

/// `--runtime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Runtime {
    Bash,
    Python,
    Node,
}

/// `solti apply`.
#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {
    /// The CreateSpec (proto3 JSON, as in api_v1.md); `-` reads standard input.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub(crate) file: String,
    /// Follow the task's output after submitting.
    #[arg(long)]
    pub(crate) follow: bool,
}

/// `solti ls`.
#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    /// Only this slot.
    #[arg(long)]
    pub(crate) slot: Option<String>,
    /// Only this phase.
    #[arg(long, value_enum)]
    pub(crate) phase: Option<Phase>,
    /// At most this many tasks (the newest), 1 to 1000.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) limit: u32,
}

/// `--phase`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Timeout,
    Canceled,
    Exhausted,
}

/// A task id (or a unique prefix of one).
#[derive(Debug, Args)]
pub(crate) struct IdArg {
    /// Task id, or a unique prefix of one.
    #[arg(value_name = "ID")]
    pub(crate) id: String,
}

/// `solti logs`.
#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// Task id, or a unique prefix of one.
    #[arg(value_name = "ID")]
    pub(crate) id: String,
    /// Keep printing new output until the task is finished.
    #[arg(long, short = 'f')]
    pub(crate) follow: bool,
    /// Start with the last N retained lines, or `all` [default: all].
    #[arg(long, value_name = "N|all")]
    pub(crate) tail: Option<String>,
    /// Only output from the last DURATION (e.g. 10m).
    #[arg(long, value_name = "DURATION")]
    pub(crate) since: Option<String>,
}
