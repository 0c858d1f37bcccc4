//! The byte-stream protocol every stream type shares: `poll_read`/`poll_write` and their
//! vectored forms on an [`AsyncFd`], and the macro that implements futures-io's (and, with the
//! `tokio-io` feature, tokio's) `AsyncRead`/`AsyncWrite` with them — written once, used by
//! TCP streams, their halves and Unix streams.
//!
//! These wait with the fd's one waker per direction (what a `poll_*` function can keep), so
//! one task reading and another writing a shared stream is fine; several tasks waiting to
//! read (or to write) at once use the streams' `async fn`s instead, which keep a waker each.
//!
//! A stream read or write that moves fewer bytes than asked for has drained the socket's
//! buffer (or filled it): readiness is cleared then (`Registration::poll_transfer`), so the
//! next call waits for an event instead of making a system call that would only say `EAGAIN`.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd};
use std::task::{Context, Poll};

use knote_executor::io::{AsyncFd, Interest, Registration};

use crate::stream::sealed::StdStream;

/// `Registration::poll_transfer` in the read (`write == false`) or write direction.
fn poll_stream_op(
    registration: &Registration,
    cx: &mut Context<'_>,
    write: bool,
    want: usize,
    op: impl FnMut() -> io::Result<usize>,
) -> Poll<io::Result<usize>> {
    let interest = if write {
        Interest::WRITABLE
    } else {
        Interest::READABLE
    };
    registration.poll_transfer(cx, interest, want, op)
}

/// Reads into `buf` when readable (an empty `buf` reads nothing, at once).
pub(crate) fn poll_read<T: StdStream>(
    fd: &AsyncFd<T>,
    cx: &mut Context<'_>,
    buf: &mut [u8],
) -> Poll<io::Result<usize>> {
    if buf.is_empty() {
        return Poll::Ready(Ok(0));
    }
    let want = buf.len();
    let mut sock = fd.get_ref().by_ref();
    poll_stream_op(fd.registration(), cx, false, want, || sock.read(buf))
}

/// Reads into `buf`, which need not be initialised, when readable: `read(2)` straight into
/// it, so a caller with spare capacity (hyper's read buffer) does not zero it first. On
/// `Ok(n)` the first `n` bytes of `buf` are initialised (an empty `buf` reads nothing).
pub(crate) fn poll_read_uninit<T: AsFd>(
    fd: &AsyncFd<T>,
    cx: &mut Context<'_>,
    buf: &mut [MaybeUninit<u8>],
) -> Poll<io::Result<usize>> {
    if buf.is_empty() {
        return Poll::Ready(Ok(0));
    }
    let want = buf.len();
    let raw = fd.as_raw_fd();
    poll_stream_op(fd.registration(), cx, false, want, || {
        // SAFETY: `buf` is a live exclusive borrow, valid for writes of `want` bytes, and
        // read(2) writes at most `want`; the kernel never reads them, so their being
        // uninitialised does not matter. `raw` is open: `fd` owns it for this borrow.
        let n = unsafe { libc::read(raw, buf.as_mut_ptr().cast(), want) };
        // A negative count is the error in errno; any other fits a usize.
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    })
}

