//! `auth`: with `--token`, every route answers 401 JSON without or with a wrong token and
//! works with it; the token never shows up in the agent's output or in `/metrics`.

use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use hyper::Method;
use serde_json::json;

use super::{Ctx, command_spec, poll, stop_agent};
use crate::{
    agent::Agent,
    client::{Api, Resp, is_terminal, phase_of},
    report::Report,
    sse::SseItem,
};

pub(super) async fn run(ctx: &Ctx, report: &mut Report) -> Result<()> {
    refuses_non_loopback(ctx, report).await?;
    let token = format!("stress-{:016x}{:016x}", rand_u64(), rand_u64());
    let mut opts = ctx.opts("auth")?;
    opts.token = Some(token.clone());
    opts.args
        .extend(["--log-level".to_owned(), "debug".to_owned()]);
    let agent = Agent::start(&opts).await?;
    let good = agent.api();
    let body = Bytes::from(serde_json::to_vec(
        &json!({ "spec": command_spec("auth", "echo", &["hello"], Duration::from_secs(30)) }),
    )?);

    let routes: Vec<(Method, &str, Option<Bytes>)> = vec![
        (Method::POST, "/api/v1/tasks", Some(body.clone())),
        (Method::PUT, "/api/v1/tasks", Some(body.clone())),
        (Method::GET, "/api/v1/tasks", None),
        (Method::GET, "/api/v1/tasks/some-id", None),
        (Method::DELETE, "/api/v1/tasks/some-id", None),
        (Method::GET, "/api/v1/tasks/some-id/runs", None),
        (Method::GET, "/api/v1/tasks/some-id/logs", None),
        (Method::GET, "/nope", None),
        (Method::PATCH, "/api/v1/tasks", None),
        (Method::GET, "/api/v1/tasks/%FF", None),
    ];
    let wrong_headers: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("no token", vec![]),
        (
            "wrong token",
            vec![("authorization", "Bearer wrong-token".to_owned())],
        ),
        (
            "token prefix",
            vec![(
                "authorization",
                format!("Bearer {}", &token[..token.len() - 1]),
            )],
        ),
        (
            "token + suffix",
            vec![("authorization", format!("Bearer {token}x"))],
        ),
        ("no Bearer scheme", vec![("authorization", token.clone())]),
        (
            "Basic scheme",
            vec![("authorization", format!("Basic {token}"))],
        ),
    ];
    let anon = agent.api_without_token();
    let mut bad = Vec::new();
    let mut tried = 0;
    for (method, path, body) in &routes {
        for (what, headers) in &wrong_headers {
            let extra: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            tried += 1;
            match anon.send(method.clone(), path, body.clone(), &extra).await {
                Ok(r)
                    if r.status.as_u16() == 401
                        && r.error_label().as_deref() == Some("Unauthenticated")
                        && r.is_json_error() => {}
                Ok(r) => bad.push(format!("{method} {path} ({what}) -> {}", r.describe())),
                Err(e) => bad.push(format!("{method} {path} ({what}) -> {e:#}")),
            }
        }
    }
    report.check(
        "401-everywhere",
        bad.is_empty(),
        format!(
            "{}/{tried} unauthenticated requests answered 401 Unauthenticated JSON{}",
            tried - bad.len(),
            super::load::first_failures(&bad)
        ),
    );

    with_token(&good, report).await?;

    // The token must not leak: /metrics, then the captured output after shutdown.
    let metrics = match agent.startup.metrics {
        Some(addr) => {
            let r = Api::new(addr, None).get("/metrics").await?;
            Some((
                r.status.as_u16(),
                String::from_utf8_lossy(&r.body).into_owned(),
            ))
        }
        None => None,
    };
    match &metrics {
        Some((status, text)) => {
            report.check(
                "metrics-no-token",
                *status == 200 && !text.contains(&token),
                format!(
                    "/metrics -> {status}, {} bytes, token present: {}",
                    text.len(),
                    text.contains(&token)
                ),
            );
        }
        None => report.skip("metrics-no-token", "metrics are off"),
    }
    let sink = agent.output_sink();
    stop_agent(agent, report).await;
    let captured = sink
        .lock()
        .map(|o| String::from_utf8_lossy(&o).into_owned())
        .unwrap_or_default();
    report.check(
        "logs-no-token",
        !captured.contains(&token) && !captured.contains(&token[..16]),
        format!(
            "agent stdout+stderr at --log-level debug, through shutdown: {} lines ({} bytes), token present: {}",
            captured.lines().count(),
            captured.len(),
            captured.contains(&token)
        ),
    );
    Ok(())
}

