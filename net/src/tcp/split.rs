//! Borrowed halves of a stream: a reader and a writer that borrow it, so two futures (or two
//! scoped tasks) can use one stream at once without an `Arc`. One implementation serves
//! [`TcpStream`] (the default type parameter) and [`UnixStream`](crate::UnixStream): the
//! halves are generic over [`Stream`](crate::Stream), whose registered descriptor they read
//! and write through.

use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use super::TcpStream;
use crate::io::{impl_read, impl_write};
use crate::Stream;

/// The reading half of a borrowed stream, from [`TcpStream::split`] or
/// [`UnixStream::split`](crate::UnixStream::split).
#[derive(Debug)]
pub struct ReadHalf<'a, S = TcpStream>(&'a S);

/// The writing half of a borrowed stream, from [`TcpStream::split`] or
/// [`UnixStream::split`](crate::UnixStream::split); closing it shuts the stream's write side
/// down.
#[derive(Debug)]
pub struct WriteHalf<'a, S = TcpStream>(&'a S);

/// Both halves of `stream`, borrowing it for as long as either lives.
pub(crate) fn halves<S: Stream>(stream: &mut S) -> (ReadHalf<'_, S>, WriteHalf<'_, S>) {
    (ReadHalf(stream), WriteHalf(stream))
}

impl ReadHalf<'_, TcpStream> {
    /// Copies incoming bytes without consuming them (see [`TcpStream::peek`]).
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.peek(buf).await
    }

    /// [`TcpStream::poll_peek`].
    pub fn poll_peek(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.0.poll_peek(cx, buf)
    }

    /// The stream's local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }

    /// The stream's peer address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }
}

impl WriteHalf<'_, TcpStream> {
    /// The stream's local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }

    /// The stream's peer address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }
}

impl<S> AsRef<S> for ReadHalf<'_, S> {
    fn as_ref(&self) -> &S {
        self.0
    }
}

impl<S> AsRef<S> for WriteHalf<'_, S> {
    fn as_ref(&self) -> &S {
        self.0
    }
}

impl_read!(['a, S: Stream] ReadHalf<'a, S>, |s| s.0.fd());
impl_write!(['a, S: Stream] WriteHalf<'a, S>, |s| s.0.fd());
