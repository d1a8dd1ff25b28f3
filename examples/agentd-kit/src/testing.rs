//! Helpers for end-to-end tests that start a real agent binary on loopback.

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

/// A running agent child process. Dropping it kills the agent.
#[derive(Debug)]
pub struct AgentProcess {
    child: Child,
    /// Fields of the start-up line: `api`, `metrics`, `control-plane`, `agent-id`.
    pub ready: HashMap<String, String>,
    /// The private state directory given with `--state-dir`.
    pub state_dir: PathBuf,
}

impl AgentProcess {
    /// Starts `binary` on `127.0.0.1:0` (API and metrics) with a fresh state directory under
    /// `scratch`, plus `extra` arguments, and waits (up to 60 s) for its start-up line.
    ///
    /// # Errors
    /// When the process cannot start or exits before it is ready.
    pub fn start(binary: &Path, scratch: &Path, extra: &[&str]) -> Result<Self> {
        let state_dir = scratch.join("state");
        Self::start_with_state(binary, &state_dir, extra)
    }

    /// As [`start`](Self::start) with an explicit state directory (to restart with the same id).
    ///
    /// # Errors
    /// When the process cannot start or exits before it is ready.
    pub fn start_with_state(binary: &Path, state_dir: &Path, extra: &[&str]) -> Result<Self> {
        Self::start_custom(binary, state_dir, extra, &[], None)
    }

    /// Starts `binary` with `--state-dir state_dir` and exactly `args` (no default listen
    /// addresses: for `--listen unix:…`), and waits for its start-up line.
    ///
    /// # Errors
    /// When the process cannot start or exits before it is ready.
    pub fn start_args(binary: &Path, state_dir: &Path, args: &[&str]) -> Result<Self> {
        Self::spawn(binary, state_dir, args, &[], None)
    }

    /// As [`start_with_state`](Self::start_with_state) with extra environment variables.
    ///
    /// # Errors
    /// When the process cannot start or exits before it is ready.
    pub fn start_with_env(
        binary: &Path,
        state_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        Self::start_custom(binary, state_dir, extra, env, None)
    }

    /// As [`start_with_state`](Self::start_with_state), with extra environment variables for
    /// the agent and, when `stderr` is given, its log written to that file (otherwise
    /// inherited).
    ///
    /// # Errors
    /// When the process cannot start or exits before it is ready.
    pub fn start_custom(
        binary: &Path,
        state_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        stderr: Option<std::fs::File>,
    ) -> Result<Self> {
        let mut args = vec!["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        Self::spawn(binary, state_dir, &args, env, stderr)
    }

    fn spawn(
        binary: &Path,
        state_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        stderr: Option<std::fs::File>,
    ) -> Result<Self> {
        let mut child = Command::new(binary)
            .arg("--state-dir")
            .arg(state_dir)
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr.map_or_else(Stdio::inherit, Stdio::from))
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let stdout = child.stdout.take().context("agent stdout")?;
        let (tx, rx) = mpsc::channel();
        // The reader thread ends when the agent closes stdout (it exits).
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(" ready: ") => {
                    let ready = line
                        .split_whitespace()
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect();
                    return Ok(Self {
                        child,
                        ready,
                        state_dir: state_dir.to_path_buf(),
                    });
                }
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("agent did not print its start-up line");
                }
            }
        }
    }

    /// The API address as `host:port`.
    #[must_use]
    pub fn api_addr(&self) -> String {
        let api = self.ready.get("api").map_or("", String::as_str);
        api.split_once("://")
            .map_or(api, |(_, rest)| rest)
            .to_owned()
    }

    /// The metrics URL.
    #[must_use]
    pub fn metrics_url(&self) -> String {
        self.ready.get("metrics").cloned().unwrap_or_default()
    }

    /// The agent's process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `within` for the exit status.
    ///
    /// # Errors
    /// When the signal cannot be sent or the agent does not exit in time.
    pub fn terminate(&mut self, within: Duration) -> Result<ExitStatus> {
        self.send_sigterm()?;
        self.wait_exit(within)
    }

    /// Sends `signal` to the agent.
    ///
    /// # Errors
    /// When the signal cannot be sent.
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> Result<()> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).context("pid")?);
        nix::sys::signal::kill(pid, signal).with_context(|| format!("send {signal}"))
    }

    /// Sends SIGTERM without waiting (see [`Self::wait_exit`]).
    ///
    /// # Errors
    /// When the signal cannot be sent.
    pub fn send_sigterm(&self) -> Result<()> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).context("pid")?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).context("send SIGTERM")
    }

    /// Waits up to `within` for the agent to exit (blocking) and returns its status.
    ///
    /// # Errors
    /// When the agent does not exit in time.
    pub fn wait_exit(&mut self, within: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().context("wait for the agent")? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("agent did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `binary` with `args` (and a private `--state-dir` under `scratch`) expecting it to
/// refuse to start; returns its stderr. Fails when it starts (prints a ready line) or does
/// not exit within 30 s.
///
/// # Errors
/// When the agent starts, or cannot be run.
pub fn refused_start(binary: &Path, scratch: &Path, args: &[&str]) -> Result<String> {
    let mut child = Command::new(binary)
        .arg("--state-dir")
        .arg(scratch.join("state"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {}", binary.display()))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().context("wait for the agent")? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("agent did not exit: it started with {args:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    let mut stdout = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    if let Some(mut o) = child.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut o, &mut stdout);
    }
    if status.success() || stdout.contains(" ready: ") {
        bail!("agent started with {args:?}: {stdout}");
    }
    Ok(stderr)
}

/// Whether a process with this pid still exists (and is not a zombie).
#[must_use]
pub fn process_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}
