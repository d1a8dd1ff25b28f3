//! Endpoint addresses: parsing the control-plane URL and normalising the agent's advertised
//! endpoint. Pure functions; the rules are listed on
//! [`DiscoverConfig::builder`](crate::DiscoverConfig::builder).

use std::{fmt, net::IpAddr};

use http::Uri;

use crate::DiscoveryTransport;

/// URL scheme of the control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

/// A validated `http(s)://host:port` control-plane address (no path, query or user info).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ControlPlaneUrl {
    pub(crate) scheme: Scheme,
    pub(crate) host: Host,
    pub(crate) port: u16,
}

impl ControlPlaneUrl {
    /// `host:port`, with brackets around IPv6 addresses (also the HTTP `Host` header).
    pub(crate) fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Host name as used for certificate verification (no brackets).
    pub(crate) fn host_name(&self) -> &str {
        &self.host.name
    }
}

impl fmt::Display for ControlPlaneUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://{}", self.authority())
    }
}

/// A host name or IP address; IPv6 addresses print in brackets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Host {
    name: String,
    ipv6: bool,
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ipv6 {
            write!(f, "[{}]", self.name)
        } else {
            f.write_str(&self.name)
        }
    }
}

/// Parses the control-plane address: `http://host[:port]` or `https://host[:port]`; a
/// missing port means 80 / 443. One trailing `/` is accepted.
pub(crate) fn parse_control_plane(input: &str) -> Result<ControlPlaneUrl, String> {
    let (scheme, host, port) = parse(input)?;
    let Some(scheme) = scheme else {
        return Err(format!(
            "must start with http:// or https://, got {input:?}"
        ));
    };
    let port = match (port, scheme) {
        (Some(p), _) => p,
        (None, Scheme::Http) => 80,
        (None, Scheme::Https) => 443,
    };
    Ok(ControlPlaneUrl { scheme, host, port })
}

/// Normalises where the control plane reaches this agent: `http(s)://host:port` for an HTTP
/// agent (scheme `http` when none is given), `host:port` for a gRPC agent (any scheme is
/// dropped). The port is required and the host must not be an unspecified address.
pub(crate) fn normalise_agent(
    input: &str,
    transport: DiscoveryTransport,
) -> Result<String, String> {
    let (scheme, host, port) = parse(input)?;
    let Some(port) = port else {
        return Err(format!("needs a port (host:port), got {input:?}"));
    };
    if host
        .name
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified())
    {
        return Err(format!(
            "host {host} is the unspecified address; advertise an address the control plane can reach"
        ));
    }
    Ok(match transport {
        DiscoveryTransport::Http => {
            let scheme = if scheme == Some(Scheme::Https) {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{host}:{port}")
        }
        DiscoveryTransport::Grpc => format!("{host}:{port}"),
    })
}

/// Parses `[http(s)://]host[:port][/]` with [`http::Uri`] (IPv6 in brackets), then applies
/// this crate's rules: scheme `http` or `https` (any case), no path, query, fragment or user
/// info, a host name of `[A-Za-z0-9.-_]` or a bracketed IPv6 address, a port 1..=65535.
fn parse(input: &str) -> Result<(Option<Scheme>, Host, Option<u16>), String> {
    if input.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if let Some(c) = input.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "must not contain whitespace or control characters, found {c:?} in {input:?}"
        ));
    }
    let uri: Uri = input.parse().map_err(|e| diagnose(input, &e))?;
    let scheme = match uri.scheme_str() {
        None => None,
        Some(s) if s.eq_ignore_ascii_case("http") => Some(Scheme::Http),
        Some(s) if s.eq_ignore_ascii_case("https") => Some(Scheme::Https),
        Some(s) => {
            return Err(format!(
                "scheme must be http or https, got {s:?} in {input:?}"
            ));
        }
    };
    let Some(authority) = uri.authority() else {
        return Err(format!("host is missing in {input:?}"));
    };
    // `Uri` drops a fragment; one trailing `/` is the only path accepted.
    if !matches!(uri.path(), "" | "/")
        || uri.query().is_some()
        || input.contains('#')
        || authority.as_str().contains('@')
    {
        return Err(format!(
            "must be host:port without path, query or user info, got {input:?}"
        ));
    }
    let name = authority.host();
    let host = match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(inner) => {
            if inner.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("{inner:?} in brackets is not an IPv6 address"));
            }
            Host {
                name: inner.to_owned(),
                ipv6: true,
            }
        }
        None => {
            check_host_name(name, input)?;
            Host {
                name: name.to_ascii_lowercase(),
                ipv6: false,
            }
        }
    };
    // `Authority::port` is `None` for a port that is not a `u16` too: read the text.
    let port = match authority.as_str()[name.len()..].strip_prefix(':') {
        None => None,
        Some(p) => Some(parse_port(p, input)?),
    };
    Ok((scheme, host, port))
}

