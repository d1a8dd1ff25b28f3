//! `bad-input`: header and path abuse, hostile specs, oversized and deeply nested bodies,
//! wrong content types and slowloris clients. After each, the agent must still answer.

use std::time::{Duration, Instant};

use anyhow::Result;
use base64::Engine as _;
use bytes::Bytes;
use hyper::Method;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    task::JoinSet,
};

use super::{Ctx, command_spec, stop_agent};
use crate::{
    agent::Agent,
    client::Resp,
    raw::{RawOutcome, exchange},
    report::{Report, latency_summary},
};

const RAW_WAIT: Duration = Duration::from_secs(15);

/// Counts the abuses and records a failure whenever the agent stops answering.
struct Survival {
    abuses: usize,
    failures: Vec<String>,
}

impl Survival {
    async fn after(&mut self, agent: &mut Agent, what: &str) {
        self.abuses += 1;
        let alive = agent.is_running();
        let res = agent.api().get("/api/v1/tasks?limit=1").await;
        if !alive || !res.as_ref().is_ok_and(|r| r.status.as_u16() == 200) {
            let got = res.map_or_else(|e| format!("{e:#}"), |r| r.describe());
            self.failures.push(format!(
                "after {what}: alive={alive}, GET /api/v1/tasks -> {got}"
            ));
        }
    }
}

