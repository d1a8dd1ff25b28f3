//! The SSE log stream: exact format, retries, lagged, keep-alive, disconnects.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use axum::http::StatusCode;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use serde_json::json;
use solti_api::{HttpApi, serve_http};
use solti_model::{OutputEvent, OutputStream};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tower::ServiceExt as _;

use crate::harness::{FakeHandler, adapter, call, eventually, request};

/// A script whose first attempt waits for `$D/go`, prints two lines and fails; the second
/// attempt prints the same two lines and succeeds.
pub(crate) fn two_attempt_spec(dir: &std::path::Path) -> serde_json::Value {
    let d = dir.display();
    let script = format!(
        "if [ -f {d}/second ]; then echo one; echo two; exit 0; fi; touch {d}/second; \
         while [ ! -f {d}/go ]; do sleep 0.01; done; echo one; echo two; exit 1"
    );
    json!({
        "slot": "sse",
        "kind": { "subprocess": { "command": { "command": "sh", "args": ["-c", script] }, "failOnNonZero": true } },
        "timeoutMs": 20000,
        "restart": "RESTART_STRATEGY_ON_FAILURE",
        "admission": "ADMISSION_STRATEGY_DROP_IF_RUNNING",
        "backoff": { "jitter": "JITTER_STRATEGY_NONE", "firstMs": 1, "maxMs": 1, "factor": 1 }
    })
}

