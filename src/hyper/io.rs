//! `KnoteIo`: a knote stream as hyper's `rt::Read` + `rt::Write`.
//!
//! hyper reads into a buffer whose spare capacity is uninitialised memory. Zeroing it before
//! every read (what a `&mut [u8]` read API forces) costs a memset of the whole spare capacity
//! per read, so the read side goes through the streams' `poll_read_uninit`, which hands that
//! memory to `read(2)` as it is. Writes use `writev`, which hyper's HTTP/1 encoder relies on
//! to send headers and body in one system call when the stream says it is vectored.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};

pub use crate::net::Stream;
#[cfg(doc)]
use crate::net::{TcpStream, UnixStream};

/// A knote stream ([`TcpStream`], [`UnixStream`]) as hyper's [`Read`] and [`Write`]: what
/// hyper's `serve_connection` and `handshake` take.
///
/// Reads fill hyper's buffer without zeroing it first; writes are vectored
/// ([`is_write_vectored`](Write::is_write_vectored) is true, one `writev` per call); flushing
/// has nothing to do (writes go straight to the socket); shutting down shuts the socket's
/// write side, so the peer reads EOF. The stream stays reachable ([`get_ref`](KnoteIo::get_ref),
/// [`into_inner`](KnoteIo::into_inner)) for its addresses and socket options.
#[derive(Debug)]
pub struct KnoteIo<T> {
    inner: T,
}

impl<T: Stream> KnoteIo<T> {
    /// Wraps `stream`.
    pub fn new(stream: T) -> KnoteIo<T> {
        KnoteIo { inner: stream }
    }

    /// The stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The stream, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwraps the stream.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: Stream> Read for KnoteIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: `as_mut`'s contract is that no byte already initialised is made
        // uninitialised through the slice; `poll_read_uninit` only stores bytes into it
        // (read(2)), never uninitialised ones.
        let unfilled = unsafe { buf.as_mut() };
        let n = ready!(self.inner.poll_read_uninit(cx, unfilled))?;
        // SAFETY: a knote stream's `poll_read_uninit` returns `Ok(n)` only after read(2) wrote
        // the first `n` bytes of `unfilled` (n is at most its length): they are initialised,
        // and filled.
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl<T: Stream> Write for KnoteIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Nothing to flush: writes go straight to the socket.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Shuts the socket's write side (the peer reads EOF); reading goes on. A connection the
    /// peer already reset has nothing left to shut: that is `Ok` (knote-net's write shutdown).
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.inner.shutdown_write())
    }
}
