//! `Kqueue`: the handle users hold, and its builder.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use crate::sys;
use crate::{Flags, Kevent};

/// A kernel event queue: `kqueue()` plus `kevent()`.
///
/// `Send + Sync`: any number of threads may call [`kevent`](Kqueue::kevent) at once, and a
/// `NOTE_TRIGGER` change from any thread wakes a waiter. The fd ([`AsRawFd`]) is pollable: it
/// is readable whenever `kevent` would return an event, timer expiries and user triggers
/// included, so a host loop can watch it with poll(2).
pub struct Kqueue {
    sel: sys::Selector,
}

impl Kqueue {
    /// A new, empty kqueue with exact `data` (see [`KqueueBuilder::exact_data`]).
    pub fn new() -> io::Result<Kqueue> {
        Kqueue::builder().build()
    }

    /// A builder for a kqueue with non-default options.
    pub fn builder() -> KqueueBuilder {
        KqueueBuilder { exact_data: true }
    }

    /// `kevent(kq, changes, nchanges, events, nevents, timeout)`.
    ///
    /// Applies `changes` in order, then collects triggered events into `events`, waiting up to
    /// `timeout` (`None`: forever; zero: poll; an empty `events` never waits). A change that
    /// fails, or carries `EV_RECEIPT`, is written into `events` as an `EV_ERROR` entry (`data` =
    /// errno, 0 for success), and then the call returns those entries at once without waiting.
    /// If `events` has no room for such an entry the call fails with that errno and the
    /// remaining changes are not applied. A wait interrupted by a signal fails with
    /// `ErrorKind::Interrupted` after all changes were applied.
    ///
    /// Returns the number of entries written to `events`.
    pub fn kevent(
        &self,
        changes: &[Kevent],
        events: &mut [Kevent],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        self.sel.kevent(changes, events, timeout)
    }

    /// Applies `changes` and reports the first that failed, without collecting events.
    ///
    /// A convenience over [`kevent`](Kqueue::kevent): each change is sent with `EV_RECEIPT`, so
    /// every change is applied (or refused) and none waits. As in kqueue(2), a knote created
    /// this way keeps `EV_RECEIPT` and returns it in the flags of its events; compare flags
    /// with `contains`, or register through `kevent` when exact flags matter.
    ///
    /// No event is collected: the event list has exactly one entry per change, all taken by
    /// receipts (so a caller may use it on a kqueue other threads are waiting on without
    /// swallowing their events). Short lists (the common registration of one fd's READ and
    /// WRITE) use stack buffers and allocate nothing.
    pub fn apply(&self, changes: &[Kevent]) -> io::Result<()> {
        const SHORT: usize = 8;
        let receipt = |c: &Kevent| c.with_flags(c.flags() | Flags::RECEIPT);
        let mut short_changes = [Kevent::zeroed(); SHORT];
        let mut short_results = [Kevent::zeroed(); SHORT];
        let (with_receipt, results): (&mut [Kevent], &mut [Kevent]);
        let (mut long_changes, mut long_results);
        if changes.len() <= SHORT {
            for (slot, c) in short_changes.iter_mut().zip(changes) {
                *slot = receipt(c);
            }
            with_receipt = &mut short_changes[..changes.len()];
            results = &mut short_results[..changes.len()];
        } else {
            long_changes = changes.iter().map(receipt).collect::<Vec<_>>();
            long_results = vec![Kevent::zeroed(); changes.len()];
            with_receipt = &mut long_changes;
            results = &mut long_results;
        }
        let n = self.kevent(with_receipt, results, Some(Duration::ZERO))?;
        match results[..n].iter().find_map(Kevent::error) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

impl AsRawFd for Kqueue {
    fn as_raw_fd(&self) -> RawFd {
        self.sel.as_raw_fd()
    }
}

impl AsFd for Kqueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd is owned by `self.sel` and stays open for as long as `self` is borrowed.
        unsafe { BorrowedFd::borrow_raw(self.sel.as_raw_fd()) }
    }
}

impl std::fmt::Debug for Kqueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kqueue")
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

/// Options for a [`Kqueue`].
#[derive(Clone, Debug)]
pub struct KqueueBuilder {
    exact_data: bool,
}

impl KqueueBuilder {
    /// Whether READ/WRITE events carry exact `data` (bytes readable, accept-queue length, free
    /// send space). Default `true`.
    ///
    /// Native kqueue always fills `data` at no cost. The epoll shim pays one or two system calls
    /// per fd event for it (an `ioctl`, and an `fstat` that checks the fd still names the file
    /// that was registered); a hot path that only needs readiness (an executor) turns it off and
    /// then sees `data == 0` on fd events. Knotes with `NOTE_LOWAT` still get exact data.
    pub fn exact_data(mut self, exact: bool) -> KqueueBuilder {
        self.exact_data = exact;
        self
    }

    /// Creates the kqueue.
    pub fn build(self) -> io::Result<Kqueue> {
        let options = sys::Options {
            exact_data: self.exact_data,
        };
        Ok(Kqueue {
            sel: sys::Selector::new(&options)?,
        })
    }
}
