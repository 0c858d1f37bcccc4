//! `TcpListener`: a listening TCP socket whose accept loop backs off under descriptor
//! pressure (see the crate's `accept` module), and [`Incoming`], its stream of connections.

use std::io;
use std::net::{self, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use knote_executor::io::AsyncFd;

use super::{TcpSocket, TcpStream};
use crate::accept::{self, AcceptMetrics, Backoff, Counters};
use crate::addr::{each_addr, resolve, ToSocketAddrs};

/// The backlog of [`TcpListener::bind`] (the kernel caps it at `somaxconn`).
const BACKLOG: u32 = 1024;

/// A TCP socket listening for connections.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// let listener = knote_net::TcpListener::bind("127.0.0.1:8080").await?;
/// loop {
///     let (stream, peer) = listener.accept().await?;
///     knote_executor::spawn(async move {
///         // serve `stream`
///         # let _ = (stream, peer);
///     });
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct TcpListener {
    io: AsyncFd<net::TcpListener>,
    counters: Counters,
}

impl TcpListener {
    /// Binds to `addr` (with `SO_REUSEADDR`, as std does) and listens, trying each of its
    /// addresses in turn: the first that binds, or the last error.
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        let addrs = resolve(&addr).await?;
        each_addr(addrs, |addr| async move {
            let socket = TcpSocket::for_addr(addr)?;
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(BACKLOG)
        })
        .await
    }

    /// Wraps a listening std socket, setting it non-blocking, in the current runtime.
    pub fn from_std(listener: net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        TcpListener::from_nonblocking(listener)
    }

    pub(crate) fn from_nonblocking(listener: net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            io: AsyncFd::new(listener)?,
            counters: Counters::default(),
        })
    }

    /// Deregisters the listener and returns it, still non-blocking.
    pub fn into_std(self) -> net::TcpListener {
        self.io.into_inner()
    }

    /// Accepts a connection (non-blocking and close-on-exec, registered with the current
    /// runtime) and its peer's address. Any number of tasks may accept at once. Out of
    /// descriptors or memory, it waits and retries (up to 200 ms apart) until it can accept.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let listener = self.io.get_ref();
        let (stream, peer) =
            accept::accept(self.io.registration(), &self.counters, || listener.accept()).await?;
        Ok((accepted(stream)?, peer))
    }

    /// The connections, as a stream (`futures::Stream`) that never ends; its errors are
    /// [`accept`](TcpListener::accept)'s.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming {
            listener: self,
            backoff: Backoff::default(),
        }
    }

    /// What the accept loop did so far: attempts, connections, back-offs, skips.
    pub fn accept_metrics(&self) -> AcceptMetrics {
        self.counters.snapshot()
    }

    /// The local address (with the port the system chose, if bound to port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// `IP_TTL` of accepted connections' packets.
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
}

/// An accepted std stream (close-on-exec: std accepts with `SOCK_CLOEXEC` or sets it), made
/// non-blocking and registered.
fn accepted(stream: net::TcpStream) -> io::Result<TcpStream> {
    stream.set_nonblocking(true)?;
    TcpStream::from_nonblocking(stream)
}

/// The connections of a [`TcpListener`], from [`TcpListener::incoming`]: a
/// `futures::Stream` of `io::Result<TcpStream>` that never ends. It keeps its own back-off, so
/// it waits with the listener's one read waker: one `Incoming` per listener.
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
    backoff: Backoff,
}

impl Incoming<'_> {
    /// Polls for the next connection and its peer's address.
    pub fn poll_accept(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let listener = self.listener;
        let sock = listener.io.get_ref();
        let (stream, peer) = std::task::ready!(accept::poll_accept(
            listener.io.registration(),
            &listener.counters,
            &mut self.backoff,
            cx,
            || sock.accept(),
        ))?;
        Poll::Ready(accepted(stream).map(|s| (s, peer)))
    }
}

impl futures_core::Stream for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut()
            .poll_accept(cx)
            .map(|r| Some(r.map(|(s, _)| s)))
    }
}

crate::impl_fd!(TcpListener, net::TcpListener);
