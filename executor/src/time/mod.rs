//! Time: [`sleep`], [`timeout`] and [`interval`], and a clock that tests can pause.
//!
//! Timers live in user space, in a heap per driver (kqueue), not in the kernel: the number of
//! sleeps is limited by memory alone, on every backend, and each driver holds exactly one
//! EVFILT_TIMER knote, armed for its earliest deadline so that its kqueue's fd turns readable
//! when a timer is due (what an embedding host polling that fd relies on). The runtimes' waits
//! are shortened to the earliest deadline, with nanosecond precision where the kqueue has it
//! (the epoll shim waits with `epoll_pwait2`). See `driver` for the structure and why a heap.
//!
//! [`pause`], [`advance`] and [`resume`] control the clock of a current-thread runtime, as in
//! tokio: a paused clock stands still, and jumps to the next deadline whenever the runtime has
//! nothing else to do, so that a 30 s timeout is tested in microseconds
//! (`#[knote::test(start_paused = true)]`). [`Instant::now`] reads that clock.

mod clock;
pub(crate) mod driver;
mod interval;
mod pool;
mod sleep;
mod timeout;

pub use clock::Instant;
pub use interval::{interval, interval_at, Interval, MissedTickBehavior};
pub use sleep::{sleep, sleep_until, Sleep};
pub use std::time::Duration;
pub use timeout::{timeout, timeout_at, Elapsed, Timeout};

use std::sync::Arc;

use crate::driver::Driver;
use crate::runtime::{context, RuntimeFlavor};

/// The driver whose clock `what` controls: the current runtime's, which must be a
/// current-thread one.
#[track_caller]
fn paused_clock_driver(what: &str) -> Arc<Driver> {
    let found = context::with_current(|h| (h.runtime_flavor(), h.driver()));
    match found {
        None => panic!("knote: time::{what} must be called from inside a knote runtime"),
        Some((RuntimeFlavor::MultiThread, _)) => panic!(
            "knote: time::{what} is only available on a current-thread runtime (as in tokio: \
             the workers of a multi-thread runtime would each need the same virtual clock)"
        ),
        Some((_, driver)) => driver,
    }
}

/// Pauses the current runtime's clock: [`Instant::now`] stands still and timers fire only as
/// it is moved, by [`advance`], or automatically to the next deadline when the runtime has
/// nothing else to do (no task ready, no I/O ready).
///
/// # Panics
/// Outside a runtime, on a multi-thread runtime, or if the clock is already paused.
#[track_caller]
pub fn pause() {
    paused_clock_driver("pause").timers().clock().pause();
}

/// Resumes a paused clock: time runs on from the instant it stood at.
///
/// # Panics
/// Outside a runtime, on a multi-thread runtime, or if the clock is not paused.
#[track_caller]
pub fn resume() {
    paused_clock_driver("resume").timers().clock().resume();
}

/// Moves a paused clock forward by `duration`, fires the timers that came due (in deadline
/// order), and yields so that their tasks run before this one continues.
///
/// # Panics
/// Outside a runtime, on a multi-thread runtime, or if the clock is not paused.
#[track_caller]
pub fn advance(duration: Duration) -> impl std::future::Future<Output = ()> {
    let driver = paused_clock_driver("advance");
    driver.timers().clock().advance(duration);
    driver.timers().process();
    crate::task::yield_now()
}

/// Test hooks: how the integration tests look at the kernel side of the timers.
#[doc(hidden)]
pub mod __private {
    use crate::runtime::Handle;

    /// The timer knotes `handle`'s driver (the one a registration from this thread would
    /// use) holds in its kqueue, counted where the driver submits them.
    pub fn timer_knotes(handle: &Handle) -> usize {
        handle.driver().timers().knotes()
    }

    /// Makes the next arm of the driver's timer knote ask the kqueue for a negative period,
    /// which it refuses (EINVAL): the failure path, on a real kqueue.
    pub fn fail_next_timer_arm(handle: &Handle) {
        handle.driver().timers().fail_next_arm();
    }
}
