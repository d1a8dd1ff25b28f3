//! `control-plane`: a mock Podium that answers, then returns 503s, hangs, resets
//! connections, goes away and comes back. The agent must keep serving its API throughout and
//! sync again once the control plane is back.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    task::{JoinHandle, JoinSet},
};

use super::{Ctx, poll, stop_agent};
use crate::{
    agent::Agent,
    report::{Report, latency_summary},
};

/// How the mock control plane treats a Sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    Ok = 0,
    Unavailable = 1,
    Hang = 2,
    Reset = 3,
}

impl Mode {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Unavailable,
            2 => Self::Hang,
            3 => Self::Reset,
            _ => Self::Ok,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Ok => "200 success",
            Self::Unavailable => "503",
            Self::Hang => "hang",
            Self::Reset => "connection reset",
        }
    }
}

/// One Sync the mock received.
#[derive(Clone, Debug)]
struct Sync {
    at: Instant,
    mode: Mode,
    agent_id: String,
    interval_s: i64,
}

#[derive(Debug, Default)]
struct Seen {
    syncs: Vec<Sync>,
    connections: usize,
}

/// The mock's listener task; dropping it closes the port and every open connection.
struct MockCp {
    task: JoinHandle<()>,
}

impl Drop for MockCp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockCp {
    async fn bind(
        addr: SocketAddr,
        mode: Arc<AtomicU8>,
        seen: Arc<Mutex<Seen>>,
    ) -> Result<(Self, SocketAddr)> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("bind mock control plane on {addr}"))?;
        let local = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                if let Ok(mut s) = seen.lock() {
                    s.connections += 1;
                }
                conns.spawn(serve(stream, Arc::clone(&mode), Arc::clone(&seen)));
                while conns.try_join_next().is_some() {}
            }
        });
        Ok((Self { task }, local))
    }
}

/// Serves Syncs on one connection in the current mode.
async fn serve(mut stream: TcpStream, mode: Arc<AtomicU8>, seen: Arc<Mutex<Seen>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let current = Mode::from_u8(mode.load(Ordering::Relaxed));
        if current == Mode::Reset {
            #[expect(
                deprecated,
                reason = "a zero linger resets at once and never blocks the thread"
            )]
            let _ = stream.set_linger(Some(Duration::ZERO));
            return;
        }
        // Read one request: head, then Content-Length bytes of body.
        let (head_end, len) = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break (end + 4, len);
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let body: Value =
            serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or(Value::Null);
        buf.drain(..head_end + len);
        let current = Mode::from_u8(mode.load(Ordering::Relaxed));
        if let Ok(mut s) = seen.lock() {
            s.syncs.push(Sync {
                at: Instant::now(),
                mode: current,
                agent_id: body
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                interval_s: body
                    .get("heartbeatIntervalS")
                    .or_else(|| body.get("heartbeat_interval_s"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0),
            });
        }
        let reply: &[u8] = match current {
            Mode::Ok => b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 44\r\n\r\n{\"success\":true,\"reason\":\"\",\"retryAfterS\":0}",
            Mode::Unavailable => b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n",
            Mode::Hang => {
                // Never answer; wait for the agent to give up and close.
                let _ = stream.read(&mut chunk).await;
                return;
            }
            Mode::Reset => {
                #[expect(deprecated, reason = "a zero linger resets at once and never blocks the thread")]
                let _ = stream.set_linger(Some(Duration::ZERO));
                return;
            }
        };
        if stream.write_all(reply).await.is_err() {
            return;
        }
    }
}

