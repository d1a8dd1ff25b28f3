//! agentd-grpc registering with Podium doubles in both dialects over both heartbeat
//! transports: `endpoint_type` always says gRPC, numbered as the dialect numbers it (proto:
//! `ENDPOINT_TYPE_GRPC` = 1; released Podium: 0, in its JSON and its gRPC binding alike).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::{path::Path, time::Duration};

use agentd_kit::testing::AgentProcess;
use serde_json::{Value, json};
use solti_discover::pb;
use tokio::sync::mpsc;

fn start(name: &str, extra: &[&str]) -> AgentProcess {
    let dir =
        std::env::temp_dir().join(format!("agentd-grpc-podium-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    AgentProcess::start(Path::new(env!("CARGO_BIN_EXE_agentd-grpc")), &dir, extra).unwrap()
}

/// A gRPC Podium double: forwards each Sync request, answers success.
struct GrpcDouble(mpsc::UnboundedSender<pb::SyncRequest>);

#[tonic::async_trait]
impl pb::discover_service_server::DiscoverService for GrpcDouble {
    async fn sync(
        &self,
        request: tonic::Request<pb::SyncRequest>,
    ) -> Result<tonic::Response<pb::SyncResponse>, tonic::Status> {
        let _ = self.0.send(request.into_inner());
        Ok(tonic::Response::new(pb::SyncResponse {
            success: true,
            ..Default::default()
        }))
    }
}

/// Starts a double on 127.0.0.1:0 and returns its URL and the first Sync it receives
/// (as the JSON the HTTP double saw, or the decoded gRPC message).
async fn first_sync(heartbeat: &str, dialect: &str) -> (Option<Value>, Option<pb::SyncRequest>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cp = format!("http://{}", listener.local_addr().unwrap());
    let (json_tx, mut json_rx) = mpsc::unbounded_channel::<Value>();
    let (grpc_tx, mut grpc_rx) = mpsc::unbounded_channel::<pb::SyncRequest>();
    let server = if heartbeat == "grpc" {
        let service = pb::discover_service_server::DiscoverServiceServer::new(GrpcDouble(grpc_tx));
        tokio::spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        })
    } else {
        use axum::{Json, Router, extract::State, routing::post};
        let app =
            Router::new()
                .route(
                    "/api/v1/discovery/sync",
                    post(
                        |State(tx): State<mpsc::UnboundedSender<Value>>,
                         Json(body): Json<Value>| async move {
                            let _ = tx.send(body);
                            Json(json!({"success": true}))
                        },
                    ),
                )
                .with_state(json_tx);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        })
    };
    let mut agent = start(
        &format!("{heartbeat}-{dialect}"),
        &[
            "--control-plane",
            &cp,
            "--heartbeat-ms",
            "1000",
            "--podium-transport",
            heartbeat,
            "--podium-dialect",
            dialect,
        ],
    );
    let wait = Duration::from_secs(15);
    let seen = if heartbeat == "grpc" {
        (
            None,
            Some(
                tokio::time::timeout(wait, grpc_rx.recv())
                    .await
                    .unwrap()
                    .unwrap(),
            ),
        )
    } else {
        (
            Some(
                tokio::time::timeout(wait, json_rx.recv())
                    .await
                    .unwrap()
                    .unwrap(),
            ),
            None,
        )
    };
    let endpoint = agent.api_addr();
    match (&seen.0, &seen.1) {
        (Some(body), _) => {
            assert_eq!(
                body["endpoint"],
                endpoint.as_str(),
                "gRPC agents advertise host:port"
            );
        }
        (_, Some(msg)) => assert_eq!(msg.endpoint, endpoint),
        _ => unreachable!(),
    }
    agent.terminate(Duration::from_secs(20)).unwrap();
    server.abort();
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_type_is_grpc_in_both_dialects_over_both_heartbeat_transports() {
    let (body, _) = first_sync("http", "proto").await;
    assert_eq!(body.unwrap()["endpointType"], "ENDPOINT_TYPE_GRPC");
    let (body, _) = first_sync("http", "legacy").await;
    assert_eq!(body.unwrap()["endpoint_type"], 0);
    let (_, msg) = first_sync("grpc", "proto").await;
    assert_eq!(msg.unwrap().endpoint_type, pb::EndpointType::Grpc as i32);
    let (_, msg) = first_sync("grpc", "legacy").await;
    assert_eq!(msg.unwrap().endpoint_type, 0, "released Podium: 0 = gRPC");
}
