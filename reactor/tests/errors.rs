//! SEMANTICS.md's "Errors and receipts" section and bad input in general: every failing change is
//! an `EV_ERROR` entry with the errno, processing goes on, no room → the call fails and the rest
//! is not applied, `nevents == 0` never waits, nothing panics.

mod common;

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use knote_reactor::{note, Filter, Flags, Kevent, TimerUnit};

const BAD_FD: i32 = 1_000_000;

#[test]
fn bad_fd_is_ebadf() {
    let kq = kq();
    for change in [
        Kevent::read(BAD_FD, Flags::ADD, 0),
        Kevent::write(BAD_FD, Flags::ADD, 0),
        Kevent::read(-1, Flags::ADD, 0),
        Kevent::read(BAD_FD, Flags::DELETE, 0),
        // The largest fd numbers: refused without the reactor sizing anything by them.
        Kevent::read(i32::MAX, Flags::DELETE, 0),
        Kevent::write(i32::MAX, Flags::ENABLE, 0),
        Kevent::read(i32::MAX, Flags::DISABLE, 0),
        Kevent::read(i32::MAX, Flags::ADD, 0),
    ] {
        let events = submit(&kq, &[change], 4, Some(Duration::ZERO)).unwrap();
        assert_eq!(events.len(), 1, "{change:?}: {events:?}");
        assert!(events[0].is_error(), "{events:?}");
        assert_eq!(events[0].data(), i64::from(libc::EBADF), "{change:?}");
        assert_eq!(events[0].ident(), change.ident());
    }
}

#[test]
fn closed_fd_is_ebadf() {
    let kq = kq();
    let (r, w) = pipe();
    let closed = r.as_raw_fd();
    drop(r);
    let outcome = receipt(&kq, Kevent::read(closed, Flags::ADD, 0));
    // Tests run in parallel threads: if another test reused the number meanwhile, the check is
    // meaningless and skipped.
    // SAFETY: F_GETFD only queries the descriptor table.
    let reused = unsafe { libc::fcntl(closed, libc::F_GETFD) } != -1;
    if !reused {
        assert_eq!(outcome, i64::from(libc::EBADF));
    } else if outcome == 0 {
        let _ = receipt(&kq, Kevent::read(closed, Flags::DELETE, 0));
    }
    drop(w);
}

#[test]
fn every_failing_change_gets_its_entry_in_order_and_processing_continues() {
    let kq = kq();
    let (a, _b) = unix_pair();
    register(&kq, &[Kevent::user(50, Flags::ADD, 0, 0)]);
    let table: Vec<(Kevent, i32)> = vec![
        (Kevent::read(BAD_FD, Flags::ADD, 1), libc::EBADF),
        (Kevent::read(&a, Flags::DELETE, 2), libc::ENOENT),
        (Kevent::read(&a, Flags::ENABLE, 3), libc::ENOENT),
        (Kevent::write(&a, Flags::DISABLE, 4), libc::ENOENT),
        (
            Kevent::user(50, Flags::ENABLE | Flags::DISABLE, 0, 5),
            libc::EINVAL,
        ),
        (
            Kevent::timer(6, Flags::ADD, TimerUnit::Millis, -5, 6),
            libc::EINVAL,
        ),
        (
            Kevent::new(7, Filter::from_raw(-100), Flags::ADD, 0, 0, 7),
            libc::EINVAL,
        ),
        (Kevent::trigger(8, 8), libc::ENOENT),
        (
            Kevent::proc(0x3fff_fff0, Flags::ADD, note::EXIT, 9),
            libc::ESRCH,
        ),
        (Kevent::signal(1000, Flags::ADD, 10), libc::EINVAL),
    ];
    // A valid change at the end: it is applied although every change before it failed.
    let mut changes: Vec<Kevent> = table.iter().map(|&(c, _)| c).collect();
    changes.push(Kevent::user(99, Flags::ADD, 0, 99));
    changes.push(Kevent::trigger(99, 99));
    let events = submit(&kq, &changes, 32, Some(Duration::ZERO)).unwrap();
    assert_eq!(
        events.len(),
        table.len(),
        "one entry per failure, no collected events: {events:#?}"
    );
    for (entry, &(change, errno)) in events.iter().zip(&table) {
        assert!(entry.is_error(), "{entry:?}");
        assert_eq!(entry.udata(), change.udata(), "entries in change order");
        assert_eq!(entry.ident(), change.ident(), "{entry:?}");
        assert_eq!(entry.filter(), change.filter(), "{entry:?}");
        assert_eq!(entry.data(), i64::from(errno), "{change:?}: got {entry:?}");
        assert_no_action_flags(entry);
    }
    let ev = find(&poll(&kq), 99, Filter::USER).expect("the change after the failures");
    assert_eq!(ev.udata(), 99);
}

