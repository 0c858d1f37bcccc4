//! `Registration`: an fd's readiness knotes, and the wake-up protocol around them.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use crate::driver::{ready as bits, Driver, Slot, Snapshot, Token};
use crate::runtime::Handle;
use crate::task::coop;

/// Which readiness a registration follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interest(u8);

impl Interest {
    /// EVFILT_READ: the fd is readable (or at EOF, or has a pending connection).
    pub const READABLE: Interest = Interest(1);
    /// EVFILT_WRITE: the fd is writable.
    pub const WRITABLE: Interest = Interest(2);

    /// Both of `self` and `other`.
    pub const fn add(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }

    /// Whether reads are followed.
    pub const fn is_readable(self) -> bool {
        self.0 & 1 != 0
    }

    /// Whether writes are followed.
    pub const fn is_writable(self) -> bool {
        self.0 & 2 != 0
    }
}

impl std::ops::BitOr for Interest {
    type Output = Interest;
    fn bitor(self, other: Interest) -> Interest {
        self.add(other)
    }
}

/// The readiness an event reported, as a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ready(u16);

impl Ready {
    /// Nothing.
    pub const EMPTY: Ready = Ready(0);
    /// Readable.
    pub const READABLE: Ready = Ready(bits::READABLE);
    /// Writable.
    pub const WRITABLE: Ready = Ready(bits::WRITABLE);
    /// The read side reached EOF (EV_EOF on EVFILT_READ).
    pub const READ_CLOSED: Ready = Ready(bits::READ_CLOSED);
    /// The write side is closed (EV_EOF on EVFILT_WRITE).
    pub const WRITE_CLOSED: Ready = Ready(bits::WRITE_CLOSED);
    /// The kqueue reported an error for the fd (the next operation will say which).
    pub const ERROR: Ready = Ready(bits::ERROR);

    /// Whether readable (or read-closed, or in error: a read will not block).
    pub fn is_readable(self) -> bool {
        self.0 & (bits::READABLE | bits::READ_CLOSED | bits::ERROR) != 0
    }

    /// Whether writable (or write-closed, or in error: a write will not block).
    pub fn is_writable(self) -> bool {
        self.0 & (bits::WRITABLE | bits::WRITE_CLOSED | bits::ERROR) != 0
    }

    /// Whether the read side reached EOF.
    pub fn is_read_closed(self) -> bool {
        self.0 & bits::READ_CLOSED != 0
    }

    /// Whether the write side is closed.
    pub fn is_write_closed(self) -> bool {
        self.0 & bits::WRITE_CLOSED != 0
    }

    /// Whether an error was reported.
    pub fn is_error(self) -> bool {
        self.0 & bits::ERROR != 0
    }
}

/// The readiness seen by a `poll_*_ready`, to hand back to
/// [`clear_readiness`](Registration::clear_readiness) when the operation it allowed would
/// block.
#[derive(Clone, Copy, Debug)]
pub struct ReadyEvent {
    ready: Ready,
    snapshot: Snapshot,
    write: bool,
}

impl ReadyEvent {
    /// The readiness seen.
    pub fn ready(&self) -> Ready {
        self.ready
    }
}

/// An fd registered with the current runtime's kqueue: EVFILT_READ and EVFILT_WRITE, both
/// EV_CLEAR, added in one change list.
///
/// The protocol, for the network types built on it: wait with
/// [`poll_read_ready`](Registration::poll_read_ready) (or [`readable`](Registration::readable)),
/// try the operation, and if it fails with `WouldBlock` call
/// [`clear_readiness`](Registration::clear_readiness) with the event the wait returned, then
/// wait again. Clearing is conditional on no event having arrived since that wait, so an edge
/// that lands between the failed operation and the clear is never lost. One task at a time may
/// wait per direction (the reader and the writer may be different tasks); a second waiter in
/// the same direction replaces the first.
///
/// Dropping the registration deletes its knotes (do that before closing the fd; `AsyncFd`
/// does it for you). Events still in flight for it are ignored: their `udata` carries the
/// registration's generation, which no longer matches.
pub struct Registration {
    driver: Arc<Driver>,
    token: Token,
    fd: RawFd,
    interest: Interest,
}

