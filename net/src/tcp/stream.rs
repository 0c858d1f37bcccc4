//! `TcpStream`: a connected TCP socket, registered with the runtime; futures-io (and with the
//! `tokio-io` feature, tokio) `AsyncRead`/`AsyncWrite` on it and on `&TcpStream`.

use std::io::{self, IoSlice, Read, Write};
use std::mem::MaybeUninit;
use std::net::{self, Shutdown, SocketAddr};
use std::task::{Context, Poll};
use std::time::Duration;

use knote_executor::io::{AsyncFd, Interest};
use socket2::SockRef;

use super::split::{ReadHalf, WriteHalf};
use super::split_owned::{OwnedReadHalf, OwnedWriteHalf};
use super::TcpSocket;
use crate::addr::{each_addr, resolve, ToSocketAddrs};
use crate::io::{impl_read, impl_write};
use crate::stream::sealed::Sealed;

/// A TCP connection.
///
/// Read and write it with futures-io's `AsyncRead`/`AsyncWrite` (`futures::io::AsyncReadExt`
/// and friends), on the stream or on a shared `&TcpStream`: one task may read while another
/// writes. Those wait with one waker per direction; [`read`](TcpStream::read),
/// [`write`](TcpStream::write) and [`peek`](TcpStream::peek) let any number of tasks wait in
/// the same direction at once. Closing (`poll_close`) shuts the write side down; dropping the
/// stream closes the socket.
///
/// ```no_run
/// use futures_util::io::{AsyncReadExt, AsyncWriteExt};
/// # async fn demo() -> std::io::Result<()> {
/// let mut stream = knote_net::TcpStream::connect("127.0.0.1:7").await?;
/// stream.write_all(b"ping").await?;
/// let mut buf = [0; 4];
/// stream.read_exact(&mut buf).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TcpStream {
    io: AsyncFd<net::TcpStream>,
}

impl TcpStream {
    /// Connects to `addr`, trying each of its addresses in turn (host names are resolved on
    /// the blocking pool): the first connection made, or the last address's error.
    pub async fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        let addrs = resolve(&addr).await?;
        each_addr(addrs, |addr| async move {
            TcpSocket::for_addr(addr)?.connect(addr).await
        })
        .await
    }

    /// Wraps a connected std stream, setting it non-blocking, in the current runtime.
    pub fn from_std(stream: net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        TcpStream::from_nonblocking(stream)
    }

    /// Registers a stream already in non-blocking mode.
    pub(crate) fn from_nonblocking(stream: net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            io: AsyncFd::new(stream)?,
        })
    }

    /// Deregisters the stream and returns it, still in non-blocking mode (call
    /// `set_nonblocking(false)` on it for blocking use).
    pub fn into_std(self) -> net::TcpStream {
        self.io.into_inner()
    }

    pub(crate) fn fd(&self) -> &AsyncFd<net::TcpStream> {
        &self.io
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Whether `TCP_NODELAY` is set (Nagle's algorithm off).
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get_ref().nodelay()
    }

    /// Sets `TCP_NODELAY`: small writes go out at once instead of waiting to be coalesced.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(nodelay)
    }

    /// `SO_LINGER`: how long closing waits for unsent data (`None`: in the background).
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        SockRef::from(self.io.get_ref()).linger()
    }

    /// Sets `SO_LINGER`. `Some(Duration::ZERO)` makes closing reset the connection (RST)
    /// instead of finishing it.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        SockRef::from(self.io.get_ref()).set_linger(linger)
    }

    /// `IP_TTL`: the time-to-live of outgoing packets.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// Takes the socket's pending error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }

    /// Shuts down the read side, the write side (the peer reads EOF), or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// Reads into `buf`, waiting until readable; any number of tasks may wait at once.
    /// `Ok(0)` is EOF (or an empty `buf`).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io
            .async_io(Interest::READABLE, |mut s| s.read(buf))
            .await
    }

    /// Writes from `buf`, waiting until writable; any number of tasks may wait at once.
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io
            .async_io(Interest::WRITABLE, |mut s| s.write(buf))
            .await
    }

    /// Writes from `bufs` with one `writev`, waiting until writable.
    pub async fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.io
            .async_io(Interest::WRITABLE, |mut s| s.write_vectored(bufs))
            .await
    }

    /// Reads into `buf`, which need not be initialised, waiting until readable (one waker
    /// kept for reads, as `poll_read`): the bytes go straight from `read(2)` into `buf`, so a
    /// buffer's spare capacity is filled without being zeroed first. On `Ok(n)` the first `n`
    /// bytes of `buf` are initialised; `Ok(0)` is EOF (or an empty `buf`).
    pub fn poll_read_uninit(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        crate::io::poll_read_uninit(&self.io, cx, buf)
    }

    crate::io::readiness_methods!();

    /// Copies incoming bytes into `buf` without consuming them, waiting until some arrive.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.async_io(Interest::READABLE, |s| s.peek(buf)).await
    }

    /// [`peek`](TcpStream::peek) as a poll function (one waker kept for reads).
    pub fn poll_peek(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let sock = self.io.get_ref();
        self.io
            .registration()
            .poll_io(cx, Interest::READABLE, || sock.peek(buf))
    }

    /// Borrowed halves: one to read, one to write, for two futures at once.
    ///
    /// Call it as `TcpStream::split(&mut stream)` where futures' `AsyncReadExt` is in scope:
    /// its `split` takes the stream by value and wins method resolution.
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        split::halves(self)
    }

    /// Owned halves (each may move to its own task); [`OwnedReadHalf::reunite`] puts them
    /// back together.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        split_owned::halves(self)
    }
}

use super::{split, split_owned};

impl Sealed for TcpStream {
    type Std = net::TcpStream;

    fn fd(&self) -> &AsyncFd<net::TcpStream> {
        &self.io
    }
}

impl_read!([] TcpStream, |s| &s.io);
impl_read!(['a] &'a TcpStream, |s| &s.io);
impl_write!([] TcpStream, |s| &s.io);
impl_write!(['a] &'a TcpStream, |s| &s.io);

crate::impl_fd!(TcpStream, net::TcpStream);
