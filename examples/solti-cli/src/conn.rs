//! Opening a byte stream to the agent: TCP, TLS over TCP (solti-tls, rustls with ring) or a
//! Unix socket.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpStream, UnixStream},
};
use tokio_rustls::{TlsConnector, client::TlsStream};

use crate::{
    error::{Error, Result},
    target::{Endpoint, Target},
};

/// A connected stream of any kind.
#[derive(Debug)]
pub(crate) enum Io {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Unix(UnixStream),
}

/// Opens connections to one target.
#[derive(Clone, Debug)]
pub(crate) struct Connector {
    target: Target,
    tls: Option<(solti_tls::ClientTlsConfig, ServerName<'static>)>,
    timeout: Duration,
}

impl Connector {
    /// A connector for `target`; `tls` is required exactly when the target uses TLS.
    pub(crate) fn new(
        target: Target,
        tls: Option<solti_tls::ClientTlsConfig>,
        server_name: Option<&str>,
        timeout: Duration,
    ) -> Result<Self> {
        let tls = match tls {
            None => None,
            Some(config) => {
                let name = match (server_name, &target.endpoint) {
                    (Some(name), _) => name.to_owned(),
                    (None, Endpoint::Tcp { host, .. }) => host.clone(),
                    (None, Endpoint::Unix(_)) => "localhost".to_owned(),
                };
                let name = ServerName::try_from(name.clone()).map_err(|_| {
                    Error::usage(format!(
                        "--server-name {name:?}: not a valid DNS name or IP address"
                    ))
                })?;
                Some((config, name))
            }
        };
        Ok(Self {
            target,
            tls,
            timeout,
        })
    }

    /// The target this connector reaches.
    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    /// Connects (and runs the TLS handshake), within the connect timeout.
    pub(crate) async fn connect(&self) -> Result<TokioIo<Io>> {
        match tokio::time::timeout(self.timeout, self.connect_inner()).await {
            Ok(result) => result.map(TokioIo::new),
            Err(_) => Err(Error::failed(format!(
                "cannot reach the agent at {}: no answer within {} (--connect-timeout)",
                self.target,
                crate::duration::format_ms(
                    u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX)
                )
            ))),
        }
    }

    async fn connect_inner(&self) -> Result<Io> {
        let unreachable = |e: io::Error| {
            let hint = match e.kind() {
                io::ErrorKind::ConnectionRefused => " (is the agent running, on this address?)",
                io::ErrorKind::NotFound => " (no such socket: is the agent running?)",
                io::ErrorKind::PermissionDenied => " (not allowed to open the socket)",
                _ => "",
            };
            Error::failed(format!(
                "cannot reach the agent at {}: {e}{hint}",
                self.target
            ))
        };
        match &self.target.endpoint {
            Endpoint::Unix(path) => UnixStream::connect(path)
                .await
                .map(Io::Unix)
                .map_err(unreachable),
            Endpoint::Tcp { host, port } => {
                let tcp = TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(unreachable)?;
                let _ = tcp.set_nodelay(true);
                let Some((config, name)) = &self.tls else {
                    return Ok(Io::Tcp(tcp));
                };
                let connector: TlsConnector = config.connector();
                let tls = connector.connect(name.clone(), tcp).await.map_err(|e| {
                    Error::failed(format!(
                        "TLS handshake with the agent at {} failed: {e} (check --ca, --cert, --key{})",
                        self.target,
                        if e.to_string().contains("NotValidForName") {
                            ", --server-name"
                        } else {
                            ""
                        }
                    ))
                })?;
                Ok(Io::Tls(Box::new(tls)))
            }
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_read(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_write(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s).poll_flush(cx),
            Self::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s).poll_shutdown(cx),
            Self::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
