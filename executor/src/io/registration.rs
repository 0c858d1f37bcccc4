//! `Registration`: an fd's readiness knotes, and the wake-up protocol around them.
//!
//! Readiness is edge-triggered (EV_CLEAR): the slot remembers an edge until the wait that saw
//! it learns, from an operation that would block, that it is gone; clearing is conditional on
//! no newer edge (the slot's tick), so none is lost. Any number of tasks may wait in each
//! direction with [`readable`](Registration::readable) / [`writable`](Registration::writable)
//! / [`async_io`](Registration::async_io): every waiter is woken by an event. The
//! `poll_*_ready` functions keep one waker per direction (tokio's semantics: the last caller's
//! waker is kept), which is what a `poll_read`-style implementation wants.

use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};

use crate::driver::{ready as bits, Direction, Driver, Slot, Snapshot, Token, WaitKey};
use crate::loom::sync::atomic::{AtomicBool, Ordering};
use crate::runtime::Handle;
use crate::task::coop;

bitflags::bitflags! {
    /// Which readiness a registration follows (or which one an operation waits for).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Interest: u8 {
        /// EVFILT_READ: the fd is readable (or at EOF, or has a pending connection).
        const READABLE = 1;
        /// EVFILT_WRITE: the fd is writable.
        const WRITABLE = 2;
    }
}

impl Interest {
    /// Both of `self` and `other`.
    pub const fn add(self, other: Interest) -> Interest {
        self.union(other)
    }

    /// Whether reads are followed.
    pub const fn is_readable(self) -> bool {
        self.contains(Interest::READABLE)
    }

    /// Whether writes are followed.
    pub const fn is_writable(self) -> bool {
        self.contains(Interest::WRITABLE)
    }

    /// The direction an operation with this interest waits in: reads unless only writes.
    fn direction(self) -> Direction {
        if self.is_writable() && !self.is_readable() {
            Direction::Write
        } else {
            Direction::Read
        }
    }
}

bitflags::bitflags! {
    /// The readiness an event reported, as a set.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Ready: u16 {
        /// Readable.
        const READABLE = bits::READABLE;
        /// Writable.
        const WRITABLE = bits::WRITABLE;
        /// The read side reached EOF (EV_EOF on EVFILT_READ).
        const READ_CLOSED = bits::READ_CLOSED;
        /// The write side is closed (EV_EOF on EVFILT_WRITE).
        const WRITE_CLOSED = bits::WRITE_CLOSED;
        /// The kqueue reported an error for the fd (the next operation will say which).
        const ERROR = bits::ERROR;
    }
}

impl Ready {
    /// Nothing.
    pub const EMPTY: Ready = Ready::empty();

    /// Whether readable (or read-closed, or in error: a read will not block).
    pub const fn is_readable(self) -> bool {
        self.intersects(
            Ready::READABLE
                .union(Ready::READ_CLOSED)
                .union(Ready::ERROR),
        )
    }

    /// Whether writable (or write-closed, or in error: a write will not block).
    pub const fn is_writable(self) -> bool {
        self.intersects(
            Ready::WRITABLE
                .union(Ready::WRITE_CLOSED)
                .union(Ready::ERROR),
        )
    }

    /// Whether the read side reached EOF.
    pub const fn is_read_closed(self) -> bool {
        self.contains(Ready::READ_CLOSED)
    }

    /// Whether the write side is closed.
    pub const fn is_write_closed(self) -> bool {
        self.contains(Ready::WRITE_CLOSED)
    }

    /// Whether an error was reported.
    pub const fn is_error(self) -> bool {
        self.contains(Ready::ERROR)
    }
}

/// The readiness seen by a wait, to hand back to
/// [`clear_readiness`](Registration::clear_readiness) when the operation it allowed would
/// block.
#[derive(Clone, Copy, Debug)]
pub struct ReadyEvent {
    ready: Ready,
    snapshot: Snapshot,
    direction: Direction,
}

impl ReadyEvent {
    /// The readiness seen.
    pub fn ready(&self) -> Ready {
        self.ready
    }

    fn new(snapshot: Snapshot, direction: Direction) -> ReadyEvent {
        ReadyEvent {
            ready: Ready::from_bits_truncate(snapshot.bits & direction.side()),
            snapshot,
            direction,
        }
    }
}

