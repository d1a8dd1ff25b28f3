//! The agent under test as a child process: start, wait for the ready line, capture its
//! output, measure it, stop it.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context as _, Result, anyhow, bail};
use nix::{
    sys::signal::{Signal, kill, killpg},
    unistd::Pid,
};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncRead, BufReader},
    process::{Child, Command},
    sync::oneshot,
    task::JoinHandle,
};

use crate::{
    client::Api,
    procfs,
    startup::{Startup, parse_ready_line},
};

/// How long the agent may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How to start an agent.
#[derive(Clone, Debug)]
pub(crate) struct AgentOpts {
    /// The `agentd-http` binary.
    pub(crate) bin: PathBuf,
    /// `--state-dir`.
    pub(crate) state_dir: PathBuf,
    /// `--listen` (default `127.0.0.1:0`).
    pub(crate) listen: String,
    /// `--token`, when auth is on.
    pub(crate) token: Option<String>,
    /// Extra flags.
    pub(crate) args: Vec<String>,
    /// Extra environment variables.
    pub(crate) env: Vec<(String, String)>,
    /// Start the agent with this soft and hard `RLIMIT_NOFILE` (through `sh -c 'ulimit -n'`),
    /// so it cannot raise its limit above it.
    pub(crate) nofile: Option<u64>,
}

impl AgentOpts {
    /// Options for `bin` with `state_dir` and nothing else.
    pub(crate) fn new(bin: &Path, state_dir: &Path) -> Self {
        Self {
            bin: bin.to_owned(),
            state_dir: state_dir.to_owned(),
            listen: "127.0.0.1:0".to_owned(),
            token: None,
            args: Vec::new(),
            env: Vec::new(),
            nofile: None,
        }
    }
}

/// A running agent. Dropping it kills the agent and every process group it started.
#[derive(Debug)]
pub(crate) struct Agent {
    child: Child,
    pid: u32,
    /// What the ready line announced.
    pub(crate) startup: Startup,
    /// The ready line itself.
    pub(crate) ready_line: String,
    output: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    token: Option<String>,
}