impl Registration {
    /// Registers `fd` with the current runtime.
    ///
    /// Fails with the kqueue's error (`EBADF` for a closed fd), or if there is no runtime
    /// (`ErrorKind::Other` naming the problem).
    pub fn new(fd: RawFd, interest: Interest) -> io::Result<Registration> {
        let handle = Handle::try_current().map_err(io::Error::other)?;
        Registration::with_handle(fd, interest, &handle)
    }

    /// Registers `fd` with the runtime of `handle`.
    pub fn with_handle(fd: RawFd, interest: Interest, handle: &Handle) -> io::Result<Registration> {
        let driver = handle.driver();
        let token = driver.register_fd(fd, interest.is_readable(), interest.is_writable())?;
        Ok(Registration {
            driver,
            token,
            fd,
            interest,
        })
    }

    fn slot(&self) -> &Slot {
        self.driver.slot(self.token)
    }

    /// The registered fd.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// What is followed.
    pub fn interest(&self) -> Interest {
        self.interest
    }

    fn poll_ready(&self, cx: &mut Context<'_>, write: bool) -> Poll<io::Result<ReadyEvent>> {
        ready!(coop::poll_proceed(cx));
        let (side, waker) = if write {
            (bits::WRITE_SIDE, &self.slot().writer)
        } else {
            (bits::READ_SIDE, &self.slot().reader)
        };
        let generation = self.token.generation();
        let mut snapshot = self.slot().snapshot(generation);
        if snapshot.bits & side == 0 {
            // Register first, then look again: an event that arrives in between either sees
            // our waker or is seen by the second look.
            waker.register(cx.waker());
            snapshot = self.slot().snapshot(generation);
            if snapshot.bits & side == 0 {
                return Poll::Pending;
            }
        }
        coop::spend();
        Poll::Ready(Ok(ReadyEvent {
            ready: Ready(snapshot.bits & side),
            snapshot,
            write,
        }))
    }

    /// Waits for readability.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<ReadyEvent>> {
        self.poll_ready(cx, false)
    }

    /// Waits for writability.
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<ReadyEvent>> {
        self.poll_ready(cx, true)
    }

    /// Waits for readability.
    pub async fn readable(&self) -> io::Result<ReadyEvent> {
        std::future::poll_fn(|cx| self.poll_read_ready(cx)).await
    }

    /// Waits for writability.
    pub async fn writable(&self) -> io::Result<ReadyEvent> {
        std::future::poll_fn(|cx| self.poll_write_ready(cx)).await
    }

    /// Forgets the readiness `event` reported (the operation it allowed returned
    /// `WouldBlock`), unless a newer event arrived since. EOF and error stay: they are final.
    pub fn clear_readiness(&self, event: ReadyEvent) {
        let bit = if event.write {
            bits::WRITABLE
        } else {
            bits::READABLE
        };
        self.slot()
            .clear(self.token.generation(), event.snapshot, bit);
    }

    /// Runs `op` when ready in the given direction, clearing readiness and waiting again each
    /// time it returns `WouldBlock`.
    pub fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let write = interest.is_writable() && !interest.is_readable();
        loop {
            let event = ready!(self.poll_ready(cx, write))?;
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.clear_readiness(event),
                result => return Poll::Ready(result),
            }
        }
    }

    /// The async form of [`poll_io`](Registration::poll_io).
    pub async fn async_io<R>(
        &self,
        interest: Interest,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        std::future::poll_fn(|cx| self.poll_io(cx, interest, &mut op)).await
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.driver.deregister_fd(
            self.fd,
            self.token,
            self.interest.is_readable(),
            self.interest.is_writable(),
        );
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("fd", &self.fd)
            .field("interest", &self.interest)
            .finish()
    }
}