/// An fd registered with a runtime's kqueue: EVFILT_READ and/or EVFILT_WRITE, both EV_CLEAR.
///
/// A registration that follows both directions adds its EVFILT_WRITE knote only when a writer
/// first has to wait: until then the fd counts as writable (a socket is, until its send buffer
/// fills; an operation that finds otherwise says `WouldBlock`, and the wait that follows adds
/// the knote, which reports the fd at once if it is writable by then). A stream that never
/// fills its send buffer so never has a WRITE knote, whose events (on the epoll shim, one with
/// every incoming-data edge) would only repeat what the registration already assumes. Once
/// added, the knote stays until the registration is dropped. A registration that follows only
/// writes adds its knote at once (nothing else would tell a closed fd).
///
/// The protocol, for the network types built on it: wait with
/// [`readable`](Registration::readable) (or [`poll_read_ready`](Registration::poll_read_ready)),
/// try the operation, and if it fails with `WouldBlock` call
/// [`clear_readiness`](Registration::clear_readiness) with the event the wait returned, then
/// wait again ([`async_io`](Registration::async_io) is that loop). Clearing is conditional on
/// no event having arrived since that wait, so an edge that lands between the failed operation
/// and the clear is never lost.
///
/// Any number of tasks may wait in each direction through `readable`, `writable` and
/// `async_io` (a socket shared by `&` across tasks, several readers of one datagram socket, a
/// reader and a writer at once): an event wakes them all, and those whose operation then
/// would block clear and wait again. `poll_read_ready` / `poll_write_ready` / `poll_io` keep
/// one waker per direction instead: the last caller's.
///
/// The registration does not own its fd: it deletes its knotes when dropped, by fd number,
/// which is why [`new`](Registration::new) is `unsafe` (the number must still be the same
/// file then). [`AsyncFd`](super::AsyncFd) is the safe form, owning the fd. Events still in
/// flight for a dropped registration are ignored: their `udata` carries the registration's
/// generation, which no longer matches.
pub struct Registration {
    driver: Arc<Driver>,
    token: Token,
    fd: RawFd,
    interest: Interest,
    /// Whether the EVFILT_WRITE knote is in the kqueue, or being added.
    write_knote: LateWrite,
}

/// Whether a registration's EVFILT_WRITE knote is in the kqueue (or on its way in): one flag,
/// claimed by the one writer that adds the knote.
///
/// The protocol, for a writer that is about to park (its waker registered, the readiness
/// looked at again and found not writable): if the flag is set, the knote is in or being added
/// by another writer, and the first event of that knote (an added knote whose condition holds
/// is reported at once) or a later edge wakes every registered waiter, this one included. If
/// not, the writer claims it with a compare-and-swap (so concurrent writers on several
/// workers make exactly one add) and adds the knote. A failed add gives the flag back and sets
/// the slot writable again, waking the writers that parked behind the claim: with no knote
/// the fd counts as writable until an operation says otherwise, so each of them tries its
/// operation (and, if that would block, the add) itself, and the failing writer's poll returns
/// the add's error. Model-checked in `loom_tests` below.
struct LateWrite(AtomicBool);

impl LateWrite {
    fn new(added: bool) -> LateWrite {
        LateWrite(AtomicBool::new(added))
    }

    /// Whether the knote is in (exact once no writer runs: `&mut` access, a drop).
    fn is_added(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Makes sure the knote is in or on its way, with `add` if nobody has claimed that yet;
    /// `slot` and `generation` are the registration's, woken if the add fails.
    fn follow(
        &self,
        slot: &Slot,
        generation: u32,
        add: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        if self.is_added()
            || self
                .0
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return Ok(());
        }
        add().inspect_err(|_| {
            self.0.store(false, Ordering::Release);
            slot.notify(generation, bits::WRITABLE);
        })
    }
}

#[cold]
#[inline(never)]
fn not_followed(direction: Direction) -> io::Error {
    let what = match direction {
        Direction::Read => "readability: the registration does not follow Interest::READABLE",
        Direction::Write => "writability: the registration does not follow Interest::WRITABLE",
    };
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("knote: waiting for {what}"),
    )
}