#[tokio::test]
async fn sse_exact_format_across_two_attempts() {
    let (_sup, handler) = adapter().await;
    let app = HttpApi::new(handler).router();
    let dir = tempfile::tempdir().unwrap();
    let body = json!({ "spec": two_attempt_spec(dir.path()) }).to_string();
    let (status, res) = call(&app, "POST", "/api/v1/tasks", Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{res}");
    let id = res["taskId"].as_str().unwrap().to_owned();
    // Subscribe once attempt 1 is inside its wait, so its RunStarted is already behind us.
    let marker = dir.path().join("second");
    assert!(
        eventually(|| marker.exists()).await,
        "attempt 1 did not start"
    );

    let res = app
        .clone()
        .oneshot(request(
            "GET",
            &format!("/api/v1/tasks/{id}/logs"),
            None,
            None,
        ))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    std::fs::write(dir.path().join("go"), b"").unwrap();
    let bytes = tokio::time::timeout(Duration::from_secs(20), res.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();

    let mut blocks: Vec<&str> = text.split("\n\n").filter(|b| !b.is_empty()).collect();
    // A subscriber that joins a running attempt may be told of that attempt's start first.
    if blocks
        .first()
        .is_some_and(|b| b.starts_with("event: run-started") && b.contains(r#""attempt":1,"#))
    {
        blocks.remove(0);
    }
    let expect: [(&str, &str, &str); 7] = [
        (
            "chunk",
            r#"{"type":"chunk","attempt":1,"stream":"stdout","seq":0,"ts":"#,
            r#","line":"one"}"#,
        ),
        (
            "chunk",
            r#"{"type":"chunk","attempt":1,"stream":"stdout","seq":1,"ts":"#,
            r#","line":"two"}"#,
        ),
        (
            "run-finished",
            r#"{"type":"runFinished","attempt":1,"exitCode":1,"finishedAt":"#,
            "}",
        ),
        (
            "run-started",
            r#"{"type":"runStarted","attempt":2,"startedAt":"#,
            "}",
        ),
        (
            "chunk",
            r#"{"type":"chunk","attempt":2,"stream":"stdout","seq":0,"ts":"#,
            r#","line":"one"}"#,
        ),
        (
            "chunk",
            r#"{"type":"chunk","attempt":2,"stream":"stdout","seq":1,"ts":"#,
            r#","line":"two"}"#,
        ),
        (
            "run-finished",
            r#"{"type":"runFinished","attempt":2,"exitCode":0,"finishedAt":"#,
            "}",
        ),
    ];
    assert_eq!(blocks.len(), expect.len(), "{text}");
    let mut last_id = None;
    for (block, (event, start, end)) in blocks.iter().zip(expect) {
        let mut fields = block.split('\n');
        let name = fields.next().unwrap();
        assert_eq!(name, format!("event: {event}"), "{text}");
        // Every event carries its offset; they are consecutive.
        let id: u64 = fields
            .next()
            .unwrap()
            .strip_prefix("id: ")
            .unwrap()
            .parse()
            .unwrap();
        if let Some(last) = last_id {
            assert_eq!(id, last + 1, "{text}");
        }
        last_id = Some(id);
        let data = fields.next().unwrap();
        let data = data.strip_prefix("data: ").unwrap();
        assert!(
            data.starts_with(start) && data.ends_with(end),
            "{data} vs {start}…{end}"
        );
        let middle = &data[start.len()..data.len() - end.len()];
        assert!(middle.parse::<i64>().unwrap() > 1_700_000_000_000, "{data}");
    }
}

#[tokio::test]
async fn lagged_and_lossy_lines_pinned() {
    let fake = Arc::new(FakeHandler::default());
    fake.end_stream.store(true, Ordering::SeqCst);
    *fake.events.lock().unwrap() = vec![
        OutputEvent::RunStarted {
            attempt: 1,
            started_at: 1_712_750_400_000,
        },
        OutputEvent::Chunk {
            attempt: 1,
            stream: OutputStream::Stderr,
            seq: 0,
            ts: 1_712_750_400_123,
            line: Bytes::from_static(b"bad \xff \"q\"\tx"),
        },
        OutputEvent::Lagged { skipped: 42 },
        OutputEvent::RunFinished {
            attempt: 1,
            exit_code: None,
            finished_at: 1_712_750_400_456,
        },
    ];
    let app = HttpApi::new(fake).router();
    let res = app
        .oneshot(request("GET", "/api/v1/tasks/tsk_1/logs", None, None))
        .await
        .unwrap();
    let text =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert_eq!(
        text,
        "event: run-started\nid: 0\ndata: {\"type\":\"runStarted\",\"attempt\":1,\"startedAt\":1712750400000}\n\n\
         event: chunk\nid: 1\ndata: {\"type\":\"chunk\",\"attempt\":1,\"stream\":\"stderr\",\"seq\":0,\"ts\":1712750400123,\"line\":\"bad \u{fffd} \\\"q\\\"\\tx\"}\n\n\
         event: lagged\nid: 2\ndata: {\"type\":\"lagged\",\"skipped\":42}\n\n\
         event: run-finished\nid: 3\ndata: {\"type\":\"runFinished\",\"attempt\":1,\"finishedAt\":1712750400456}\n\n"
    );
}

#[tokio::test(start_paused = true)]
async fn keep_alive_comment_every_15s() {
    let fake = Arc::new(FakeHandler::default());
    let app = HttpApi::new(Arc::clone(&fake)).router();
    let res = app
        .oneshot(request("GET", "/api/v1/tasks/tsk_1/logs", None, None))
        .await
        .unwrap();
    let mut body = res.into_body();
    let started = tokio::time::Instant::now();
    let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&frame[..], b": keep-alive\n\n");
    assert_eq!(started.elapsed(), Duration::from_secs(15));
    drop(body);
    assert!(
        fake.dropped.load(Ordering::SeqCst),
        "dropping the body drops the subscription"
    );
}

#[tokio::test]
async fn a_disconnecting_client_frees_its_subscription() {
    let fake = Arc::new(FakeHandler::default());
    let app = HttpApi::new(Arc::clone(&fake)).router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_http(listener, app, async move {
        let _ = stopped.await;
    }));

    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(b"GET /api/v1/tasks/tsk_1/logs HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = sock.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200 OK"));
    assert!(!fake.dropped.load(Ordering::SeqCst));
    drop(sock);
    assert!(
        eventually(|| fake.dropped.load(Ordering::SeqCst)).await,
        "subscription kept after disconnect"
    );

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// A reader that does not read while the task prints loses nothing the window retains
/// (3000 short lines fit the default 1 MiB), and the task ends regardless.
#[tokio::test]
async fn a_reader_that_does_not_read_gets_everything_retained_afterwards() {
    let (sup, handler) = adapter().await;
    let app = HttpApi::new(handler).router();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let script =
        format!("touch {d}/started; while [ ! -f {d}/go ]; do sleep 0.01; done; seq 1 3000");
    let body = json!({ "spec": {
        "slot": "chatty",
        "kind": { "subprocess": { "command": { "command": "sh", "args": ["-c", script] } } },
        "timeoutMs": 20000,
        "restart": "RESTART_STRATEGY_NEVER", "admission": "ADMISSION_STRATEGY_DROP_IF_RUNNING"
    }})
    .to_string();
    let (_, res) = call(&app, "POST", "/api/v1/tasks", Some(&body)).await;
    let id = res["taskId"].as_str().unwrap().to_owned();
    let started = dir.path().join("started");
    assert!(eventually(|| started.exists()).await);

    // Subscribe, then do not read while the task prints 3000 lines.
    let slow = app
        .clone()
        .oneshot(request(
            "GET",
            &format!("/api/v1/tasks/{id}/logs"),
            None,
            None,
        ))
        .await
        .unwrap();
    std::fs::write(dir.path().join("go"), b"").unwrap();
    crate::harness::wait_terminal(&sup, &id).await;
    let (status, _) = call(&app, "GET", "/api/v1/tasks?slot=chatty", None).await;
    assert_eq!(status, StatusCode::OK);

    let text = String::from_utf8(
        slow.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(!text.contains("event: lagged"), "{text}");
    assert_eq!(text.matches("event: chunk").count(), 3000);
    assert!(text.contains("\"line\":\"3000\""));
    assert!(text.contains("event: run-finished"), "{text}");
}

/// `?tail`, `?follow=false`, `Last-Event-ID` and bad values, through the real adapter.
#[tokio::test]
async fn history_tail_resume_and_bad_parameters() {
    let (sup, handler) = adapter().await;
    let app = HttpApi::new(handler).router();
    let body = json!({ "spec": {
        "slot": "hist",
        "kind": { "subprocess": { "command": { "command": "seq", "args": ["1", "5"] } } },
        "timeoutMs": 20000,
        "restart": "RESTART_STRATEGY_NEVER",
        "admission": "ADMISSION_STRATEGY_DROP_IF_RUNNING"
    }})
    .to_string();
    let (_, res) = call(&app, "POST", "/api/v1/tasks", Some(&body)).await;
    let id = res["taskId"].as_str().unwrap().to_owned();
    crate::harness::wait_terminal(&sup, &id).await;
    let get = |uri: String, last: Option<&'static str>| {
        let app = app.clone();
        async move {
            let mut req = request("GET", &uri, None, None);
            if let Some(last) = last {
                req.headers_mut()
                    .insert("last-event-id", last.parse().unwrap());
            }
            let res = app.oneshot(req).await.unwrap();
            let status = res.status();
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8(bytes.to_vec()).unwrap())
        }
    };
    // id/event pairs of a stream.
    let ids = |text: &str| -> Vec<(u64, String)> {
        text.split("\n\n")
            .filter(|b| !b.is_empty())
            .map(|b| {
                let mut f = b.split('\n');
                let event = f
                    .next()
                    .unwrap()
                    .strip_prefix("event: ")
                    .unwrap()
                    .to_owned();
                let id = f
                    .next()
                    .unwrap()
                    .strip_prefix("id: ")
                    .unwrap()
                    .parse()
                    .unwrap();
                (id, event)
            })
            .collect()
    };
    let base = format!("/api/v1/tasks/{id}/logs");
    let (status, all) = get(format!("{base}?tail=all&follow=false"), None).await;
    assert_eq!(status, StatusCode::OK);
    let all = ids(&all);
    assert_eq!(all.len(), 7);
    assert_eq!(all[0], (0, "run-started".to_owned()));
    assert_eq!(all[6], (6, "run-finished".to_owned()));
    let (_, tail) = get(format!("{base}?tail=2"), None).await;
    assert_eq!(
        ids(&tail).iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        [4, 5, 6]
    );
    // Resume after id 2: everything later exactly once (Last-Event-ID wins over tail).
    let (_, resumed) = get(format!("{base}?tail=all"), Some("2")).await;
    assert_eq!(ids(&resumed), all[3..]);
    for (query, last, name) in [
        ("?tail=-1", None, "tail"),
        ("?tail=x", None, "tail"),
        ("?since=abc", None, "since"),
        ("?follow=nope", None, "follow"),
        ("", Some("x"), "Last-Event-ID"),
        ("", Some("7"), "Last-Event-ID"),
    ] {
        let (status, body) = get(format!("{base}{query}"), last).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query} {last:?}: {body}");
        assert!(
            body.contains(&format!("{name}: ")),
            "{query} {last:?}: {body}"
        );
    }
}
