//! `security`: the network defences of issue 15 against the real agent: browser-shaped
//! requests, hostile specs near the body limit, a flood of idle connections under a soft
//! descriptor limit of 1,024, and the start-up refusals for clear-text tokens.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use hyper::Method;
use serde_json::{Value, json};
use tokio::net::TcpStream;

use super::{Ctx, command_spec, poll, still_serving, stop_agent};
use crate::{
    agent::Agent,
    client::{is_terminal, phase_of},
    raw::{RawOutcome, exchange},
    report::Report,
};

/// Idle connections opened in the flood (issue 15 reproduced the outage with 1,100).
const FLOOD: usize = 1_100;
/// The soft (and hard) descriptor limit the flooded agent runs under.
const FLOOD_NOFILE: u64 = 1_024;

pub(crate) async fn run(ctx: &Ctx, report: &mut Report) -> Result<()> {
    browser(ctx, report).await?;
    hostile_specs(ctx, report).await?;
    flood(ctx, report).await?;
    refusals(ctx, report).await?;
    task_env(ctx, report).await?;
    Ok(())
}

fn label_of(out: &RawOutcome) -> Option<String> {
    match out {
        RawOutcome::Response { body, .. } => serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned)),
        RawOutcome::Closed(_) => None,
    }
}

/// What a web page can make a browser send, over raw TCP.
async fn browser(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let mut agent = ctx.agent("security-browser").await?;
    let addr = agent.startup.api;
    let body = serde_json::to_vec(
        &json!({ "spec": command_spec("evil", "touch", &["/tmp/solti-evil"], Duration::from_secs(10)) }),
    )?;
    let post = |host: String, extra: &str| {
        let mut req = format!(
            "POST /api/v1/tasks HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        req
    };
    let cases: [(&str, Vec<u8>, u16, &str); 5] = [
        (
            "no-cors-fetch",
            post(
                addr.to_string(),
                "Content-Type: text/plain;charset=UTF-8\r\nOrigin: https://evil.example\r\n\
                 Sec-Fetch-Mode: no-cors\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Dest: empty\r\n",
            ),
            403,
            "Forbidden",
        ),
        (
            "cross-origin-no-fetch-metadata",
            post(addr.to_string(), "Origin: https://evil.example\r\n"),
            403,
            "Forbidden",
        ),
        ("post-without-content-type", post(addr.to_string(), ""), 415, "UnsupportedMediaType"),
        (
            "post-text-plain",
            post(addr.to_string(), "Content-Type: text/plain\r\n"),
            415,
            "UnsupportedMediaType",
        ),
        (
            "dns-rebinding",
            format!(
                "GET /api/v1/tasks HTTP/1.1\r\nHost: rebind.evil.example:{}\r\nConnection: close\r\n\r\n",
                addr.port()
            )
            .into_bytes(),
            421,
            "MisdirectedRequest",
        ),
    ];
    for (name, req, want, label) in cases {
        let out = exchange(addr, req, Duration::from_secs(10)).await?;
        let ok = out.status() == Some(want)
            && out.is_json_error()
            && label_of(&out).as_deref() == Some(label);
        report.check(name, ok, format!("want {want} {label}: {}", out.describe()));
    }
    let total = agent.api().get("/api/v1/tasks").await?.json()["total"].clone();
    report.check(
        "browser-ran-nothing",
        total == json!(0),
        format!("tasks after the browser-shaped requests: {total}"),
    );
    still_serving(&mut agent, report, "browser-shaped requests").await;
    stop_agent(agent, report).await;
    Ok(())
}

/// Specs just under the 4 MiB body limit, two at a time, while the agent keeps answering.
async fn hostile_specs(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let mut agent = ctx.agent("security-hostile").await?;
    let env: Vec<Value> = (0..125_000)
        .map(|i| json!({ "key": format!("K{i}"), "value": "v" }))
        .collect();
    let mut spec = command_spec("hostile", "true", &[], Duration::from_secs(10));
    spec["kind"]["subprocess"]["env"] = Value::Array(env);
    let env_body = Bytes::from(serde_json::to_vec(&json!({ "spec": spec }))?);
    let labels: serde_json::Map<String, Value> = (0..250_000)
        .map(|i| (format!("l{i}"), json!("v")))
        .collect();
    let mut spec = command_spec("hostile", "true", &[], Duration::from_secs(10));
    spec["labels"] = Value::Object(labels);
    let label_body = Bytes::from(serde_json::to_vec(&json!({ "spec": spec }))?);
    for (name, body, field) in [
        (
            "env-125k",
            env_body,
            "spec.kind.subprocess.env: at most 1024 entries",
        ),
        ("labels-250k", label_body, "spec.labels: at most 64 entries"),
    ] {
        let api = agent.api();
        let started = Instant::now();
        let send = |b: Bytes| {
            let api = api.clone();
            async move { api.send(Method::POST, "/api/v1/tasks", Some(b), &[]).await }
        };
        // Two at once (the outage of issue 15 needed two on a 2-core host), and a listing
        // in the middle.
        let lister = agent.api();
        let (a, b, list) = tokio::join!(
            send(body.clone()),
            send(body.clone()),
            lister.get("/api/v1/tasks")
        );
        let took = started.elapsed();
        let (a, b, list) = (a?, b?, list?);
        let ok = [&a, &b]
            .iter()
            .all(|r| r.status.as_u16() == 400 && r.error_message().starts_with(field))
            && list.status.as_u16() == 200;
        report.check(
            name,
            ok,
            format!(
                "{:.2} MiB twice, refused in {took:.1?} (both, with a listing): {}",
                body.len() as f64 / (1024.0 * 1024.0),
                a.describe()
            ),
        );
    }
    still_serving(&mut agent, report, "hostile specs").await;
    stop_agent(agent, report).await;
    Ok(())
}

/// 1,100 idle connections against an agent whose descriptor limit is 1,024; a task still
/// runs.
async fn flood(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let mut opts = ctx.opts("security-flood")?;
    opts.nofile = Some(FLOOD_NOFILE);
    let mut agent = Agent::start(&opts).await?;
    let addr = agent.startup.api;
    let mut idle = Vec::with_capacity(FLOOD);
    let mut refused = 0usize;
    for _ in 0..FLOOD {
        match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => idle.push(s),
            _ => refused += 1,
        }
    }
    let started = Instant::now();
    let id = agent
        .api()
        .submit(&command_spec("flood", "true", &[], Duration::from_secs(10)))
        .await
        .context("submit during the flood")?;
    let api = agent.api();
    let phase = poll(Duration::from_secs(20), Duration::from_millis(50), || {
        let api = api.clone();
        let id = id.clone();
        async move {
            let t = api.task(&id).await.ok()?;
            let p = phase_of(&t);
            is_terminal(&p).then_some(p)
        }
    })
    .await;
    let took = started.elapsed();
    // How many of the idle connections the agent closed to make room.
    let mut closed = 0usize;
    for s in &idle {
        let mut buf = [0u8; 1];
        if matches!(s.try_read(&mut buf), Ok(0)) {
            closed += 1;
        }
    }
    report.check(
        "task-runs-during-flood",
        phase.as_deref() == Some("TASK_STATUS_SUCCEEDED"),
        format!(
            "{} idle connections open ({refused} not accepted by the kernel), agent at \
             RLIMIT_NOFILE {FLOOD_NOFILE}: submit + run took {took:.1?}, phase {phase:?}; \
             {closed} idle connections closed by the agent",
            idle.len()
        ),
    );
    drop(idle);
    still_serving(&mut agent, report, "connection flood").await;
    stop_agent(agent, report).await;
    Ok(())
}

