//! What one Sync carries ([`Payload`]) and what comes back ([`Reply`]), independent of the
//! wire format; `convert.rs` and the legacy dialect map them to their shapes.

use std::{
    collections::BTreeMap,
    time::{SystemTime, UNIX_EPOCH},
};

use tokio::time::Instant;

use crate::{DiscoverConfig, DiscoveryTransport, HttpDialect};

/// One Sync request, filled from the configuration and the host at send time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Payload {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) endpoint: String,
    pub(crate) endpoint_type: DiscoveryTransport,
    pub(crate) uptime_seconds: i64,
    pub(crate) os: String,
    pub(crate) arch: String,
    pub(crate) platform: String,
    pub(crate) ts: i64,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) api_version: i32,
    pub(crate) heartbeat_interval_s: i32,
    pub(crate) capabilities: Vec<String>,
}

impl Payload {
    /// The request as of now: `ts` is the wall clock in Unix seconds, `uptime_seconds`
    /// counts from the configured start.
    pub(crate) fn now(config: &DiscoverConfig, host: &HostInfo) -> Self {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| secs_i64(d.as_secs()));
        let uptime = Instant::now().saturating_duration_since(config.started_at);
        Self {
            id: config.agent_id.as_str().to_owned(),
            name: config.name.clone(),
            endpoint: config.agent_endpoint.clone(),
            endpoint_type: config.endpoint_type,
            uptime_seconds: secs_i64(uptime.as_secs()),
            os: host.os.clone(),
            arch: host.arch.to_owned(),
            platform: host.platform.to_owned(),
            ts,
            metadata: config.metadata.clone(),
            api_version: config.api_version,
            heartbeat_interval_s: config.heartbeat_interval_s(),
            capabilities: config.capabilities.clone(),
        }
    }
}

/// The wire number of `endpoint_type` for the agent's task API `kind` in `dialect`, on
/// either heartbeat transport: the shared proto numbers `ENDPOINT_TYPE_GRPC = 1`,
/// `ENDPOINT_TYPE_HTTP = 2`; released Podium (legacy) numbers `GRPC = 0`, `HTTP = 1`, in its
/// JSON and in its gRPC binding alike.
pub(crate) fn endpoint_type_number(kind: DiscoveryTransport, dialect: HttpDialect) -> i32 {
    match (dialect, kind) {
        (HttpDialect::Legacy, DiscoveryTransport::Grpc) => 0,
        (HttpDialect::Legacy, DiscoveryTransport::Http) => 1,
        (_, DiscoveryTransport::Grpc) => 1,
        (_, DiscoveryTransport::Http) => 2,
    }
}

/// The control plane's answer to a Sync that reached it with a success status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) success: bool,
    pub(crate) reason: String,
    pub(crate) retry_after_s: i32,
}

impl Reply {
    /// What an accepted Sync looks like (also used for a 2xx without a body).
    pub(crate) fn accepted() -> Self {
        Self {
            success: true,
            ..Self::default()
        }
    }
}

/// Facts about the host that do not change while the agent runs.
#[derive(Clone, Debug)]
pub(crate) struct HostInfo {
    pub(crate) os: String,
    pub(crate) platform: &'static str,
    pub(crate) arch: &'static str,
}

impl HostInfo {
    /// Reads the OS pretty name once (a small file read, done when the task is created).
    pub(crate) fn detect() -> Self {
        Self {
            os: os_pretty_name(),
            platform: std::env::consts::OS,
            arch: std::env::consts::ARCH,
        }
    }
}

/// `PRETTY_NAME` from os-release(5), else `NAME`, else `Linux` on Linux and the OS family
/// elsewhere.
fn os_pretty_name() -> String {
    for path in ["/etc/os-release", "/usr/lib/os-release"] {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Some(name) = parse_os_release(&text)
        {
            return name;
        }
    }
    match std::env::consts::OS {
        "linux" => "Linux".to_owned(),
        other => other.to_owned(),
    }
}

/// Picks `PRETTY_NAME` (or `NAME`) out of an os-release file, unquoting the value.
fn parse_os_release(text: &str) -> Option<String> {
    let value_of = |key: &str| {
        text.lines().find_map(|line| {
            let (k, v) = line.trim().split_once('=')?;
            (k == key)
                .then(|| unquote(v.trim()))
                .filter(|v| !v.is_empty())
        })
    };
    value_of("PRETTY_NAME").or_else(|| value_of("NAME"))
}

fn unquote(v: &str) -> String {
    let inner = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
        .unwrap_or(v);
    inner
        .replace("\\\"", "\"")
        .replace("\\\\", "\\")
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

fn secs_i64(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_pretty_name() {
        let text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n";
        assert_eq!(
            parse_os_release(text).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(parse_os_release("NAME=Alpine\n").as_deref(), Some("Alpine"));
        assert_eq!(
            parse_os_release("PRETTY_NAME='X \\\"Y\\\"'\n").as_deref(),
            Some("X \"Y\"")
        );
        assert_eq!(parse_os_release("ID=x\nPRETTY_NAME=\"\"\n"), None);
    }

    #[test]
    fn endpoint_type_numbers_per_dialect() {
        use DiscoveryTransport::{Grpc, Http};
        assert_eq!(endpoint_type_number(Grpc, HttpDialect::Proto), 1);
        assert_eq!(endpoint_type_number(Http, HttpDialect::Proto), 2);
        assert_eq!(endpoint_type_number(Grpc, HttpDialect::Legacy), 0);
        assert_eq!(endpoint_type_number(Http, HttpDialect::Legacy), 1);
    }

    #[test]
    fn host_info_is_filled() {
        let h = HostInfo::detect();
        assert!(!h.os.is_empty());
        assert_eq!(h.platform, std::env::consts::OS);
        assert_eq!(h.arch, std::env::consts::ARCH);
    }
}