impl Agent {
    /// Starts the agent and waits for its ready line.
    pub(crate) async fn start(opts: &AgentOpts) -> Result<Self> {
        let mut cmd = match opts.nofile {
            // `exec` keeps the pid: the shell becomes the agent.
            Some(n) => {
                let mut c = Command::new("/bin/sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(&opts.bin);
                c
            }
            None => Command::new(&opts.bin),
        };
        cmd.arg("--listen")
            .arg(&opts.listen)
            .arg("--metrics-listen")
            .arg("127.0.0.1:0")
            .arg("--state-dir")
            .arg(&opts.state_dir);
        if let Some(t) = &opts.token {
            cmd.arg("--token").arg(t);
        }
        cmd.args(&opts.args);
        for (k, _) in std::env::vars_os().filter(|(k, _)| k.to_string_lossy().starts_with("SOLTI_"))
        {
            cmd.env_remove(k);
        }
        cmd.envs(opts.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawn {}", opts.bin.display()))?;
        let pid = child.id().context("agent exited at once")?;
        let output = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let (ready_tx, ready_rx) = oneshot::channel();
        let readers = vec![
            tokio::spawn(capture(stdout, Arc::clone(&output), Some(ready_tx))),
            tokio::spawn(capture(stderr, Arc::clone(&output), None)),
        ];
        let mut agent = Self {
            child,
            pid,
            startup: Startup {
                api: ([127, 0, 0, 1], 0).into(),
                unix: None,
                tls: false,
                metrics: None,
                control_plane: String::new(),
                agent_id: String::new(),
            },
            ready_line: String::new(),
            output,
            readers,
            token: opts.token.clone(),
        };
        let ready = tokio::select! {
            r = tokio::time::timeout(READY_TIMEOUT, ready_rx) => r,
            status = agent.child.wait() => {
                agent.drain_readers().await;
                bail!("agent exited before its ready line ({}); output:\n{}", describe_exit(status), agent.output_text());
            }
        };
        let (line, startup) = match ready {
            Ok(Ok(Ok(pair))) => pair,
            Ok(Ok(Err(e))) => bail!("bad ready line: {e:#}"),
            Ok(Err(_)) => {
                let status = tokio::time::timeout(Duration::from_secs(5), agent.child.wait()).await;
                agent.drain_readers().await;
                let status = status.map_or_else(|_| "still running".to_owned(), describe_exit);
                bail!(
                    "agent closed stdout before its ready line ({status}); output:\n{}",
                    agent.output_text()
                );
            }
            Err(_) => bail!(
                "no ready line within {READY_TIMEOUT:?}; output:\n{}",
                agent.output_text()
            ),
        };
        agent.startup = startup;
        agent.ready_line = line;
        Ok(agent)
    }

    /// The agent's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// An API client (with the token, when auth is on).
    pub(crate) fn api(&self) -> Api {
        Api::new(self.startup.api, self.token.clone())
    }

    /// An API client that sends no token.
    pub(crate) fn api_without_token(&self) -> Api {
        Api::new(self.startup.api, None)
    }

    /// Resident memory in KiB (0 when it cannot be read).
    pub(crate) fn rss_kib(&self) -> u64 {
        procfs::rss_kib(self.pid).unwrap_or(0)
    }

    /// Whether the agent process is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything the agent printed so far (stdout and stderr interleaved by arrival).
    pub(crate) fn output(&self) -> Vec<u8> {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// The shared buffer the output is captured into (still filled while the agent stops).
    pub(crate) fn output_sink(&self) -> Arc<Mutex<Vec<u8>>> {
        Arc::clone(&self.output)
    }

    /// [`output`](Self::output) as lossy text.
    pub(crate) fn output_text(&self) -> String {
        String::from_utf8_lossy(&self.output()).into_owned()
    }

    /// Sends SIGKILL and reaps the agent (its task processes are left alone).
    pub(crate) async fn kill9(&mut self) -> Result<()> {
        kill(self.pid_t(), Signal::SIGKILL).context("kill -9 agent")?;
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .map_err(|_| anyhow!("agent not reaped"))??;
        Ok(())
    }

    /// Sends SIGTERM and waits up to `grace` for a clean exit; kills it after that. Returns
    /// the exit status and how long the exit took. Leftover task process groups are killed.
    pub(crate) async fn stop(
        mut self,
        grace: Duration,
    ) -> Result<(std::process::ExitStatus, Duration)> {
        let started = std::time::Instant::now();
        let children = procfs::children_of(self.pid);
        kill(self.pid_t(), Signal::SIGTERM).context("SIGTERM agent")?;
        let status = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(s) => s?,
            Err(_) => {
                let _ = self.child.start_kill();
                let s = self.child.wait().await?;
                kill_groups(&children);
                bail!("agent did not exit within {grace:?} of SIGTERM ({s})");
            }
        };
        let took = started.elapsed();
        kill_groups(&children);
        self.drain_readers().await;
        Ok((status, took))
    }

    /// Waits (briefly) for the output readers to reach the end of the pipes.
    async fn drain_readers(&mut self) {
        for mut r in self.readers.drain(..) {
            if tokio::time::timeout(Duration::from_secs(2), &mut r)
                .await
                .is_err()
            {
                r.abort();
            }
        }
    }

    fn pid_t(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.pid).unwrap_or(i32::MAX))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Task processes run in their own process groups; end the ones this agent started.
        let children = procfs::children_of(self.pid);
        let _ = self.child.start_kill();
        kill_groups(&children);
        for r in &self.readers {
            r.abort();
        }
    }
}

/// SIGKILLs the process group of each process still alive (the agent puts every task in its
/// own group, led by the task's process).
pub(crate) fn kill_groups(procs: &[procfs::Proc]) {
    for p in procs {
        if procfs::is_alive(p.pid) {
            let pid = Pid::from_raw(i32::try_from(p.pid).unwrap_or(i32::MAX));
            if killpg(pid, Signal::SIGKILL).is_err() {
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
    }
}

fn describe_exit(status: std::io::Result<std::process::ExitStatus>) -> String {
    status.map_or_else(|e| format!("wait failed: {e}"), |s| s.to_string())
}

type Ready = oneshot::Sender<Result<(String, Startup)>>;

/// Copies `pipe` into `sink` line by line; on stdout, reports the ready line once.
async fn capture(
    pipe: impl AsyncRead + Unpin,
    sink: Arc<Mutex<Vec<u8>>>,
    mut ready: Option<Ready>,
) {
    let mut lines = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if let Ok(mut s) = sink.lock() {
            s.extend_from_slice(&line);
        }
        if ready.is_some() {
            let text = String::from_utf8_lossy(&line);
            let parsed = match parse_ready_line(&text) {
                Ok(None) => continue,
                Ok(Some(s)) => Ok((text.trim().to_owned(), s)),
                Err(e) => Err(e),
            };
            if let Some(tx) = ready.take() {
                let _ = tx.send(parsed);
            }
        }
    }
}
