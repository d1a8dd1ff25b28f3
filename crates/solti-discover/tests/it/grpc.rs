//! The gRPC transport against the tonic double.

use std::time::Duration;

use solti_discover::{DiscoverError, DiscoveryTransport, pb};
use solti_model::Token;
use taskvisor::TaskError;
use tokio::net::TcpListener;
use tonic::Status;

use crate::harness::{Running, agent, gaps, grpc_double, serve_grpc};

const WAIT: Duration = Duration::from_secs(5);
const MS: Duration = Duration::from_millis(1);

#[tokio::test]
async fn payload_fields_and_token_are_sent() {
    let cp = grpc_double([]).await;
    let config = agent(DiscoveryTransport::Grpc, &cp.url())
        .with_token(Token::new("tok-456").unwrap())
        .with_metadata("rack", "r7")
        .with_capabilities(["subprocess", "logs"])
        .build()
        .unwrap();
    let run = Running::start(config);
    let seen = cp.recorder.wait_for(1, WAIT).await;
    run.cancel().await;
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
    for status in [
        Status::unauthenticated("who are you"),
        Status::permission_denied("not you"),
    ] {
        let code = status.code();
        let cp = grpc_double([Err(status)]).await;
        let result = Running::start(agent(DiscoveryTransport::Grpc, &cp.url()).build().unwrap())
            .finished(WAIT)
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
    let cp = grpc_double([
        Err(Status::unavailable("overloaded")),
        Err(Status::internal("oops")),
    ])
    .await;
    let run = Running::start(agent(DiscoveryTransport::Grpc, &cp.url()).build().unwrap());
    let seen = cp.recorder.wait_for(4, WAIT).await;
    run.cancel().await;
    let g = gaps(&seen);
    assert!(g[..2].iter().all(|g| *g < 600 * MS), "{g:?}");
    assert!(g[2] >= 400 * MS, "{g:?}");
}

#[tokio::test]
async fn declined_sync_honours_retry_after_s() {
    let declined = pb::SyncResponse {
        success: false,
        reason: "busy".to_owned(),
        retry_after_s: 2,
    };
    let cp = grpc_double([Ok(declined)]).await;
    let run = Running::start(agent(DiscoveryTransport::Grpc, &cp.url()).build().unwrap());
    let seen = cp.recorder.wait_for(2, WAIT).await;
    run.cancel().await;
    let g = gaps(&seen)[0];
    assert!(g >= 1900 * MS && g < 2900 * MS, "{g:?}");
}

#[tokio::test]
async fn unreachable_control_plane_at_start_then_registers() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let run = Running::start(
        agent(
            DiscoveryTransport::Grpc,
            &format!("http://127.0.0.1:{port}"),
        )
        .build()
        .unwrap(),
    );
    tokio::time::sleep(700 * MS).await;
    assert!(run.is_running());
    let cp = serve_grpc(
        TcpListener::bind(("127.0.0.1", port)).await.unwrap(),
        [],
        None,
    );
    cp.recorder.wait_for(1, WAIT).await;
    assert!(run.is_running());
    run.cancel().await;
}
