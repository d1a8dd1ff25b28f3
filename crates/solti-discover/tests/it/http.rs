//! The HTTP transport against the axum double.

use std::time::Duration;

use serde_json::{Value, json};
use solti_discover::{DiscoverError, DiscoveryTransport, HttpDialect};
use solti_model::Token;
use taskvisor::TaskError;
use tokio::net::TcpSocket;

use crate::harness::{
    HttpAnswer, LATE, ManualClock, Running, agent, gaps, http_double, serve_http, step_until,
};

/// Virtual time a test waits at most for what it expects.
const WAIT: Duration = Duration::from_secs(5);
const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

#[tokio::test]
async fn proto_json_payload_is_exact() {
    let _clock = ManualClock::start();
    let cp = http_double([]).await;
    let config = agent(DiscoveryTransport::Http, &cp.url())
        .with_token(Token::new("tok-123").unwrap())
        .with_metadata("zone", "eu-1")
        .with_capabilities(["subprocess"])
        .build()
        .unwrap();
    let run = Running::start(config);
    let seen = cp.recorder.step_to(1, WAIT).await;
    run.cancel_now().await;

    let req = &seen[0];
    assert_eq!(req.authorization.as_deref(), Some("Bearer tok-123"));
    assert_eq!(req.content_type.as_deref(), Some("application/json"));
    let b = &req.body;
    assert_eq!(
        keys(b),
        [
            "apiVersion",
            "arch",
            "capabilities",
            "endpoint",
            "endpointType",
            "heartbeatIntervalS",
            "id",
            "metadata",
            "name",
            "os",
            "platform",
            "ts",
            "uptimeSeconds",
        ]
    );
    assert_eq!(b["id"], "agent-1");
    assert_eq!(b["name"], "worker");
    assert_eq!(b["endpoint"], "http://10.0.0.5:8085");
    assert_eq!(b["endpointType"], "ENDPOINT_TYPE_HTTP");
    assert_eq!(b["apiVersion"], 1);
    assert_eq!(b["heartbeatIntervalS"], 1);
    assert_eq!(b["platform"], std::env::consts::OS);
    assert_eq!(b["arch"], std::env::consts::ARCH);
    assert!(b["os"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(b["metadata"], json!({"zone": "eu-1"}));
    assert_eq!(b["capabilities"], json!(["subprocess"]));
    // proto3 JSON: 64-bit integers are strings.
    let ts: i64 = b["ts"].as_str().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!((ts - i64::try_from(now).unwrap()).abs() <= 5);
    let uptime: i64 = b["uptimeSeconds"].as_str().unwrap().parse().unwrap();
    assert!((0..5).contains(&uptime));
}

#[tokio::test]
async fn legacy_json_payload_is_exact() {
    let _clock = ManualClock::start();
    let cp = http_double([HttpAnswer::ok(
        r#"{"success":true,"reason":"","retry_after_s":0}"#,
    )])
    .await;
    let config = agent(DiscoveryTransport::Http, &cp.url())
        .with_dialect(HttpDialect::Legacy)
        .with_endpoint_type(DiscoveryTransport::Grpc)
        .build()
        .unwrap();
    let run = Running::start(config);
    let seen = cp.recorder.step_to(2, WAIT).await;
    run.cancel_now().await;

    let b = &seen[0].body;
    assert_eq!(seen[0].authorization, None);
    assert_eq!(
        keys(b),
        [
            "api_version",
            "arch",
            "capabilities",
            "endpoint",
            "endpoint_type",
            "heartbeat_interval_s",
            "id",
            "metadata",
            "name",
            "os",
            "platform",
            "ts",
            "uptime_seconds",
        ]
    );
    // A gRPC agent: `host:port` and endpoint_type 0; integers are JSON numbers.
    assert_eq!(b["endpoint"], "10.0.0.5:8085");
    assert_eq!(b["endpoint_type"], 0);
    assert!(b["ts"].is_i64() && b["uptime_seconds"].is_i64());
    assert_eq!(b["heartbeat_interval_s"], 1);
    assert_eq!(b["api_version"], 1);
    // The legacy answer was understood as success: the next beat came on the 1 s schedule.
    let g = gaps(&seen)[0];
    assert!(g >= SEC && g <= SEC + LATE, "{g:?}");

    let cp = http_double([]).await;
    let http_agent = agent(DiscoveryTransport::Http, &cp.url())
        .with_dialect(HttpDialect::Legacy)
        .build()
        .unwrap();
    let run = Running::start(http_agent);
    let seen = cp.recorder.step_to(1, WAIT).await;
    run.cancel_now().await;
    assert_eq!(seen[0].body["endpoint_type"], 1);
    assert_eq!(seen[0].body["endpoint"], "http://10.0.0.5:8085");
}

#[tokio::test]
async fn beats_keep_the_interval_over_ten_beats() {
    let _clock = ManualClock::start();
    let cp = http_double([]).await;
    let run = Running::start(agent(DiscoveryTransport::Http, &cp.url()).build().unwrap());
    let seen = cp.recorder.step_to(11, Duration::from_secs(15)).await;
    run.cancel_now().await;
    // On the grid of the first beat: every beat is due a whole second after it.
    let first = seen[0].at;
    for (k, beat) in seen.iter().enumerate() {
        let due = first + SEC * u32::try_from(k).unwrap();
        assert!(
            beat.at >= due && beat.at <= due + LATE,
            "beat {k} at {:?}",
            beat.at - first
        );
    }
}

#[tokio::test]
async fn service_unavailable_backs_off_then_recovers() {
    let _clock = ManualClock::start();
    let cp = http_double([
        HttpAnswer::status(503),
        HttpAnswer::status(502),
        HttpAnswer::status(429),
    ])
    .await;
    let run = Running::start(agent(DiscoveryTransport::Http, &cp.url()).build().unwrap());
    let seen = cp.recorder.step_to(5, WAIT).await;
    assert!(run.is_running());
    run.cancel_now().await;
    let g = gaps(&seen);
    // Retries follow the 50..200 ms backoff (each delay from the upper half of its step),
    // not the 1 s interval...
    for (g, step) in g[..3].iter().zip([50 * MS, 100 * MS, 200 * MS]) {
        assert!(
            *g >= step / 2 && *g <= step + LATE,
            "{g:?} for a {step:?} step"
        );
    }
    // ...and after the recovery the agent is back on the 1 s grid of its first sync.
    let since_first = seen[4].at - seen[0].at;
    assert!(
        since_first >= SEC && since_first <= SEC + LATE,
        "{since_first:?}"
    );
}

#[tokio::test]
async fn declined_sync_honours_retry_after_s() {
    let _clock = ManualClock::start();
    let cp = http_double([HttpAnswer::ok(
        r#"{"success":false,"reason":"maintenance","retryAfterS":2}"#,
    )])
    .await;
    let run = Running::start(agent(DiscoveryTransport::Http, &cp.url()).build().unwrap());
    let seen = cp.recorder.step_to(2, WAIT).await;
    run.cancel_now().await;
    let g = gaps(&seen)[0];
    assert!(g >= 2 * SEC && g <= 2 * SEC + LATE, "{g:?}");
}

#[tokio::test]
async fn refused_credentials_stop_the_heartbeat() {
    let _clock = ManualClock::start();
    for code in [401, 403] {
        let cp = http_double([HttpAnswer::Reply(code, None, "bad token".to_owned())]).await;
        let config = agent(DiscoveryTransport::Http, &cp.url())
            .with_token(Token::new("wrong-token").unwrap())
            .build()
            .unwrap();
        let result = Running::start(config).stepped_to_end(WAIT).await;
        let Err(TaskError::Fatal {
            source: Some(source),
            ..
        }) = result
        else {
            panic!("{result:?}")
        };
        let err = source.downcast_ref::<DiscoverError>().unwrap();
        assert!(
            matches!(err, DiscoverError::Unauthorized { status, .. } if *status == format!("HTTP {code}"))
        );
        assert!(err.to_string().contains("bad token") && !err.to_string().contains("wrong-token"));
        // The task has ended: nothing can send another request.
        assert_eq!(cp.recorder.seen().len(), 1);
    }
}

#[tokio::test]
async fn other_client_errors_retry_at_the_regular_interval() {
    let _clock = ManualClock::start();
    let cp = http_double([HttpAnswer::status(404)]).await;
    let run = Running::start(agent(DiscoveryTransport::Http, &cp.url()).build().unwrap());
    let seen = cp.recorder.step_to(2, WAIT).await;
    run.cancel_now().await;
    let g = gaps(&seen)[0];
    assert!(
        g >= SEC && g <= SEC + LATE,
        "a 404 is retried at the 1 s interval, not on the backoff: {g:?}"
    );
}

#[tokio::test]
async fn a_hanging_control_plane_hits_the_request_timeout_and_retries() {
    let _clock = ManualClock::start();
    let cp = http_double([HttpAnswer::Hang]).await;
    let config = agent(DiscoveryTransport::Http, &cp.url())
        .with_request_timeout(300 * MS)
        .build()
        .unwrap();
    let run = Running::start(config);
    let seen = cp.recorder.step_to(2, WAIT).await;
    run.cancel_now().await;
    // The 300 ms timeout, then one backoff delay (25..50 ms: the first 50 ms step).
    let g = gaps(&seen)[0];
    assert!(g >= 325 * MS && g <= 350 * MS + LATE, "{g:?}");
}

#[tokio::test]
async fn unreachable_control_plane_at_start_then_registers() {
    let _clock = ManualClock::start();
    // The port is ours from the start (bound, not listening: connections are refused)
    // until the double listens on the same socket.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
    let addr = socket.local_addr().unwrap();
    let run = Running::start(
        agent(DiscoveryTransport::Http, &format!("http://{addr}"))
            .build()
            .unwrap(),
    );
    // Refused for 700 ms of virtual time (several retries on the backoff).
    let start = tokio::time::Instant::now();
    step_until(WAIT, || start.elapsed() >= 700 * MS).await;
    assert!(
        run.is_running(),
        "a down control plane must not stop the heartbeat"
    );
    let cp = serve_http(socket.listen(64).unwrap(), []);
    cp.recorder.step_to(1, WAIT).await;
    assert!(run.is_running());
    run.cancel_now().await;
}

#[tokio::test]
async fn cancellation_stops_a_sync_in_flight_promptly() {
    let _clock = ManualClock::start();
    let cp = http_double([HttpAnswer::Hang]).await;
    let run = Running::start(agent(DiscoveryTransport::Http, &cp.url()).build().unwrap());
    cp.recorder.step_to(1, WAIT).await;
    // The sync hangs; cancelling ends the task without any time passing.
    let before = tokio::time::Instant::now();
    run.cancel_now().await;
    assert_eq!(before.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn retry_after_header_on_503_is_honoured() {
    let _clock = ManualClock::start();
    let cp = http_double([HttpAnswer::Reply(503, Some("1"), "busy".to_owned())]).await;
    let run = Running::start(agent(DiscoveryTransport::Http, &cp.url()).build().unwrap());
    let seen = cp.recorder.step_to(2, WAIT).await;
    run.cancel_now().await;
    let g = gaps(&seen)[0];
    assert!(
        g >= SEC && g <= SEC + LATE,
        "Retry-After: 1 instead of the 50..200 ms backoff: {g:?}"
    );
}
