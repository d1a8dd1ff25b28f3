//! End-to-end output history (wire contract §5) against the real `agentd-http` binary:
//! `?tail=all&follow=false` of a finished task, resume with `Last-Event-ID`, a reader that
//! stops reading, and bad parameters.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::{path::Path, time::Duration};

use agentd_kit::testing::AgentProcess;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn start(name: &str, extra: &[&str]) -> AgentProcess {
    let dir = std::env::temp_dir().join(format!("agentd-http-logs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    AgentProcess::start(Path::new(env!("CARGO_BIN_EXE_agentd-http")), &dir, extra).unwrap()
}

fn sh_task(slot: &str, script: &str) -> Value {
    json!({"spec": {
        "slot": slot,
        "kind": {"subprocess": {"command": {"command": "sh", "args": ["-c", script]}}},
        "timeoutMs": "120000",
        "restart": "RESTART_STRATEGY_NEVER",
        "admission": "ADMISSION_STRATEGY_REPLACE"
    }})
}

async fn submit(client: &reqwest::Client, base: &str, body: &Value) -> String {
    let resp = client
        .post(format!("{base}/api/v1/tasks"))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    v["taskId"].as_str().unwrap().to_owned()
}

/// Polls the task until it is terminal (bounded; the poll interval is not a timing
/// assertion) and returns its phase.
async fn wait_terminal(client: &reqwest::Client, base: &str, id: &str) -> String {
    let poll = async {
        loop {
            let task: Value = client
                .get(format!("{base}/api/v1/tasks/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let phase = task["task"]["status"]["phase"].as_str().unwrap().to_owned();
            if !matches!(
                phase.as_str(),
                "TASK_STATUS_PENDING" | "TASK_STATUS_RUNNING"
            ) {
                return phase;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), poll)
        .await
        .expect("the task ends")
}

/// One SSE event: its id, name and data.
#[derive(Debug, Clone, PartialEq)]
struct Event {
    id: u64,
    name: String,
    data: Value,
}

/// Parses complete SSE events out of `buf`, leaving a partial one in it.
fn parse(buf: &mut String) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(end) = buf.find("\n\n") {
        let block: String = buf.drain(..end + 2).collect();
        let mut id = None;
        let mut name = None;
        let mut data = None;
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.parse().unwrap());
            } else if let Some(v) = line.strip_prefix("event: ") {
                name = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str(v).unwrap());
            }
        }
        if let (Some(id), Some(name), Some(data)) = (id, name, data) {
            out.push(Event { id, name, data });
        }
    }
    out
}

