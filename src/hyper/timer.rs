//! hyper's `rt::Timer` on knote: hyper's timeouts (`header_read_timeout`, HTTP/2 keep-alive,
//! a client pool's idle timeout) as knote sleeps, read on knote's clock.
//!
//! [`KnoteSleep`] is a newtype for `knote::time::Sleep` because neither the type nor hyper's
//! `rt::Sleep` trait is this crate's. It is `Send + Sync` as hyper's trait demands by
//! construction: knote's `Sleep` is both (its timer entry is shared through atomics), and
//! the newtype adds nothing, so no `unsafe impl` is needed — the static assertion below keeps
//! it so.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep as HyperSleep, Timer};

use crate::time::{self, Sleep};

/// knote's timers for hyper: give it to a builder's `timer(..)`.
///
/// Sleeps are knote sleeps ([`time::sleep`]); [`now`](Timer::now) is knote's clock
/// ([`time::Instant::now`]), so under a paused test clock ([`time::pause`]) hyper's
/// timeouts fire as that clock is advanced (or auto-advances), in microseconds of real time;
/// [`reset`](Timer::reset) moves a knote sleep's deadline in place, with no new allocation.
///
/// # Panics
/// A sleep is bound to a runtime when first polled: polling one outside a knote runtime
/// panics, as knote's sleeps do.
#[derive(Clone, Copy, Debug, Default)]
pub struct KnoteTimer;

impl KnoteTimer {
    /// The timer (it holds nothing: each sleep uses the runtime that polls it first).
    pub fn new() -> KnoteTimer {
        KnoteTimer
    }
}

impl Timer for KnoteTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn HyperSleep>> {
        Box::pin(KnoteSleep(time::sleep(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn HyperSleep>> {
        Box::pin(KnoteSleep(time::sleep_until(deadline.into())))
    }

    fn now(&self) -> Instant {
        time::Instant::now().into_std()
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn HyperSleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<KnoteSleep>() {
            Some(mut ours) => ours.as_mut().reset(new_deadline),
            // Another timer's sleep (hyper never mixes them, but the trait allows it).
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// The sleep [`KnoteTimer`] gives hyper: a [`knote::time::Sleep`](Sleep), as hyper's
/// `rt::Sleep`.
#[derive(Debug)]
pub struct KnoteSleep(Sleep);

impl KnoteSleep {
    /// When it completes.
    pub fn deadline(&self) -> Instant {
        self.0.deadline().into_std()
    }

    /// Moves the deadline, re-arming the same timer entry ([`Sleep::reset`]).
    pub fn reset(self: Pin<&mut Self>, deadline: Instant) {
        self.get_mut().0.reset(deadline.into());
    }
}

impl Future for KnoteSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().0.poll_elapsed(cx)
    }
}

impl HyperSleep for KnoteSleep {}

/// hyper's `rt::Sleep` requires `Send + Sync`: knote's `Sleep` is both, with no unsafe impl
/// here; this fails to compile if that ever changes.
const _: () = {
    const fn send_sync<T: Send + Sync + Unpin>() {}
    send_sync::<KnoteSleep>();
};
