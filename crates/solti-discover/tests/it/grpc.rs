//! The gRPC transport against the tonic double.

use std::time::Duration;

use solti_discover::{DiscoverError, DiscoveryTransport, pb};
use solti_model::Token;
use taskvisor::TaskError;
use tokio::net::TcpSocket;
use tonic::Status;

use crate::harness::{
    LATE, ManualClock, Running, agent, gaps, grpc_double, serve_grpc, step_until,
};

/// Virtual time a test waits at most for what it expects.
const WAIT: Duration = Duration::from_secs(5);
const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

#[tokio::test]
async fn payload_fields_and_token_are_sent() {
    let _clock = ManualClock::start();
    let cp = grpc_double([]).await;
    let config = agent(DiscoveryTransport::Grpc, &cp.url())
        .with_token(Token::new("tok-456").unwrap())
        .with_metadata("rack", "r7")
        .with_capabilities(["subprocess", "logs"])
        .build()
        .unwrap();
    let run = Running::start(config);
    let seen = cp.recorder.step_to(1, WAIT).await;
    run.cancel_now().await;
    let req = &seen[0];
    assert_eq!(req.authorization.as_deref(), Some("Bearer tok-456"));
    let b = &req.body;
    assert_eq!(b.id, "agent-1");
    assert_eq!(b.name, "worker");
    assert_eq!(
        b.endpoint, "10.0.0.5:8085",
        "gRPC agents advertise host:port"
    );
    assert_eq!(b.endpoint_type, pb::EndpointType::Grpc as i32);
    assert_eq!(b.api_version, 1);
    assert_eq!(b.heartbeat_interval_s, 1);
    assert_eq!(b.platform, std::env::consts::OS);
    assert_eq!(b.arch, std::env::consts::ARCH);
    assert!(!b.os.is_empty());
    assert_eq!(b.metadata.get("rack").map(String::as_str), Some("r7"));
    assert_eq!(b.capabilities, ["subprocess", "logs"]);
    assert!(b.ts > 1_600_000_000 && (0..5).contains(&b.uptime_seconds));
}

#[tokio::test]
async fn refused_credentials_stop_the_heartbeat() {
    let _clock = ManualClock::start();
    for status in [
        Status::unauthenticated("who are you"),
        Status::permission_denied("not you"),
    ] {
        let code = status.code();
        let cp = grpc_double([Err(status)]).await;
        let result = Running::start(agent(DiscoveryTransport::Grpc, &cp.url()).build().unwrap())
            .stepped_to_end(WAIT)
            .await;
        let Err(TaskError::Fatal {
            source: Some(source),
            ..
        }) = result
        else {
            panic!("{result:?}")
        };
        let err = source.downcast_ref::<DiscoverError>().unwrap();
        let want = if code == tonic::Code::Unauthenticated {
            "gRPC UNAUTHENTICATED"
        } else {
            "gRPC PERMISSION_DENIED"
        };
        assert!(
            matches!(err, DiscoverError::Unauthorized { status, .. } if status == want),
            "{err}"
        );
        assert_eq!(cp.recorder.seen().len(), 1);
    }
}

#[tokio::test]
async fn unavailable_backs_off_then_recovers() {
    let _clock = ManualClock::start();
    let cp = grpc_double([
        Err(Status::unavailable("overloaded")),
        Err(Status::internal("oops")),
    ])
    .await;
    let run = Running::start(agent(DiscoveryTransport::Grpc, &cp.url()).build().unwrap());
    let seen = cp.recorder.step_to(4, WAIT).await;
    run.cancel_now().await;
    let g = gaps(&seen);
    // Retries on the 50..200 ms backoff (each delay from the upper half of its step)...
    for (g, step) in g[..2].iter().zip([50 * MS, 100 * MS]) {
        assert!(
            *g >= step / 2 && *g <= step + LATE,
            "{g:?} for a {step:?} step"
        );
    }
    // ...then back on the 1 s grid of the first sync.
    let since_first = seen[3].at - seen[0].at;
    assert!(
        since_first >= SEC && since_first <= SEC + LATE,
        "{since_first:?}"
    );
}

#[tokio::test]
async fn declined_sync_honours_retry_after_s() {
    let _clock = ManualClock::start();
    let declined = pb::SyncResponse {
        success: false,
        reason: "busy".to_owned(),
        retry_after_s: 2,
    };
    let cp = grpc_double([Ok(declined)]).await;
    let run = Running::start(agent(DiscoveryTransport::Grpc, &cp.url()).build().unwrap());
    let seen = cp.recorder.step_to(2, WAIT).await;
    run.cancel_now().await;
    let g = gaps(&seen)[0];
    assert!(g >= 2 * SEC && g <= 2 * SEC + LATE, "{g:?}");
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
        agent(DiscoveryTransport::Grpc, &format!("http://{addr}"))
            .build()
            .unwrap(),
    );
    let start = tokio::time::Instant::now();
    step_until(WAIT, || start.elapsed() >= 700 * MS).await;
    assert!(run.is_running());
    let cp = serve_grpc(socket.listen(64).unwrap(), [], None);
    cp.recorder.step_to(1, WAIT).await;
    assert!(run.is_running());
    run.cancel_now().await;
}