#[test]
fn an_error_with_no_room_fails_the_call_and_stops_processing() {
    let kq = kq();
    let err = kq
        .kevent(
            &[
                Kevent::read(BAD_FD, Flags::ADD, 0),
                Kevent::user(1, Flags::ADD, 0, 0),
            ],
            &mut [],
            Some(Duration::ZERO),
        )
        .expect_err("an error entry with no room in the event list");
    assert_eq!(errno(&err), libc::EBADF, "{err:?}");
    assert_eq!(
        receipt(&kq, Kevent::user(1, Flags::DELETE, 0, 0)),
        i64::from(libc::ENOENT),
        "a change after the failing one was applied"
    );
}

#[test]
fn an_error_after_the_list_is_full_fails_the_call() {
    let kq = kq();
    let mut events = [Kevent::zeroed(); 1];
    let err = kq
        .kevent(
            &[
                Kevent::user(1, Flags::ADD, 0, 0),
                Kevent::read(BAD_FD, Flags::ADD, 0),
                Kevent::user(2, Flags::DELETE, 0, 0),
                Kevent::user(3, Flags::ADD, 0, 0),
            ],
            &mut events,
            Some(Duration::from_secs(10)),
        )
        .expect_err("a second error entry with the one slot taken");
    assert_eq!(errno(&err), libc::ENOENT, "{err:?}");
    // Changes before the failures were applied, changes after them were not.
    assert_eq!(receipt(&kq, Kevent::user(1, Flags::DELETE, 0, 0)), 0);
    assert_eq!(
        receipt(&kq, Kevent::user(3, Flags::DELETE, 0, 0)),
        i64::from(libc::ENOENT)
    );
}

#[test]
fn an_error_entry_returns_at_once_without_waiting() {
    let kq = kq();
    let start = Instant::now();
    let events = submit(
        &kq,
        &[Kevent::read(BAD_FD, Flags::ADD, 0)],
        4,
        Some(Duration::from_secs(10)),
    )
    .unwrap();
    assert!(
        start.elapsed() < GUARD,
        "an error entry waited for the timeout"
    );
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data(), i64::from(libc::EBADF));
}

#[test]
fn no_event_slots_never_waits() {
    let kq = Arc::new(kq());
    register(
        &kq,
        &[Kevent::user(1, Flags::ADD, 0, 0), Kevent::trigger(1, 0)],
    );
    for timeout in [None, Some(Duration::from_secs(10))] {
        let kq2 = Arc::clone(&kq);
        let n = within(GUARD, move || kq2.kevent(&[], &mut [], timeout))
            .unwrap_or_else(|| panic!("kevent with no event slots waited ({timeout:?})"))
            .unwrap();
        assert_eq!(n, 0);
    }
    // Changes with an empty event list are applied and nothing is collected.
    let kq2 = Arc::clone(&kq);
    let n = within(GUARD, move || {
        kq2.kevent(
            &[Kevent::user(2, Flags::ADD, 0, 0), Kevent::trigger(2, 0)],
            &mut [],
            None,
        )
    })
    .expect("kevent with changes and no event slots waited")
    .unwrap();
    assert_eq!(n, 0);
    let events = poll(&kq);
    assert!(find(&events, 1, Filter::USER).is_some());
    assert!(find(&events, 2, Filter::USER).is_some());
}

#[test]
fn vnode_filter() {
    let kq = kq();
    let path = TempPath(temp_path("vnode"));
    std::fs::write(&path.0, b"v").unwrap();
    let file = std::fs::File::open(&path.0).unwrap();
    let change = Kevent::new(
        id(&file),
        Filter::VNODE,
        Flags::ADD | Flags::CLEAR,
        note::WRITE | note::DELETE,
        0,
        0,
    );
    let outcome = receipt(&kq, change);
    // Documented shim difference (SEMANTICS.md): the shim has no VNODE filter.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    assert_eq!(outcome, i64::from(libc::EINVAL));
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        use std::io::Write;
        assert_eq!(outcome, 0);
        let mut appender = std::fs::OpenOptions::new()
            .append(true)
            .open(&path.0)
            .unwrap();
        appender.write_all(b"more").unwrap();
        let ev = wait_for(&kq, id(&file), Filter::VNODE);
        assert!(
            ev.fflags() & note::WRITE != 0,
            "NOTE_WRITE reported: {ev:?}"
        );
        assert_eq!(ev.data(), 0);
    }
}