pub(super) async fn run(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let phase = ctx.size(Duration::from_secs(4), Duration::from_secs(15));
    let mode = Arc::new(AtomicU8::new(Mode::Ok as u8));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (mut cp, cp_addr) = MockCp::bind(
        ([127, 0, 0, 1], 0).into(),
        Arc::clone(&mode),
        Arc::clone(&seen),
    )
    .await?;
    let mut opts = ctx.opts("control-plane")?;
    opts.args.extend([
        "--control-plane".to_owned(),
        format!("http://{cp_addr}"),
        "--heartbeat-ms".to_owned(),
        "1000".to_owned(),
    ]);
    let mut agent = Agent::start(&opts).await?;
    let agent_id = agent.startup.agent_id.clone();
    report.info("ready-line", agent.ready_line.clone());
    let api = agent.api();

    // Probe the API every 200 ms for the whole scenario.
    let probe_api = api.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_probe = Arc::clone(&stop);
    let prober = tokio::spawn(async move {
        let (mut lat, mut errors) = (Vec::new(), Vec::new());
        loop {
            let t = Instant::now();
            match probe_api.get("/api/v1/tasks?limit=1").await {
                Ok(r) if r.status.as_u16() == 200 => lat.push(t.elapsed()),
                Ok(r) => errors.push(r.describe()),
                Err(e) => errors.push(format!("{e:#}")),
            }
            if stop_probe.load(Ordering::Relaxed) {
                return (lat, errors);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    let count = |m: Mode| {
        seen.lock()
            .map(|s| s.syncs.iter().filter(|x| x.mode == m).count())
            .unwrap_or(0)
    };
    let connections = || seen.lock().map(|s| s.connections).unwrap_or(0);
    let first = poll(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async { (count(Mode::Ok) > 0).then_some(()) },
    )
    .await;
    let first_id = seen
        .lock()
        .ok()
        .and_then(|s| s.syncs.first().map(|x| (x.agent_id.clone(), x.interval_s)));
    report.check(
        "first-sync",
        first.is_some()
            && first_id
                .as_ref()
                .is_some_and(|(id, i)| *id == agent_id && *i == 1),
        format!("first Sync (id, heartbeatIntervalS) = {first_id:?}; agent id {agent_id}"),
    );
    tokio::time::sleep(phase).await;
    let ok_syncs: Vec<Instant> = seen
        .lock()
        .map(|s| {
            s.syncs
                .iter()
                .filter(|x| x.mode == Mode::Ok)
                .map(|x| x.at)
                .collect()
        })
        .unwrap_or_default();
    let mut gaps: Vec<Duration> = ok_syncs.windows(2).map(|w| w[1] - w[0]).collect();
    report.info(
        "heartbeat-interval",
        format!(
            "{} syncs while healthy, gaps {}",
            ok_syncs.len(),
            latency_summary(&mut gaps)
        ),
    );

    for m in [Mode::Unavailable, Mode::Hang, Mode::Reset] {
        mode.store(m as u8, Ordering::Relaxed);
        let (before, conns_before) = (count(m), connections());
        tokio::time::sleep(phase).await;
        report.info(
            "fault",
            format!(
                "control plane {} for {}s: {} Syncs read, {} connections opened by the agent",
                m.name(),
                phase.as_secs(),
                count(m) - before,
                connections() - conns_before
            ),
        );
    }
    mode.store(Mode::Ok as u8, Ordering::Relaxed);
    drop(cp);
    let away_conns = connections();
    tokio::time::sleep(phase).await;
    let alive = agent.is_running();
    let ok_before = count(Mode::Ok);
    let back_at = Instant::now();
    let (cp_back, _) = MockCp::bind(cp_addr, Arc::clone(&mode), Arc::clone(&seen)).await?;
    cp = cp_back;
    let resynced = poll(
        Duration::from_secs(40),
        Duration::from_millis(100),
        || async { (count(Mode::Ok) > ok_before).then_some(()) },
    )
    .await;
    report.check(
        "re-registers",
        alive && resynced.is_some(),
        format!(
            "control plane gone for {}s (port closed), then back: agent alive={alive}, next successful Sync {} after it came back \
             ({away_conns} connections before it went away)",
            phase.as_secs(),
            resynced.map_or_else(|| "never (40 s)".to_owned(), |()| format!("{:.1}s", back_at.elapsed().as_secs_f64())),
        ),
    );
    stop.store(true, Ordering::Relaxed);
    let (mut lat, errors) = prober.await?;
    report.check(
        "api-served-throughout",
        errors.is_empty(),
        format!(
            "API probes: {} errors; {}",
            errors.len(),
            latency_summary(&mut lat)
        ),
    );
    super::still_serving(&mut agent, report, "control-plane faults").await;
    drop(cp);
    stop_agent(agent, report).await;
    Ok(())
}
