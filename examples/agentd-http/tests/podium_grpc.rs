//! agentd-http sending its heartbeats over gRPC (`--podium-transport grpc`) still advertises
//! its own API kind, HTTP, numbered as each dialect numbers it (proto: `ENDPOINT_TYPE_HTTP` =
//! 2; released Podium: 1). The HTTP heartbeat is covered in `e2e.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::{path::Path, time::Duration};

use agentd_kit::testing::AgentProcess;
use solti_discover::pb;
use tokio::sync::mpsc;

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

async fn first_grpc_sync(dialect: &str) -> (pb::SyncRequest, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cp = format!("http://{}", listener.local_addr().unwrap());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let service = pb::discover_service_server::DiscoverServiceServer::new(GrpcDouble(tx));
    let server = tokio::spawn(async move {
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming)
            .await;
    });
    let dir = std::env::temp_dir().join(format!(
        "agentd-http-podium-grpc-{dialect}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut agent = AgentProcess::start(
        Path::new(env!("CARGO_BIN_EXE_agentd-http")),
        &dir,
        &[
            "--control-plane",
            &cp,
            "--heartbeat-ms",
            "1000",
            "--podium-transport",
            "grpc",
            "--podium-dialect",
            dialect,
        ],
    )
    .unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let api = format!("http://{}", agent.api_addr());
    agent.terminate(Duration::from_secs(20)).unwrap();
    server.abort();
    (msg, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_heartbeats_advertise_the_http_api_in_both_dialects() {
    let (msg, api) = first_grpc_sync("proto").await;
    assert_eq!(msg.endpoint_type, pb::EndpointType::Http as i32);
    assert_eq!(msg.endpoint, api);
    let (msg, api) = first_grpc_sync("legacy").await;
    assert_eq!(msg.endpoint_type, 1, "released Podium: 1 = HTTP");
    assert_eq!(msg.endpoint, api);
}
