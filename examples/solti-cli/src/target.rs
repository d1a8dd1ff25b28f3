//! Where the agent is: `--addr` parsed into a transport, a security mode and an endpoint.

use std::{fmt, path::PathBuf};

/// The API an agent serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Api {
    /// HTTP/JSON under `/api/v1` (agentd-http).
    Http,
    /// gRPC `solti.task.v1.TaskService` (agentd-grpc).
    Grpc,
}

/// How to reach the agent's socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// A TCP `host:port`; `host` is a name, an IPv4 address or a bracket-less IPv6 address.
    Tcp { host: String, port: u16 },
    /// A Unix domain socket.
    Unix(PathBuf),
}

/// A parsed `--addr`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) api: Api,
    pub(crate) tls: bool,
    pub(crate) endpoint: Endpoint,
    /// The address as the user wrote it, for messages.
    pub(crate) original: String,
}

/// The accepted forms, for error messages and `--help`.
pub(crate) const FORMS: &str = "http://HOST:PORT, https://HOST:PORT, grpc://HOST:PORT, \
     grpcs://HOST:PORT, unix:/PATH (HTTP over a Unix socket) or grpc+unix:/PATH";

impl Target {
    /// Parses `--addr`. The error names the flag and the accepted forms.
    pub(crate) fn parse(addr: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("--addr {addr:?}: {why}; expected {FORMS}");
        let trimmed = addr.trim();
        if trimmed.is_empty() {
            return Err(bad("empty"));
        }
        for (prefix, api) in [("grpc+unix:", Api::Grpc), ("unix:", Api::Http)] {
            if let Some(path) = trimmed.strip_prefix(prefix) {
                // `unix:///run/x.sock` and `unix:/run/x.sock` name the same path.
                let path = path.strip_prefix("//").unwrap_or(path);
                if !path.starts_with('/') {
                    return Err(bad("a Unix socket path must be absolute"));
                }
                return Ok(Self {
                    api,
                    tls: false,
                    endpoint: Endpoint::Unix(PathBuf::from(path)),
                    original: trimmed.to_owned(),
                });
            }
        }
        let Some((scheme, rest)) = trimmed.split_once("://") else {
            return Err(bad("no scheme"));
        };
        let (api, tls, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "http" => (Api::Http, false, 80),
            "https" => (Api::Http, true, 443),
            "grpc" => (Api::Grpc, false, 50052),
            "grpcs" => (Api::Grpc, true, 443),
            other => return Err(bad(&format!("unknown scheme {other:?}"))),
        };
        // A trailing slash is harmless; any other path is a mistake (the API lives at /api/v1).
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(bad("give only the scheme, host and port (no path or user)"));
        }
        let (host, port) = split_host_port(authority).map_err(|why| bad(&why))?;
        Ok(Self {
            api,
            tls,
            endpoint: Endpoint::Tcp {
                host,
                port: port.unwrap_or(default_port),
            },
            original: trimmed.to_owned(),
        })
    }

    /// `host:port` for the `Host` header and the gRPC `:authority` (`localhost` for a Unix
    /// socket, which a loopback-only agent accepts).
    pub(crate) fn authority(&self) -> String {
        match &self.endpoint {
            Endpoint::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            Endpoint::Tcp { host, port } => format!("{host}:{port}"),
            Endpoint::Unix(_) => "localhost".to_owned(),
        }
    }

    /// Whether the peer is on this machine (loopback address, `localhost` or a Unix socket):
    /// a token may travel there in cleartext.
    pub(crate) fn is_local(&self) -> bool {
        match &self.endpoint {
            Endpoint::Unix(_) => true,
            Endpoint::Tcp { host, .. } => {
                host.eq_ignore_ascii_case("localhost")
                    || host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

/// Splits `host[:port]`, with IPv6 hosts in brackets.
fn split_host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "unclosed '[' in an IPv6 address".to_owned())?;
        match after {
            "" => (host, None),
            p => (
                host,
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("unexpected {p:?} after the IPv6 address"))?,
                ),
            ),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("no host".to_owned());
    }
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("port {p:?} is not 1..=65535"))
        })
        .transpose()?;
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses() {
        let t = Target::parse("http://127.0.0.1:8085").unwrap();
        assert_eq!((t.api, t.tls), (Api::Http, false));
        assert_eq!(t.authority(), "127.0.0.1:8085");
        assert!(t.is_local());
        let t = Target::parse("grpcs://agent.example:9443/").unwrap();
        assert_eq!((t.api, t.tls), (Api::Grpc, true));
        assert!(!t.is_local());
        let t = Target::parse("grpc://[::1]:50052").unwrap();
        assert_eq!(t.authority(), "[::1]:50052");
        assert!(t.is_local());
        let t = Target::parse("https://localhost").unwrap();
        assert_eq!(t.authority(), "localhost:443");
        let t = Target::parse("unix:/run/solti.sock").unwrap();
        assert_eq!(t.endpoint, Endpoint::Unix("/run/solti.sock".into()));
        assert_eq!(t.api, Api::Http);
        let t = Target::parse("grpc+unix:///run/solti.sock").unwrap();
        assert_eq!(t.endpoint, Endpoint::Unix("/run/solti.sock".into()));
        assert_eq!(t.api, Api::Grpc);
    }

    #[test]
    fn mistakes_name_the_flag() {
        for bad in [
            "",
            "127.0.0.1:8085",
            "ftp://x:1",
            "http://x:0",
            "http://x:99999",
            "http://x:8085/api/v1",
            "http://:8085",
            "unix:relative.sock",
            "http://[::1",
        ] {
            let err = Target::parse(bad).unwrap_err();
            assert!(err.starts_with("--addr"), "{bad}: {err}");
        }
    }
}
