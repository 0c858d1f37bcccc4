//! `Sleep`: one entry in its driver's timer heap, armed on first poll, re-armed in place.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use super::clock::{from_nanos, origin, to_nanos, Instant};
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
    // The clock was just read: a zero sleep is due, any other is not yet (its first poll
    // need not read the clock again; if it became due meanwhile, the next turn fires it).
    Sleep {
        state: State::Unarmed {
            deadline: now.checked_add(duration).unwrap_or_else(far_future),
            elapsed: duration.is_zero(),
            check_clock: false,
        },
    }
}

/// Waits until `deadline`.
///
/// # Panics
/// When first polled outside a knote runtime.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        state: State::Unarmed {
            deadline,
            elapsed: false,
            check_clock: true,
        },
    }
}

/// An instant about 30 years ahead: what "never" means for a timer (as in tokio).
pub(crate) fn far_future() -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_secs(86_400 * 365 * 30))
        .unwrap_or(now)
}

/// Where a `Sleep` stands.
enum State {
    /// Not polled yet, or completed without a timer (due when first polled).
    Unarmed {
        deadline: Instant,
        /// Completed (as observed by a poll, or a zero sleep).
        elapsed: bool,
        /// The first poll compares the deadline with the clock (a deadline given by the
        /// caller, which may have passed).
        check_clock: bool,
    },
    /// Its timer: the entry, which holds the deadline (in nanoseconds since the clock's
    /// origin, which converts back exactly) and whether it fired, and the driver whose heap
    /// holds it (and whose pool the entry lives in).
    Armed {
        driver: Arc<Driver>,
        entry: EntryRef,
    },
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
    state: State,
}

impl Sleep {
    /// When it completes. (A deadline more than 584 years after the process's first timer
    /// reads back as that far limit once the sleep was polled.)
    pub fn deadline(&self) -> Instant {
        match &self.state {
            State::Unarmed { deadline, .. } => *deadline,
            State::Armed { entry, .. } => {
                Instant::from_std(from_nanos(entry.deadline.load(Ordering::Relaxed)))
            }
        }
    }

    /// Whether the deadline has passed (as observed by a poll, or by the clock now).
    pub fn is_elapsed(&self) -> bool {
        let observed = match &self.state {
            State::Unarmed { elapsed, .. } => *elapsed,
            State::Armed { entry, .. } => entry.fired(),
        };
        observed || Instant::now() >= self.deadline()
    }

    /// Moves the deadline, in any state (armed, elapsed, never polled): the entry is re-armed
    /// in place (no allocation, no lock).
    pub fn reset(&mut self, deadline: Instant) {
        match &mut self.state {
            State::Unarmed {
                deadline: d,
                elapsed,
                check_clock,
            } => {
                *d = deadline;
                *elapsed = false;
                *check_clock = true;
            }
            State::Armed { driver, entry } => {
                if driver.timers().arm(entry, to_nanos(deadline.into_std())) {
                    driver.wake();
                }
            }
        }
    }

    /// `poll`, for callers holding a `&mut Sleep` (it is `Unpin`).
    pub fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        ready!(coop::poll_proceed(cx));
        if self.poll_timer(cx) {
            coop::spend();
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Whether the deadline came; if not, makes sure the timer will wake `cx`.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let (deadline, driver) = match &mut self.state {
            State::Armed { driver, entry } => {
                let fired = crate::driver::slots::ready_or_register(
                    &entry.waker,
                    cx.waker(),
                    || entry.fired().then_some(()),
                    || {
                        if let Some(why) = driver.timers().failure() {
                            panic!("{why}");
                        }
                    },
                );
                return fired.is_some();
            }
            State::Unarmed { elapsed: true, .. } => return true,
            State::Unarmed {
                deadline,
                check_clock,
                elapsed,
            } => {
                let Some(driver) = context::with_current(|h| h.driver()) else {
                    // A due sleep needs no timer, nor a runtime.
                    if Instant::now() >= *deadline {
                        *elapsed = true;
                        return true;
                    }
                    panic!("knote: a Sleep was polled outside a knote runtime");
                };
                let ns = to_nanos(deadline.into_std());
                let timers = driver.timers();
                if let Some(why) = timers.failure() {
                    panic!("{why}");
                }
                if timers.known_due(ns) || (*check_clock && timers.clock().now() >= ns) {
                    *elapsed = true;
                    return true;
                }
                (ns, driver)
            }
        };
        let (entry, wake) = driver.timers().insert(deadline, cx.waker());
        if wake {
            driver.wake();
        }
        self.state = State::Armed { driver, entry };
        false
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
        if let State::Armed { .. } = self.state {
            // Take the entry's reference out to give it back (what is left in its place is
            // never looked at: the `Sleep` is going).
            let gone = State::Unarmed {
                deadline: Instant::from_std(origin()),
                elapsed: true,
                check_clock: false,
            };
            if let State::Armed { driver, entry } = std::mem::replace(&mut self.state, gone) {
                driver.timers().cancel(entry);
            }
        }
    }
}

impl std::fmt::Debug for Sleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline())
            .field("armed", &matches!(self.state, State::Armed { .. }))
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_sleep_is_three_words() {
        // Most of a sleeping task's timer memory is the `Sleep` inside the task, its entry
        // and its heap item: this one is pinned.
        assert!(std::mem::size_of::<Sleep>() <= 3 * std::mem::size_of::<usize>());
    }
}
