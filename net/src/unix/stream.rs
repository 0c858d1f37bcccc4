//! `UnixStream`: a connected Unix-domain stream socket, registered with the runtime;
//! futures-io (and with `tokio-io`, tokio) `AsyncRead`/`AsyncWrite` on it and on
//! `&UnixStream`.

use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::os::unix::net::{self, SocketAddr};
use std::path::Path;
use std::task::{Context, Poll};

use knote_executor::io::{AsyncFd, Interest};
use socket2::{Domain, SockAddr, Type};

use super::cred::{peer_cred, UCred};
use crate::io::{impl_read, impl_write};
use crate::socket::{connect_in_progress, finish_connect, new_socket};
use crate::stream::sealed::Sealed;
use crate::tcp::split::{self, ReadHalf, WriteHalf};
use crate::tcp::split_owned::{self, OwnedReadHalf, OwnedWriteHalf};

/// A Unix-domain stream connection.
///
/// Like [`TcpStream`](crate::TcpStream): futures-io `AsyncRead`/`AsyncWrite` on the stream and
/// on `&UnixStream` (one waker per direction), and `async fn`s that any number of tasks may
/// wait in at once.
#[derive(Debug)]
pub struct UnixStream {
    io: AsyncFd<net::UnixStream>,
}

impl UnixStream {
    /// Connects to the socket bound at `path`.
    pub async fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        UnixStream::connect_addr(super::path_addr(path.as_ref())?).await
    }

    /// Connects to the socket bound to the abstract `name` (Linux, Android).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub async fn connect_abstract(name: &[u8]) -> io::Result<UnixStream> {
        UnixStream::connect_addr(super::abstract_addr(name)?).await
    }

    async fn connect_addr(addr: SockAddr) -> io::Result<UnixStream> {
        let socket = new_socket(Domain::UNIX, Type::STREAM, None)?;
        // A full backlog makes a non-blocking connect fail with EAGAIN, which is the error.
        let pending = match socket.connect(&addr) {
            Ok(()) => false,
            Err(e) if connect_in_progress(&e) => true,
            Err(e) => return Err(e),
        };
        let stream = UnixStream::from_nonblocking(socket.into())?;
        if pending {
            finish_connect(&stream.io).await?;
        }
        Ok(stream)
    }

    /// A connected pair of streams (`socketpair(2)`).
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = net::UnixStream::pair()?;
        Ok((UnixStream::from_std(a)?, UnixStream::from_std(b)?))
    }

    /// Wraps a connected std stream, setting it non-blocking, in the current runtime.
    pub fn from_std(stream: net::UnixStream) -> io::Result<UnixStream> {
        stream.set_nonblocking(true)?;
        UnixStream::from_nonblocking(stream)
    }

    pub(crate) fn from_nonblocking(stream: net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
            io: AsyncFd::new(stream)?,
        })
    }

    /// Deregisters the stream and returns it, still non-blocking.
    pub fn into_std(self) -> net::UnixStream {
        self.io.into_inner()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// The peer's credentials, as recorded when the connection was made.
    pub fn peer_cred(&self) -> io::Result<UCred> {
        peer_cred(self.io.as_fd())
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

    /// Borrowed halves: one to read, one to write, for two futures at once (the same halves
    /// as [`TcpStream::split`](crate::TcpStream::split)'s).
    ///
    /// Call it as `UnixStream::split(&mut stream)` where futures' `AsyncReadExt` is in scope:
    /// its `split` takes the stream by value and wins method resolution.
    pub fn split(&mut self) -> (ReadHalf<'_, UnixStream>, WriteHalf<'_, UnixStream>) {
        split::halves(self)
    }

    /// Owned halves (each may move to its own task); [`OwnedReadHalf::reunite`] puts them
    /// back together.
    pub fn into_split(self) -> (OwnedReadHalf<UnixStream>, OwnedWriteHalf<UnixStream>) {
        split_owned::halves(self)
    }
}

impl Sealed for UnixStream {
    type Std = net::UnixStream;

    fn fd(&self) -> &AsyncFd<net::UnixStream> {
        &self.io
    }
}

/// The addresses of the stream a half belongs to, on every Unix half type.
macro_rules! half_addrs {
    ($([$($gen:tt)*] $ty:ty),*) => {$(
        impl<$($gen)*> $ty {
            /// The stream's local address.
            pub fn local_addr(&self) -> io::Result<SocketAddr> {
                AsRef::<UnixStream>::as_ref(self).local_addr()
            }

            /// The stream's peer address.
            pub fn peer_addr(&self) -> io::Result<SocketAddr> {
                AsRef::<UnixStream>::as_ref(self).peer_addr()
            }
        }
    )*};
}

half_addrs!(
    ['a] ReadHalf<'a, UnixStream>,
    ['a] WriteHalf<'a, UnixStream>,
    [] OwnedReadHalf<UnixStream>,
    [] OwnedWriteHalf<UnixStream>
);

impl_read!([] UnixStream, |s| &s.io);
impl_read!(['a] &'a UnixStream, |s| &s.io);
impl_write!([] UnixStream, |s| &s.io);
impl_write!(['a] &'a UnixStream, |s| &s.io);

crate::impl_fd!(UnixStream, net::UnixStream);
