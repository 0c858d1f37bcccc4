//! Owned halves of a stream: a reader and a writer sharing it through an `Arc`, each free to
//! move to its own task, and [`reunite`](OwnedReadHalf::reunite) to get the stream back. One
//! implementation serves [`TcpStream`] (the default type parameter) and
//! [`UnixStream`](crate::UnixStream), as the borrowed halves do.

use std::error::Error;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::TcpStream;
use crate::io::{impl_read, impl_write};
use crate::Stream;

/// The reading half of a stream, from [`TcpStream::into_split`] or
/// [`UnixStream::into_split`](crate::UnixStream::into_split).
#[derive(Debug)]
pub struct OwnedReadHalf<S = TcpStream> {
    stream: Arc<S>,
}

/// The writing half of a stream, from [`TcpStream::into_split`] or
/// [`UnixStream::into_split`](crate::UnixStream::into_split); closing it shuts the stream's
/// write side down. The socket closes when both halves are dropped.
#[derive(Debug)]
pub struct OwnedWriteHalf<S = TcpStream> {
    stream: Arc<S>,
}

/// Both halves of `stream`, sharing it.
pub(crate) fn halves<S: Stream>(stream: S) -> (OwnedReadHalf<S>, OwnedWriteHalf<S>) {
    let stream = Arc::new(stream);
    (
        OwnedReadHalf {
            stream: Arc::clone(&stream),
        },
        OwnedWriteHalf { stream },
    )
}

impl<S> OwnedReadHalf<S> {
    /// Puts the two halves of one stream back together; halves of different streams are
    /// handed back in the error.
    pub fn reunite(self, write: OwnedWriteHalf<S>) -> Result<S, ReuniteError<S>> {
        if !Arc::ptr_eq(&self.stream, &write.stream) {
            return Err(ReuniteError(self, write));
        }
        drop(write);
        // The two halves held the only references (the `Arc` never leaves them): with one
        // dropped, this one is unique.
        match Arc::try_unwrap(self.stream) {
            Ok(stream) => Ok(stream),
            Err(_) => unreachable!("a stream's halves are its only owners"),
        }
    }
}

impl<S> OwnedWriteHalf<S> {
    /// [`OwnedReadHalf::reunite`], from this side.
    pub fn reunite(self, read: OwnedReadHalf<S>) -> Result<S, ReuniteError<S>> {
        read.reunite(self)
    }
}

impl OwnedReadHalf<TcpStream> {
    /// Copies incoming bytes without consuming them (see [`TcpStream::peek`]).
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.peek(buf).await
    }

    /// [`TcpStream::poll_peek`].
    pub fn poll_peek(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.stream.poll_peek(cx, buf)
    }

    /// The stream's local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// The stream's peer address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }
}

impl OwnedWriteHalf<TcpStream> {
    /// The stream's local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// The stream's peer address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }
}

impl<S> AsRef<S> for OwnedReadHalf<S> {
    fn as_ref(&self) -> &S {
        &self.stream
    }
}

impl<S> AsRef<S> for OwnedWriteHalf<S> {
    fn as_ref(&self) -> &S {
        &self.stream
    }
}

impl_read!([S: Stream] OwnedReadHalf<S>, |s| s.stream.fd());
impl_write!([S: Stream] OwnedWriteHalf<S>, |s| s.stream.fd());

/// [`OwnedReadHalf::reunite`] was given halves of two different streams: here they are back.
#[derive(Debug)]
pub struct ReuniteError<S = TcpStream>(pub OwnedReadHalf<S>, pub OwnedWriteHalf<S>);

impl<S> fmt::Display for ReuniteError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("knote-net: these halves belong to different streams")
    }
}

impl<S: fmt::Debug> Error for ReuniteError<S> {}
