//! The HTTP transport against the axum double.

use std::time::Duration;

use serde_json::{Value, json};
use solti_discover::{DiscoverError, DiscoveryTransport, HttpDialect};
use solti_model::Token;
use taskvisor::TaskError;
use tokio::net::TcpListener;

use crate::harness::{HttpAnswer, Running, agent, gaps, http_double, serve_http};

const WAIT: Duration = Duration::from_secs(5);
const MS: Duration = Duration::from_millis(1);

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

#[tokio::test]
async fn proto_json_payload_is_exact() {
    let cp = http_double([]).await;
    let config = agent(DiscoveryTransport::Http, &cp.url())
        .with_token(Token::new("tok-123").unwrap())
        .with_metadata("zone", "eu-1")
        .with_capabilities(["subprocess"])
        .build()
        .unwrap();
    let run = Running::start(config);
    let seen = cp.recorder.wait_for(1, WAIT).await;
    run.cancel().await;

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
    let seen = cp.recorder.wait_for(2, WAIT).await;
    run.cancel().await;

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
    assert!(gaps(&seen)[0] >= 750 * MS, "{:?}", gaps(&seen));

    let cp = http_double([]).await;
    let http_agent = agent(DiscoveryTransport::Http, &cp.url())
        .with_dialect(HttpDialect::Legacy)
        .build()
        .unwrap();
    let run = Running::start(http_agent);
    let seen = cp.recorder.wait_for(1, WAIT).await;
    run.cancel().await;
    assert_eq!(seen[0].body["endpoint_type"], 1);
    assert_eq!(seen[0].body["endpoint"], "http://10.0.0.5:8085");
}

#[tokio::test]
async fn beats_keep_the_interval_over_ten_beats() {
    let cp = http_double([]).await;
    let run = Running::start(agent(DiscoveryTransport::Http, &cp.url()).build().unwrap());
    let seen = cp.recorder.wait_for(11, Duration::from_secs(15)).await;
    run.cancel().await;
    for g in gaps(&seen) {
        assert!(
            g >= 750 * MS && g <= 1250 * MS,
            "gap {g:?} outside 1 s ±25 %"
        );
    }
}

#[tokio::test]
async fn service_unavailable_backs_off_then_recovers() {
    let cp = http_double([
        HttpAnswer::status(503),
        HttpAnswer::status(502),
        HttpAnswer::status(429),
    ])
    .await;
    let run = Running::start(agent(DiscoveryTransport::Http, &cp.url()).build().unwrap());
    let seen = cp.recorder.wait_for(5, WAIT).await;
    assert!(run.is_running());
    run.cancel().await;
    let g = gaps(&seen);
    // Retries follow the 50..200 ms backoff, not the 1 s interval...
    assert!(g[..3].iter().all(|g| *g < 600 * MS), "{g:?}");
    // ...and after the recovery the agent is back on its 1 s schedule.
    assert!(g[3] >= 400 * MS, "{g:?}");
}

#[tokio::test]
async fn declined_sync_honours_retry_after_s() {
    let cp = http_double([HttpAnswer::ok(
        r#"{"success":false,"reason":"maintenance","retryAfterS":2}"#,
    )])
    .await;
    let run = Running::start(agent(DiscoveryTransport::Http, &cp.url()).build().unwrap());
    let seen = cp.recorder.wait_for(2, WAIT).await;
    run.cancel().await;
    let g = gaps(&seen)[0];
    assert!(g >= 1900 * MS && g < 2900 * MS, "{g:?}");
}

#[tokio::test]
async fn refused_credentials_stop_the_heartbeat() {
    for code in [401, 403] {
        let cp = http_double([HttpAnswer::Reply(code, None, "bad token".to_owned())]).await;
        let config = agent(DiscoveryTransport::Http, &cp.url())
            .with_token(Token::new("wrong-token").unwrap())
            .build()
            .unwrap();
        let result = Running::start(config).finished(WAIT).await;
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
        tokio::time::sleep(300 * MS).await;
        assert_eq!(cp.recorder.seen().len(), 1);
    }
}

#[tokio::test]
async fn other_client_errors_retry_at_the_regular_interval() {
    let cp = http_double([HttpAnswer::status(404)]).await;
    let run = Running::start(agent(DiscoveryTransport::Http, &cp.url()).build().unwrap());
    let seen = cp.recorder.wait_for(2, WAIT).await;
    run.cancel().await;
    let g = gaps(&seen)[0];
    assert!(
        g >= 750 * MS,
        "a 404 is retried at the 1 s interval, not on the backoff: {g:?}"
    );
}

#[tokio::test]
async fn a_hanging_control_plane_hits_the_request_timeout_and_retries() {
    let cp = http_double([HttpAnswer::Hang]).await;
    let config = agent(DiscoveryTransport::Http, &cp.url())
        .with_request_timeout(300 * MS)
        .build()
        .unwrap();
    let run = Running::start(config);
    let seen = cp.recorder.wait_for(2, WAIT).await;
    run.cancel().await;
    let g = gaps(&seen)[0];
    assert!(g >= 300 * MS && g < 900 * MS, "{g:?}");
}

#[tokio::test]
async fn unreachable_control_plane_at_start_then_registers() {
    // Reserve a port, then close it: connections are refused until the double binds it.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let run = Running::start(
        agent(
            DiscoveryTransport::Http,
            &format!("http://127.0.0.1:{port}"),
        )
        .build()
        .unwrap(),
    );
    tokio::time::sleep(700 * MS).await;
    assert!(
        run.is_running(),
        "a down control plane must not stop the heartbeat"
    );
    let cp = serve_http(TcpListener::bind(("127.0.0.1", port)).await.unwrap(), []);
    cp.recorder.wait_for(1, WAIT).await;
    assert!(run.is_running());
    run.cancel().await;
}

#[tokio::test]
async fn cancellation_stops_a_sync_in_flight_promptly() {
    let cp = http_double([HttpAnswer::Hang]).await;
    let run = Running::start(agent(DiscoveryTransport::Http, &cp.url()).build().unwrap());
    cp.recorder.wait_for(1, WAIT).await;
    let took = run.cancel().await;
    assert!(took < 200 * MS, "{took:?}");
}

#[tokio::test]
async fn retry_after_header_on_503_is_honoured() {
    let cp = http_double([HttpAnswer::Reply(503, Some("1"), "busy".to_owned())]).await;
    let run = Running::start(agent(DiscoveryTransport::Http, &cp.url()).build().unwrap());
    let seen = cp.recorder.wait_for(2, WAIT).await;
    run.cancel().await;
    let g = gaps(&seen)[0];
    assert!(
        g >= 900 * MS && g < 1600 * MS,
        "Retry-After: 1 instead of the 50..200 ms backoff: {g:?}"
    );
}
