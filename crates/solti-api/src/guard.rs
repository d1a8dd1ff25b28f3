//! Browser defences shared by both transports: the `Host`, `Origin`, `Sec-Fetch-Site` and
//! `Content-Type` checks that keep a web page from driving the API.
//!
//! A page can make a browser send a "simple" cross-origin request without any preflight:
//! `fetch(url, {method: "POST", mode: "no-cors", body})` sends a POST with no (or a
//! `text/plain`) `Content-Type`, an `Origin` naming the page, and (in current browsers)
//! `Sec-Fetch-Site: cross-site`. DNS rebinding lets a page send same-origin requests to a
//! loopback port, with a `Host` naming the attacker's domain. The rules, in order:
//!
//! 1. **Host** (421 `MisdirectedRequest`, only with [`HostPolicy::Loopback`]): the request's
//!    authority (HTTP/2 `:authority`, else `Host`) must be `localhost` or a loopback IP
//!    literal (`127.0.0.0/8`, `[::1]`), with an optional port. No authority at all (an
//!    HTTP/1.0 client) passes: a browser always sends one.
//! 2. **Sec-Fetch-Site** (403 `Forbidden`): `cross-site` and `same-site` are refused;
//!    `same-origin`, `none` (typed into the address bar) and an absent header pass.
//! 3. **Origin** (403 `Forbidden`): absent passes (non-browser clients); otherwise its
//!    `host[:port]` must equal the request's authority (ports compared after filling in the
//!    scheme's default). `Origin: null` (sandboxed frames, `file:` pages) is refused.
//! 4. **Content-Type** (415 `UnsupportedMediaType`): a request that carries a body, and every
//!    `POST`/`PUT`/`PATCH` that names a type, must say `application/json` (or
//!    `application/<x>+json`); on gRPC, `application/grpc[+proto]`. A body-less request
//!    without a type passes (`POST …/cancel` from curl).
//!
//! Every check reads headers only: nothing here grows with the body.

use http::{HeaderMap, Method, Uri, header};

use crate::ApiError;

/// Which `Host` values the API accepts (rule 1 of the browser defences).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostPolicy {
    /// Only `localhost` or a loopback IP literal, with an optional port: what a listener on
    /// a loopback address (or a Unix socket) should accept. Stops DNS rebinding.
    #[default]
    Loopback,
    /// Any `Host`: for listeners on other addresses, where clients use real host names (the
    /// API then requires a token or client certificates anyway).
    Any,
}

impl HostPolicy {
    /// The policy for a listener bound to `addr`: [`Loopback`](Self::Loopback) for a
    /// loopback address, [`Any`](Self::Any) otherwise (including the unspecified address,
    /// which needs authentication in the reference agents).
    #[must_use]
    pub fn for_listen_addr(addr: std::net::SocketAddr) -> Self {
        if addr.ip().is_loopback() {
            Self::Loopback
        } else {
            Self::Any
        }
    }

    /// Whether a request whose authority (`:authority` or `Host`; `None` when absent) is
    /// `authority` passes this policy. For servers of your own next to the API (the agents'
    /// `/metrics` server uses it).
    #[must_use]
    pub fn allows(self, authority: Option<&str>) -> bool {
        match self {
            Self::Any => true,
            Self::Loopback => authority.is_none_or(is_loopback_authority),
        }
    }
}

/// Which bodies a transport accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyType {
    /// `application/json` or `application/<x>+json`.
    Json,
    /// `application/grpc` or `application/grpc+<codec>`.
    Grpc,
}

