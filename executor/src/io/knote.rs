//! `KnoteRegistration`: any other knote (signal, process, user event, vnode) as an async
//! event source.

use std::io;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use knote_reactor::{Filter, Kevent};

use crate::driver::{ready as bits, Direction, Driver, Slot, Token};
use crate::runtime::Handle;
use crate::task::coop;

/// What fired, since the last time it was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fired {
    /// The event's `data`: for EVFILT_SIGNAL the deliveries since the last take (summed over
    /// events), for others the latest event's value (a process's exit status, ...).
    pub data: i64,
    /// The `fflags` of the events since the last take, or-ed (which PROC/VNODE notes fired).
    pub fflags: u32,
}

/// A knote other than fd readiness, registered with a runtime's kqueue: the building block of
/// signal and process streams.
///
/// Pass the change as you would to `kevent` (`EV_ADD` plus `EV_CLEAR` or `EV_ONESHOT` as the
/// filter wants; the `udata` is replaced by knote's token). Each
/// [`poll_event`](KnoteRegistration::poll_event) that returns `Ready` takes what fired since the
/// previous one. Dropping the registration deletes the knote.
pub struct KnoteRegistration {
    driver: Arc<Driver>,
    token: Token,
    change: Kevent,
}

impl KnoteRegistration {
    /// Registers `change` with the current runtime.
    pub fn new(change: Kevent) -> io::Result<KnoteRegistration> {
        let handle = Handle::try_current().map_err(io::Error::other)?;
        KnoteRegistration::with_handle(change, &handle)
    }

    /// Registers `change` with the runtime of `handle`.
    pub fn with_handle(change: Kevent, handle: &Handle) -> io::Result<KnoteRegistration> {
        KnoteRegistration::with_driver(change, handle.driver())
    }

    /// Registers `change` with `driver`'s kqueue (a multi-thread runtime's handle picks one
    /// per call: code that keys knotes by kqueue picks it once and passes it here).
    pub(crate) fn with_driver(
        change: Kevent,
        driver: Arc<Driver>,
    ) -> io::Result<KnoteRegistration> {
        let token = driver.register_other(change)?;
        Ok(KnoteRegistration {
            driver,
            token,
            change,
        })
    }

    fn slot(&self) -> &Slot {
        self.driver.slot(self.token)
    }

    /// The registered knote's ident.
    pub fn ident(&self) -> usize {
        self.change.ident()
    }

    /// The registered knote's filter.
    pub fn filter(&self) -> Filter {
        self.change.filter()
    }

    /// Waits for the knote to fire; takes what fired.
    pub fn poll_event(&self, cx: &mut Context<'_>) -> Poll<Fired> {
        ready!(coop::poll_proceed(cx));
        let generation = self.token.generation();
        let slot = self.slot();
        let signal = self.change.filter() == Filter::SIGNAL;
        loop {
            let Some(seen) = slot.poll_ready(generation, Direction::Read, bits::EVENT, cx.waker())
            else {
                return Poll::Pending;
            };
            // Clear first, then take: an event landing in between sets the bit again (and its
            // payload is either taken now or waits for the next poll), so none is lost.
            slot.clear(generation, seen, bits::EVENT);
            let (data, fflags) = slot.take_event(signal);
            if signal && data == 0 {
                // The deliveries this bit announced were taken by the previous poll.
                continue;
            }
            coop::spend();
            return Poll::Ready(Fired { data, fflags });
        }
    }

    /// Waits for the knote to fire; returns what fired.
    pub async fn event(&self) -> Fired {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }
}

impl Drop for KnoteRegistration {
    fn drop(&mut self) {
        self.driver.deregister_other(self.change, self.token);
    }
}

impl std::fmt::Debug for KnoteRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnoteRegistration")
            .field("ident", &self.change.ident())
            .field("filter", &self.change.filter())
            .finish()
    }
}
