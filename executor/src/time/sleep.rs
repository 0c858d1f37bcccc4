//! `Sleep`: one entry in its driver's timer heap, armed on first poll, re-armed in place.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use super::clock::{to_nanos, Instant};
use super::driver::EntryRef;
use crate::driver::Driver;
use crate::runtime::context;
use crate::task::coop;

/// Waits until `duration` has elapsed.
///
/// # Panics
/// When first polled outside a knote runtime.
pub fn sleep(duration: Duration) -> Sleep {
    let now = Instant::now();
    let mut sleep = Sleep::new(now.checked_add(duration).unwrap_or_else(far_future));
    // The clock was just read: a zero sleep is due, any other is not yet (its first poll
    // need not read the clock again; if it became due meanwhile, the next turn fires it).
    sleep.elapsed = duration.is_zero();
    sleep.check_clock = false;
    sleep
}

/// Waits until `deadline`.
///
/// # Panics
/// When first polled outside a knote runtime.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep::new(deadline)
}

/// An instant about 30 years ahead: what "never" means for a timer (as in tokio).
pub(crate) fn far_future() -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_secs(86_400 * 365 * 30))
        .unwrap_or(now)
}

/// A `Sleep`'s timer once armed: its entry and the driver whose heap holds it.
struct Armed {
    /// Holds the driver, and with it the pool the entry lives in.
    driver: Arc<Driver>,
    entry: EntryRef,
}

/// The future of [`sleep`] and [`sleep_until`].
///
/// Its timer is an entry in the timer heap of the driver (kqueue) of the thread that first
/// polls it; arming, re-arming and dropping it take no lock and make no system call (see
/// `time::driver`). It may then be polled, reset or dropped on any thread. `Send + Sync +
/// Unpin`.
///
/// It completes once its driver saw the clock (the runtime's: see [`pause`](super::pause))
/// reach the deadline; a deadline already passed when it is first polled completes at once.
///
/// # Panics
/// When polled after its runtime's kqueue refused the timer knote (with the cause: a timer
/// that cannot fire is reported, never left to hang).
pub struct Sleep {
    deadline: Instant,
    armed: Option<Armed>,
    elapsed: bool,
    /// The first poll compares the deadline with the clock (a deadline given by the caller,
    /// which may have passed).
    check_clock: bool,
}

impl Sleep {
    fn new(deadline: Instant) -> Sleep {
        Sleep {
            deadline,
            armed: None,
            elapsed: false,
            check_clock: true,
        }
    }

    /// When it completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed (as observed by a poll, or by the clock now).
    pub fn is_elapsed(&self) -> bool {
        self.elapsed || Instant::now() >= self.deadline
    }

    /// Moves the deadline, in any state (armed, elapsed, never polled): the entry is re-armed
    /// in place (no allocation, no lock).
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        self.elapsed = false;
        self.check_clock = true;
        if let Some(armed) = &self.armed {
            let timers = armed.driver.timers();
            if timers.arm(&armed.entry, to_nanos(deadline.into_std())) {
                armed.driver.wake();
            }
        }
    }

    /// `poll`, for callers holding a `&mut Sleep` (it is `Unpin`).
    pub fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        ready!(coop::poll_proceed(cx));
        if self.elapsed || self.poll_timer(cx) {
            self.elapsed = true;
            coop::spend();
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Whether the deadline came; if not, makes sure the timer will wake `cx`.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = to_nanos(self.deadline.into_std());
        let armed = match &self.armed {
            Some(armed) => armed,
            None => {
                let Some(driver) = context::with_current(|h| h.driver()) else {
                    // A due sleep needs no timer, nor a runtime.
                    if Instant::now() >= self.deadline {
                        return true;
                    }
                    panic!("knote: a Sleep was polled outside a knote runtime");
                };
                if let Some(why) = driver.timers().failure() {
                    panic!("{why}");
                }
                let timers = driver.timers();
                if timers.known_due(deadline)
                    || (self.check_clock && timers.clock().now() >= deadline)
                {
                    return true;
                }
                let (entry, wake) = timers.insert(deadline, cx.waker());
                if wake {
                    driver.wake();
                }
                self.armed = Some(Armed { driver, entry });
                return false;
            }
        };
        let entry = &armed.entry;
        let fired = crate::driver::slots::ready_or_register(
            &entry.waker,
            cx.waker(),
            || entry.fired().then_some(()),
            || {
                if let Some(why) = armed.driver.timers().failure() {
                    panic!("{why}");
                }
            },
        );
        fired.is_some()
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().poll_elapsed(cx)
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(armed) = self.armed.take() {
            armed.driver.timers().cancel(armed.entry);
        }
    }
}

impl std::fmt::Debug for Sleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("armed", &self.armed.is_some())
            .finish()
    }
}
