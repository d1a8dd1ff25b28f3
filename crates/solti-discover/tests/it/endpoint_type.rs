//! `endpoint_type` describes the agent's own task API, never the heartbeat's transport:
//! every dialect × heartbeat transport × agent kind, against the doubles.

use std::time::Duration;

use serde_json::{Value, json};
use solti_discover::{DiscoveryTransport, HttpDialect};

use crate::harness::{Running, agent, grpc_double, http_double};

const WAIT: Duration = Duration::from_secs(5);

/// What the control plane must read for `kind` in `dialect`: the proto JSON enum name, or
/// the number (legacy JSON and both gRPC bindings).
fn expected(dialect: HttpDialect, kind: DiscoveryTransport) -> (Value, i32) {
    match (dialect, kind) {
        (HttpDialect::Legacy, DiscoveryTransport::Grpc) => (json!(0), 0),
        (HttpDialect::Legacy, _) => (json!(1), 1),
        (_, DiscoveryTransport::Grpc) => (json!("ENDPOINT_TYPE_GRPC"), 1),
        _ => (json!("ENDPOINT_TYPE_HTTP"), 2),
    }
}

fn endpoint(kind: DiscoveryTransport) -> &'static str {
    match kind {
        DiscoveryTransport::Grpc => "10.0.0.5:8085",
        _ => "http://10.0.0.5:8085",
    }
}

const DIALECTS: [HttpDialect; 2] = [HttpDialect::Proto, HttpDialect::Legacy];
const KINDS: [DiscoveryTransport; 2] = [DiscoveryTransport::Http, DiscoveryTransport::Grpc];

#[tokio::test]
async fn http_heartbeats_carry_the_agents_api_kind_in_both_dialects() {
    for dialect in DIALECTS {
        for kind in KINDS {
            let cp = http_double([]).await;
            let config = agent(DiscoveryTransport::Http, &cp.url())
                .with_dialect(dialect)
                .with_endpoint_type(kind)
                .build()
                .unwrap();
            assert_eq!(config.endpoint_type(), kind);
            let run = Running::start(config);
            let seen = cp.recorder.wait_for(1, WAIT).await;
            run.cancel().await;
            let body = &seen[0].body;
            let key = match dialect {
                HttpDialect::Legacy => "endpoint_type",
                _ => "endpointType",
            };
            assert_eq!(body[key], expected(dialect, kind).0, "{dialect:?} {kind}");
            assert_eq!(body["endpoint"], endpoint(kind), "{dialect:?} {kind}");
        }
    }
}

#[tokio::test]
async fn grpc_heartbeats_carry_the_agents_api_kind_in_both_dialects() {
    for dialect in DIALECTS {
        for kind in KINDS {
            let cp = grpc_double([]).await;
            let config = agent(DiscoveryTransport::Grpc, &cp.url())
                .with_dialect(dialect)
                .with_endpoint_type(kind)
                .build()
                .unwrap();
            let run = Running::start(config);
            let seen = cp.recorder.wait_for(1, WAIT).await;
            run.cancel().await;
            let body = &seen[0].body;
            assert_eq!(
                body.endpoint_type,
                expected(dialect, kind).1,
                "{dialect:?} {kind}"
            );
            assert_eq!(body.endpoint, endpoint(kind), "{dialect:?} {kind}");
        }
    }
}

#[tokio::test]
async fn without_an_explicit_kind_the_sync_transport_is_advertised() {
    for (transport, dialect) in [
        (DiscoveryTransport::Grpc, HttpDialect::Legacy),
        (DiscoveryTransport::Http, HttpDialect::Legacy),
    ] {
        let config = agent(transport, "http://127.0.0.1:9")
            .with_dialect(dialect)
            .build()
            .unwrap();
        assert_eq!(config.endpoint_type(), transport);
    }
}
