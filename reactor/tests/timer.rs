//! The `TIMER` row of the filter table of SEMANTICS.md, and the sub-millisecond half of trap 6.
//!
//! Only lower bounds on time are asserted (a timer never fires before its period); upper bounds
//! are hang guards.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use knote_reactor::{Filter, Flags, Kevent, TimerUnit};

/// 90% of `d`: a lower bound that tolerates unit rounding between clocks.
fn almost(d: Duration) -> Duration {
    d * 9 / 10
}

#[test]
fn every_unit_fires_after_its_period() {
    let kq = kq();
    let cases = [
        (1usize, TimerUnit::Seconds, 1i64, Duration::from_secs(1)),
        (2, TimerUnit::Millis, 40, Duration::from_millis(40)),
        (3, TimerUnit::Micros, 40_000, Duration::from_millis(40)),
        (4, TimerUnit::Nanos, 40_000_000, Duration::from_millis(40)),
    ];
    let start = Instant::now();
    let changes: Vec<Kevent> = cases
        .iter()
        .map(|&(ident, unit, amount, _)| {
            Kevent::timer(
                ident,
                Flags::ADD | Flags::ONESHOT,
                unit,
                amount,
                100 + ident,
            )
        })
        .collect();
    register(&kq, &changes);
    let mut seen = [None; 5];
    while seen[1..].iter().any(Option::is_none) && start.elapsed() < GUARD {
        for ev in wait(&kq, 8, Some(Duration::from_millis(100))) {
            assert_eq!(ev.filter(), Filter::TIMER, "{ev:?}");
            let ident = ev.ident();
            assert!((1..=4).contains(&ident), "{ev:?}");
            assert!(seen[ident].is_none(), "one-shot timer {ident} fired twice");
            assert_eq!(ev.udata(), 100 + ident);
            assert_eq!(ev.data(), 1, "{ev:?}");
            assert!(ev.flags().contains(Flags::ONESHOT), "{ev:?}");
            assert!(
                ev.flags().contains(Flags::CLEAR),
                "EV_CLEAR is implied: {ev:?}"
            );
            assert_no_action_flags(&ev);
            seen[ident] = Some(start.elapsed());
        }
    }
    for &(ident, unit, _, period) in &cases {
        let at = seen[ident].unwrap_or_else(|| panic!("{unit:?} timer never fired"));
        assert!(
            at >= almost(period),
            "{unit:?} timer fired after {at:?} < {period:?}"
        );
    }
}

#[test]
fn periodic_timer_counts_expirations_since_last_delivery() {
    let kq = kq();
    register(
        &kq,
        &[Kevent::timer(7, Flags::ADD, TimerUnit::Millis, 10, 77)],
    );
    std::thread::sleep(Duration::from_millis(80));
    let ev = find(&poll(&kq), 7, Filter::TIMER).expect("timer after several periods");
    assert!(
        ev.data() >= 2,
        "expected several expirations, got {}",
        ev.data()
    );
    assert!(
        ev.flags().contains(Flags::CLEAR),
        "EV_CLEAR is implied: {ev:?}"
    );
    assert!(!ev.flags().contains(Flags::ONESHOT));
    assert_eq!(ev.udata(), 77);
    // Periodic: it keeps firing.
    for _ in 0..3 {
        let ev = wait_for(&kq, 7, Filter::TIMER);
        assert!(ev.data() >= 1);
    }
}

#[test]
fn oneshot_timer_fires_once_and_is_deleted() {
    let kq = kq();
    register(
        &kq,
        &[Kevent::timer(
            1,
            Flags::ADD | Flags::ONESHOT,
            TimerUnit::Millis,
            10,
            0,
        )],
    );
    let ev = wait_for(&kq, 1, Filter::TIMER);
    assert_eq!(ev.data(), 1);
    assert!(wait(&kq, 8, Some(Duration::from_millis(60))).is_empty());
    assert_eq!(
        receipt(
            &kq,
            Kevent::timer(1, Flags::DELETE, TimerUnit::Millis, 0, 0)
        ),
        i64::from(libc::ENOENT)
    );
}

#[test]
fn abstime_timer_fires_at_the_absolute_deadline() {
    let kq = kq();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let lead = Duration::from_millis(80);
    let deadline = now + lead;
    let start = Instant::now();
    register(
        &kq,
        &[
            Kevent::timer_at(
                1,
                Flags::ADD | Flags::ONESHOT,
                TimerUnit::Millis,
                deadline.as_millis() as i64,
                1,
            ),
            Kevent::timer_at(
                2,
                Flags::ADD | Flags::ONESHOT,
                TimerUnit::Micros,
                deadline.as_micros() as i64,
                2,
            ),
            Kevent::timer_at(
                3,
                Flags::ADD | Flags::ONESHOT,
                TimerUnit::Nanos,
                deadline.as_nanos() as i64,
                3,
            ),
        ],
    );
    let mut fired = Vec::new();
    while fired.len() < 3 && start.elapsed() < GUARD {
        for ev in wait(&kq, 8, Some(Duration::from_millis(100))) {
            assert_eq!(ev.filter(), Filter::TIMER);
            assert_eq!(ev.data(), 1, "{ev:?}");
            assert!(
                !fired.contains(&ev.ident()),
                "NOTE_ABSTIME timer fired twice"
            );
            fired.push(ev.ident());
            // Rounding the deadline down to milliseconds, and realtime vs monotonic clocks,
            // allow a little slack; firing right away would not be.
            assert!(
                start.elapsed() >= lead - Duration::from_millis(20),
                "{ev:?} fired after {:?}",
                start.elapsed()
            );
        }
    }
    fired.sort_unstable();
    assert_eq!(fired, [1, 2, 3], "every NOTE_ABSTIME timer fires once");
    assert!(wait(&kq, 8, Some(QUIET)).is_empty());
}