impl Registration {
    /// Registers `fd` with the current runtime.
    ///
    /// Fails with the kqueue's error (`EBADF` for a closed fd), with `InvalidInput` for an
    /// empty interest, or if there is no runtime (`ErrorKind::Other` naming the problem).
    ///
    /// # Safety
    ///
    /// `fd` must be open, and must stay open and name the same file until the registration is
    /// dropped: its drop deletes the knotes of that fd *number* from the kqueue, and if the
    /// number had been closed and reused meanwhile, those would be the new owner's knotes.
    /// (The same contract as tokio's `AsyncFd::register`; [`AsyncFd`](super::AsyncFd) meets
    /// it by owning the fd.)
    ///
    /// A raw number cannot be registered without `unsafe`:
    ///
    /// ```compile_fail
    /// # fn f(fd: std::os::fd::RawFd) {
    /// use knote_executor::io::{Interest, Registration};
    /// let _ = Registration::new(fd, Interest::READABLE);
    /// # }
    /// ```
    ///
    /// nor wrapped in an `AsyncFd` (which wants the fd owned or borrowed, `AsFd`):
    ///
    /// ```compile_fail
    /// # fn f(fd: std::os::fd::RawFd) {
    /// let _ = knote_executor::io::AsyncFd::new(fd);
    /// # }
    /// ```
    pub unsafe fn new(fd: RawFd, interest: Interest) -> io::Result<Registration> {
        let handle = Handle::try_current().map_err(io::Error::other)?;
        // SAFETY: the caller's contract, passed on.
        unsafe { Registration::with_handle(fd, interest, &handle) }
    }

