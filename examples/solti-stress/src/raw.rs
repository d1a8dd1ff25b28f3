//! Raw TCP requests, for input no well-behaved client would send.

use std::{net::SocketAddr, time::Duration};

use anyhow::{Result, anyhow};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

/// What the server did with a raw request.
#[derive(Debug)]
pub(crate) enum RawOutcome {
    /// A response: status code, lowercase header block and body (possibly truncated).
    Response {
        status: u16,
        head: String,
        body: Vec<u8>,
    },
    /// The connection was closed or reset without a response.
    Closed(String),
}

impl RawOutcome {
    /// Short description for reports.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Response { status, body, .. } => {
                format!(
                    "{status} {}",
                    String::from_utf8_lossy(body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                )
            }
            Self::Closed(why) => format!("connection closed without a response ({why})"),
        }
    }

    /// The status code, when there was a response.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            Self::Response { status, .. } => Some(*status),
            Self::Closed(_) => None,
        }
    }

    /// Whether the response body is a JSON error (`error` + `message`).
    pub(crate) fn is_json_error(&self) -> bool {
        match self {
            Self::Response { head, body, .. } => {
                head.contains("content-type: application/json")
                    && serde_json::from_slice::<serde_json::Value>(body)
                        .ok()
                        .is_some_and(|v| v.get("error").is_some() && v.get("message").is_some())
            }
            Self::Closed(_) => false,
        }
    }
}

/// Writes `request` (in a background task, so an early response is still read) and reads
/// one response within `within`.
pub(crate) async fn exchange(
    addr: SocketAddr,
    request: Vec<u8>,
    within: Duration,
) -> Result<RawOutcome> {
    let stream = TcpStream::connect(addr).await?;
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        // The server may answer and close before everything is written; that is fine.
        let _ = wr.write_all(&request).await;
        let _ = wr.flush().await;
        wr
    });
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) => return Ok::<_, anyhow::Error>((buf, "eof".to_owned())),
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(done) = complete_response(&buf) {
                        buf.truncate(done);
                        return Ok((buf, String::new()));
                    }
                }
                Err(e) => return Ok((buf, e.to_string())),
            }
        }
    };
    let result = tokio::time::timeout(within, read).await;
    writer.abort();
    let (buf, why) =
        result.map_err(|_| anyhow!("no response and no close within {within:?}"))??;
    Ok(
        parse_response(&buf).unwrap_or(RawOutcome::Closed(if why.is_empty() {
            "eof".to_owned()
        } else {
            why
        })),
    )
}

/// Length of the first complete response in `buf` (Content-Length bodies only; otherwise
/// the response completes at EOF).
fn complete_response(buf: &[u8]) -> Option<usize> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))?
        .trim()
        .parse()
        .ok()?;
    (buf.len() >= head_end + len).then_some(head_end + len)
}

fn parse_response(buf: &[u8]) -> Option<RawOutcome> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = head
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(RawOutcome::Response {
        status,
        head,
        body: buf[head_end..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_response() {
        let raw = b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\ncontent-length: 31\r\n\r\n{\"error\":\"X\",\"message\":\"too b\"}x";
        assert_eq!(complete_response(raw), Some(raw.len() - 1));
        let out = parse_response(&raw[..raw.len() - 1]).unwrap();
        assert_eq!(out.status(), Some(413));
        assert!(out.is_json_error());
        assert!(parse_response(b"HTTP/1.1 200").is_none());
    }
}