/// Runs the browser defences over one request head. `has_body` says whether the request
/// carries a body (not known to be empty).
pub(crate) fn check(
    policy: HostPolicy,
    body_type: BodyType,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    has_body: bool,
) -> Result<(), ApiError> {
    let authority = authority(uri, headers)?;
    if policy == HostPolicy::Loopback
        && let Some(a) = authority
        && !is_loopback_authority(a)
    {
        return Err(ApiError::NotLoopbackHost(clip(a)));
    }
    if let Some(site) = headers.get(SEC_FETCH_SITE) {
        let site = site.as_bytes();
        if site.eq_ignore_ascii_case(b"cross-site") || site.eq_ignore_ascii_case(b"same-site") {
            return Err(ApiError::Forbidden {
                header: "Sec-Fetch-Site",
                rule: "requests from other sites are refused",
                got: clip(&String::from_utf8_lossy(site)),
            });
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !origin_matches(origin, authority) {
            return Err(ApiError::Forbidden {
                header: "Origin",
                rule: "cross-origin requests are refused",
                got: clip(origin),
            });
        }
    }
    let content_type = headers.get(header::CONTENT_TYPE);
    let names_type =
        content_type.is_some() && matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    if has_body || names_type {
        let raw = content_type.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let ok = raw.as_deref().is_some_and(|ct| accepts(body_type, ct));
        if !ok {
            let want = match body_type {
                BodyType::Json => "application/json",
                BodyType::Grpc => "application/grpc",
            };
            return Err(ApiError::UnsupportedMediaType {
                want,
                got: raw.as_deref().map(clip),
            });
        }
    }
    Ok(())
}

const SEC_FETCH_SITE: &str = "sec-fetch-site";

/// The request's authority: the URI's (HTTP/2 `:authority`, absolute-form HTTP/1) or the
/// `Host` header. Two that disagree are refused.
fn authority<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Result<Option<&'a str>, ApiError> {
    let host = match headers.get(header::HOST) {
        Some(h) => Some(
            h.to_str()
                .map_err(|_| ApiError::invalid("Host", "must be visible ASCII"))?,
        ),
        None => None,
    };
    match (uri.authority().map(http::uri::Authority::as_str), host) {
        (Some(a), Some(h)) if !a.eq_ignore_ascii_case(h) => Err(ApiError::HostMismatch {
            host: clip(h),
            target: clip(a),
        }),
        (Some(a), _) => Ok(Some(a)),
        (None, h) => Ok(h),
    }
}

/// Splits `host[:port]` (IPv6 in brackets) into the host and the optional port.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            p => Some((host, Some(p.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port.parse().ok()?))),
        None => Some((authority, None)),
    }
}

/// Whether `authority` names `localhost` or a loopback IP literal (with an optional port).
fn is_loopback_authority(authority: &str) -> bool {
    let Some((host, _)) = split_host_port(authority) else {
        return false;
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether the `Origin` value names the request's own host and port.
fn origin_matches(origin: &str, authority: Option<&str>) -> bool {
    let Some(authority) = authority else {
        // No authority to compare with: only a non-browser client omits it, and a browser
        // always sends one; refuse an Origin we cannot check.
        return false;
    };
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false; // `null` and anything that is not scheme://authority
    };
    if rest.contains('/') {
        return false;
    }
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return false,
    };
    let (Some((o_host, o_port)), Some((r_host, r_port))) =
        (split_host_port(rest), split_host_port(authority))
    else {
        return false;
    };
    let o_port = o_port.unwrap_or(default_port);
    // The request's scheme is not known here (TLS ends before the router); a Host without
    // a port matches the Origin scheme's default port.
    let r_port = r_port.unwrap_or(default_port);
    o_host.eq_ignore_ascii_case(r_host) && o_port == r_port
}

/// Whether a `Content-Type` value is acceptable for `body_type`.
fn accepts(body_type: BodyType, content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match body_type {
        BodyType::Json => {
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        }
        BodyType::Grpc => mime == "application/grpc" || mime.starts_with("application/grpc+"),
    }
}