    /// Registers `fd` with the runtime of `handle`.
    ///
    /// # Safety
    ///
    /// As for [`new`](Registration::new): `fd` stays open and names the same file until the
    /// registration is dropped.
    pub unsafe fn with_handle(
        fd: RawFd,
        interest: Interest,
        handle: &Handle,
    ) -> io::Result<Registration> {
        if interest.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "knote: a registration must follow READABLE, WRITABLE or both",
            ));
        }
        let driver = handle.driver();
        // Both directions: WRITE waits for the first writer that has to wait.
        let lazy_write = interest.is_readable() && interest.is_writable();
        let write_now = interest.is_writable() && !lazy_write;
        let token = driver.register_fd(fd, interest.is_readable(), write_now)?;
        if lazy_write {
            // Writable until an operation says otherwise (see the type's docs).
            driver
                .slot(token)
                .set_ready(token.generation(), bits::WRITABLE);
        }
        Ok(Registration {
            driver,
            token,
            fd,
            interest,
            write_knote: LateWrite::new(write_now),
        })
    }

    /// For a wait in `direction` that is about to park, its waker already registered and the
    /// readiness looked at again: makes sure a write waiter has a WRITE knote to wake it.
    /// Without one, the fd counted as writable until an operation cleared that (it would
    /// block); the knote is added now, after the waker is in, and kqueue reports an added
    /// knote whose condition holds at once (the epoll shim too: it looks at the fd at its next
    /// scan, and wakes a thread asleep in a wait to do so), so an fd writable by then wakes
    /// the waiter, and one that is not gives the next edge. Several writers may get here at
    /// once: one adds (see [`LateWrite`]). A failed add (the fd closed behind the
    /// registration's back) is this poll's error; the next wait tries again.
    #[inline]
    fn follow_writes(&self, direction: Direction) -> io::Result<()> {
        // Inline, so that a read that parks (every echo round trip's second read) makes no
        // call here; the claim and the add stay out of line.
        if direction != Direction::Write {
            return Ok(());
        }
        self.add_late_write()
    }

    /// [`follow_writes`](Registration::follow_writes) for a writer: the late knote's claim.
    #[inline(never)]
    fn add_late_write(&self) -> io::Result<()> {
        self.write_knote
            .follow(self.slot(), self.token.generation(), || {
                self.driver.add_write(self.fd, self.token)
            })
    }

    /// Whether the EVFILT_WRITE knote has been added (tests: a stream that never waits to
    /// write has none).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn has_write_knote(&self) -> bool {
        self.write_knote.is_added()
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

    fn follows(&self, direction: Direction) -> bool {
        match direction {
            Direction::Read => self.interest.is_readable(),
            Direction::Write => self.interest.is_writable(),
        }
    }

    fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
    ) -> Poll<io::Result<ReadyEvent>> {
        if !self.follows(direction) {
            return Poll::Ready(Err(not_followed(direction)));
        }
        ready!(coop::poll_proceed(cx));
        let snapshot = ready!(poll_dedicated(
            self.slot(),
            self.token.generation(),
            direction,
            cx.waker(),
            || self.follow_writes(direction),
        ))?;
        coop::spend();
        Poll::Ready(Ok(ReadyEvent::new(snapshot, direction)))
    }

    /// Waits for readability, with the one waker slot of the read direction (a second task
    /// polling it replaces the first's waker; several waiters use
    /// [`readable`](Registration::readable)).
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<ReadyEvent>> {
        self.poll_ready(cx, Direction::Read)
    }

    /// Waits for writability, with the one waker slot of the write direction.
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<ReadyEvent>> {
        self.poll_ready(cx, Direction::Write)
    }

    /// Waits for readability; every task waiting so is woken by the next read event.
    pub fn readable(&self) -> Readiness<'_> {
        Readiness::new(self, Direction::Read)
    }

    /// Waits for writability; every task waiting so is woken by the next write event.
    pub fn writable(&self) -> Readiness<'_> {
        Readiness::new(self, Direction::Write)
    }

    /// Forgets the readiness `event` reported (the operation it allowed returned
    /// `WouldBlock`), unless a newer event arrived since. EOF and error stay: they are final.
    #[inline]
    pub fn clear_readiness(&self, event: ReadyEvent) {
        let bit = match event.direction {
            Direction::Read => bits::READABLE,
            Direction::Write => bits::WRITABLE,
        };
        self.slot()
            .clear(self.token.generation(), event.snapshot, bit);
    }

    /// Runs `op` when ready in the direction of `interest` (reads, unless it is only
    /// writes), clearing readiness and waiting again each time it returns `WouldBlock`. Waits
    /// with the one waker slot of that direction, as `poll_read_ready` does.
    pub fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_io_clearing(cx, interest, op, |_| false)
    }

    /// [`poll_io`](Registration::poll_io) for a byte stream (socket, pipe): `op` was asked to
    /// move `want` bytes, and a transfer of fewer (but some) has drained the fd's buffer, or
    /// filled it, so readiness is cleared then too: the next call waits for an event instead
    /// of making a system call that would only say `EAGAIN`. The clear is conditional on no
    /// newer event, so an edge that arrived meanwhile is kept.
    pub fn poll_transfer(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        want: usize,
        op: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        self.poll_io_clearing(cx, interest, op, |&n| n > 0 && n < want)
    }

    /// `poll_io`'s loop; `drained` says of a result whether it also used readiness up.
    fn poll_io_clearing<R>(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        mut op: impl FnMut() -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        let direction = interest.direction();
        loop {
            let event = ready!(self.poll_ready(cx, direction))?;
            let result = op();
            if !self.settle(event, &result, &drained) {
                return Poll::Ready(result);
            }
        }
    }

    /// After an operation that `event` allowed: clears the readiness if the operation returned
    /// `WouldBlock` or (`drained`) used it up. Returns whether it would have blocked.
    fn settle<R>(
        &self,
        event: ReadyEvent,
        result: &io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> bool {
        let would_block = matches!(result, Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        if would_block || matches!(result, Ok(r) if drained(r)) {
            self.clear_readiness(event);
        }
        would_block
    }

    /// Runs `op` now if the registration has readiness in the direction of `interest` (reads,
    /// unless it is only writes), without waiting: tokio's `try_io`. With no readiness it
    /// returns `WouldBlock` without running `op` (no system call that could only say
    /// `EAGAIN`); if `op` returns `WouldBlock`, the readiness it consumed is cleared (unless a
    /// newer event arrived), so the next [`readable`](Registration::readable) /
    /// [`writable`](Registration::writable) waits for an event.
    pub fn try_io<R>(
        &self,
        interest: Interest,
        op: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        self.try_io_clearing(interest, op, |_| false)
    }

    /// [`try_io`](Registration::try_io) for a byte stream: `op` was asked to move `want`
    /// bytes, and a transfer of fewer (but some) drained or filled the fd's buffer, so
    /// readiness is cleared then too, as [`poll_transfer`](Registration::poll_transfer) does.
    pub fn try_transfer(
        &self,
        interest: Interest,
        want: usize,
        op: impl FnOnce() -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.try_io_clearing(interest, op, |&n| n > 0 && n < want)
    }

    /// `try_io`'s body; `drained` says of a result whether it also used readiness up.
    fn try_io_clearing<R>(
        &self,
        interest: Interest,
        op: impl FnOnce() -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> io::Result<R> {
        let direction = interest.direction();
        if !self.follows(direction) {
            return Err(not_followed(direction));
        }
        let snapshot = self.slot().snapshot(self.token.generation());
        if snapshot.bits & direction.side() == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let result = op();
        self.settle(ReadyEvent::new(snapshot, direction), &result, drained);
        result
    }

    /// Runs `op` when ready in the direction of `interest` (reads, unless it is only writes),
    /// clearing readiness and waiting again each time it returns `WouldBlock`. Any number of
    /// tasks may do this at once (each is woken by an event; those whose `op` then would
    /// block wait again).
    pub async fn async_io<R>(
        &self,
        interest: Interest,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        let direction = interest.direction();
        loop {
            let event = Readiness::new(self, direction).await?;
            let result = op();
            if !self.settle(event, &result, |_| false) {
                return result;
            }
        }
    }
}

/// One poll of a wait with the dedicated waker of `direction`: ready, or the waker is parked
/// and `park` (the late WRITE knote's [`follow_writes`](Registration::follow_writes)) runs,
/// whose error ends the wait.
fn poll_dedicated(
    slot: &Slot,
    generation: u32,
    direction: Direction,
    waker: &Waker,
    park: impl FnOnce() -> io::Result<()>,
) -> Poll<io::Result<Snapshot>> {
    match slot.poll_ready(generation, direction, direction.side(), waker) {
        Some(snapshot) => Poll::Ready(Ok(snapshot)),
        None => park().map_or_else(|err| Poll::Ready(Err(err)), |()| Poll::Pending),
    }
}

/// One poll of a listed waiter of `direction` (its entry under `key`): ready, or the waker is
/// listed and `park` runs; if that fails, the entry is removed and the wait ends with its
/// error.
fn poll_listed(
    slot: &Slot,
    generation: u32,
    direction: Direction,
    key: &mut Option<WaitKey>,
    waker: &Waker,
    park: impl FnOnce() -> io::Result<()>,
) -> Poll<io::Result<Snapshot>> {
    if let Some(snapshot) = slot.poll_waiter(generation, direction, key, waker) {
        return Poll::Ready(Ok(snapshot));
    }
    match park() {
        Ok(()) => Poll::Pending,
        Err(err) => {
            slot.remove_waiter(direction, key);
            Poll::Ready(Err(err))
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Only a knote that was added is deleted.
        self.driver.deregister_fd(
            self.fd,
            self.token,
            self.interest.is_readable(),
            self.write_knote.is_added(),
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

/// The future of [`Registration::readable`] and [`Registration::writable`]: one waiter in the
/// registration's list from its first pending poll until it completes or is dropped (dropping
/// it removes its waker, so a cancelled wait leaves nothing behind).
#[must_use = "futures do nothing unless polled"]
pub struct Readiness<'a> {
    registration: &'a Registration,
    direction: Direction,
    /// Its entry in the slot's waiter list, while it has one.
    key: Option<WaitKey>,
}

impl<'a> Readiness<'a> {
    fn new(registration: &'a Registration, direction: Direction) -> Readiness<'a> {
        Readiness {
            registration,
            direction,
            key: None,
        }
    }
}

impl Future for Readiness<'_> {
    type Output = io::Result<ReadyEvent>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let registration = this.registration;
        if !registration.follows(this.direction) {
            return Poll::Ready(Err(not_followed(this.direction)));
        }
        ready!(coop::poll_proceed(cx));
        let direction = this.direction;
        let snapshot = ready!(poll_listed(
            registration.slot(),
            registration.token.generation(),
            direction,
            &mut this.key,
            cx.waker(),
            || registration.follow_writes(direction),
        ))?;
        coop::spend();
        Poll::Ready(Ok(ReadyEvent::new(snapshot, this.direction)))
    }
}

impl Drop for Readiness<'_> {
    fn drop(&mut self) {
        if self.key.is_some() {
            self.registration
                .slot()
                .remove_waiter(self.direction, &mut self.key);
        }
    }
}

impl std::fmt::Debug for Readiness<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("direction", &self.direction)
            .field("waiting", &self.key.is_some())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;
    use std::time::Duration;

    use super::Interest;
    use crate::io::AsyncFd;
    use crate::runtime::{Builder, Runtime};

    /// More than any socket buffer holds: a writer of this much has to wait.
    const LOT: usize = 8 << 20;

    fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        (a, b)
    }

    /// Writes all of `buf` through the registration, waiting whenever the socket is full.
    async fn write_all(fd: &AsyncFd<UnixStream>, mut buf: &[u8]) {
        while !buf.is_empty() {
            let n = fd
                .async_io(Interest::WRITABLE, |mut s| s.write(buf))
                .await
                .unwrap();
            buf = &buf[n..];
        }
    }

    /// The same through the one-waker `poll_io` path.
    async fn write_all_polled(fd: &AsyncFd<UnixStream>, mut buf: &[u8]) {
        while !buf.is_empty() {
            let n = std::future::poll_fn(|cx| {
                let mut s = fd.get_ref();
                fd.registration()
                    .poll_transfer(cx, Interest::WRITABLE, buf.len(), || s.write(buf))
            })
            .await
            .unwrap();
            buf = &buf[n..];
        }
    }

    /// A reader on a thread of its own, draining `total` bytes once `fd`'s writer has had to
    /// wait (its WRITE knote is in: the buffer filled with nobody reading).
    fn drain(
        fd: Arc<AsyncFd<UnixStream>>,
        mut peer: UnixStream,
        total: usize,
    ) -> std::thread::JoinHandle<usize> {
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while !fd.registration().has_write_knote() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no writer ever waited for the full buffer"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(fd);
            let mut buf = vec![0; 64 << 10];
            let mut got = 0;
            while got < total {
                let n = peer.read(&mut buf).unwrap();
                assert_ne!(n, 0, "EOF after {got} of {total} bytes");
                got += n;
            }
            got
        })
    }

    /// A registration is 24 bytes (driver, token, fd, interest, the late WRITE knote's flag):
    /// it sits in every stream, so every idle connection pays for it. (With a `Mutex<()>`
    /// guarding the late add, it was 32.)
    #[test]
    fn a_registration_is_three_words() {
        assert_eq!(std::mem::size_of::<super::Registration>(), 24);
        assert_eq!(std::mem::size_of::<AsyncFd<UnixStream>>(), 32);
    }

    fn runtimes() -> [Runtime; 2] {
        [
            Builder::new_current_thread().build().unwrap(),
            Builder::new_multi_thread()
                .worker_threads(2)
                .build()
                .unwrap(),
        ]
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_stream_that_never_waits_to_write_adds_no_write_knote() {
        for rt in runtimes() {
            rt.block_on(async {
                let (a, mut b) = pair();
                let fd = AsyncFd::new(a).unwrap();
                assert!(!fd.registration().has_write_knote());
                let mut echoed = [0; 64];
                for i in 0..100u8 {
                    write_all(&fd, &[i; 64]).await;
                    write_all_polled(&fd, &[i; 64]).await;
                    // Both writes fit the buffer: the peer reads them at leisure.
                    b.read_exact(&mut echoed).unwrap();
                    b.read_exact(&mut echoed).unwrap();
                    assert_eq!(echoed, [i; 64]);
                    // The read direction still works: an echo back.
                    b.write_all(&[i; 8]).unwrap();
                    let mut back = [0; 8];
                    let n = fd
                        .async_io(Interest::READABLE, |mut s| s.read(&mut back))
                        .await
                        .unwrap();
                    assert_eq!(back[..n], [i; 8][..n]);
                    if n < 8 {
                        let mut rest = [0; 8];
                        let m = fd
                            .async_io(Interest::READABLE, |mut s| s.read(&mut rest[..8 - n]))
                            .await
                            .unwrap();
                        assert!(m > 0);
                    }
                }
                assert!(
                    !fd.registration().has_write_knote(),
                    "a WRITE knote was added though no write ever had to wait"
                );
            });
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_writer_on_a_full_socket_is_woken_when_the_peer_drains() {
        for rt in runtimes() {
            for polled in [false, true] {
                let (a, b) = pair();
                let fd = Arc::new(rt.block_on(async { AsyncFd::new(a).unwrap() }));
                let reader = drain(Arc::clone(&fd), b, LOT);
                rt.block_on(async {
                    let data = vec![7; LOT];
                    let write = async {
                        if polled {
                            write_all_polled(&fd, &data).await;
                        } else {
                            write_all(&fd, &data).await;
                        }
                    };
                    crate::time::timeout(Duration::from_secs(60), write)
                        .await
                        .expect("the writer was never woken");
                });
                assert_eq!(reader.join().unwrap(), LOT);
            }
        }
    }

    /// Several tasks on both workers write one stream, all waiting on the full buffer at once:
    /// one of them adds the WRITE knote, and every one is woken by the drain. (At most one
    /// uses the one-waker `poll_*` path: a second would replace the first's waker.)
    #[test]
    #[cfg_attr(miri, ignore)]
    fn writers_on_several_workers_share_the_late_write_knote() {
        const WRITERS: usize = 4;
        let rt = Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        for round in 0..4 {
            let (a, b) = pair();
            let fd = Arc::new(rt.block_on(async { AsyncFd::new(a).unwrap() }));
            let reader = drain(Arc::clone(&fd), b, LOT);
            let tasks: Vec<_> = (0..WRITERS)
                .map(|i| {
                    let fd = Arc::clone(&fd);
                    rt.spawn(async move {
                        let data = vec![i as u8; LOT / WRITERS];
                        if i == 0 && round % 2 == 1 {
                            write_all_polled(&fd, &data).await;
                        } else {
                            write_all(&fd, &data).await;
                        }
                    })
                })
                .collect();
            rt.block_on(async {
                for t in tasks {
                    crate::time::timeout(Duration::from_secs(60), t)
                        .await
                        .expect("a writer was never woken")
                        .unwrap();
                }
            });
            assert_eq!(reader.join().unwrap(), LOT);
        }
    }
}

/// Models of the late WRITE knote ([`LateWrite`]): writers on several threads that find the
/// fd not writable at once, over the real slot (its waiter list and dedicated waker) and a
/// mock kqueue in which an added knote whose fd is writable reports at once and a knote that
/// is in reports the fd turning writable. Run with
/// `RUSTFLAGS="--cfg loom" cargo test -p knote-executor --release --lib loom`.
#[cfg(all(test, loom))]
mod loom_tests {
    use std::future::poll_fn;

    use loom::future::block_on;
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::{Arc, Mutex};
    use loom::thread;

    use super::*;
    use crate::driver::slots::Slots;

    /// The kqueue, as far as one fd's WRITE knote goes. An event is dispatched to the slot
    /// (`notify`, as a turn does) by the thread whose change made it due.
    #[derive(Default)]
    struct Kq {
        /// (the WRITE knote is in, the fd is writable)
        state: Mutex<(bool, bool)>,
        adds: AtomicUsize,
    }

    /// A registration that follows both directions, after a write returned `WouldBlock` (the
    /// assumed writability cleared): the fd's send buffer is full, and no WRITE knote is in.
    struct Conn {
        slots: Slots,
        token: Token,
        write_knote: LateWrite,
        kq: Kq,
        /// Whether every add fails (an fd closed behind the registration's back).
        adds_fail: bool,
    }

    impl Conn {
        fn new(adds_fail: bool) -> Arc<Conn> {
            let slots = Slots::new();
            let (token, _) = slots.alloc();
            Arc::new(Conn {
                slots,
                token,
                write_knote: LateWrite::new(false),
                kq: Kq::default(),
                adds_fail,
            })
        }

        fn slot(&self) -> &Slot {
            self.slots.get(self.token.index()).unwrap()
        }

        fn generation(&self) -> u32 {
            self.token.generation()
        }

        /// `Driver::add_write` against the mock kqueue.
        fn add(&self) -> io::Result<()> {
            self.kq.adds.fetch_add(1, Ordering::SeqCst);
            if self.adds_fail {
                return Err(io::Error::from_raw_os_error(libc::EBADF));
            }
            self.change(|state| state.0 = true);
            Ok(())
        }

        /// The peer reads: the fd turns writable.
        fn drain(&self) {
            self.change(|state| state.1 = true);
        }

        /// Changes the mock kqueue's state; a knote that is in, on an fd that is writable,
        /// reports (an added knote whose condition holds, or the fd turning writable).
        fn change(&self, f: impl FnOnce(&mut (bool, bool))) {
            let due = {
                let mut state = self.kq.state.lock().unwrap();
                f(&mut state);
                state.0 && state.1
            };
            if due {
                self.slot().notify(self.generation(), bits::WRITABLE);
            }
        }

        fn follow_writes(&self) -> io::Result<()> {
            self.write_knote
                .follow(self.slot(), self.generation(), || self.add())
        }

        /// A writer's wait as `writable()` polls it (listed), until it ends.
        fn wait_listed(&self) -> io::Result<Snapshot> {
            let mut key = None;
            let gen = self.generation();
            let result = block_on(poll_fn(|cx| {
                poll_listed(
                    self.slot(),
                    gen,
                    Direction::Write,
                    &mut key,
                    cx.waker(),
                    || self.follow_writes(),
                )
            }));
            assert!(key.is_none(), "an ended wait keeps no entry");
            result
        }

        /// A writer's wait as `poll_write_ready` polls it (the dedicated waker).
        fn wait_dedicated(&self) -> io::Result<Snapshot> {
            let gen = self.generation();
            block_on(poll_fn(|cx| {
                poll_dedicated(self.slot(), gen, Direction::Write, cx.waker(), || {
                    self.follow_writes()
                })
            }))
        }
    }

    /// Two writers (one listed, one with the dedicated waker) race to add the knote while the
    /// peer drains: exactly one add, and both are woken (a lost wake-up leaves `block_on`
    /// parked forever, which loom reports as a deadlock).
    #[test]
    fn racing_writers_make_one_add_and_both_are_woken_by_a_racing_edge() {
        loom::model(|| {
            let conn = Conn::new(false);
            let other = {
                let conn = Arc::clone(&conn);
                thread::spawn(move || conn.wait_dedicated())
            };
            let peer = {
                let conn = Arc::clone(&conn);
                thread::spawn(move || conn.drain())
            };
            let seen = conn.wait_listed().expect("the add cannot fail here");
            assert_ne!(seen.bits & bits::WRITABLE, 0);
            let seen = other.join().unwrap().expect("the add cannot fail here");
            assert_ne!(seen.bits & bits::WRITABLE, 0);
            peer.join().unwrap();
            assert_eq!(
                conn.kq.adds.load(Ordering::SeqCst),
                1,
                "the knote was added twice"
            );
            assert!(conn.write_knote.is_added());
        });
    }

    /// Two writers whose adds fail: each wait ends, with the add's error or (a writer that
    /// parked behind the failed claim, woken to try its operation) ready; at least one sees
    /// the error, and the flag is left free for the next writer to try again.
    #[test]
    fn a_failed_add_is_an_error_and_wakes_the_writers_behind_it() {
        loom::model(|| {
            let conn = Conn::new(true);
            let other = {
                let conn = Arc::clone(&conn);
                thread::spawn(move || conn.wait_listed())
            };
            let mine = conn.wait_listed();
            let theirs = other.join().unwrap();
            for result in [&mine, &theirs] {
                if let Err(err) = result {
                    assert_eq!(err.raw_os_error(), Some(libc::EBADF), "not the add's error");
                }
            }
            assert!(mine.is_err() || theirs.is_err(), "the add's error was lost");
            assert!(!conn.write_knote.is_added(), "a failed add kept the claim");
            assert!(conn.kq.adds.load(Ordering::SeqCst) >= 1);
        });
    }
}