/// Without auth, the agent must refuse to listen on a non-loopback address.
async fn refuses_non_loopback(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let mut opts = ctx.opts("auth-open")?;
    opts.listen = "0.0.0.0:0".to_owned();
    match Agent::start(&opts).await {
        Ok(agent) => {
            report.check(
                "refuses-non-loopback",
                false,
                format!("started without auth on 0.0.0.0: {}", agent.ready_line),
            );
            stop_agent(agent, report).await;
        }
        Err(e) => {
            let msg = format!("{e:#}");
            let ok = msg.contains("before its ready line") && msg.contains("refusing");
            let line = msg
                .lines()
                .find(|l| l.contains("refusing"))
                .unwrap_or(&msg)
                .trim()
                .chars()
                .take(240)
                .collect::<String>();
            let head = msg
                .lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(120)
                .collect::<String>();
            report.check(
                "refuses-non-loopback",
                ok,
                format!("--listen 0.0.0.0:0 without a token: {head} / {line}"),
            );
        }
    }
    Ok(())
}

async fn with_token(api: &Api, report: &mut Report) -> Result<()> {
    let mut problems = Vec::new();
    let list = api.get("/api/v1/tasks").await?;
    expect(&mut problems, "GET /api/v1/tasks", &list, 200);
    let sub = api
        .conn()
        .await?
        .send_json(
            Method::POST,
            "/api/v1/tasks",
            &json!({ "spec": command_spec("auth-ok", "sleep", &["1"], Duration::from_secs(30)) }),
        )
        .await?;
    expect(&mut problems, "POST /api/v1/tasks", &sub, 201);
    let id = crate::client::task_id_of(&sub).context("submit with the token")?;
    let mut stream = api.logs(&id).await?;
    let mut events = 0;
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(item)) = stream.next().await {
            if matches!(item, SseItem::Event { .. }) {
                events += 1;
            }
        }
    })
    .await
    .is_ok();
    if !ended {
        problems.push("GET logs: stream did not end within 20 s".to_owned());
    }
    let done = poll(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            api.task(&id)
                .await
                .ok()
                .filter(|t| is_terminal(&phase_of(t)))
        },
    )
    .await;
    if done.is_none() {
        problems.push("task never terminal".to_owned());
    }
    let get = api.get(&format!("/api/v1/tasks/{id}")).await?;
    expect(&mut problems, "GET task", &get, 200);
    let runs = api.get(&format!("/api/v1/tasks/{id}/runs")).await?;
    expect(&mut problems, "GET runs", &runs, 200);
    let unknown = api.get("/nope").await?;
    expect(&mut problems, "GET /nope", &unknown, 404);
    let del = api
        .send(Method::DELETE, &format!("/api/v1/tasks/{id}"), None, &[])
        .await?;
    expect(&mut problems, "DELETE task", &del, 204);
    report.check(
        "with-token",
        problems.is_empty(),
        format!("with the token: list 200, submit 201, logs stream ({events} events, ended), get, runs, delete{}", super::load::first_failures(&problems)),
    );
    Ok(())
}

fn expect(problems: &mut Vec<String>, what: &str, res: &Resp, status: u16) {
    if res.status.as_u16() != status {
        problems.push(format!("{what} -> {} (expected {status})", res.describe()));
    }
}

/// A random 64-bit value from the OS (via the std hasher's random keys).
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    h.finish()
}
