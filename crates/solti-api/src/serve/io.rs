//! A connection whose first bytes were read ahead (under a timeout) and are replayed.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};

/// The HTTP/2 connection preface; hyper-util's auto builder reads this many bytes to choose
/// the protocol, and does so without a timeout, so we read them first under ours.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// `io` with `prefix` (already read) in front of it.
pub(super) struct Prefixed<I> {
    prefix: Vec<u8>,
    pos: usize,
    io: I,
}

impl<I: AsyncRead + AsyncWrite + Unpin> Prefixed<I> {
    /// Reads until the bytes so far decide the protocol: they stop matching the HTTP/2
    /// preface (HTTP/1), match all of it (HTTP/2), or the peer closes.
    pub(super) async fn read_preface(mut io: I) -> io::Result<Self> {
        let mut prefix = Vec::with_capacity(H2_PREFACE.len());
        let mut buf = [0u8; 24];
        loop {
            let want = H2_PREFACE.len() - prefix.len();
            let n = io.read(&mut buf[..want]).await?;
            if n == 0 {
                break;
            }
            prefix.extend_from_slice(&buf[..n]);
            if prefix.len() == H2_PREFACE.len() || !H2_PREFACE.starts_with(&prefix) {
                break;
            }
        }
        Ok(Self { prefix, pos: 0, io })
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.prefix.len() {
            let rest = &this.prefix[this.pos..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncWriteExt as _, duplex};

    use super::*;

    #[tokio::test]
    async fn replays_the_prefix() {
        let (mut client, server) = duplex(64);
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut p = Prefixed::read_preface(server).await.unwrap();
        assert!(b"GET / HTTP/1.1\r\n\r\n".starts_with(&p.prefix));
        let mut out = vec![0u8; 18];
        p.read_exact(&mut out).await.unwrap();
        assert_eq!(&out, b"GET / HTTP/1.1\r\n\r\n");

        let (mut client, server) = duplex(64);
        client.write_all(H2_PREFACE).await.unwrap();
        client.write_all(b"xyz").await.unwrap();
        let mut p = Prefixed::read_preface(server).await.unwrap();
        assert_eq!(p.prefix, H2_PREFACE);
        let mut out = vec![0u8; 27];
        p.read_exact(&mut out).await.unwrap();
        assert_eq!(&out[24..], b"xyz");
    }
}
