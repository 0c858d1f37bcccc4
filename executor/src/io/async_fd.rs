//! `AsyncFd`: any fd, owned (or borrowed for the `AsyncFd`'s lifetime), with its readiness
//! followed by the runtime: the safe face of [`Registration`], which deletes its knotes by fd
//! number and so needs the number to stay the same file while it lives.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::task::{ready, Context, Poll};

use super::registration::{Interest, Ready, ReadyEvent, Registration};
use crate::runtime::Handle;

/// Owns an fd-bearing `T` (a non-blocking socket, pipe, tty, ...) and registers it with the
/// current runtime, so tasks can wait for it to become readable or writable.
///
/// The fd must be in non-blocking mode: readiness is edge-triggered, and an operation that
/// would block is how the wrapper learns readiness is gone.
///
/// `T: AsFd` (an `OwnedFd`, a std socket, a `BorrowedFd<'_>`, ...) keeps the fd open for as
/// long as the `AsyncFd` holds it, and the knotes are deleted before `T` is dropped, so the
/// registration can never delete the knotes of a later file that reused the number. For the
/// same reason [`get_mut`](AsyncFd::get_mut) is `unsafe` (replacing the value would swap the
/// fd under the registration), and `T`'s `as_fd` must name one fd for its whole life (as every
/// std type's does).
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use std::io::Read;
/// use knote_executor::io::AsyncFd;
///
/// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
/// a.set_nonblocking(true)?;
/// let fd = AsyncFd::new(a)?;
/// let mut buf = [0; 64];
/// let n = fd.async_io(knote_executor::io::Interest::READABLE, |s| (&*s).read(&mut buf)).await?;
/// # let _ = n; Ok(()) }
/// ```
pub struct AsyncFd<T: AsFd> {
    // Declared first: dropped (knotes deleted) before the fd is closed.
    registration: Registration,
    inner: Option<T>,
}

impl<T: AsFd> AsyncFd<T> {
    /// Registers `inner` for reads and writes with the current runtime.
    pub fn new(inner: T) -> io::Result<AsyncFd<T>> {
        AsyncFd::with_interest(inner, Interest::READABLE | Interest::WRITABLE)
    }

    /// Registers `inner` for the given readiness with the current runtime.
    pub fn with_interest(inner: T, interest: Interest) -> io::Result<AsyncFd<T>> {
        let handle = Handle::try_current().map_err(io::Error::other)?;
        AsyncFd::with_handle(inner, interest, &handle)
    }

    /// Registers `inner` with the runtime of `handle`.
    pub fn with_handle(inner: T, interest: Interest, handle: &Handle) -> io::Result<AsyncFd<T>> {
        let fd = inner.as_fd().as_raw_fd();
        // SAFETY: `inner` keeps `fd` open while this `AsyncFd` holds it (`AsFd`), it cannot be
        // replaced through safe code (`get_mut` is unsafe), and the registration is dropped
        // before it (field order), so the number names this file until the knotes are gone.
        let registration = unsafe { Registration::with_handle(fd, interest, handle)? };
        Ok(AsyncFd {
            registration,
            inner: Some(inner),
        })
    }

    /// The wrapped value.
    pub fn get_ref(&self) -> &T {
        self.inner.as_ref().expect("present until into_inner")
    }

    /// The wrapped value, mutably.
    ///
    /// # Safety
    ///
    /// The value must keep its fd: do not replace it (`mem::swap`, assignment) nor close or
    /// re-point the fd through it (`dup2` onto it), since the registration deletes its knotes
    /// by that fd number when the `AsyncFd` drops. Reads, writes and socket options are fine.
    pub unsafe fn get_mut(&mut self) -> &mut T {
        self.inner.as_mut().expect("present until into_inner")
    }

    /// Deregisters and returns the wrapped value.
    pub fn into_inner(mut self) -> T {
        let inner = self.inner.take().expect("present until into_inner");
        // Dropping `self` now drops the registration (deleting the knotes) and no fd.
        drop(self);
        inner
    }

    /// The registration underneath (for code that wants the `poll_*` protocol directly).
    pub fn registration(&self) -> &Registration {
        &self.registration
    }

    /// Waits until readable (any number of tasks may wait at once: an event wakes them all);
    /// the guard clears readiness if the operation would block.
    pub async fn readable(&self) -> io::Result<AsyncFdReadyGuard<'_, T>> {
        let event = self.registration.readable().await?;
        Ok(AsyncFdReadyGuard { fd: self, event })
    }

    /// Waits until writable (any number of tasks may wait at once); the guard clears
    /// readiness if the operation would block.
    pub async fn writable(&self) -> io::Result<AsyncFdReadyGuard<'_, T>> {
        let event = self.registration.writable().await?;
        Ok(AsyncFdReadyGuard { fd: self, event })
    }

    /// Polls for readability (one waker kept per direction: the last caller's).
    pub fn poll_read_ready<'a>(
        &'a self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<AsyncFdReadyGuard<'a, T>>> {
        let event = ready!(self.registration.poll_read_ready(cx))?;
        Poll::Ready(Ok(AsyncFdReadyGuard { fd: self, event }))
    }

    /// Polls for writability (one waker kept per direction: the last caller's).
    pub fn poll_write_ready<'a>(
        &'a self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<AsyncFdReadyGuard<'a, T>>> {
        let event = ready!(self.registration.poll_write_ready(cx))?;
        Poll::Ready(Ok(AsyncFdReadyGuard { fd: self, event }))
    }

    /// Runs `op` on the wrapped value whenever ready for `interest`, until it does not return
    /// `WouldBlock`. Any number of tasks may do this at once (several readers of one datagram
    /// socket, a reader and a writer).
    pub async fn async_io<R>(
        &self,
        interest: Interest,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        let inner = self.get_ref();
        self.registration.async_io(interest, || op(inner)).await
    }
}

impl<T: AsFd> AsRawFd for AsyncFd<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.registration.fd()
    }
}

impl<T: AsFd> AsFd for AsyncFd<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl<T: AsFd + std::fmt::Debug> std::fmt::Debug for AsyncFd<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncFd")
            .field("inner", &self.inner)
            .finish()
    }
}

/// Readiness seen by [`AsyncFd::readable`] / [`AsyncFd::writable`].
pub struct AsyncFdReadyGuard<'a, T: AsFd> {
    fd: &'a AsyncFd<T>,
    event: ReadyEvent,
}

impl<'a, T: AsFd> AsyncFdReadyGuard<'a, T> {
    /// The readiness seen.
    pub fn ready(&self) -> Ready {
        self.event.ready()
    }

    /// Forgets this readiness (the operation would block), unless a newer event arrived.
    pub fn clear_ready(&mut self) {
        self.fd.registration.clear_readiness(self.event);
    }

    /// Runs `op`; if it returns `WouldBlock`, clears readiness and returns `Err(TryIoError)` so
    /// the caller waits again.
    pub fn try_io<R>(
        &mut self,
        op: impl FnOnce(&'a AsyncFd<T>) -> io::Result<R>,
    ) -> Result<io::Result<R>, TryIoError> {
        match op(self.fd) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.clear_ready();
                Err(TryIoError(()))
            }
            result => Ok(result),
        }
    }

    /// The `AsyncFd`.
    pub fn get_ref(&self) -> &'a AsyncFd<T> {
        self.fd
    }
}

impl<T: AsFd> std::fmt::Debug for AsyncFdReadyGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncFdReadyGuard")
            .field("ready", &self.ready())
            .finish()
    }
}

/// The operation in [`AsyncFdReadyGuard::try_io`] would have blocked.
#[derive(Debug)]
pub struct TryIoError(());