#[test]
fn readding_a_timer_restarts_it() {
    let kq = kq();
    let period = Duration::from_millis(150);
    let start = Instant::now();
    register(
        &kq,
        &[Kevent::timer(5, Flags::ADD, TimerUnit::Millis, 150, 1)],
    );
    std::thread::sleep(Duration::from_millis(100));
    let readded = start.elapsed();
    register(
        &kq,
        &[Kevent::timer(5, Flags::ADD, TimerUnit::Millis, 150, 2)],
    );
    let ev = wait_for(&kq, 5, Filter::TIMER);
    let at = start.elapsed();
    assert_eq!(ev.udata(), 2);
    assert!(
        at >= readded + almost(period),
        "re-added at {readded:?}, fired at {at:?}: the old schedule was kept"
    );
}

#[test]
fn readding_a_timer_changes_its_period() {
    let kq = kq();
    register(
        &kq,
        &[Kevent::timer(5, Flags::ADD, TimerUnit::Seconds, 60, 1)],
    );
    register(
        &kq,
        &[Kevent::timer(5, Flags::ADD, TimerUnit::Millis, 20, 2)],
    );
    let ev = wait_for(&kq, 5, Filter::TIMER);
    assert_eq!(ev.udata(), 2);
}

#[test]
fn negative_period_is_einval() {
    let kq = kq();
    for unit in [
        TimerUnit::Seconds,
        TimerUnit::Millis,
        TimerUnit::Micros,
        TimerUnit::Nanos,
    ] {
        assert_eq!(
            receipt(&kq, Kevent::timer(1, Flags::ADD, unit, -1, 0)),
            i64::from(libc::EINVAL),
            "{unit:?}"
        );
    }
    // Nothing was registered.
    assert!(wait(&kq, 8, Some(QUIET)).is_empty());
}

#[test]
fn timers_fire_in_deadline_order_with_any_ident() {
    let kq = kq();
    let big = usize::MAX - 1;
    register(
        &kq,
        &[
            Kevent::timer(big, Flags::ADD | Flags::ONESHOT, TimerUnit::Millis, 120, 2),
            Kevent::timer(0, Flags::ADD | Flags::ONESHOT, TimerUnit::Millis, 20, 1),
        ],
    );
    let first = wait_until(&kq, |e| e.filter() == Filter::TIMER).expect("a timer");
    assert_eq!(first.ident(), 0, "the earlier deadline fires first");
    let second = wait_for(&kq, big, Filter::TIMER);
    assert_eq!(second.udata(), 2);
}

#[test]
fn timer_delete_stops_it() {
    let kq = kq();
    register(
        &kq,
        &[Kevent::timer(1, Flags::ADD, TimerUnit::Millis, 10, 0)],
    );
    wait_for(&kq, 1, Filter::TIMER);
    register(
        &kq,
        &[Kevent::timer(1, Flags::DELETE, TimerUnit::Millis, 0, 0)],
    );
    assert!(wait(&kq, 8, Some(Duration::from_millis(60))).is_empty());
}

// ---- trap 6: sub-millisecond timers and timeouts ---------------------------------------------

#[test]
fn microsecond_timer_fires() {
    let kq = kq();
    let start = Instant::now();
    register(
        &kq,
        &[Kevent::timer(
            1,
            Flags::ADD | Flags::ONESHOT,
            TimerUnit::Micros,
            200,
            0,
        )],
    );
    let ev = wait_for(&kq, 1, Filter::TIMER);
    assert_eq!(ev.data(), 1);
    assert!(start.elapsed() >= Duration::from_micros(180));
}

#[test]
fn nanosecond_period_timer_counts_expirations() {
    let kq = kq();
    register(
        &kq,
        &[Kevent::timer(1, Flags::ADD, TimerUnit::Nanos, 100_000, 0)],
    );
    std::thread::sleep(Duration::from_millis(30));
    let ev = wait_for(&kq, 1, Filter::TIMER);
    assert!(
        ev.data() >= 2,
        "a 100 µs timer over 30 ms expired {} times",
        ev.data()
    );
}

#[test]
fn timer_every_duration() {
    let kq = kq();
    register(
        &kq,
        &[Kevent::timer_every(
            3,
            Flags::ADD,
            Duration::from_micros(250),
            9,
        )],
    );
    let mut total = 0;
    let start = Instant::now();
    while total < 4 && start.elapsed() < GUARD {
        if let Some(ev) = find(
            &wait(&kq, 8, Some(Duration::from_millis(5))),
            3,
            Filter::TIMER,
        ) {
            assert_eq!(ev.udata(), 9);
            total += ev.data();
        }
    }
    assert!(total >= 4, "a 250 µs timer expired only {total} times");
}

#[test]
fn sub_millisecond_wait_timeout_is_not_rounded_down_to_zero() {
    let kq = kq();
    register(&kq, &[Kevent::user(1, Flags::ADD, 0, 0)]);
    for timeout in [Duration::from_micros(300), Duration::from_micros(900)] {
        for _ in 0..3 {
            let start = Instant::now();
            let events = wait(&kq, 8, Some(timeout));
            let elapsed = start.elapsed();
            assert!(events.is_empty());
            assert!(
                elapsed >= almost(timeout),
                "a {timeout:?} wait returned after {elapsed:?}"
            );
        }
    }
}

#[test]
fn millisecond_wait_timeout_waits() {
    let kq = kq();
    let start = Instant::now();
    let events = wait(&kq, 8, Some(Duration::from_millis(30)));
    assert!(events.is_empty());
    assert!(start.elapsed() >= almost(Duration::from_millis(30)));
}
