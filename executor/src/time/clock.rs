//! The clock timers are measured against: the monotonic clock, unless a test paused it.
//!
//! Every driver has a [`Clock`]. Unpaused it reads `std::time::Instant::now()` plus an offset
//! (zero until the clock is first paused and resumed); paused it stands still at one instant,
//! moved only by [`advance`](super::advance) or, when the runtime has nothing else to do, by
//! the driver jumping to the next deadline (tokio's auto-advance). Times are nanoseconds since
//! a process-wide origin ([`origin`]) so that deadlines of every driver compare as integers.
//!
//! [`Instant`] is `std::time::Instant` with a `now()` that honours a paused clock: the one
//! `sleep_until`, `timeout_at` and `interval_at` take, as in tokio.

use crate::loom::Locked;
use std::fmt;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::runtime::context;

/// The instant nanosecond 0 stands for: taken the first time any timer code asks.
pub(crate) fn origin() -> std::time::Instant {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    *ORIGIN.get_or_init(std::time::Instant::now)
}

/// `instant` as nanoseconds since [`origin`] (0 for anything before it: already due).
pub(crate) fn to_nanos(instant: std::time::Instant) -> u64 {
    let since = instant.saturating_duration_since(origin()).as_nanos();
    u64::try_from(since).unwrap_or(u64::MAX)
}

/// The instant `nanos` after [`origin`].
pub(crate) fn from_nanos(nanos: u64) -> std::time::Instant {
    origin() + Duration::from_nanos(nanos)
}

/// Whether any clock of this process was ever paused: until then `Instant::now()` is the
/// monotonic clock, without looking up the current runtime.
static EVER_ALTERED: AtomicBool = AtomicBool::new(false);

/// A driver's clock. See the module docs.
pub(crate) struct Clock {
    paused: AtomicBool,
    /// While paused: the time it stands at (ns since the origin).
    frozen: AtomicU64,
    /// While running: what is added to the monotonic clock (ns), after a resume.
    offset: AtomicU64,
    /// Serialises pause, resume and advance (readers need no lock).
    change: Mutex<()>,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            paused: AtomicBool::new(false),
            frozen: AtomicU64::new(0),
            offset: AtomicU64::new(0),
            change: Mutex::new(()),
        }
    }

    /// Now, in ns since the origin.
    pub(crate) fn now(&self) -> u64 {
        if self.paused.load(Ordering::Acquire) {
            self.frozen.load(Ordering::Acquire)
        } else {
            to_nanos(std::time::Instant::now()).saturating_add(self.offset.load(Ordering::Acquire))
        }
    }

    /// Now, as an instant, if this clock was ever altered (`None`: it is the monotonic clock).
    fn altered_now(&self) -> Option<std::time::Instant> {
        if self.paused.load(Ordering::Acquire) || self.offset.load(Ordering::Acquire) != 0 {
            Some(from_nanos(self.now()))
        } else {
            None
        }
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    #[track_caller]
    pub(crate) fn pause(&self) {
        let _g = self.change.locked();
        assert!(
            !self.is_paused(),
            "knote: time::pause: the clock is already paused"
        );
        EVER_ALTERED.store(true, Ordering::SeqCst);
        self.frozen.store(self.now(), Ordering::Release);
        self.paused.store(true, Ordering::Release);
    }

    #[track_caller]
    pub(crate) fn resume(&self) {
        let _g = self.change.locked();
        assert!(
            self.is_paused(),
            "knote: time::resume: the clock is not paused"
        );
        let frozen = self.frozen.load(Ordering::Acquire);
        let real = to_nanos(std::time::Instant::now());
        // Time goes on from where it stood (it never runs backwards).
        self.offset
            .store(frozen.saturating_sub(real), Ordering::Release);
        self.paused.store(false, Ordering::Release);
    }

    /// Moves a paused clock forward by `by`.
    #[track_caller]
    pub(crate) fn advance(&self, by: Duration) {
        let _g = self.change.locked();
        assert!(
            self.is_paused(),
            "knote: time::advance: the clock is not paused"
        );
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let now = self.frozen.load(Ordering::Acquire);
        self.frozen.store(now.saturating_add(by), Ordering::Release);
    }

    /// Moves a paused clock forward to `to` (if it is ahead); the driver's auto-advance.
    pub(crate) fn advance_to(&self, to: u64) {
        let _g = self.change.locked();
        if self.is_paused() {
            let now = self.frozen.load(Ordering::Acquire);
            self.frozen.store(now.max(to), Ordering::Release);
        }
    }
}

