//! HTTP/JSON transport: `POST {control_plane}/api/v1/discovery/sync`.
//!
//! Every Sync opens its own HTTP/1.1 connection (TLS when the control plane is `https://`)
//! and drives it inside the Sync future: at one request per interval (>= 1 s) a pool buys
//! nothing, while a fresh connection never reuses one a restarted control plane or a proxy
//! has silently dropped, the connect timeout applies to every Sync, and no background task
//! outlives the heartbeat.

use std::{error::Error as StdError, time::Duration};

use http::{
    HeaderMap, HeaderValue, Method, Request, StatusCode,
    header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, RETRY_AFTER, USER_AGENT},
};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{Failure, legacy, shorten};
use crate::{
    DiscoverConfig, DiscoverError, HttpDialect,
    endpoint::{ControlPlaneUrl, Scheme},
    metrics::reason,
    payload::{Payload, Reply},
    pb, schedule,
};

/// The HTTP client for one control plane.
pub(crate) struct HttpClient {
    target: ControlPlaneUrl,
    authorization: Option<HeaderValue>,
    dialect: HttpDialect,
    connect_timeout: Duration,
    dialer: Dialer,
}

/// How the byte stream is set up after TCP connects.
enum Dialer {
    Plain,
    #[cfg(feature = "tls")]
    Tls(super::http_tls::TlsDialer),
}

impl HttpClient {
    pub(crate) fn new(config: &DiscoverConfig) -> Result<Self, DiscoverError> {
        let authorization = match &config.token {
            Some(token) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
                    .map_err(|e| DiscoverError::Client {
                        transport: "http",
                        source: Box::new(e),
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let dialer = match config.control_plane.scheme {
            Scheme::Http => Dialer::Plain,
            #[cfg(feature = "tls")]
            Scheme::Https => Dialer::Tls(super::http_tls::TlsDialer::new(config)?),
            #[cfg(not(feature = "tls"))]
            Scheme::Https => {
                return Err(DiscoverError::config(
                    "control_plane_endpoint",
                    "https:// needs the `tls` feature",
                ));
            }
        };
        Ok(Self {
            target: config.control_plane.clone(),
            authorization,
            dialect: config.dialect,
            connect_timeout: config.connect_timeout,
            dialer,
        })
    }

    pub(crate) async fn sync(&self, payload: &Payload) -> Result<Reply, Failure> {
        let request = self.request(payload)?;
        let (status, headers, body) = match &self.dialer {
            Dialer::Plain => exchange(TokioIo::new(self.connect().await?), request).await?,
            #[cfg(feature = "tls")]
            Dialer::Tls(tls) => {
                let stream = tokio::time::timeout(self.connect_timeout, async {
                    let tcp = self.connect().await?;
                    tls.handshake(tcp).await
                })
                .await
                .map_err(|_| Failure::retry(reason::TIMEOUT, "TLS handshake timed out"))??;
                exchange(TokioIo::new(stream), request).await?
            }
        };
        self.classify(status, &headers, &body)
    }

    fn request(&self, payload: &Payload) -> Result<Request<Full<Bytes>>, Failure> {
        let body = match self.dialect {
            HttpDialect::Proto => serde_json::to_vec(&pb::SyncRequest::from(payload)),
            HttpDialect::Legacy => serde_json::to_vec(&legacy::LegacyRequest::from(payload)),
        }
        .map_err(|e| Failure::Permanent {
            reason: reason::ENCODE,
            detail: e.to_string(),
        })?;
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(SYNC_PATH)
            .header(HOST, self.target.authority())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, USER_AGENT_VALUE);
        if let Some(auth) = &self.authorization {
            builder = builder.header(AUTHORIZATION, auth.clone());
        }
        builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Failure::Permanent {
                reason: reason::ENCODE,
                detail: e.to_string(),
            })
    }

    /// TCP connect within the connect timeout.
    async fn connect(&self) -> Result<TcpStream, Failure> {
        let addr = (self.target.host_name(), self.target.port);
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                Failure::retry(
                    reason::TIMEOUT,
                    format!("connect to {} timed out", self.target),
                )
            })?
            .map_err(|e| {
                Failure::retry(
                    reason::TRANSPORT,
                    format!("connect to {}: {e}", self.target),
                )
            })?;
        // Small request/response pairs: do not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    fn classify(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Reply, Failure> {
        let code = status.as_u16();
        let text = || shorten(&String::from_utf8_lossy(body));
        match code {
            200..=299 => self.decode(body),
            401 | 403 => Err(Failure::Unauthorized {
                status: format!("HTTP {code}"),
                detail: text(),
            }),
            408 | 425 | 429 | 500..=599 => Err(Failure::Retry {
                reason: reason::HTTP_STATUS,
                detail: format!("HTTP {status}: {}", text()),
                retry_after: headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<i64>().ok())
                    .and_then(schedule::retry_after),
            }),
            _ => Err(Failure::Permanent {
                reason: reason::HTTP_STATUS,
                detail: format!("HTTP {status}: {}", text()),
            }),
        }
    }

    /// A 2xx answer: an empty body counts as accepted; otherwise the JSON of the dialect,
    /// where missing fields take their zero values (so `{}` means `success = false`).
    fn decode(&self, body: &Bytes) -> Result<Reply, Failure> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Reply::accepted());
        }
        let reply = match self.dialect {
            HttpDialect::Proto => serde_json::from_slice::<pb::SyncResponse>(body).map(Reply::from),
            HttpDialect::Legacy => {
                serde_json::from_slice::<legacy::LegacyResponse>(body).map(Reply::from)
            }
        };
        reply.map_err(|e| Failure::retry(reason::DECODE, format!("bad SyncResponse JSON: {e}")))
    }
}

type BoxError = Box<dyn StdError + Send + Sync>;

/// Runs one request over `io`, driving the connection in the same future (no spawned task).
async fn exchange<T>(
    io: T,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, HeaderMap, Bytes), Failure>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let transport =
        |e: &dyn StdError| Failure::retry(reason::TRANSPORT, solti_model::error_chain(e));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| transport(&e))?;
    let call = async move {
        let response = sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_BODY).collect().await?.to_bytes();
        Ok::<_, BoxError>((parts.status, parts.headers, body))
    };
    tokio::pin!(call, conn);
    let result = tokio::select! {
        biased;
        r = &mut call => r,
        c = &mut conn => match c {
            Err(e) => Err(e.into()),
            // Closed cleanly while the request is pending: the request now ends by itself.
            Ok(()) => call.await,
        },
    };
    result.map_err(|e| transport(&*e))
}

const SYNC_PATH: &str = "/api/v1/discovery/sync";
const USER_AGENT_VALUE: &str = concat!("solti-discover/", env!("CARGO_PKG_VERSION"));
/// Largest accepted response body; a SyncResponse is a few dozen bytes.
const MAX_BODY: usize = 64 * 1024;
