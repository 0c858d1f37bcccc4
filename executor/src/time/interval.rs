//! `Interval`: ticks at a fixed period, one re-armed timer knote.

use std::future::poll_fn;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use super::clock::Instant;

use super::sleep::{sleep_until, Sleep};

/// Ticks every `period`, the first tick at once.
///
/// # Panics
/// If `period` is zero.
#[track_caller]
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// Ticks every `period`, the first tick at `start`.
///
/// # Panics
/// If `period` is zero.
#[track_caller]
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(!period.is_zero(), "an interval's period must be non-zero");
    Interval {
        delay: sleep_until(start),
        period,
        missed_tick_behavior: MissedTickBehavior::default(),
    }
}

/// What an [`Interval`] does when ticks were missed (the task came back later than a period
/// after the tick was due). The same three choices, and the same default, as tokio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTickBehavior {
    /// Fire the missed ticks at once, back to back, then resume the original schedule.
    #[default]
    Burst,
    /// Start the schedule afresh: the next tick is a period after now.
    Delay,
    /// Skip the missed ticks: the next tick is the next one of the original schedule that
    /// lies in the future.
    Skip,
}

impl MissedTickBehavior {
    fn next_timeout(self, due: Instant, now: Instant, period: Duration) -> Instant {
        match self {
            MissedTickBehavior::Burst => due + period,
            MissedTickBehavior::Delay => now + period,
            MissedTickBehavior::Skip => {
                let late = now.saturating_duration_since(due).as_nanos();
                let period_ns = period.as_nanos();
                let skip = late / period_ns + 1;
                // A period count that overflows a Duration is "never" in practice.
                let ahead = u32::try_from(skip)
                    .ok()
                    .and_then(|k| period.checked_mul(k))
                    .unwrap_or(Duration::from_secs(86_400 * 365));
                due + ahead
            }
        }
    }
}

/// Lateness below which a tick is not considered missed (tokio's tolerance, so that ordinary
/// scheduling jitter does not change the schedule).
const TOLERANCE: Duration = Duration::from_millis(5);

/// The ticker of [`interval`]. `Send + Sync + Unpin`.
#[derive(Debug)]
pub struct Interval {
    delay: Sleep,
    period: Duration,
    missed_tick_behavior: MissedTickBehavior,
}

impl Interval {
    /// Waits for the next tick; returns when it was due.
    pub async fn tick(&mut self) -> Instant {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        ready!(self.delay.poll_elapsed(cx));
        let due = self.delay.deadline();
        let now = Instant::now();
        let next = if now.saturating_duration_since(due) > TOLERANCE {
            self.missed_tick_behavior
                .next_timeout(due, now, self.period)
        } else {
            due + self.period
        };
        self.delay.reset(next);
        Poll::Ready(due)
    }

    /// Restarts the schedule: the next tick is a period from now.
    pub fn reset(&mut self) {
        self.delay.reset(Instant::now() + self.period);
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The missed-tick behaviour.
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed_tick_behavior
    }

    /// Sets the missed-tick behaviour.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed_tick_behavior = behavior;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missed_tick_arithmetic() {
        let t0 = Instant::now();
        let p = Duration::from_millis(10);
        let now = t0 + Duration::from_millis(35);
        assert_eq!(MissedTickBehavior::Burst.next_timeout(t0, now, p), t0 + p);
        assert_eq!(MissedTickBehavior::Delay.next_timeout(t0, now, p), now + p);
        assert_eq!(
            MissedTickBehavior::Skip.next_timeout(t0, now, p),
            t0 + Duration::from_millis(40)
        );
    }
}