/// GETs the log stream and reads it to its end.
async fn read_all(
    client: &reqwest::Client,
    url: &str,
    last_event_id: Option<u64>,
) -> (u16, Vec<Event>, String) {
    let mut req = client.get(url);
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id.to_string());
    }
    let mut resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let mut buf = String::new();
    let mut events = Vec::new();
    let read = async {
        while let Some(chunk) = resp.chunk().await.unwrap() {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            events.extend(parse(&mut buf));
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("log stream ends");
    (status, events, buf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_task_is_readable_with_tail_all() {
    let agent = start("hello", &[]);
    let base = format!("http://{}", agent.api_addr());
    let client = reqwest::Client::new();
    let id = submit(&client, &base, &sh_task("hello", "echo hello")).await;
    assert_eq!(
        wait_terminal(&client, &base, &id).await,
        "TASK_STATUS_SUCCEEDED"
    );
    let url = format!("{base}/api/v1/tasks/{id}/logs?tail=all&follow=false");
    let (status, events, _) = read_all(&client, &url, None).await;
    assert_eq!(status, 200);
    let names: Vec<_> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["run-started", "chunk", "run-finished"],
        "{events:?}"
    );
    assert_eq!(events[1].data["line"], "hello");
    assert_eq!(events[2].data["exitCode"], 0);
    let ids: Vec<_> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids, [0, 1, 2]);
    // The same again (nothing is consumed), and the last line alone.
    let (_, again, _) = read_all(&client, &url, None).await;
    assert_eq!(again, events);
    let (_, last, _) = read_all(
        &client,
        &format!("{base}/api/v1/tasks/{id}/logs?tail=1&follow=false"),
        None,
    )
    .await;
    assert_eq!(last, events[1..]);
    // Deleted: gone.
    client
        .delete(format!("{base}/api/v1/tasks/{id}"))
        .send()
        .await
        .unwrap();
    let (status, _, _) = read_all(&client, &url, None).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_last_event_id_gives_every_later_line_exactly_once() {
    let agent = start("resume", &[]);
    let base = format!("http://{}", agent.api_addr());
    let client = reqwest::Client::new();
    let dir = tempfile_dir("resume");
    let go = dir.join("go");
    let script = format!(
        "seq 1 500; while [ ! -f {go} ]; do sleep 0.01; done; seq 501 1000",
        go = go.display()
    );
    let id = submit(&client, &base, &sh_task("resume", &script)).await;

    // Read the live stream from the start until line 500, then hang up.
    let mut resp = client
        .get(format!("{base}/api/v1/tasks/{id}/logs?tail=all"))
        .send()
        .await
        .unwrap();
    let mut buf = String::new();
    let mut first = Vec::new();
    let read = async {
        while !first
            .iter()
            .any(|e: &Event| e.name == "chunk" && e.data["line"] == "500")
        {
            let chunk = resp.chunk().await.unwrap().expect("stream open");
            buf.push_str(&String::from_utf8_lossy(&chunk));
            first.extend(parse(&mut buf));
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .unwrap();
    drop(resp);
    let last = first.last().unwrap().clone();
    assert_eq!(last.data["line"], "500");
    assert_eq!(last.id, 500, "run-started is 0, line N is N");

    std::fs::write(&go, b"").unwrap();
    let (status, rest, _) = read_all(
        &client,
        &format!("{base}/api/v1/tasks/{id}/logs?tail=all"),
        Some(last.id),
    )
    .await;
    assert_eq!(status, 200);
    assert!(rest.iter().all(|e| e.name != "lagged"), "{rest:?}");
    let lines: Vec<_> = rest
        .iter()
        .filter(|e| e.name == "chunk")
        .map(|e| e.data["line"].as_str().unwrap().parse::<u32>().unwrap())
        .collect();
    assert_eq!(lines, (501..=1000).collect::<Vec<_>>());
    let ids: Vec<_> = rest.iter().map(|e| e.id).collect();
    assert_eq!(ids, (501..=1001).collect::<Vec<_>>());
    assert_eq!(rest.last().unwrap().name, "run-finished");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_does_not_hold_the_task_and_learns_the_exact_loss() {
    const LINES: u64 = 1_000_000;
    let agent = start("stalled", &[]);
    let addr = agent.api_addr();
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    let dir = tempfile_dir("stalled");
    let go = dir.join("go");
    let script = format!(
        "while [ ! -f {go} ]; do sleep 0.01; done; exec seq 1 {LINES}",
        go = go.display()
    );
    let id = submit(&client, &base, &sh_task("stalled", &script)).await;

    // A raw HTTP/1.1 reader that subscribes from the start, then stops reading.
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    sock.write_all(
        format!("GET /api/v1/tasks/{id}/logs?tail=all HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    let mut chunk = vec![0u8; 4096];
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        raw.extend_from_slice(&chunk[..n]);
    }
    assert!(raw.starts_with(b"HTTP/1.1 200"));

    // The task prints a million lines while nobody reads, and ends.
    std::fs::write(&go, b"").unwrap();
    assert_eq!(
        wait_terminal(&client, &base, &id).await,
        "TASK_STATUS_SUCCEEDED"
    );

    // Now read everything: what was sent before the stall, one `lagged` with the exact
    // number missed, then the retained rest. Every offset is accounted for exactly once.
    let read = async {
        loop {
            let n = sock.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&chunk[..n]);
            if raw.ends_with(b"\r\n0\r\n\r\n") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("the stream ends");
    let body = dechunk(&raw);
    let mut text = String::from_utf8(body).unwrap();
    let events = parse(&mut text);
    let total = LINES + 2; // run-started, the lines, run-finished
    let mut next = 0u64;
    let mut lagged = Vec::new();
    for e in &events {
        if e.name == "lagged" {
            let skipped = e.data["skipped"].as_u64().unwrap();
            assert_eq!(e.id, next + skipped - 1, "lagged id = last missed offset");
            lagged.push(skipped);
            next += skipped;
        } else {
            assert_eq!(e.id, next, "no gap and no duplicate");
            next += 1;
        }
    }
    assert_eq!(next, total, "every event received or counted as missed");
    assert_eq!(lagged.len(), 1, "{lagged:?}");
    assert!(lagged[0] > 0);
    assert_eq!(events.last().unwrap().name, "run-finished");
    assert_eq!(
        events
            .iter()
            .rev()
            .find(|e| e.name == "chunk")
            .unwrap()
            .data["line"],
        LINES.to_string()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_refused_by_name() {
    let agent = start("bad", &[]);
    let base = format!("http://{}", agent.api_addr());
    let client = reqwest::Client::new();
    let id = submit(&client, &base, &sh_task("bad", "echo one")).await;
    wait_terminal(&client, &base, &id).await;
    for (query, last, name) in [
        ("?tail=-1", None, "tail"),
        ("?tail=x", None, "tail"),
        ("?since=abc", None, "since"),
        ("?follow=later", None, "follow"),
        ("", Some("3"), "Last-Event-ID"),
        ("", Some("nope"), "Last-Event-ID"),
    ] {
        let mut req = client.get(format!("{base}/api/v1/tasks/{id}/logs{query}"));
        if let Some(last) = last {
            req = req.header("Last-Event-ID", last);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 400, "{query} {last:?}");
        let body: Value = resp.json().await.unwrap();
        let message = body["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("{name}: ")), "{message}");
    }
    // `since` in the past: everything retained; in the future: nothing retained.
    let (_, events, _) = read_all(
        &client,
        &format!("{base}/api/v1/tasks/{id}/logs?since=0&follow=false"),
        None,
    )
    .await;
    assert_eq!(events.len(), 3);
    let (_, events, _) = read_all(
        &client,
        &format!("{base}/api/v1/tasks/{id}/logs?since=99999999999999&follow=false"),
        None,
    )
    .await;
    assert!(events.is_empty());
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "agentd-http-logs-files-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The body of a chunked HTTP/1.1 response (`raw` holds the whole response).
fn dechunk(raw: &[u8]) -> Vec<u8> {
    let start = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut rest = &raw[start..];
    let mut body = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap(), 16).unwrap();
        rest = &rest[eol + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}