/// A measurement of the monotonic clock, as `std::time::Instant`, except that
/// [`Instant::now`] reads the current runtime's clock, which a test may have paused
/// ([`pause`](super::pause)). Convert with `From`/[`into_std`](Instant::into_std).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(std::time::Instant);

impl Instant {
    /// Now, on the current runtime's clock (the monotonic clock unless it is paused).
    pub fn now() -> Instant {
        if EVER_ALTERED.load(Ordering::Relaxed) {
            let altered = context::with_current(|h| h.driver().timers().clock().altered_now());
            if let Some(Some(now)) = altered {
                return Instant(now);
            }
        }
        Instant(std::time::Instant::now())
    }

    /// From a `std::time::Instant`.
    pub fn from_std(std: std::time::Instant) -> Instant {
        Instant(std)
    }

    /// As a `std::time::Instant`.
    pub fn into_std(self) -> std::time::Instant {
        self.0
    }

    /// The time from `earlier` to `self` (zero if `earlier` is later).
    pub fn duration_since(&self, earlier: Instant) -> Duration {
        self.0.saturating_duration_since(earlier.0)
    }

    /// `duration_since`, `None` if `earlier` is later.
    pub fn checked_duration_since(&self, earlier: Instant) -> Option<Duration> {
        self.0.checked_duration_since(earlier.0)
    }

    /// `duration_since`, zero if `earlier` is later.
    pub fn saturating_duration_since(&self, earlier: Instant) -> Duration {
        self.0.saturating_duration_since(earlier.0)
    }

    /// The time since `self`, on the current runtime's clock.
    pub fn elapsed(&self) -> Duration {
        Instant::now().duration_since(*self)
    }

    /// `self + duration`, `None` on overflow.
    pub fn checked_add(&self, duration: Duration) -> Option<Instant> {
        self.0.checked_add(duration).map(Instant)
    }

    /// `self - duration`, `None` on overflow.
    pub fn checked_sub(&self, duration: Duration) -> Option<Instant> {
        self.0.checked_sub(duration).map(Instant)
    }
}

impl From<std::time::Instant> for Instant {
    fn from(std: std::time::Instant) -> Instant {
        Instant(std)
    }
}

impl From<Instant> for std::time::Instant {
    fn from(i: Instant) -> std::time::Instant {
        i.0
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0 + rhs)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        self.0 += rhs;
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;

    fn sub(self, rhs: Duration) -> Instant {
        Instant(self.0 - rhs)
    }
}

impl SubAssign<Duration> for Instant {
    fn sub_assign(&mut self, rhs: Duration) {
        self.0 -= rhs;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;

    fn sub(self, rhs: Instant) -> Duration {
        self.duration_since(rhs)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paused_clock_stands_still_and_advances() {
        let clock = Clock::new();
        clock.pause();
        let t = clock.now();
        assert_eq!(clock.now(), t);
        clock.advance(Duration::from_secs(30));
        assert_eq!(clock.now(), t + 30_000_000_000);
        clock.advance_to(t + 10); // behind: no effect
        assert_eq!(clock.now(), t + 30_000_000_000);
        clock.resume();
        // Resumed where it stood, and runs on from there.
        assert!(clock.now() >= t + 30_000_000_000);
    }

    #[test]
    fn nanos_round_trip() {
        let _ = origin();
        let now = std::time::Instant::now();
        assert_eq!(from_nanos(to_nanos(now)), now);
        assert_eq!(to_nanos(origin() - Duration::from_secs(1)), 0);
    }
}
