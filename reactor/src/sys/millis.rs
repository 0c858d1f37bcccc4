//! Timer amounts in milliseconds, for the kqueues that take nothing else (OpenBSD, DragonFly).
//!
//! Pure arithmetic, compiled on every target so that its tests run on Linux too (CI cannot run
//! OpenBSD or DragonFly); only `kqueue.rs` on those two systems uses it.

#![cfg_attr(
    not(any(target_os = "openbsd", target_os = "dragonfly")),
    allow(dead_code)
)]

use crate::TimerUnit;

/// Nanoseconds in one `unit`.
pub(crate) fn nanos_per(unit: TimerUnit) -> i64 {
    match unit {
        TimerUnit::Seconds => 1_000_000_000,
        TimerUnit::Millis => 1_000_000,
        TimerUnit::Micros => 1_000,
        TimerUnit::Nanos => 1,
    }
}

/// `amount` `unit`s in whole milliseconds, rounded away from zero so that a positive period is
/// never shortened and a negative one never becomes 0 (which the kernel would accept).
pub(crate) fn millis_rounding_up(unit: TimerUnit, amount: i64) -> i64 {
    match unit {
        TimerUnit::Seconds => amount.saturating_mul(1_000),
        TimerUnit::Millis => amount,
        TimerUnit::Micros | TimerUnit::Nanos => {
            let per_milli = 1_000_000 / nanos_per(unit);
            if amount > 0 {
                // Ceiling division without overflow for any positive amount.
                (amount - 1) / per_milli + 1
            } else if amount < 0 {
                (amount / per_milli).min(-1)
            } else {
                0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanoseconds_become_milliseconds_not_a_million_times_more() {
        // The executor's timer knote is armed in nanoseconds: 5 ms must stay 5 ms (the bug
        // this guards against: 5,000,000 "ms", 83 minutes).
        assert_eq!(millis_rounding_up(TimerUnit::Nanos, 5_000_000), 5);
        assert_eq!(millis_rounding_up(TimerUnit::Micros, 5_000), 5);
        assert_eq!(millis_rounding_up(TimerUnit::Seconds, 5), 5_000);
        assert_eq!(millis_rounding_up(TimerUnit::Millis, 5), 5);
    }

    #[test]
    fn rounding_never_shortens_and_keeps_signs() {
        assert_eq!(millis_rounding_up(TimerUnit::Nanos, 1), 1);
        assert_eq!(millis_rounding_up(TimerUnit::Nanos, 1_000_001), 2);
        assert_eq!(millis_rounding_up(TimerUnit::Micros, 999), 1);
        assert_eq!(millis_rounding_up(TimerUnit::Nanos, 0), 0);
        assert_eq!(millis_rounding_up(TimerUnit::Nanos, -1), -1);
        assert_eq!(millis_rounding_up(TimerUnit::Micros, -2_500), -2);
        assert_eq!(
            millis_rounding_up(TimerUnit::Nanos, i64::MAX),
            i64::MAX / 1_000_000 + 1
        );
        assert_eq!(millis_rounding_up(TimerUnit::Seconds, i64::MAX), i64::MAX);
    }
}
