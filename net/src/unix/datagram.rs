//! `UnixDatagram`: Unix-domain datagrams, registered with the runtime; its `async fn`s let any
//! number of tasks wait on one socket.

use std::io;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::os::unix::net::{self, SocketAddr};
use std::path::Path;
use std::task::{Context, Poll};

use knote_executor::io::{AsyncFd, Interest};
use socket2::{Domain, SockAddr, Type};

use super::cred::{peer_cred, UCred};
use crate::socket::new_socket;

/// A Unix-domain datagram socket.
#[derive(Debug)]
pub struct UnixDatagram {
    io: AsyncFd<net::UnixDatagram>,
}

impl UnixDatagram {
    /// A socket bound to `path` (which must not exist yet).
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        UnixDatagram::bind_addr(&super::path_addr(path.as_ref())?)
    }

    /// A socket bound to the abstract `name` (Linux, Android).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn bind_abstract(name: &[u8]) -> io::Result<UnixDatagram> {
        UnixDatagram::bind_addr(&super::abstract_addr(name)?)
    }

    fn bind_addr(addr: &SockAddr) -> io::Result<UnixDatagram> {
        let socket = new_socket(Domain::UNIX, Type::DGRAM, None)?;
        socket.bind(addr)?;
        UnixDatagram::from_nonblocking(socket.into())
    }

    /// A socket bound to no address (it can send, and receive replies only once connected
    /// or when its peer sends to it through a pair).
    pub fn unbound() -> io::Result<UnixDatagram> {
        let socket = new_socket(Domain::UNIX, Type::DGRAM, None)?;
        UnixDatagram::from_nonblocking(socket.into())
    }

    /// A connected pair of datagram sockets (`socketpair(2)`).
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = net::UnixDatagram::pair()?;
        Ok((UnixDatagram::from_std(a)?, UnixDatagram::from_std(b)?))
    }

    /// Wraps a std socket, setting it non-blocking, in the current runtime.
    pub fn from_std(socket: net::UnixDatagram) -> io::Result<UnixDatagram> {
        socket.set_nonblocking(true)?;
        UnixDatagram::from_nonblocking(socket)
    }

    fn from_nonblocking(socket: net::UnixDatagram) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            io: AsyncFd::new(socket)?,
        })
    }

    /// Deregisters the socket and returns it, still non-blocking.
    pub fn into_std(self) -> net::UnixDatagram {
        self.io.into_inner()
    }

    fn sock(&self) -> &net::UnixDatagram {
        self.io.get_ref()
    }

    /// Sets the default destination (and the only accepted source) to the socket at `path`.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.sock().connect(path)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock().peer_addr()
    }

    /// The credentials of the connected peer (of a [`pair`](UnixDatagram::pair): this
    /// process).
    pub fn peer_cred(&self) -> io::Result<UCred> {
        peer_cred(self.io.as_fd())
    }

    /// Sends `buf` to the connected peer, waiting for room.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.async_io(Interest::WRITABLE, |s| s.send(buf)).await
    }

    /// Receives one datagram from the connected peer.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.async_io(Interest::READABLE, |s| s.recv(buf)).await
    }

    /// Sends `buf` to the socket at `path`, waiting for room.
    pub async fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let path = path.as_ref();
        self.io
            .async_io(Interest::WRITABLE, |s| s.send_to(buf, path))
            .await
    }

    /// Sends `buf` to the address `addr` (e.g. one [`recv_from`](UnixDatagram::recv_from)
    /// returned, abstract names included).
    pub async fn send_to_addr(&self, buf: &[u8], addr: &SocketAddr) -> io::Result<usize> {
        self.io
            .async_io(Interest::WRITABLE, |s| s.send_to_addr(buf, addr))
            .await
    }

    /// Receives one datagram and its sender's address.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io
            .async_io(Interest::READABLE, |s| s.recv_from(buf))
            .await
    }

    /// Sends to the connected peer if there is room now (`WouldBlock` if not).
    pub fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        self.sock().send(buf)
    }

    /// Receives from the connected peer if a datagram is there now (`WouldBlock` if not).
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock().recv(buf)
    }

    /// [`send`](UnixDatagram::send) as a poll function (one waker kept for writes).
    pub fn poll_send(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let s = self.sock();
        self.io
            .registration()
            .poll_io(cx, Interest::WRITABLE, || s.send(buf))
    }

    /// [`recv`](UnixDatagram::recv) as a poll function (one waker kept for reads).
    pub fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let s = self.sock();
        self.io
            .registration()
            .poll_io(cx, Interest::READABLE, || s.recv(buf))
    }

    /// Shuts down receiving, sending, or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock().shutdown(how)
    }

    /// Takes the socket's pending error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.sock().take_error()
    }
}

crate::impl_fd!(UnixDatagram, net::UnixDatagram);
