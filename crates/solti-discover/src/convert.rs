//! Domain ↔ wire conversions for the generated `solti.discover.v1` types, in one place.

use crate::{
    HttpDialect,
    payload::{Payload, Reply, endpoint_type_number},
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
            endpoint_type: endpoint_type_number(p.endpoint_type, HttpDialect::Proto),
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

#[cfg(test)]
mod tests {
    use crate::{DiscoveryTransport, HttpDialect, payload::endpoint_type_number, pb};

    #[test]
    fn proto_numbers_match_the_generated_enum() {
        assert_eq!(
            endpoint_type_number(DiscoveryTransport::Grpc, HttpDialect::Proto),
            pb::EndpointType::Grpc as i32
        );
        assert_eq!(
            endpoint_type_number(DiscoveryTransport::Http, HttpDialect::Proto),
            pb::EndpointType::Http as i32
        );
    }
}
