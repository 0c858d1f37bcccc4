//! `UdpSocket`: datagrams over UDP, registered with the runtime. Its `async fn`s let any number
//! of tasks wait on one socket at once (several readers of one socket each get whole
//! datagrams); the `poll_*` functions keep one waker per direction.

use std::io;
use std::net::{self, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::task::{Context, Poll};

use knote_executor::io::{AsyncFd, Interest};
use socket2::{Domain, Protocol, Type};

use crate::addr::{each_addr, resolve, ToSocketAddrs};
use crate::socket::new_socket;

/// A UDP socket.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// let socket = knote_net::UdpSocket::bind("127.0.0.1:0").await?;
/// socket.send_to(b"hello", "127.0.0.1:9000").await?;
/// let mut buf = [0; 1500];
/// let (n, from) = socket.recv_from(&mut buf).await?;
/// # let _ = (n, from); Ok(()) }
/// ```
#[derive(Debug)]
pub struct UdpSocket {
    io: AsyncFd<net::UdpSocket>,
}

impl UdpSocket {
    /// Binds to `addr`, trying each of its addresses in turn.
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        let addrs = resolve(&addr).await?;
        each_addr(addrs, |addr| async move {
            let socket = new_socket(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
            socket.bind(&addr.into())?;
            UdpSocket::from_nonblocking(socket.into())
        })
        .await
    }

    /// Wraps a std socket, setting it non-blocking, in the current runtime.
    pub fn from_std(socket: net::UdpSocket) -> io::Result<UdpSocket> {
        socket.set_nonblocking(true)?;
        UdpSocket::from_nonblocking(socket)
    }

    fn from_nonblocking(socket: net::UdpSocket) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            io: AsyncFd::new(socket)?,
        })
    }

    /// Deregisters the socket and returns it, still non-blocking.
    pub fn into_std(self) -> net::UdpSocket {
        self.io.into_inner()
    }

    fn sock(&self) -> &net::UdpSocket {
        self.io.get_ref()
    }

    /// Sets the default destination (and the only source [`recv`](UdpSocket::recv) accepts)
    /// to the first of `addr`'s addresses that connects.
    pub async fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        let addrs = resolve(&addr).await?;
        each_addr(addrs, |addr| async move { self.sock().connect(addr) }).await
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock().peer_addr()
    }

    /// Sends `buf` to the connected peer, waiting until writable.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.async_io(Interest::WRITABLE, |s| s.send(buf)).await
    }

    /// Receives one datagram from the connected peer into `buf` (the rest of a longer one is
    /// lost), waiting until one arrives.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.async_io(Interest::READABLE, |s| s.recv(buf)).await
    }

    /// Sends `buf` to the first address of `target` (resolved on the blocking pool if it is
    /// a host name).
    pub async fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], target: A) -> io::Result<usize> {
        let target = resolve(&target).await?[0];
        self.io
            .async_io(Interest::WRITABLE, |s| s.send_to(buf, target))
            .await
    }

    /// Receives one datagram and its sender's address.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io
            .async_io(Interest::READABLE, |s| s.recv_from(buf))
            .await
    }

    /// Copies the next datagram into `buf` without taking it off the queue.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.async_io(Interest::READABLE, |s| s.peek(buf)).await
    }

    /// Copies the next datagram and its sender's address without taking it off the queue.
    pub async fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io
            .async_io(Interest::READABLE, |s| s.peek_from(buf))
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

    /// Sends to `target` if there is room now (`WouldBlock` if not).
    pub fn try_send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        self.sock().send_to(buf, target)
    }

    /// Receives a datagram and its sender if one is there now (`WouldBlock` if not).
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.sock().recv_from(buf)
    }

    /// [`send`](UdpSocket::send) as a poll function (one waker kept for writes).
    pub fn poll_send(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let s = self.sock();
        self.io
            .registration()
            .poll_io(cx, Interest::WRITABLE, || s.send(buf))
    }

    /// [`recv`](UdpSocket::recv) as a poll function (one waker kept for reads).
    pub fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let s = self.sock();
        self.io
            .registration()
            .poll_io(cx, Interest::READABLE, || s.recv(buf))
    }

    /// [`try_send_to`](UdpSocket::try_send_to), waiting for room (one waker kept for writes).
    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        let s = self.sock();
        self.io
            .registration()
            .poll_io(cx, Interest::WRITABLE, || s.send_to(buf, target))
    }

    /// [`recv_from`](UdpSocket::recv_from) as a poll function (one waker kept for reads).
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        let s = self.sock();
        self.io
            .registration()
            .poll_io(cx, Interest::READABLE, || s.recv_from(buf))
    }

    /// Sets `SO_BROADCAST`: allow sending to broadcast addresses.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.sock().set_broadcast(on)
    }

    /// Whether `SO_BROADCAST` is set.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.sock().broadcast()
    }

    /// `IP_TTL` of outgoing datagrams.
    pub fn ttl(&self) -> io::Result<u32> {
        self.sock().ttl()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.sock().set_ttl(ttl)
    }

    /// Joins the IPv4 multicast group `multiaddr` on the interface with address `interface`
    /// (`Ipv4Addr::UNSPECIFIED`: the system's choice).
    pub fn join_multicast_v4(&self, multiaddr: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.sock().join_multicast_v4(&multiaddr, &interface)
    }

    /// Leaves an IPv4 multicast group joined with
    /// [`join_multicast_v4`](UdpSocket::join_multicast_v4).
    pub fn leave_multicast_v4(&self, multiaddr: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.sock().leave_multicast_v4(&multiaddr, &interface)
    }

    /// Joins the IPv6 multicast group `multiaddr` on interface number `interface` (0: the
    /// system's choice).
    pub fn join_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.sock().join_multicast_v6(multiaddr, interface)
    }

    /// Leaves an IPv6 multicast group joined with
    /// [`join_multicast_v6`](UdpSocket::join_multicast_v6).
    pub fn leave_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.sock().leave_multicast_v6(multiaddr, interface)
    }

    /// Whether this host receives its own IPv4 multicast datagrams (`IP_MULTICAST_LOOP`).
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.sock().multicast_loop_v4()
    }

    /// Sets `IP_MULTICAST_LOOP`.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.sock().set_multicast_loop_v4(on)
    }

    /// Whether this host receives its own IPv6 multicast datagrams (`IPV6_MULTICAST_LOOP`).
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.sock().multicast_loop_v6()
    }

    /// Sets `IPV6_MULTICAST_LOOP`.
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        self.sock().set_multicast_loop_v6(on)
    }

    /// `IP_MULTICAST_TTL`: how many hops IPv4 multicast datagrams may take.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.sock().multicast_ttl_v4()
    }

    /// Sets `IP_MULTICAST_TTL`.
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.sock().set_multicast_ttl_v4(ttl)
    }

    /// Takes the socket's pending error (`SO_ERROR`, e.g. `ECONNREFUSED` from an ICMP
    /// reply), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.sock().take_error()
    }
}

crate::impl_fd!(UdpSocket, net::UdpSocket);
