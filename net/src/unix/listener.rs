//! `UnixListener`: a listening Unix-domain socket, with the same accept loop (back-off under
//! descriptor pressure) as TCP's.

use std::io;
use std::os::unix::net::{self, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use knote_executor::io::AsyncFd;
use socket2::{Domain, SockAddr, Type};

use super::UnixStream;
use crate::accept::{self, AcceptMetrics, Backoff, Counters};
use crate::socket::new_socket;

/// The backlog of [`UnixListener::bind`] (the kernel caps it at `somaxconn`).
const BACKLOG: i32 = 1024;

/// A Unix-domain socket listening for connections.
#[derive(Debug)]
pub struct UnixListener {
    io: AsyncFd<net::UnixListener>,
    counters: Counters,
}

impl UnixListener {
    /// Binds to `path` (which must not exist yet) and listens, in the current runtime.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        UnixListener::bind_addr(&super::path_addr(path.as_ref())?)
    }

    /// Binds to the abstract `name` and listens (Linux, Android).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn bind_abstract(name: &[u8]) -> io::Result<UnixListener> {
        UnixListener::bind_addr(&super::abstract_addr(name)?)
    }

    fn bind_addr(addr: &SockAddr) -> io::Result<UnixListener> {
        let socket = new_socket(Domain::UNIX, Type::STREAM, None)?;
        socket.bind(addr)?;
        socket.listen(BACKLOG)?;
        UnixListener::from_nonblocking(socket.into())
    }

    /// Wraps a listening std socket, setting it non-blocking, in the current runtime.
    pub fn from_std(listener: net::UnixListener) -> io::Result<UnixListener> {
        listener.set_nonblocking(true)?;
        UnixListener::from_nonblocking(listener)
    }

    fn from_nonblocking(listener: net::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener {
            io: AsyncFd::new(listener)?,
            counters: Counters::default(),
        })
    }

    /// Deregisters the listener and returns it, still non-blocking.
    pub fn into_std(self) -> net::UnixListener {
        self.io.into_inner()
    }

    /// Accepts a connection (non-blocking, close-on-exec, registered with the current
    /// runtime) and its peer's address; any number of tasks may accept at once. Out of
    /// descriptors or memory, it waits and retries (up to 200 ms apart) until it can accept.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let listener = self.io.get_ref();
        let (stream, peer) =
            accept::accept(self.io.registration(), &self.counters, || listener.accept()).await?;
        Ok((accepted(stream)?, peer))
    }

    /// The connections, as a stream (`futures::Stream`) that never ends; its errors are
    /// [`accept`](UnixListener::accept)'s.
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

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Takes the socket's pending error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }
}

/// An accepted std stream (close-on-exec: std accepts with `SOCK_CLOEXEC` or sets it), made
/// non-blocking and registered.
fn accepted(stream: net::UnixStream) -> io::Result<UnixStream> {
    stream.set_nonblocking(true)?;
    UnixStream::from_nonblocking(stream)
}

/// The connections of a [`UnixListener`], from [`UnixListener::incoming`]: a
/// `futures::Stream` of `io::Result<UnixStream>` that never ends, with the same accept loop
/// and back-off as [`TcpListener::incoming`](crate::TcpListener::incoming)'s. It keeps its
/// own back-off, so it waits with the listener's one read waker: one `Incoming` per listener.
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a UnixListener,
    backoff: Backoff,
}

impl Incoming<'_> {
    /// Polls for the next connection and its peer's address.
    pub fn poll_accept(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(UnixStream, SocketAddr)>> {
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
    type Item = io::Result<UnixStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut()
            .poll_accept(cx)
            .map(|r| Some(r.map(|(s, _)| s)))
    }
}

crate::impl_fd!(UnixListener, net::UnixListener);
