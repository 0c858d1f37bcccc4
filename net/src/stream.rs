//! [`Stream`]: "one of knote's byte streams" ([`TcpStream`](crate::TcpStream),
//! [`UnixStream`](crate::UnixStream)), the one trait that code generic over them is written
//! against: the split halves here, `knote::hyper::KnoteIo` outside.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::task::{Context, Poll};

pub(crate) mod sealed {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    use knote_executor::io::AsyncFd;

    /// What a [`Stream`](super::Stream) is made of (sealed: only knote-net's streams have it).
    pub trait Sealed {
        /// The std socket inside the stream's `AsyncFd`.
        type Std: StdStream;

        /// The stream's registered descriptor, which every read and write goes through.
        fn fd(&self) -> &AsyncFd<Self::Std>;
    }

    /// A std stream socket that is read and written through a shared reference (`&TcpStream:
    /// Read + Write`), said so that generic code can rely on it (a where clause on `&'a T`
    /// would have to be repeated by every generic user).
    pub trait StdStream: AsFd {
        /// `&'a Self`.
        type Ref<'a>: Read + Write
        where
            Self: 'a;

        /// `self`, as what reads and writes it.
        fn by_ref(&self) -> Self::Ref<'_>;
    }

    impl StdStream for std::net::TcpStream {
        type Ref<'a> = &'a std::net::TcpStream;

        fn by_ref(&self) -> &std::net::TcpStream {
            self
        }
    }

    impl StdStream for std::os::unix::net::UnixStream {
        type Ref<'a> = &'a std::os::unix::net::UnixStream;

        fn by_ref(&self) -> &std::os::unix::net::UnixStream {
            self
        }
    }
}

/// One of knote's byte streams: [`TcpStream`](crate::TcpStream) or
/// [`UnixStream`](crate::UnixStream). Their split halves are generic over it, and so is
/// `knote::hyper::KnoteIo`, which drives a stream through these methods.
///
/// Sealed: a caller of [`poll_read_uninit`](Stream::poll_read_uninit) (`KnoteIo`) marks as
/// initialised what the read says it wrote, which only knote's own streams are trusted with.
/// The methods wait with the stream's one waker per direction, as `poll_read`/`poll_write`
/// of futures-io do.
///
/// ```compile_fail
/// struct Mine;
/// impl knote_net::Stream for Mine {}
/// ```
pub trait Stream: sealed::Sealed {
    /// Reads into `buf`, which need not be initialised, when readable: `read(2)` straight into
    /// it. On `Ok(n)` the first `n` bytes of `buf` are initialised; `Ok(0)` is EOF (or an
    /// empty `buf`).
    fn poll_read_uninit(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        crate::io::poll_read_uninit(self.fd(), cx, buf)
    }

    /// Writes from `buf` when writable.
    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        crate::io::poll_write(self.fd(), cx, buf)
    }

    /// Writes from `bufs` (one `writev`) when writable.
    fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        crate::io::poll_write_vectored(self.fd(), cx, bufs)
    }

    /// Shuts the write side down (the peer reads EOF), as closing the stream does: a
    /// connection the peer already reset has nothing left to shut, which is `Ok`.
    fn shutdown_write(&self) -> io::Result<()> {
        crate::io::shutdown_write(self.fd().get_ref())
    }
}

impl<S: sealed::Sealed> Stream for S {}