/// The agent refuses to start when a token would cross the network in clear text, or when a
/// flag would be silently ignored.
async fn refusals(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let cases: [(&str, &str, &[&str], &str); 3] = [
        (
            "refuses-cleartext-token",
            "0.0.0.0:0",
            &["--token", "cleartext-secret-token"],
            "--insecure-allow-cleartext-token",
        ),
        (
            "refuses-cleartext-control-plane",
            "127.0.0.1:0",
            &[
                "--token",
                "cleartext-secret-token",
                "--control-plane",
                "http://podium.example:8080",
            ],
            "clear text to control plane",
        ),
        (
            "refuses-client-cert-without-ca",
            "127.0.0.1:0",
            &[
                "--cp-client-cert",
                "/nonexistent.pem",
                "--cp-client-key",
                "/nonexistent.key",
            ],
            "need --cp-ca",
        ),
    ];
    for (name, listen, args, want) in cases {
        let mut opts = ctx.opts(name)?;
        opts.listen = listen.to_owned();
        opts.args = args.iter().map(|s| (*s).to_owned()).collect();
        match Agent::start(&opts).await {
            Ok(agent) => {
                report.check(name, false, format!("started: {}", agent.ready_line));
                stop_agent(agent, report).await;
            }
            Err(e) => {
                let msg = format!("{e:#}");
                let line = msg
                    .lines()
                    .find(|l| l.contains(want))
                    .unwrap_or(&msg)
                    .trim()
                    .chars()
                    .take(200)
                    .collect::<String>();
                report.check(name, msg.contains(want), format!("{args:?}: {line}"));
            }
        }
    }
    Ok(())
}

/// A secret in the agent's environment (a cloud credential, the token's variable) never
/// reaches a task: `env` run by the agent prints neither.
async fn task_env(ctx: &Ctx, report: &mut Report) -> Result<()> {
    const CLOUD: &str = "stress-cloud-secret-5b1e";
    const TOKEN: &str = "stress-token-secret-9c4d";
    let mut opts = ctx.opts("security-env")?;
    opts.env
        .push(("AWS_SECRET_ACCESS_KEY".to_owned(), CLOUD.to_owned()));
    opts.env
        .push(("SOLTI_AGENT_TOKEN".to_owned(), TOKEN.to_owned()));
    // The same value as the flag, so the stress client authenticates with it.
    opts.token = Some(TOKEN.to_owned());
    let agent = Agent::start(&opts).await?;
    let api = agent.api();
    let id = api
        .submit(&command_spec("env", "env", &[], Duration::from_secs(10)))
        .await
        .context("submit `env`")?;
    let phase = poll(Duration::from_secs(20), Duration::from_millis(50), || {
        let api = api.clone();
        let id = id.clone();
        async move {
            let t = api.task(&id).await.ok()?;
            let p = phase_of(&t);
            is_terminal(&p).then_some(p)
        }
    })
    .await;
    let logs = api
        .get(&format!("/api/v1/tasks/{id}/logs?tail=all&follow=false"))
        .await
        .context("read the task's retained output")?;
    let text = String::from_utf8_lossy(&logs.body).into_owned();
    let printed = text.contains("\"line\":\"PATH=");
    let leaked: Vec<&str> = [CLOUD, TOKEN]
        .into_iter()
        .filter(|s| text.contains(s))
        .collect();
    report.check(
        "task-env-has-no-agent-secrets",
        phase.as_deref() == Some("TASK_STATUS_SUCCEEDED") && printed && leaked.is_empty(),
        format!(
            "agent started with AWS_SECRET_ACCESS_KEY and SOLTI_AGENT_TOKEN set; task `env`: \
             phase {phase:?}, its output lists PATH: {printed}, secrets found in it: {leaked:?}"
        ),
    );
    stop_agent(agent, report).await;
    Ok(())
}
