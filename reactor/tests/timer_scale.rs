//! A million armed timers: no file descriptor each, and a wait still finds the one that is due.
//! (Alone in its own test binary so no other test opens fds while it counts them.)
//!
//! Shim only: the kernels cap armed timer knotes themselves (FreeBSD's `kern.kq_calloutmax`),
//! so a million is a promise of the shim's timer heap, not of kqueue.
#![cfg(any(target_os = "linux", target_os = "android"))]

use std::time::Duration;

use knote_reactor::{Flags, Kevent, Kqueue, TimerUnit};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn a_million_timers_cost_no_fds_and_the_due_one_fires() {
    const TIMERS: usize = 1_000_000;
    const BATCH: usize = 10_000;
    let kq = Kqueue::new().unwrap();
    let before = open_fds();
    let mut changes = Vec::with_capacity(BATCH);
    for start in (0..TIMERS).step_by(BATCH) {
        changes.clear();
        // An hour away: none of them fires during the test.
        changes.extend(
            (start..start + BATCH).map(|i| {
                Kevent::timer(i, Flags::ADD | Flags::ONESHOT, TimerUnit::Seconds, 3600, i)
            }),
        );
        kq.kevent(&changes, &mut [], None).unwrap();
    }
    assert_eq!(open_fds(), before, "timers must not cost file descriptors");

    let due = TIMERS + 1;
    kq.apply(&[Kevent::timer(
        due,
        Flags::ADD | Flags::ONESHOT,
        TimerUnit::Millis,
        1,
        due,
    )])
    .unwrap();
    let mut events = [Kevent::zeroed(); 4];
    let n = kq
        .kevent(&[], &mut events, Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(events[0].udata(), due);

    // Cancelling them all leaves nothing to fire.
    for start in (0..TIMERS).step_by(BATCH) {
        changes.clear();
        changes.extend(
            (start..start + BATCH)
                .map(|i| Kevent::timer(i, Flags::DELETE, TimerUnit::Seconds, 0, 0)),
        );
        kq.kevent(&changes, &mut [], None).unwrap();
    }
    assert_eq!(
        kq.kevent(&[], &mut events, Some(Duration::ZERO)).unwrap(),
        0
    );
}
