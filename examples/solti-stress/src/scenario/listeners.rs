//! `listeners`: the connection floods of issue 15 on the listeners other than the plain TCP
//! API (which `security` floods): 1,100 idle connections on a Unix-socket API, 1,100 TLS
//! handshakes that never finish, and 1,100 idle connections on the metrics port. Each agent
//! runs under a soft and hard descriptor limit of 1,024, and must still run a task.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _},
    net::{TcpStream, UnixStream},
};

use super::{Ctx, command_spec, poll, stop_agent};
use crate::{
    agent::Agent,
    client::{is_terminal, phase_of},
    report::Report,
};

/// Connections in each flood (issue 15 reproduced the outage with 1,100).
const FLOOD: usize = 1_100;
/// The soft (and hard) descriptor limit of the flooded agents.
const FLOOD_NOFILE: u64 = 1_024;
/// Time one request may take (a hang guard).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

pub(crate) async fn run(ctx: &Ctx, report: &mut Report) -> Result<()> {
    unix_flood(ctx, report).await?;
    tls_handshake_flood(ctx, report).await?;
    metrics_flood(ctx, report).await?;
    Ok(())
}

/// One HTTP/1.1 exchange (`Connection: close`) on `io`: the status and the JSON body
/// (`Value::Null` when the body is not JSON).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value, String)> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str("\r\n");
    req.push_str(&body);
    let work = async {
        io.write_all(req.as_bytes()).await?;
        io.flush().await?;
        let mut buf = Vec::new();
        // A TLS peer may close without close_notify after a complete response.
        let _ = io.read_to_end(&mut buf).await;
        Ok::<_, anyhow::Error>(buf)
    };
    let buf = tokio::time::timeout(REQUEST_TIMEOUT, work)
        .await
        .map_err(|_| anyhow!("{method} {path}: no response within {REQUEST_TIMEOUT:?}"))??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("{method} {path}: no response head in {text:?}"))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{method} {path}: bad status line in {head:?}"))?;
    let json = serde_json::from_str(rest).unwrap_or(Value::Null);
    Ok((status, json, rest.to_owned()))
}

/// Submits a `true` task through `connect` and polls it until it is terminal; returns its
/// phase and how long submit + run took.
async fn run_one_task<F, Fut, S>(connect: F) -> Result<(String, Duration)>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<S>>,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let spec = json!({ "spec": command_spec("flood", "true", &[], Duration::from_secs(10)) });
    let (status, body, _) =
        exchange(connect().await?, "POST", "/api/v1/tasks", Some(&spec)).await?;
    if status != 201 {
        bail!("submit during the flood: {status} {body}");
    }
    let id = body["taskId"]
        .as_str()
        .context("submit: no taskId")?
        .to_owned();
    let path = format!("/api/v1/tasks/{id}");
    let phase = poll(
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            let io = connect().await.ok()?;
            let (status, body, _) = exchange(io, "GET", &path, None).await.ok()?;
            let phase = phase_of(body.get("task")?);
            (status == 200 && is_terminal(&phase)).then_some(phase)
        },
    )
    .await
    .context("the task did not finish within 30 s")?;
    Ok((phase, started.elapsed()))
}

/// How many of `conns` (non-blocking, as they come from tokio) the peer has closed: a read
/// returns end-of-file at once instead of "would block".
fn closed_by_peer<T>(conns: &[T]) -> usize
where
    for<'a> &'a T: std::io::Read,
{
    conns
        .iter()
        .filter(|conn| {
            let mut conn: &T = conn;
            let mut buf = [0u8; 1];
            matches!(std::io::Read::read(&mut conn, &mut buf), Ok(0))
        })
        .count()
}

