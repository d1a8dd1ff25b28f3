//! The agent's single startup line:
//! `agentd-http ready: api=http://127.0.0.1:PORT metrics=http://127.0.0.1:PORT/metrics control-plane=none agent-id=ID`.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::{Context as _, Result, bail};

/// What the startup line announces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Startup {
    /// Where the HTTP API listens (`127.0.0.1:0` when it listens on a Unix socket).
    pub(crate) api: SocketAddr,
    /// The API's Unix socket (`api=unix:/path`).
    pub(crate) unix: Option<PathBuf>,
    /// Whether the API is served over TLS (`api=https://…`).
    pub(crate) tls: bool,
    /// Where `/metrics` is served (`None` when the agent says `off`).
    pub(crate) metrics: Option<SocketAddr>,
    /// The control plane the agent talks to (`none` when discovery is off).
    pub(crate) control_plane: String,
    /// The agent's stable id.
    pub(crate) agent_id: String,
}

/// Parses `line` when it is a ready line (`<program> ready: key=value…`, whatever the
/// binary's file is called); `Ok(None)` for any other line.
///
/// # Errors
/// When the line is the ready line but a field is missing or malformed.
pub(crate) fn parse_ready_line(line: &str) -> Result<Option<Startup>> {
    let Some((program, rest)) = line.trim().split_once(" ready:") else {
        return Ok(None);
    };
    if program.is_empty() || program.contains(char::is_whitespace) {
        return Ok(None);
    }
    let (mut api, mut metrics, mut control_plane, mut agent_id) = (None, None, None, None);
    for token in rest.split_whitespace() {
        let Some((key, value)) = token.split_once('=') else {
            continue;
        };
        match key {
            "api" => api = Some(value),
            "metrics" => metrics = Some(value),
            "control-plane" => control_plane = Some(value),
            "agent-id" => agent_id = Some(value),
            _ => {}
        }
    }
    let api = api.context("ready line: no api=")?;
    let unix = api.strip_prefix("unix:").map(PathBuf::from);
    let tls = api.starts_with("https://");
    let api = match (&unix, api.strip_prefix("https://")) {
        (Some(_), _) => SocketAddr::from(([127, 0, 0, 1], 0)),
        (None, Some(rest)) => url_addr(&format!("http://{rest}"))
            .with_context(|| format!("ready line: api={api:?}"))?,
        (None, None) => url_addr(api).with_context(|| format!("ready line: api={api:?}"))?,
    };
    let metrics = match metrics.context("ready line: no metrics=")? {
        "off" | "none" => None,
        m => Some(url_addr(m).with_context(|| format!("ready line: metrics={m:?}"))?),
    };
    let agent_id = agent_id
        .filter(|s| !s.is_empty())
        .context("ready line: no agent-id=")?;
    Ok(Some(Startup {
        api,
        unix,
        tls,
        metrics,
        control_plane: control_plane.unwrap_or("none").to_owned(),
        agent_id: agent_id.to_owned(),
    }))
}

/// `http://host:port[/path]` → `host:port` as a socket address (loopback only here).
fn url_addr(url: &str) -> Result<SocketAddr> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("expected an http:// URL")
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    authority
        .parse()
        .with_context(|| format!("{authority:?} is not host:port"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_ready_line() {
        let line = "agentd-http ready: api=http://127.0.0.1:40001 metrics=http://127.0.0.1:40002/metrics \
                    control-plane=none agent-id=01JABCDEF";
        let s = parse_ready_line(line).unwrap().unwrap();
        assert_eq!(s.api, "127.0.0.1:40001".parse().unwrap());
        assert_eq!(s.metrics, Some("127.0.0.1:40002".parse().unwrap()));
        assert_eq!(s.control_plane, "none");
        assert_eq!(s.agent_id, "01JABCDEF");
    }

    #[test]
    fn other_lines_are_skipped() {
        assert_eq!(
            parse_ready_line("2026-01-01T00:00:00Z INFO starting").unwrap(),
            None
        );
        assert_eq!(
            parse_ready_line("2026-01-01 INFO agentd ready: soon").unwrap(),
            None
        );
        assert!(parse_ready_line("agentd-grpc ready: api=x").is_err());
    }

    #[test]
    fn unix_and_tls_apis() {
        let s = parse_ready_line("agentd-http ready: api=unix:/run/a.sock metrics=off agent-id=a")
            .unwrap()
            .unwrap();
        assert_eq!(s.unix, Some(PathBuf::from("/run/a.sock")));
        assert!(!s.tls);
        let s =
            parse_ready_line("agentd-http ready: api=https://127.0.0.1:9 metrics=off agent-id=a")
                .unwrap()
                .unwrap();
        assert_eq!(s.api, "127.0.0.1:9".parse().unwrap());
        assert!(s.tls && s.unix.is_none());
    }

    #[test]
    fn metrics_off_and_ipv6() {
        let s = parse_ready_line("agentd-http ready: api=http://[::1]:8085 metrics=off agent-id=a")
            .unwrap()
            .unwrap();
        assert_eq!(s.api, "[::1]:8085".parse().unwrap());
        assert_eq!(s.metrics, None);
    }

    #[test]
    fn malformed_ready_lines_are_errors() {
        assert!(parse_ready_line("agentd-http ready: metrics=off agent-id=a").is_err());
        assert!(
            parse_ready_line("agentd-http ready: api=http://nope metrics=off agent-id=a").is_err()
        );
        assert!(parse_ready_line("agentd-http ready: api=http://127.0.0.1:1 metrics=off").is_err());
        assert!(
            parse_ready_line("agentd-http ready: api=ftp://127.0.0.1:1 metrics=off agent-id=a")
                .is_err()
        );
    }
}