/// Reads into `bufs` (one `readv`) when readable.
pub(crate) fn poll_read_vectored<T: StdStream>(
    fd: &AsyncFd<T>,
    cx: &mut Context<'_>,
    bufs: &mut [IoSliceMut<'_>],
) -> Poll<io::Result<usize>> {
    let want: usize = bufs.iter().map(|b| b.len()).sum();
    if want == 0 {
        return Poll::Ready(Ok(0));
    }
    let mut sock = fd.get_ref().by_ref();
    poll_stream_op(fd.registration(), cx, false, want, || {
        sock.read_vectored(bufs)
    })
}

/// Writes from `buf` when writable (an empty `buf` writes nothing, at once).
pub(crate) fn poll_write<T: StdStream>(
    fd: &AsyncFd<T>,
    cx: &mut Context<'_>,
    buf: &[u8],
) -> Poll<io::Result<usize>> {
    if buf.is_empty() {
        return Poll::Ready(Ok(0));
    }
    let mut sock = fd.get_ref().by_ref();
    poll_stream_op(fd.registration(), cx, true, buf.len(), || sock.write(buf))
}

/// Writes from `bufs` (one `writev`) when writable.
pub(crate) fn poll_write_vectored<T: StdStream>(
    fd: &AsyncFd<T>,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    let want: usize = bufs.iter().map(|b| b.len()).sum();
    if want == 0 {
        return Poll::Ready(Ok(0));
    }
    let mut sock = fd.get_ref().by_ref();
    poll_stream_op(fd.registration(), cx, true, want, || {
        sock.write_vectored(bufs)
    })
}

/// Waits until the stream is ready in the direction of `interest` (tokio's `readable()` /
/// `writable()`): the readiness stays until an operation finds it gone (`WouldBlock`), so a
/// stream that is ready already returns at once. Any number of tasks may wait at once.
pub(crate) async fn ready<T: AsFd>(fd: &AsyncFd<T>, interest: Interest) -> io::Result<()> {
    let registration = fd.registration();
    if interest == Interest::WRITABLE {
        registration.writable().await.map(drop)
    } else {
        registration.readable().await.map(drop)
    }
}

/// One non-blocking transfer of up to `want` bytes in the direction of `interest`, if the
/// stream has readiness there (`WouldBlock` at once, with no system call, if not): tokio's
/// `try_read`/`try_write`. A `WouldBlock` from `op` clears the readiness it consumed, and so
/// does a transfer of fewer bytes than asked for (it drained the buffer or filled it), so the
/// next [`ready`] waits for an event. Nothing asked for is `Ok(0)` at once.
fn try_transfer<T: AsFd>(
    fd: &AsyncFd<T>,
    interest: Interest,
    want: usize,
    op: impl FnOnce() -> io::Result<usize>,
) -> io::Result<usize> {
    if want == 0 {
        return Ok(0);
    }
    fd.registration().try_transfer(interest, want, op)
}

/// Reads into `buf` without waiting ([`try_transfer`]).
pub(crate) fn try_read<T: StdStream>(fd: &AsyncFd<T>, buf: &mut [u8]) -> io::Result<usize> {
    let mut sock = fd.get_ref().by_ref();
    try_transfer(fd, Interest::READABLE, buf.len(), || sock.read(buf))
}

/// Reads into `bufs` (one `readv`) without waiting ([`try_transfer`]).
pub(crate) fn try_read_vectored<T: StdStream>(
    fd: &AsyncFd<T>,
    bufs: &mut [IoSliceMut<'_>],
) -> io::Result<usize> {
    let want = bufs.iter().map(|b| b.len()).sum();
    let mut sock = fd.get_ref().by_ref();
    try_transfer(fd, Interest::READABLE, want, || sock.read_vectored(bufs))
}

/// Writes from `buf` without waiting ([`try_transfer`]).
pub(crate) fn try_write<T: StdStream>(fd: &AsyncFd<T>, buf: &[u8]) -> io::Result<usize> {
    let mut sock = fd.get_ref().by_ref();
    try_transfer(fd, Interest::WRITABLE, buf.len(), || sock.write(buf))
}

/// Writes from `bufs` (one `writev`) without waiting ([`try_transfer`]).
pub(crate) fn try_write_vectored<T: StdStream>(
    fd: &AsyncFd<T>,
    bufs: &[IoSlice<'_>],
) -> io::Result<usize> {
    let want = bufs.iter().map(|b| b.len()).sum();
    let mut sock = fd.get_ref().by_ref();
    try_transfer(fd, Interest::WRITABLE, want, || sock.write_vectored(bufs))
}

/// Shuts the write side of a stream's socket down (the peer reads EOF): the one path of every
/// stream's and write half's `poll_close` (futures-io) and `poll_shutdown` (tokio).
///
/// `ENOTCONN` is success: the peer already reset the connection (a client that closes with a
/// reply unread does that, and so does a Unix peer that closed, on the BSDs), so nothing more
/// can reach it, which is what the shutdown was for; a graceful close (hyper's, a proxy's
/// half-close) then ends cleanly instead of as an I/O error. Every other error is returned.
/// (The streams' own `shutdown(how)` stays std's, `ENOTCONN` included.)
pub(crate) fn shutdown_write(sock: &impl AsFd) -> io::Result<()> {
    match socket2::SockRef::from(sock).shutdown(std::net::Shutdown::Write) {
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}

/// tokio's `poll_read`: `read(2)` straight into the unfilled part of `buf`, which is never
/// zeroed first (the same path as hyper's reads, [`poll_read_uninit`]).
#[cfg(feature = "tokio-io")]
pub(crate) fn poll_read_buf<T: AsFd>(
    fd: &AsyncFd<T>,
    cx: &mut Context<'_>,
    buf: &mut tokio::io::ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    // SAFETY: the slice is only handed to read(2), which writes bytes into it and never
    // de-initialises any.
    let unfilled = unsafe { buf.unfilled_mut() };
    let n = std::task::ready!(poll_read_uninit(fd, cx, unfilled))?;
    // SAFETY: read(2) returned `n`: it wrote the first `n` bytes of the unfilled part.
    unsafe { buf.assume_init(n) };
    buf.advance(n);
    Poll::Ready(Ok(()))
}

/// Implements the read traits for a stream type: `$ty` (with optional generics), `|$s| $fd`
/// naming its `&AsyncFd<_>` from `$s: &$ty`, and an optional `where [...]` clause for generic
/// types.
macro_rules! impl_read {
    ([$($gen:tt)*] $ty:ty $(where [$($wc:tt)*])?, |$s:ident| $fd:expr) => {
        impl<$($gen)*> futures_io::AsyncRead for $ty $(where $($wc)*)? {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $s = &*self;
                crate::io::poll_read($fd, cx, buf)
            }

            fn poll_read_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $s = &*self;
                crate::io::poll_read_vectored($fd, cx, bufs)
            }
        }

        #[cfg(feature = "tokio-io")]
        impl<$($gen)*> tokio::io::AsyncRead for $ty $(where $($wc)*)? {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let $s = &*self;
                crate::io::poll_read_buf($fd, cx, buf)
            }
        }
    };
}

/// Implements the write traits for a stream type: `|$s| $fd` names its `&AsyncFd<_>`; closing
/// shuts its write side down ([`shutdown_write`]). An optional `where [...]` clause as
/// `impl_read!`'s.
macro_rules! impl_write {
    ([$($gen:tt)*] $ty:ty $(where [$($wc:tt)*])?, |$s:ident| $fd:expr) => {
        impl<$($gen)*> futures_io::AsyncWrite for $ty $(where $($wc)*)? {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $s = &*self;
                crate::io::poll_write($fd, cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $s = &*self;
                crate::io::poll_write_vectored($fd, cx, bufs)
            }

            /// Nothing to flush: writes go straight to the socket.
            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            /// Shuts the write side down (the peer reads EOF); a connection the peer already
            /// reset has nothing left to shut: `Ok`.
            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let $s = &*self;
                std::task::Poll::Ready(crate::io::shutdown_write($fd.get_ref()))
            }
        }

        #[cfg(feature = "tokio-io")]
        impl<$($gen)*> tokio::io::AsyncWrite for $ty $(where $($wc)*)? {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $s = &*self;
                crate::io::poll_write($fd, cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $s = &*self;
                crate::io::poll_write_vectored($fd, cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let $s = &*self;
                std::task::Poll::Ready(crate::io::shutdown_write($fd.get_ref()))
            }
        }
    };
}

pub(crate) use {impl_read, impl_write};

/// The readiness-first methods of a stream type, as tokio's streams have them (`readable`,
/// `writable`, `try_read`, `try_write` and their vectored forms, all on `&self`), expanded
/// inside the type's `impl` block; `self.io` is its `AsyncFd`.
macro_rules! readiness_methods {
    () => {
        /// Waits until the stream is readable: data, EOF or an error is there for a read.
        /// Any number of tasks may wait at once.
        ///
        /// The readiness stays until a read finds it gone: pair it with
        /// [`try_read`](Self::try_read), and wait again when that says `WouldBlock`. It may
        /// be a false positive (another task read first). This is how a service with many
        /// idle connections reads without a buffer per connection: wait, then read into a
        /// scratch buffer.
        pub async fn readable(&self) -> std::io::Result<()> {
            crate::io::ready(&self.io, knote_executor::io::Interest::READABLE).await
        }

        /// Waits until the stream is writable (room in its send buffer, or an error for a
        /// write to report). Readiness stays until a write finds it gone, as for
        /// [`readable`](Self::readable); pair it with [`try_write`](Self::try_write).
        pub async fn writable(&self) -> std::io::Result<()> {
            crate::io::ready(&self.io, knote_executor::io::Interest::WRITABLE).await
        }

        /// Reads into `buf` if the stream is readable now, without waiting: `WouldBlock` if
        /// not (with no system call when the runtime knows it is not readable). `Ok(0)` is EOF
        /// (or an empty `buf`).
        ///
        /// A `WouldBlock` from the socket clears the readiness it consumed, and so does a read
        /// of fewer bytes than `buf` holds (the socket's buffer is drained), so the next
        /// [`readable`](Self::readable) waits for new data; an event that arrived meanwhile
        /// is kept.
        pub fn try_read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
            crate::io::try_read(&self.io, buf)
        }

        /// [`try_read`](Self::try_read) into several buffers with one `readv`.
        pub fn try_read_vectored(
            &self,
            bufs: &mut [std::io::IoSliceMut<'_>],
        ) -> std::io::Result<usize> {
            crate::io::try_read_vectored(&self.io, bufs)
        }

        /// Writes from `buf` if the stream is writable now, without waiting: `WouldBlock` if
        /// not. A `WouldBlock` from the socket, or a write of fewer bytes than asked (the send
        /// buffer is full), clears the readiness, so the next [`writable`](Self::writable)
        /// waits for room.
        pub fn try_write(&self, buf: &[u8]) -> std::io::Result<usize> {
            crate::io::try_write(&self.io, buf)
        }

        /// [`try_write`](Self::try_write) from several buffers with one `writev`.
        pub fn try_write_vectored(&self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
            crate::io::try_write_vectored(&self.io, bufs)
        }
    };
}

pub(crate) use readiness_methods;