/// 1,100 idle connections on `--listen unix:…`; a task still runs over the socket.
async fn unix_flood(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let sock = ctx.dir("listeners-unix")?.join("agent.sock");
    let mut opts = ctx.opts("listeners-unix")?;
    opts.listen = format!("unix:{}", sock.display());
    opts.nofile = Some(FLOOD_NOFILE);
    let agent = Agent::start(&opts).await?;
    let mode = std::fs::metadata(&sock)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
    report.check(
        "unix-socket-mode-0600",
        matches!(mode, Ok(0o600)),
        match &mode {
            Ok(m) => format!("{} mode {m:o}", sock.display()),
            Err(e) => format!("{}: {e}", sock.display()),
        },
    );
    let mut idle = Vec::with_capacity(FLOOD);
    let mut refused = 0usize;
    for _ in 0..FLOOD {
        match tokio::time::timeout(Duration::from_secs(2), UnixStream::connect(&sock)).await {
            Ok(Ok(s)) => idle.push(s.into_std()?),
            _ => refused += 1,
        }
    }
    let connect = || async { Ok(UnixStream::connect(&sock).await?) };
    let outcome = run_one_task(connect).await;
    let closed = closed_by_peer(&idle);
    report.check(
        "unix-task-runs-during-flood",
        matches!(&outcome, Ok((p, _)) if p == "TASK_STATUS_SUCCEEDED"),
        format!(
            "{} idle Unix-socket connections ({refused} not accepted), agent at RLIMIT_NOFILE \
             {FLOOD_NOFILE}: {}; {closed} idle connections closed by the agent",
            idle.len(),
            describe(&outcome)
        ),
    );
    drop(idle);
    let serving = exchange(
        UnixStream::connect(&sock).await?,
        "GET",
        "/api/v1/tasks?limit=1",
        None,
    )
    .await;
    report.check(
        "unix-still-serving",
        matches!(&serving, Ok((200, _, _))),
        format!(
            "after the flood: GET /api/v1/tasks -> {:?}",
            serving.map(|(s, _, _)| s)
        ),
    );
    stop_agent(agent, report).await;
    report.check(
        "unix-socket-removed-at-shutdown",
        !sock.exists(),
        format!(
            "{} exists after shutdown: {}",
            sock.display(),
            sock.exists()
        ),
    );
    Ok(())
}

fn describe(outcome: &Result<(String, Duration)>) -> String {
    match outcome {
        Ok((phase, took)) => format!("submit + run took {took:.1?}, phase {phase}"),
        Err(e) => format!("{e:#}"),
    }
}

/// A CA and a server certificate for `localhost` / `127.0.0.1` signed by it, as PEM.
fn test_pki() -> Result<(String, String, String)> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "solti-stress ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &ca)?;
    Ok((ca.pem(), cert.pem(), key.serialize_pem()))
}

/// 1,100 connections to a TLS API that start a handshake (a TLS record header) and never
/// finish it; a task still runs over TLS.
async fn tls_handshake_flood(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let dir = ctx.dir("listeners-tls")?;
    let (ca, cert, key) = test_pki()?;
    let (cert_file, key_file) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&cert_file, cert)?;
    std::fs::write(&key_file, key)?;
    let mut opts = ctx.opts("listeners-tls")?;
    opts.nofile = Some(FLOOD_NOFILE);
    opts.args.extend([
        "--tls-cert".to_owned(),
        cert_file.display().to_string(),
        "--tls-key".to_owned(),
        key_file.display().to_string(),
    ]);
    let agent = Agent::start(&opts).await?;
    let addr = agent.startup.api;
    if !agent.startup.tls {
        bail!(
            "the agent did not announce an https API: {}",
            agent.ready_line
        );
    }
    let client = solti_tls::ClientTlsConfig::builder()
        .ca_pem_bytes(ca)
        .with_alpn(["http/1.1".to_owned()])
        .build()
        .context("TLS client config")?;
    let connector = Arc::new(client.connector());
    let connect = || {
        let connector = Arc::clone(&connector);
        async move {
            let tcp = TcpStream::connect(addr).await?;
            let name = rustls_pki_types::ServerName::try_from("localhost")?;
            let tls = tokio::time::timeout(REQUEST_TIMEOUT, connector.connect(name, tcp))
                .await
                .map_err(|_| anyhow!("TLS handshake with the agent timed out"))??;
            Ok::<_, anyhow::Error>(tls)
        }
    };
    // Control: a request before the flood.
    let before = run_one_task(&connect).await;
    report.check(
        "tls-task-runs",
        matches!(&before, Ok((p, _)) if p == "TASK_STATUS_SUCCEEDED"),
        describe(&before),
    );

    let mut pending = Vec::with_capacity(FLOOD);
    let mut refused = 0usize;
    for _ in 0..FLOOD {
        match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
            Ok(Ok(mut s)) => {
                // A handshake record header announcing 512 bytes that never come.
                let _ = s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).await;
                pending.push(s.into_std()?);
            }
            _ => refused += 1,
        }
    }
    let during = run_one_task(&connect).await;
    let closed = closed_by_peer(&pending);
    report.check(
        "tls-task-runs-during-handshake-flood",
        matches!(&during, Ok((p, _)) if p == "TASK_STATUS_SUCCEEDED"),
        format!(
            "{} stalled TLS handshakes ({refused} not accepted), agent at RLIMIT_NOFILE \
             {FLOOD_NOFILE}: {}; {closed} stalled handshakes closed by the agent",
            pending.len(),
            describe(&during)
        ),
    );
    drop(pending);
    stop_agent(agent, report).await;
    Ok(())
}