#[test]
fn bad_input_does_not_panic() {
    let kq = kq();
    let odd = [
        Kevent::new(0, Filter::from_raw(0), Flags::ADD, 0, 0, 0),
        Kevent::new(
            0,
            Filter::from_raw(i32::from(i16::MIN)),
            Flags::ADD,
            0,
            0,
            0,
        ),
        Kevent::new(0, Filter::from_raw(1000), Flags::ADD, 0, 0, 0),
        Kevent::new(usize::MAX, Filter::READ, Flags::all(), u32::MAX, -1, 0),
        Kevent::new(
            usize::MAX,
            Filter::USER,
            Flags::from_bits_retain(u16::MAX),
            u32::MAX,
            i64::MIN,
            1,
        ),
        Kevent::user(usize::MAX, Flags::ADD, u32::MAX, usize::MAX),
        Kevent::timer(1, Flags::ADD, TimerUnit::Seconds, i64::MAX, 0),
        Kevent::timer(2, Flags::ADD, TimerUnit::Nanos, i64::MAX, 0),
        Kevent::timer(3, Flags::ADD | Flags::ONESHOT, TimerUnit::Millis, 0, 0),
        Kevent::timer_every(4, Flags::ADD, Duration::MAX, 0),
        Kevent::timer(5, Flags::ADD, TimerUnit::Millis, i64::MIN, 0),
        Kevent::new(6, Filter::TIMER, Flags::ADD, u32::MAX, 1, 0),
        Kevent::signal(-1, Flags::ADD, 0),
        Kevent::signal(i32::MAX, Flags::ADD, 0),
        Kevent::proc(-1, Flags::ADD, note::EXIT, 0),
        Kevent::proc(0, Flags::ADD, u32::MAX, 0),
        Kevent::read(BAD_FD, Flags::empty(), 0),
        Kevent::zeroed(),
    ];
    // One at a time, with and without room, with and without receipts.
    for change in odd {
        for flags in [change.flags(), change.flags() | Flags::RECEIPT] {
            let change = change.with_flags(flags);
            let _ = submit(&kq, &[change], 4, Some(Duration::ZERO));
            let _ = kq.kevent(&[change], &mut [], Some(Duration::ZERO));
        }
    }
    // All at once.
    let _ = submit(&kq, &odd, odd.len() * 2, Some(Duration::ZERO));
    // Clean up whatever timers were accepted, then check the queue still works.
    for ident in 1..=6 {
        let _ = kq.kevent(
            &[Kevent::timer(ident, Flags::DELETE, TimerUnit::Millis, 0, 0)],
            &mut [Kevent::zeroed(); 1],
            Some(Duration::ZERO),
        );
    }
    let _ = kq.kevent(
        &[Kevent::user(usize::MAX, Flags::DELETE, 0, 0)],
        &mut [Kevent::zeroed(); 1],
        Some(Duration::ZERO),
    );
    register(
        &kq,
        &[Kevent::user(42, Flags::ADD, 0, 42), Kevent::trigger(42, 42)],
    );
    assert!(find(&poll(&kq), 42, Filter::USER).is_some());
}

#[test]
fn huge_timeouts_do_not_panic() {
    let kq = Arc::new(kq());
    register(
        &kq,
        &[Kevent::user(1, Flags::ADD, 0, 0), Kevent::trigger(1, 0)],
    );
    for timeout in [
        Duration::MAX,
        Duration::from_secs(u64::MAX),
        Duration::from_secs(i64::MAX as u64),
        Duration::new(u64::MAX / 2, 999_999_999),
    ] {
        let kq2 = Arc::clone(&kq);
        let events = within(GUARD, move || wait(&kq2, 4, Some(timeout)))
            .unwrap_or_else(|| panic!("a pending event was not returned with timeout {timeout:?}"));
        assert!(find(&events, 1, Filter::USER).is_some());
    }
}
