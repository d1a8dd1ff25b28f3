//! Domain ↔ wire conversions for the generated `solti.discover.v1` types, in one place.

use crate::{
    DiscoveryTransport,
    payload::{Payload, Reply},
    pb,
};

impl From<&Payload> for pb::SyncRequest {
    fn from(p: &Payload) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            endpoint: p.endpoint.clone(),
            uptime_seconds: p.uptime_seconds,
            os: p.os.clone(),
            arch: p.arch.clone(),
            platform: p.platform.clone(),
            ts: p.ts,
            metadata: p
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            endpoint_type: endpoint_type(p.endpoint_type) as i32,
            api_version: p.api_version,
            heartbeat_interval_s: p.heartbeat_interval_s,
            capabilities: p.capabilities.clone(),
        }
    }
}

impl From<pb::SyncResponse> for Reply {
    fn from(r: pb::SyncResponse) -> Self {
        Self {
            success: r.success,
            reason: r.reason,
            retry_after_s: r.retry_after_s,
        }
    }
}

fn endpoint_type(t: DiscoveryTransport) -> pb::EndpointType {
    match t {
        DiscoveryTransport::Http => pb::EndpointType::Http,
        DiscoveryTransport::Grpc => pb::EndpointType::Grpc,
    }
}