/// At most 64 characters of a header value, for error messages.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn run(
        policy: HostPolicy,
        method: &str,
        headers: &[(&str, &str)],
        has_body: bool,
    ) -> Result<(), ApiError> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        check(
            policy,
            BodyType::Json,
            &method.parse().unwrap(),
            &Uri::from_static("/api/v1/tasks"),
            &map,
            has_body,
        )
    }

    #[test]
    fn the_no_cors_fetch_shape_is_refused() {
        // fetch(url, {method: "POST", mode: "no-cors", body}) from https://evil.example.
        let e = run(
            HostPolicy::Loopback,
            "POST",
            &[
                ("host", "127.0.0.1:8085"),
                ("origin", "https://evil.example"),
                ("sec-fetch-mode", "no-cors"),
                ("sec-fetch-site", "cross-site"),
                ("content-type", "text/plain;charset=UTF-8"),
            ],
            true,
        )
        .unwrap_err();
        assert_eq!(e.http_status(), 403, "{e}");
        // Without the Fetch metadata (older browsers), the Origin alone refuses it.
        let e = run(
            HostPolicy::Loopback,
            "POST",
            &[
                ("host", "127.0.0.1:8085"),
                ("origin", "https://evil.example"),
            ],
            true,
        )
        .unwrap_err();
        assert_eq!(e.http_status(), 403, "{e}");
    }

    #[test]
    fn host_rule() {
        for ok in [
            "127.0.0.1:8085",
            "localhost",
            "LOCALHOST:1",
            "localhost.:9",
            "[::1]:8085",
            "127.1.2.3",
        ] {
            run(HostPolicy::Loopback, "GET", &[("host", ok)], false)
                .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "evil.example",
            "evil.example:8085",
            "10.0.0.1:8085",
            "localhost.evil.example",
            "[::2]:1",
            "127.0.0.1:notaport",
        ] {
            let e = run(HostPolicy::Loopback, "GET", &[("host", bad)], false).unwrap_err();
            assert_eq!(e.http_status(), 421, "{bad}: {e}");
            assert!(e.to_string().starts_with("Host: "), "{e}");
        }
        run(HostPolicy::Any, "GET", &[("host", "evil.example")], false).unwrap();
        run(HostPolicy::Loopback, "GET", &[], false).unwrap();
    }

    #[test]
    fn origin_rule() {
        let host = ("host", "127.0.0.1:8085");
        run(
            HostPolicy::Loopback,
            "GET",
            &[host, ("origin", "http://127.0.0.1:8085")],
            false,
        )
        .unwrap();
        run(
            HostPolicy::Any,
            "GET",
            &[("host", "agent.lan"), ("origin", "https://agent.lan:443")],
            false,
        )
        .unwrap();
        for bad in [
            "null",
            "http://127.0.0.1:8086",
            "http://localhost:8085",
            "https://evil.example",
            "file://",
            "http://127.0.0.1:8085/x",
        ] {
            let e = run(HostPolicy::Loopback, "GET", &[host, ("origin", bad)], false).unwrap_err();
            assert_eq!(e.http_status(), 403, "{bad}: {e}");
        }
    }

    #[test]
    fn fetch_metadata_rule() {
        for ok in ["same-origin", "none", "Same-Origin"] {
            run(HostPolicy::Any, "GET", &[("sec-fetch-site", ok)], false).unwrap();
        }
        for bad in ["cross-site", "same-site"] {
            let e = run(HostPolicy::Any, "GET", &[("sec-fetch-site", bad)], false).unwrap_err();
            assert_eq!(e.http_status(), 403, "{bad}");
            assert_eq!(e.label(), "Forbidden");
        }
    }

    #[test]
    fn content_type_rule() {
        run(
            HostPolicy::Any,
            "POST",
            &[("content-type", "application/json; charset=utf-8")],
            true,
        )
        .unwrap();
        run(
            HostPolicy::Any,
            "PUT",
            &[("content-type", "application/merge+json")],
            true,
        )
        .unwrap();
        // A body-less POST (cancel) needs no type.
        run(HostPolicy::Any, "POST", &[], false).unwrap();
        run(HostPolicy::Any, "DELETE", &[], false).unwrap();
        for (method, headers, body) in [
            ("POST", &[][..], true),
            ("POST", &[("content-type", "text/plain")][..], true),
            ("POST", &[("content-type", "text/plain")][..], false),
            (
                "POST",
                &[("content-type", "application/x-www-form-urlencoded")][..],
                true,
            ),
            ("PUT", &[("content-type", "multipart/form-data")][..], true),
            ("GET", &[][..], true),
        ] {
            let e = run(HostPolicy::Any, method, headers, body).unwrap_err();
            assert_eq!(e.http_status(), 415, "{method} {headers:?}: {e}");
            assert_eq!(e.label(), "UnsupportedMediaType");
            assert!(e.to_string().starts_with("Content-Type: "), "{e}");
        }
    }

    #[test]
    fn grpc_bodies() {
        let mut map = HeaderMap::new();
        map.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        let uri = Uri::from_static("/solti.task.v1.TaskService/SubmitTask");
        check(
            HostPolicy::Loopback,
            BodyType::Grpc,
            &Method::POST,
            &uri,
            &map,
            true,
        )
        .unwrap();
        map.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let e = check(
            HostPolicy::Loopback,
            BodyType::Grpc,
            &Method::POST,
            &uri,
            &map,
            true,
        )
        .unwrap_err();
        assert_eq!(e.http_status(), 415);
    }

    #[test]
    fn authority_mismatch_is_refused() {
        let mut map = HeaderMap::new();
        map.insert(header::HOST, HeaderValue::from_static("evil.example"));
        let uri: Uri = "http://127.0.0.1:1/api/v1/tasks".parse().unwrap();
        let e = check(
            HostPolicy::Any,
            BodyType::Json,
            &Method::GET,
            &uri,
            &map,
            false,
        )
        .unwrap_err();
        assert_eq!(e.http_status(), 421);
    }
}