/// Names what is wrong with an address [`http::Uri`] refused.
fn diagnose(input: &str, err: &http::uri::InvalidUri) -> String {
    let rest = input.split_once("://").map_or(input, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    if authority.starts_with('[') && !authority.contains(']') {
        format!("unclosed '[' in {input:?}")
    } else if !authority.starts_with('[') && authority.matches(':').count() > 1 {
        format!("IPv6 addresses must be written in brackets ([::1]:8080), got {input:?}")
    } else {
        format!("must be [http(s)://]host[:port], got {input:?} ({err})")
    }
}

fn check_host_name(name: &str, input: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("host is missing in {input:?}"));
    }
    if name.len() > MAX_HOST_LEN {
        return Err(format!(
            "host must be at most {MAX_HOST_LEN} characters, got {}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "host may only contain [A-Za-z0-9.-_], found {c:?} in {input:?}"
        ));
    }
    Ok(())
}

fn parse_port(p: &str, input: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("port must be 1..=65535, got {p:?} in {input:?}")),
        Ok(port) => Ok(port),
    }
}

/// Longest DNS name.
const MAX_HOST_LEN: usize = 253;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_plane_forms() {
        let u = parse_control_plane("http://podium:8082").unwrap();
        assert_eq!(
            (u.scheme, u.authority()),
            (Scheme::Http, "podium:8082".to_owned())
        );
        assert_eq!(u.to_string(), "http://podium:8082");
        assert_eq!(
            parse_control_plane("HTTPS://Podium.example/")
                .unwrap()
                .to_string(),
            "https://podium.example:443"
        );
        assert_eq!(parse_control_plane("http://10.0.0.1").unwrap().port, 80);
        let v6 = parse_control_plane("http://[::1]:9000").unwrap();
        assert_eq!(
            (v6.authority(), v6.host_name()),
            ("[::1]:9000".to_owned(), "::1")
        );
    }

    #[test]
    fn control_plane_errors_name_the_rule() {
        let cases = [
            ("", "must not be empty"),
            ("podium:8082", "must start with http:// or https://"),
            ("grpc://podium:1", "scheme must be http or https"),
            ("http://podium:8082/api", "without path"),
            ("http://user@podium:1", "user info"),
            ("http://podium:1?x=1", "query"),
            ("http://podium:1#top", "without path"),
            ("http://podium:1//", "without path"),
            ("http://:8082", "host is missing"),
            ("http://podium:0", "port must be 1..=65535"),
            ("http://podium:99999", "port must be 1..=65535"),
            ("http://podium:x", "port must be 1..=65535"),
            ("http://::1:80", "brackets"),
            ("http://[::1", "unclosed"),
            ("http://[zz]:1", "not an IPv6 address"),
            ("http://po dium:1", "whitespace"),
            ("http://po*dium:1", "may only contain"),
        ];
        for (input, want) in cases {
            let err = parse_control_plane(input).unwrap_err();
            assert!(err.contains(want), "{input:?}: {err}");
        }
    }

    #[test]
    fn agent_endpoint_is_normalised_per_transport() {
        let http = DiscoveryTransport::Http;
        let grpc = DiscoveryTransport::Grpc;
        assert_eq!(
            normalise_agent("this-host:8085", http).unwrap(),
            "http://this-host:8085"
        );
        assert_eq!(
            normalise_agent("http://this-host:8085/", http).unwrap(),
            "http://this-host:8085"
        );
        assert_eq!(normalise_agent("https://h:1", http).unwrap(), "https://h:1");
        assert_eq!(
            normalise_agent("http://10.1.2.3:50052", grpc).unwrap(),
            "10.1.2.3:50052"
        );
        assert_eq!(
            normalise_agent("[fe80::1]:50052", grpc).unwrap(),
            "[fe80::1]:50052"
        );
        assert!(
            normalise_agent("this-host", http)
                .unwrap_err()
                .contains("needs a port")
        );
        assert!(
            normalise_agent("0.0.0.0:8085", http)
                .unwrap_err()
                .contains("unspecified")
        );
        assert!(
            normalise_agent("[::]:8085", grpc)
                .unwrap_err()
                .contains("unspecified")
        );
    }
}
