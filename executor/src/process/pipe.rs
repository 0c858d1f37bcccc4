//! The parent's ends of a child's standard streams: std's pipes (created close-on-exec),
//! switched to non-blocking and registered with the runtime through an [`AsyncFd`].

use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::io::{AsyncFd, Interest};
use crate::runtime::Handle;

/// Sets `O_NONBLOCK` on the parent's end (the child's end is another open file: unaffected).
fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: `raw` is an open fd owned by `fd` for the duration of these calls.
    let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above; only the status flags of this open file are changed.
    if unsafe { libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One end of a pipe on the runtime, read (`interest` READABLE) or written.
#[derive(Debug)]
struct Pipe {
    fd: AsyncFd<File>,
}

impl Pipe {
    fn new(fd: OwnedFd, interest: Interest, handle: &Handle) -> io::Result<Pipe> {
        set_nonblocking(&fd)?;
        Ok(Pipe {
            fd: AsyncFd::with_handle(File::from(fd), interest, handle)?,
        })
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut file = self.fd.get_ref();
        self.fd
            .registration()
            .poll_transfer(cx, Interest::READABLE, buf.len(), || file.read(buf))
    }

    fn poll_read_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        let want = bufs.iter().map(|b| b.len()).sum();
        let mut file = self.fd.get_ref();
        self.fd
            .registration()
            .poll_transfer(cx, Interest::READABLE, want, || file.read_vectored(bufs))
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut file = self.fd.get_ref();
        self.fd
            .registration()
            .poll_transfer(cx, Interest::WRITABLE, buf.len(), || file.write(buf))
    }

    fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let want = bufs.iter().map(|b| b.len()).sum();
        let mut file = self.fd.get_ref();
        self.fd
            .registration()
            .poll_transfer(cx, Interest::WRITABLE, want, || file.write_vectored(bufs))
    }

    fn into_owned_fd(self) -> OwnedFd {
        OwnedFd::from(self.fd.into_inner())
    }
}

/// Reads `pipe` (if any) to its end.
pub(super) async fn read_all<R: futures_io::AsyncRead + Unpin>(
    pipe: Option<R>,
) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let Some(mut pipe) = pipe else {
        return Ok(out);
    };
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = std::future::poll_fn(|cx| Pin::new(&mut pipe).poll_read(cx, &mut buf)).await?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

macro_rules! reader {
    ($(#[$doc:meta])* $name:ident, $std:ty) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name {
            pipe: Pipe,
        }

        impl $name {
            pub(super) fn new(std: $std, handle: &Handle) -> io::Result<$name> {
                Ok($name {
                    pipe: Pipe::new(OwnedFd::from(std), Interest::READABLE, handle)?,
                })
            }

            /// Deregisters the pipe and returns its fd (still non-blocking).
            pub fn into_owned_fd(self) -> OwnedFd {
                self.pipe.into_owned_fd()
            }
        }

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.pipe.fd.as_fd()
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.pipe.fd.as_raw_fd()
            }
        }

        impl futures_io::AsyncRead for $name {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.pipe.poll_read(cx, buf)
            }

            fn poll_read_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &mut [IoSliceMut<'_>],
            ) -> Poll<io::Result<usize>> {
                self.pipe.poll_read_vectored(cx, bufs)
            }
        }

        #[cfg(feature = "tokio-io")]
        impl tokio::io::AsyncRead for $name {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                let n = std::task::ready!(self.pipe.poll_read(cx, buf.initialize_unfilled()))?;
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
        }
    };
}

reader!(
    /// The read end of a child's standard output: futures-io `AsyncRead` (and tokio's with the
    /// `tokio-io` feature).
    ChildStdout,
    std::process::ChildStdout
);

reader!(
    /// The read end of a child's standard error: futures-io `AsyncRead` (and tokio's with the
    /// `tokio-io` feature).
    ChildStderr,
    std::process::ChildStderr
);

/// The write end of a child's standard input: futures-io `AsyncWrite` (and tokio's with the
/// `tokio-io` feature). Closing it (`poll_close`, or dropping it) gives the child EOF.
#[derive(Debug)]
pub struct ChildStdin {
    /// `None` once closed.
    pipe: Option<Pipe>,
}

impl ChildStdin {
    pub(super) fn new(std: std::process::ChildStdin, handle: &Handle) -> io::Result<ChildStdin> {
        Ok(ChildStdin {
            pipe: Some(Pipe::new(OwnedFd::from(std), Interest::WRITABLE, handle)?),
        })
    }

    fn pipe(&self) -> io::Result<&Pipe> {
        self.pipe.as_ref().ok_or_else(|| {
            io::Error::new(io::ErrorKind::BrokenPipe, "ChildStdin: written after close")
        })
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.pipe() {
            Ok(pipe) => pipe.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.pipe() {
            Ok(pipe) => pipe.poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Deregisters the pipe and returns its fd (still non-blocking); `None` if closed.
    pub fn into_owned_fd(self) -> Option<OwnedFd> {
        self.pipe.map(Pipe::into_owned_fd)
    }
}

impl futures_io::AsyncWrite for ChildStdin {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        (*self).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        (*self).poll_write_vectored(cx, bufs)
    }

    /// Nothing to flush: writes go straight to the pipe.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Closes the pipe: the child reads EOF.
    fn poll_close(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.pipe = None;
        Poll::Ready(Ok(()))
    }
}

#[cfg(feature = "tokio-io")]
impl tokio::io::AsyncWrite for ChildStdin {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        (*self).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        (*self).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.pipe = None;
        Poll::Ready(Ok(()))
    }
}