/// 1,100 idle connections on the metrics port: a scrape and a task still work.
async fn metrics_flood(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let mut opts = ctx.opts("listeners-metrics")?;
    opts.nofile = Some(FLOOD_NOFILE);
    let agent = Agent::start(&opts).await?;
    let metrics = agent
        .startup
        .metrics
        .context("the agent announced no metrics address")?;
    let api = agent.startup.api;
    let mut idle = Vec::with_capacity(FLOOD);
    let mut refused = 0usize;
    for _ in 0..FLOOD {
        match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(metrics)).await {
            Ok(Ok(s)) => idle.push(s.into_std()?),
            _ => refused += 1,
        }
    }
    let started = Instant::now();
    let scrape = exchange(TcpStream::connect(metrics).await?, "GET", "/metrics", None).await;
    let took = started.elapsed();
    let closed = closed_by_peer(&idle);
    report.check(
        "scrape-during-metrics-flood",
        matches!(&scrape, Ok((200, _, text)) if text.contains("solti_build_info")),
        format!(
            "{} idle metrics connections ({refused} not accepted): GET /metrics -> {:?} in \
             {took:.1?}; {closed} idle connections closed by the agent",
            idle.len(),
            scrape.as_ref().map(|(s, _, _)| *s)
        ),
    );
    let connect = || async { Ok(TcpStream::connect(api).await?) };
    let outcome = run_one_task(connect).await;
    report.check(
        "task-runs-during-metrics-flood",
        matches!(&outcome, Ok((p, _)) if p == "TASK_STATUS_SUCCEEDED"),
        describe(&outcome),
    );
    drop(idle);
    stop_agent(agent, report).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exchange_reads_status_and_json() {
        let (client, mut server) = tokio::io::duplex(4096);
        let answer = tokio::spawn(async move {
            let mut req = vec![0u8; 1024];
            let n = server.read(&mut req).await.unwrap();
            let text = String::from_utf8_lossy(&req[..n]).into_owned();
            server
                .write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 16\r\n\r\n{\"taskId\":\"t1\"}")
                .await
                .unwrap();
            drop(server);
            text
        });
        let (status, body, _) = exchange(client, "POST", "/x", Some(&json!({"a": 1})))
            .await
            .unwrap();
        assert_eq!(status, 201);
        assert_eq!(body["taskId"], "t1");
        let req = answer.await.unwrap();
        assert!(req.starts_with("POST /x HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("Content-Type: application/json\r\n"), "{req}");
        assert!(req.ends_with("\r\n\r\n{\"a\":1}"), "{req}");
    }

    #[test]
    fn the_test_pki_builds() {
        let (ca, cert, key) = test_pki().unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.contains("PRIVATE KEY"));
    }
}