pub(super) async fn run(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let mut agent = ctx.agent("bad-input").await?;
    let addr = agent.startup.api;
    let api = agent.api();
    let mut s = Survival {
        abuses: 0,
        failures: Vec::new(),
    };

    // Slowloris runs in the background while everything else is tried.
    let slow_count = ctx.size(20, 200);
    let slow_bound = Duration::from_secs(45);
    let mut slowloris = JoinSet::new();
    for _ in 0..slow_count {
        slowloris.spawn(slow_client(addr, slow_bound));
    }
    let slow_started = Instant::now();

    // Huge header.
    let big = "a".repeat(100 * 1024);
    let req = format!("GET /api/v1/tasks HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\n\r\n")
        .into_bytes();
    let out = exchange(addr, req, RAW_WAIT).await;
    let ok = out
        .as_ref()
        .is_ok_and(|o| matches!(o.status(), Some(431) | None));
    report.check(
        "huge-header-100kib",
        ok,
        format!("100 KiB header -> {}", describe(&out)),
    );
    s.after(&mut agent, "huge header").await;
    let huge = "a".repeat(1024 * 1024);
    let out = exchange(
        addr,
        format!("GET /api/v1/tasks HTTP/1.1\r\nHost: localhost\r\nX-Big: {huge}\r\n\r\n")
            .into_bytes(),
        RAW_WAIT,
    )
    .await;
    let ok = out
        .as_ref()
        .is_ok_and(|o| matches!(o.status(), Some(431 | 400) | None));
    report.check(
        "huge-header-1mib",
        ok,
        format!("1 MiB header -> {}", describe(&out)),
    );
    s.after(&mut agent, "1 MiB header").await;
    let many: String = (0..2000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let out = exchange(
        addr,
        format!("GET /api/v1/tasks HTTP/1.1\r\nHost: localhost\r\n{many}\r\n").into_bytes(),
        RAW_WAIT,
    )
    .await;
    let ok = out
        .as_ref()
        .is_ok_and(|o| matches!(o.status(), Some(431 | 400) | None));
    report.check(
        "many-headers",
        ok,
        format!("2000 headers -> {}", describe(&out)),
    );
    s.after(&mut agent, "2000 headers").await;

    // Ids: bad UTF-8 (percent-encoded and raw) and dot-dot.
    for path in [
        "/api/v1/tasks/%FF%FE",
        "/api/v1/tasks/%FF%FE/runs",
        "/api/v1/tasks/%FF%FE/logs",
        "/api/v1/tasks/%C0%AE%C0%AE",
        "/api/v1/tasks/..",
        "/api/v1/tasks/%2e%2e",
        "/api/v1/tasks/%2E%2E/runs",
        "/api/v1/tasks/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/tasks/../../etc/passwd",
        "/api/v1/tasks/a%00b",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .into_bytes();
        let out = exchange(addr, req, RAW_WAIT).await;
        let ok = out
            .as_ref()
            .is_ok_and(|o| matches!(o.status(), Some(400 | 404)) && o.is_json_error());
        report.check("bad-id", ok, format!("GET {path} -> {}", describe(&out)));
        s.after(&mut agent, path).await;
    }
    let mut req =
        b"GET /api/v1/tasks/\xff\xfe\xfd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            .to_vec();
    let out = exchange(addr, req.clone(), RAW_WAIT).await;
    let ok = out
        .as_ref()
        .is_ok_and(|o| matches!(o.status(), Some(400 | 404) | None));
    let json_note = if out.as_ref().is_ok_and(RawOutcome::is_json_error) {
        "JSON body"
    } else {
        "no JSON body: rejected by hyper's request-line parser before routing"
    };
    report.check(
        "bad-id-raw-bytes",
        ok,
        format!(
            "GET /api/v1/tasks/<FF FE FD raw> -> {} ({json_note})",
            describe(&out)
        ),
    );
    s.after(&mut agent, "raw non-UTF-8 path").await;
    req.clear();
    let del = api
        .send(Method::DELETE, "/api/v1/tasks/%FF", None, &[])
        .await?;
    report.check(
        "bad-id-delete",
        del.status.as_u16() == 400 && del.is_json_error(),
        format!("DELETE /api/v1/tasks/%FF -> {}", del.describe()),
    );

    // Hostile specs: each must be a 400 naming the field.
    let b64 = base64::engine::general_purpose::STANDARD.encode("echo hi\n");
    let mut cwd = command_spec("bad-cwd", "true", &[], Duration::from_secs(10));
    cwd["kind"]["subprocess"]["cwd"] = json!("/tmp/../etc");
    let custom = json!({
        "slot": "bad-runtime",
        "kind": { "subprocess": { "script": { "custom": { "command": "../../bin/sh", "flag": "-c" }, "body": b64 } } },
        "timeoutMs": "10000",
        "restart": "RESTART_STRATEGY_NEVER",
        "admission": "ADMISSION_STRATEGY_DROP_IF_RUNNING",
    });
    let custom_mid = json!({
        "slot": "bad-runtime2",
        "kind": { "subprocess": { "script": { "custom": { "command": "/usr/../bin/sh", "flag": "" }, "body": b64 } } },
        "timeoutMs": "10000",
        "restart": "RESTART_STRATEGY_NEVER",
        "admission": "ADMISSION_STRATEGY_DROP_IF_RUNNING",
    });
    let mut env = command_spec("bad-env", "true", &[], Duration::from_secs(10));
    env["kind"]["subprocess"]["env"] = Value::Array(
        (0..10_000)
            .map(|i| json!({ "key": format!("K{i}"), "value": "v" }))
            .collect(),
    );
    let long_slot = command_spec(&"s".repeat(65), "true", &[], Duration::from_secs(10));
    for (what, spec, field) in [
        ("cwd /tmp/../etc", cwd, "cwd"),
        ("custom runtime ../../bin/sh", custom, "custom"),
        ("custom runtime /usr/../bin/sh", custom_mid, "custom"),
        ("10,000 env entries", env, "env"),
        ("65-char slot", long_slot, "slot"),
    ] {
        let res = api
            .conn()
            .await?
            .send_json(Method::POST, "/api/v1/tasks", &json!({ "spec": spec }))
            .await?;
        let ok = res.status.as_u16() == 400
            && res.is_json_error()
            && res.error_message().contains(field);
        report.check(
            "hostile-spec",
            ok,
            format!(
                "{what} -> {} (must be 400 naming `{field}`)",
                res.describe()
            ),
        );
        s.after(&mut agent, what).await;
    }

    // Deeply nested JSON.
    let depth = 10_000;
    let arrays = format!("{{\"spec\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
    let unknown = format!("{{\"x\":{}1{}}}", "[".repeat(depth), "]".repeat(depth));
    let objects = format!(
        "{{\"spec\":{{\"labels\":{}1{}}}}}",
        "{\"a\":".repeat(depth),
        "}".repeat(depth)
    );
    for (what, body) in [
        ("10,000 nested arrays in spec", arrays),
        ("10,000 nested arrays in an unknown field", unknown),
        ("10,000 nested objects in labels", objects),
    ] {
        let res = post_raw(&agent, Bytes::from(body), "application/json").await?;
        report.check(
            "nested-json",
            res.status.as_u16() == 400 && res.is_json_error(),
            format!("{what} -> {}", res.describe()),
        );
        s.after(&mut agent, what).await;
    }
    let res = post_raw(
        &agent,
        Bytes::from_static(b"{\"spec\": "),
        "application/json",
    )
    .await?;
    report.check(
        "truncated-json",
        res.status.as_u16() == 400 && res.is_json_error(),
        format!("truncated JSON -> {}", res.describe()),
    );

    // Oversized bodies: with Content-Length and chunked.
    let size = 4 * 1024 * 1024 + 1;
    let mut req = format!("POST /api/v1/tasks HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n").into_bytes();
    req.extend(std::iter::repeat_n(b' ', size));
    let out = exchange(addr, req, RAW_WAIT).await;
    let ok = out
        .as_ref()
        .is_ok_and(|o| o.status() == Some(413) && o.is_json_error());
    report.check(
        "body-over-4mib",
        ok,
        format!("Content-Length 4 MiB + 1 -> {}", describe(&out)),
    );
    s.after(&mut agent, "4 MiB + 1 body").await;
    let mut req = b"POST /api/v1/tasks HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..65 {
        req.extend(format!("{:x}\r\n", chunk.len()).into_bytes());
        req.extend(&chunk);
        req.extend(b"\r\n");
    }
    req.extend(b"0\r\n\r\n");
    let out = exchange(addr, req, RAW_WAIT).await;
    let ok = out
        .as_ref()
        .is_ok_and(|o| o.status() == Some(413) && o.is_json_error());
    report.check(
        "chunked-over-4mib",
        ok,
        format!("chunked 4.06 MiB -> {}", describe(&out)),
    );
    s.after(&mut agent, "chunked 4 MiB + body").await;

    // Content types.
    let valid = serde_json::to_vec(
        &json!({ "spec": command_spec("ct", "true", &[], Duration::from_secs(10)) }),
    )?;
    for ct in ["text/plain", "application/x-www-form-urlencoded"] {
        let res = post_raw(&agent, Bytes::from(valid.clone()), ct).await?;
        let ok = res.status.as_u16() == 415
            && res.is_json_error()
            && res.error_message().contains("Content-Type");
        report.check(
            "wrong-content-type",
            ok,
            format!("Content-Type: {ct} -> {}", res.describe()),
        );
    }
    let res = api.send(Method::PATCH, "/api/v1/tasks", None, &[]).await?;
    report.check(
        "wrong-method",
        res.status.as_u16() == 405 && res.is_json_error(),
        format!("PATCH /api/v1/tasks -> {}", res.describe()),
    );
    let res = api.get("/api/v2/nothing").await?;
    report.check(
        "unknown-route",
        res.status.as_u16() == 404 && res.is_json_error(),
        format!("GET /api/v2/nothing -> {}", res.describe()),
    );
    for q in ["limit=5000", "status=done", "offset=-1", "slot=..%2F"] {
        let res = api.get(&format!("/api/v1/tasks?{q}")).await?;
        report.check(
            "bad-query",
            res.status.as_u16() == 400 && res.is_json_error(),
            format!("GET /api/v1/tasks?{q} -> {}", res.describe()),
        );
    }
    s.after(&mut agent, "bad queries").await;

    super::fuzz::run(&api, report, ctx.size(2_000, 20_000)).await?;
    s.after(&mut agent, "fuzzed submits").await;

    // Slowloris: every slow client cut off, the agent served others meanwhile.
    let mut latencies = Vec::new();
    let mut cut = Vec::new();
    let mut open = 0;
    while !slowloris.is_empty() && slow_started.elapsed() < slow_bound + Duration::from_secs(5) {
        let t = Instant::now();
        if api
            .get("/api/v1/tasks?limit=1")
            .await
            .is_ok_and(|r| r.status.as_u16() == 200)
        {
            latencies.push(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        while let Some(j) = slowloris.try_join_next() {
            match j? {
                Some(d) => cut.push(d),
                None => open += 1,
            }
        }
    }
    open += slowloris.len();
    slowloris.abort_all();
    cut.sort_unstable();
    report.check(
        "slowloris",
        open == 0,
        format!(
            "{slow_count} clients sending one header byte per second: {} cut off (after {:.0}s..{:.0}s), {open} still open at {}s; \
             meanwhile GET /api/v1/tasks {}",
            cut.len(),
            cut.first().map_or(0.0, Duration::as_secs_f64),
            cut.last().map_or(0.0, Duration::as_secs_f64),
            slow_bound.as_secs(),
            latency_summary(&mut latencies)
        ),
    );
    s.after(&mut agent, "slowloris").await;

    let failures = std::mem::take(&mut s.failures);
    report.check(
        "still-serving",
        failures.is_empty(),
        format!(
            "agent alive and answering GET /api/v1/tasks after {} abuses{}",
            s.abuses,
            super::load::first_failures(&failures)
        ),
    );
    stop_agent(agent, report).await;
    Ok(())
}

fn describe(out: &Result<RawOutcome>) -> String {
    out.as_ref()
        .map_or_else(|e| format!("error: {e:#}"), RawOutcome::describe)
}

async fn post_raw(agent: &Agent, body: Bytes, content_type: &str) -> Result<Resp> {
    agent
        .api()
        .send(
            Method::POST,
            "/api/v1/tasks",
            Some(body),
            &[("content-type", content_type)],
        )
        .await
}

/// A client that sends a request's headers one byte per second. Returns when the server
/// cut it off (`Some(after)`) or `None` when it was still open after `bound`.
async fn slow_client(addr: std::net::SocketAddr, bound: Duration) -> Option<Duration> {
    let started = Instant::now();
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return Some(Duration::ZERO);
    };
    if stream
        .write_all(b"GET /api/v1/tasks HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .is_err()
    {
        return Some(started.elapsed());
    }
    let mut buf = [0u8; 1024];
    while started.elapsed() < bound {
        tokio::select! {
            r = stream.read(&mut buf) => {
                // A response (408/400) or EOF: either way the server ended this client.
                let _ = r;
                return Some(started.elapsed());
            }
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                if stream.write_all(b"a").await.is_err() {
                    return Some(started.elapsed());
                }
            }
        }
    }
    None
}
