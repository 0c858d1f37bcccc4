//! `Sleep`: one EVFILT_TIMER knote, armed on first poll, deleted on drop.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use crate::driver::{ready as bits, Driver, Token};
use crate::runtime::context;
use crate::task::coop;

/// Waits until `duration` has elapsed.
///
/// # Panics
/// When first polled outside a knote runtime.
pub fn sleep(duration: Duration) -> Sleep {
    let now = Instant::now();
    Sleep::new(now.checked_add(duration).unwrap_or_else(far_future))
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

/// Where a `Sleep` stands.
enum State {
    /// Not armed yet (never polled, or reset after firing).
    Idle,
    /// A timer knote is armed in `driver` under `token`.
    Armed { driver: Arc<Driver>, token: Token },
    /// The deadline passed and the knote is gone.
    Elapsed,
}

/// The future of [`sleep`] and [`sleep_until`].
///
/// Its timer is a one-shot EVFILT_TIMER knote on the kqueue of the thread that first polls it,
/// queued in that kqueue's change list (no system call of its own), made relative to the
/// moment the list is submitted. Dropping the `Sleep` deletes the knote. `Send + Sync + Unpin`.
///
/// It completes only once `Instant::now() >= deadline`: a timer that fires early (kqueue
/// timers are not all monotonic to the nanosecond) is re-armed for the rest.
pub struct Sleep {
    deadline: Instant,
    state: State,
}

impl Sleep {
    fn new(deadline: Instant) -> Sleep {
        Sleep {
            deadline,
            state: State::Idle,
        }
    }

    /// When it completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed (as observed by a poll, or by the clock now).
    pub fn is_elapsed(&self) -> bool {
        matches!(self.state, State::Elapsed) || Instant::now() >= self.deadline
    }

    /// Moves the deadline; an armed timer is re-armed in place (EV_ADD on the same knote).
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        match &self.state {
            State::Armed { driver, token } => {
                let slot = driver.slot(*token);
                let seen = slot.snapshot(token.generation());
                slot.clear(token.generation(), seen, bits::TIMER);
                driver.arm_timer(*token, deadline, true);
            }
            State::Elapsed => self.state = State::Idle,
            State::Idle => {}
        }
    }

    /// `poll`, for callers holding a `&mut Sleep` (it is `Unpin`).
    pub fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        ready!(coop::poll_proceed(cx));
        let ready = match &self.state {
            State::Elapsed => true,
            State::Idle => {
                if Instant::now() >= self.deadline {
                    true
                } else {
                    let driver = context::with_current(|h| h.driver()).unwrap_or_else(|| {
                        panic!("knote: a Sleep was polled outside a knote runtime")
                    });
                    let (token, slot) = driver.alloc();
                    slot.reader.register(cx.waker());
                    driver.arm_timer(token, self.deadline, false);
                    self.state = State::Armed { driver, token };
                    false
                }
            }
            State::Armed { driver, token } => {
                let slot = driver.slot(*token);
                slot.reader.register(cx.waker());
                let seen = slot.snapshot(token.generation());
                if seen.bits & bits::TIMER == 0 {
                    false
                } else if Instant::now() >= self.deadline {
                    // The one-shot knote is gone: the slot can go at once.
                    driver.release(*token);
                    true
                } else {
                    slot.clear(token.generation(), seen, bits::TIMER);
                    driver.arm_timer(*token, self.deadline, true);
                    false
                }
            }
        };
        if ready {
            self.state = State::Elapsed;
            coop::spend();
            Poll::Ready(())
        } else {
            Poll::Pending
        }
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
        if let State::Armed { driver, token } = &self.state {
            driver.cancel_timer(*token);
        }
    }
}

impl std::fmt::Debug for Sleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("armed", &matches!(self.state, State::Armed { .. }))
            .finish()
    }
}
