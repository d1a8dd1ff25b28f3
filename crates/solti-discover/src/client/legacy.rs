//! The legacy JSON dialect of the released Podium (before the shared proto): snake_case
//! keys, integers as JSON numbers, `endpoint_type` 0 = gRPC, 1 = HTTP.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    HttpDialect,
    payload::{Payload, Reply, endpoint_type_number},
};

/// The legacy request body.
#[derive(Debug, Serialize)]
pub(super) struct LegacyRequest<'a> {
    id: &'a str,
    name: &'a str,
    endpoint: &'a str,
    uptime_seconds: i64,
    os: &'a str,
    arch: &'a str,
    platform: &'a str,
    ts: i64,
    metadata: &'a BTreeMap<String, String>,
    endpoint_type: i32,
    api_version: i32,
    heartbeat_interval_s: i32,
    capabilities: &'a [String],
}

impl<'a> From<&'a Payload> for LegacyRequest<'a> {
    fn from(p: &'a Payload) -> Self {
        Self {
            id: &p.id,
            name: &p.name,
            endpoint: &p.endpoint,
            uptime_seconds: p.uptime_seconds,
            os: &p.os,
            arch: &p.arch,
            platform: &p.platform,
            ts: p.ts,
            metadata: &p.metadata,
            endpoint_type: endpoint_type_number(p.endpoint_type, HttpDialect::Legacy),
            api_version: p.api_version,
            heartbeat_interval_s: p.heartbeat_interval_s,
            capabilities: &p.capabilities,
        }
    }
}

/// The legacy response body; every field may be missing (and then takes its zero value).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct LegacyResponse {
    success: bool,
    reason: Option<String>,
    #[serde(alias = "retryAfterS")]
    retry_after_s: i64,
}

impl From<LegacyResponse> for Reply {
    fn from(r: LegacyResponse) -> Self {
        Self {
            success: r.success,
            reason: r.reason.unwrap_or_default(),
            retry_after_s: i32::try_from(r.retry_after_s.max(0)).unwrap_or(i32::MAX),
        }
    }
}
