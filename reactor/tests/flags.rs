//! SEMANTICS.md's flag table, one row (at least) per test: `EV_ADD`, `EV_DELETE`,
//! `EV_ENABLE`/`EV_DISABLE`, `EV_ONESHOT`, `EV_CLEAR`, `EV_DISPATCH`, `EV_RECEIPT`, `EV_EOF`,
//! `EV_ERROR`.

mod common;

use std::io::Read;
use std::net::Shutdown;
use std::time::Duration;

use common::*;
use knote_reactor::{Filter, Flags, Kevent, TimerUnit};

// ---- EV_ADD ----------------------------------------------------------------------------------

#[test]
fn add_reports_a_level_event_with_udata_and_no_action_flags() {
    let kq = kq();
    let (a, b) = unix_pair();
    put(&b, 5);
    register(&kq, &[Kevent::read(&a, Flags::ADD, 0xA11CE)]);
    let events = poll(&kq);
    assert_eq!(events.len(), 1, "{events:?}");
    let ev = events[0];
    assert_eq!(ev.ident(), id(&a));
    assert_eq!(ev.filter(), Filter::READ);
    assert_eq!(ev.udata(), 0xA11CE);
    assert_eq!(ev.data(), 5);
    assert!(!ev.is_error() && !ev.is_eof(), "{ev:?}");
    assert_no_action_flags(&ev);
    // Level-triggered: still there on the next call.
    assert_eq!(
        find(&poll(&kq), id(&a), Filter::READ).map(|e| e.data()),
        Some(5)
    );
}

#[test]
fn add_on_an_existing_knote_modifies_udata_in_place() {
    let kq = kq();
    let (a, b) = unix_pair();
    register(&kq, &[Kevent::read(&a, Flags::ADD, 1)]);
    register(&kq, &[Kevent::read(&a, Flags::ADD, 2)]);
    put(&b, 1);
    let events = poll(&kq);
    // One knote per (ident, filter): one event, carrying the newest udata.
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].udata(), 2, "{events:?}");
    // And again after a further modification while the event is pending.
    register(&kq, &[Kevent::read(&a, Flags::ADD, 3)]);
    let events = poll(&kq);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].udata(), 3, "{events:?}");
}

#[test]
fn add_on_an_existing_knote_modifies_user_udata_and_data() {
    let kq = kq();
    register(&kq, &[Kevent::user(9, Flags::ADD, 0, 10)]);
    register(&kq, &[Kevent::user(9, Flags::ADD, 0, 20).with_data(77)]);
    register(&kq, &[Kevent::trigger(9, 20).with_data(77)]);
    let events = poll(&kq);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].udata(), 20);
    assert_eq!(events[0].data(), 77);
}

#[test]
fn add_on_an_existing_knote_keeps_its_clear_mode() {
    let kq = kq();
    let (a, b) = unix_pair();
    register(&kq, &[Kevent::read(&a, Flags::ADD | Flags::CLEAR, 1)]);
    put(&b, 2);
    // Re-adding without EV_CLEAR does not turn the knote level-triggered.
    register(&kq, &[Kevent::read(&a, Flags::ADD, 2)]);
    let ev = find(&poll(&kq), id(&a), Filter::READ).expect("READ after data arrived");
    assert_eq!(ev.udata(), 2);
    assert!(ev.flags().contains(Flags::CLEAR), "{ev:?}");
    assert!(
        find(&poll(&kq), id(&a), Filter::READ).is_none(),
        "EV_CLEAR was lost by a modifying EV_ADD"
    );
}

#[test]
fn add_on_an_existing_knote_does_not_make_it_oneshot_or_dispatch() {
    let kq = kq();
    let (a, b) = unix_pair();
    register(&kq, &[Kevent::read(&a, Flags::ADD, 1)]);
    put(&b, 1);
    register(
        &kq,
        &[Kevent::read(
            &a,
            Flags::ADD | Flags::ONESHOT | Flags::DISPATCH,
            2,
        )],
    );
    for round in 0..3 {
        let ev = find(&poll(&kq), id(&a), Filter::READ)
            .unwrap_or_else(|| panic!("round {round}: the level knote stopped reporting"));
        assert_eq!(ev.udata(), 2);
        assert!(
            !ev.flags().intersects(Flags::ONESHOT | Flags::DISPATCH),
            "{ev:?}"
        );
    }
}

#[test]
fn udata_is_handed_back_untouched() {
    let kq = kq();
    let (a, b) = unix_pair();
    let values = [usize::MAX, usize::MAX / 2 + 1, 1, 0];
    register(
        &kq,
        &[
            Kevent::read(&a, Flags::ADD, values[0]),
            Kevent::user(1, Flags::ADD, 0, values[1]),
            Kevent::trigger(1, values[1]),
            Kevent::timer(
                2,
                Flags::ADD | Flags::ONESHOT,
                TimerUnit::Millis,
                1,
                values[2],
            ),
            Kevent::user(3, Flags::ADD, 0, values[3]),
            Kevent::trigger(3, values[3]),
        ],
    );
    put(&b, 1);
    std::thread::sleep(Duration::from_millis(20));
    let events = wait(&kq, 8, Some(QUIET));
    assert_eq!(
        find(&events, id(&a), Filter::READ).unwrap().udata(),
        values[0]
    );
    assert_eq!(find(&events, 1, Filter::USER).unwrap().udata(), values[1]);
    assert_eq!(find(&events, 2, Filter::TIMER).unwrap().udata(), values[2]);
    assert_eq!(find(&events, 3, Filter::USER).unwrap().udata(), values[3]);
}

#[test]
fn add_with_disable_registers_a_disabled_knote() {
    let kq = kq();
    let (a, b) = unix_pair();
    put(&b, 3);
    register(&kq, &[Kevent::read(&a, Flags::ADD | Flags::DISABLE, 1)]);
    assert!(poll(&kq).is_empty());
    register(&kq, &[Kevent::read(&a, Flags::ENABLE, 1)]);
    let ev = find(&poll(&kq), id(&a), Filter::READ).expect("READ once enabled");
    assert_eq!(ev.data(), 3);
}

// ---- EV_DELETE -------------------------------------------------------------------------------

#[test]
fn delete_removes_the_knote() {
    let kq = kq();
    let (a, b) = unix_pair();
    register(&kq, &[Kevent::read(&a, Flags::ADD, 1)]);
    register(&kq, &[Kevent::read(&a, Flags::DELETE, 0)]);
    put(&b, 1);
    assert!(wait(&kq, 8, Some(QUIET)).is_empty());
    // Gone: a second delete finds nothing.
    assert_eq!(
        receipt(&kq, Kevent::read(&a, Flags::DELETE, 0)),
        i64::from(libc::ENOENT)
    );
}

#[test]
fn delete_drops_pending_events() {
    let kq = kq();
    let (a, b) = unix_pair();
    put(&b, 4);
    register(
        &kq,
        &[
            Kevent::read(&a, Flags::ADD, 1),
            Kevent::user(7, Flags::ADD, 0, 2),
            Kevent::trigger(7, 2),
            Kevent::timer(8, Flags::ADD | Flags::ONESHOT, TimerUnit::Millis, 1, 3),
        ],
    );
    // Let the timer expire so that every knote has an undelivered event.
    std::thread::sleep(Duration::from_millis(30));
    register(
        &kq,
        &[
            Kevent::read(&a, Flags::DELETE, 0),
            Kevent::user(7, Flags::DELETE, 0, 0),
            Kevent::timer(8, Flags::DELETE, TimerUnit::Millis, 0, 0),
        ],
    );
    let events = wait(&kq, 8, Some(QUIET));
    assert!(events.is_empty(), "deleted knotes delivered {events:?}");
}

#[test]
fn delete_of_an_absent_knote_is_enoent() {
    let kq = kq();
    let (a, _b) = unix_pair();
    let events = submit(
        &kq,
        &[Kevent::read(&a, Flags::DELETE, 5)],
        4,
        Some(Duration::ZERO),
    )
    .unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].is_error());
    assert_eq!(events[0].data(), i64::from(libc::ENOENT));
    assert_eq!(
        receipt(&kq, Kevent::user(1, Flags::DELETE, 0, 0)),
        i64::from(libc::ENOENT)
    );
}

// ---- EV_ENABLE / EV_DISABLE ------------------------------------------------------------------

#[test]
fn disable_suspends_reporting_and_enable_resumes_it() {
    let kq = kq();
    let (a, b) = unix_pair();
    register(&kq, &[Kevent::read(&a, Flags::ADD, 1)]);
    put(&b, 3);
    assert_eq!(find(&poll(&kq), id(&a), Filter::READ).unwrap().data(), 3);
    register(&kq, &[Kevent::read(&a, Flags::DISABLE, 1)]);
    assert!(poll(&kq).is_empty());
    put(&b, 2);
    assert!(
        wait(&kq, 8, Some(QUIET)).is_empty(),
        "a disabled knote reported"
    );
    register(&kq, &[Kevent::read(&a, Flags::ENABLE, 1)]);
    let ev = find(&poll(&kq), id(&a), Filter::READ).expect("READ once re-enabled");
    assert_eq!(ev.data(), 5);
    // The knote was never removed.
    assert_eq!(receipt(&kq, Kevent::read(&a, Flags::DELETE, 0)), 0);
}

#[test]
fn enabling_a_knote_whose_level_condition_still_holds_reports_it_at_once() {
    let kq = kq();
    let (a, b) = unix_pair();
    put(&b, 3);
    register(
        &kq,
        &[
            Kevent::read(&a, Flags::ADD, 1),
            Kevent::write(&a, Flags::ADD, 2),
        ],
    );
    let events = poll(&kq);
    assert!(find(&events, id(&a), Filter::READ).is_some(), "{events:?}");
    assert!(find(&events, id(&a), Filter::WRITE).is_some(), "{events:?}");
    register(
        &kq,
        &[
            Kevent::read(&a, Flags::DISABLE, 1),
            Kevent::write(&a, Flags::DISABLE, 2),
        ],
    );
    assert!(poll(&kq).is_empty());
    // No new data arrives and no buffer space changes: there is no new edge. Enabling must
    // report both conditions again on the very next (non-blocking) call.
    register(
        &kq,
        &[
            Kevent::read(&a, Flags::ENABLE, 1),
            Kevent::write(&a, Flags::ENABLE, 2),
        ],
    );
    let events = poll(&kq);
    let read = find(&events, id(&a), Filter::READ).expect("READ reported again on EV_ENABLE");
    assert_eq!(read.data(), 3);
    assert_eq!(read.udata(), 1);
    assert!(
        find(&events, id(&a), Filter::WRITE).is_some(),
        "WRITE reported again on EV_ENABLE: {events:?}"
    );
}

#[test]
fn enabling_a_triggered_user_event_reports_it() {
    let kq = kq();
    register(&kq, &[Kevent::user(3, Flags::ADD, 0, 33)]);
    register(&kq, &[Kevent::user(3, Flags::DISABLE, 0, 33)]);
    register(&kq, &[Kevent::trigger(3, 33)]);
    assert!(poll(&kq).is_empty(), "a disabled USER knote reported");
    register(&kq, &[Kevent::user(3, Flags::ENABLE, 0, 33)]);
    let ev = find(&poll(&kq), 3, Filter::USER).expect("USER after EV_ENABLE");
    assert_eq!(ev.udata(), 33);
}

#[test]
fn a_disabled_timer_keeps_counting() {
    let kq = kq();
    register(
        &kq,
        &[Kevent::timer(1, Flags::ADD, TimerUnit::Millis, 5, 0)],
    );
    register(
        &kq,
        &[Kevent::timer(1, Flags::DISABLE, TimerUnit::Millis, 5, 0)],
    );
    std::thread::sleep(Duration::from_millis(60));
    assert!(poll(&kq).is_empty(), "a disabled timer reported");
    register(
        &kq,
        &[Kevent::timer(1, Flags::ENABLE, TimerUnit::Millis, 5, 0)],
    );
    let ev = wait_for(&kq, 1, Filter::TIMER);
    assert!(
        ev.data() >= 2,
        "expirations while disabled are counted: {ev:?}"
    );
}

#[test]
fn enable_or_disable_of_an_absent_knote_is_enoent() {
    let kq = kq();
    let (a, _b) = unix_pair();
    for flags in [Flags::ENABLE, Flags::DISABLE] {
        assert_eq!(
            receipt(&kq, Kevent::read(&a, flags, 0)),
            i64::from(libc::ENOENT),
            "{flags:?} on an absent READ knote"
        );
        assert_eq!(
            receipt(&kq, Kevent::user(4, flags, 0, 0)),
            i64::from(libc::ENOENT),
            "{flags:?} on an absent USER knote"
        );
    }
}

#[test]
fn enable_and_disable_together_is_einval() {
    let kq = kq();
    let (a, _b) = unix_pair();
    register(
        &kq,
        &[
            Kevent::read(&a, Flags::ADD, 0),
            Kevent::user(4, Flags::ADD, 0, 0),
        ],
    );
    assert_eq!(
        receipt(&kq, Kevent::read(&a, Flags::ENABLE | Flags::DISABLE, 0)),
        i64::from(libc::EINVAL)
    );
    assert_eq!(
        receipt(&kq, Kevent::user(4, Flags::ENABLE | Flags::DISABLE, 0, 0)),
        i64::from(libc::EINVAL)
    );
}

// ---- EV_ONESHOT ------------------------------------------------------------------------------

#[test]
fn oneshot_deletes_the_knote_after_its_first_delivery() {
    let kq = kq();
    let (a, b) = unix_pair();
    put(&b, 2);
    register(&kq, &[Kevent::read(&a, Flags::ADD | Flags::ONESHOT, 5)]);
    let ev = find(&poll(&kq), id(&a), Filter::READ).expect("first delivery");
    assert!(ev.flags().contains(Flags::ONESHOT), "{ev:?}");
    assert_eq!(ev.udata(), 5);
    assert_no_action_flags(&ev);
    // The data is still there, but the knote is gone.
    assert!(poll(&kq).is_empty());
    put(&b, 1);
    assert!(wait(&kq, 8, Some(QUIET)).is_empty());
    assert_eq!(
        receipt(&kq, Kevent::read(&a, Flags::DELETE, 0)),
        i64::from(libc::ENOENT)
    );
    // It can be added again.
    register(&kq, &[Kevent::read(&a, Flags::ADD | Flags::ONESHOT, 6)]);
    assert_eq!(find(&poll(&kq), id(&a), Filter::READ).unwrap().data(), 3);
}

#[test]
fn oneshot_user_event_fires_once() {
    let kq = kq();
    register(&kq, &[Kevent::user(1, Flags::ADD | Flags::ONESHOT, 0, 0)]);
    register(&kq, &[Kevent::trigger(1, 0)]);
    assert!(find(&poll(&kq), 1, Filter::USER).is_some());
    assert!(poll(&kq).is_empty());
    assert_eq!(
        receipt(&kq, Kevent::trigger(1, 0)),
        i64::from(libc::ENOENT),
        "a delivered EV_ONESHOT knote must be gone"
    );
}

// ---- EV_CLEAR --------------------------------------------------------------------------------

#[test]
fn clear_reports_each_arrival_once() {
    let kq = kq();
    let (a, b) = unix_pair();
    register(&kq, &[Kevent::read(&a, Flags::ADD | Flags::CLEAR, 1)]);
    put(&b, 5);
    let ev = find(&poll(&kq), id(&a), Filter::READ).expect("first arrival");
    assert_eq!(ev.data(), 5);
    assert!(ev.flags().contains(Flags::CLEAR), "{ev:?}");
    // Nothing new: no event, although 5 bytes are still readable.
    assert!(poll(&kq).is_empty());
    assert!(wait(&kq, 8, Some(QUIET)).is_empty());
    // A new arrival: one event, whose data is again the bytes readable.
    put(&b, 3);
    let ev = find(&poll(&kq), id(&a), Filter::READ).expect("second arrival");
    assert_eq!(ev.data(), 8);
    assert!(poll(&kq).is_empty());
    // Draining and refilling is a new arrival too.
    let mut sink = vec![0u8; 8];
    (&a).read_exact(&mut sink).unwrap();
    put(&b, 1);
    let ev = find(&poll(&kq), id(&a), Filter::READ).expect("third arrival");
    assert_eq!(ev.data(), 1);
}

// ---- EV_DISPATCH -----------------------------------------------------------------------------

#[test]
fn dispatch_disables_after_each_delivery_and_enable_rearms() {
    let kq = kq();
    let (a, b) = unix_pair();
    put(&b, 4);
    register(&kq, &[Kevent::read(&a, Flags::ADD | Flags::DISPATCH, 9)]);
    let ev = find(&poll(&kq), id(&a), Filter::READ).expect("first delivery");
    assert!(ev.flags().contains(Flags::DISPATCH), "{ev:?}");
    assert_eq!(ev.data(), 4);
    // Disabled now: neither the standing level nor new data reports.
    assert!(poll(&kq).is_empty());
    put(&b, 1);
    assert!(wait(&kq, 8, Some(QUIET)).is_empty());
    // EV_ENABLE re-arms (and the level condition reports at once).
    register(&kq, &[Kevent::read(&a, Flags::ENABLE, 9)]);
    let ev = find(&poll(&kq), id(&a), Filter::READ).expect("after EV_ENABLE");
    assert_eq!(ev.data(), 5);
    assert!(poll(&kq).is_empty());
    // Not deleted: EV_DELETE finds it.
    assert_eq!(receipt(&kq, Kevent::read(&a, Flags::DELETE, 0)), 0);
}

#[test]
fn dispatch_user_event() {
    let kq = kq();
    register(
        &kq,
        &[Kevent::user(
            2,
            Flags::ADD | Flags::DISPATCH | Flags::CLEAR,
            0,
            0,
        )],
    );
    register(&kq, &[Kevent::trigger(2, 0)]);
    assert!(find(&poll(&kq), 2, Filter::USER).is_some());
    register(&kq, &[Kevent::trigger(2, 0)]);
    assert!(
        poll(&kq).is_empty(),
        "dispatched knote reported while disabled"
    );
    register(&kq, &[Kevent::user(2, Flags::ENABLE, 0, 0)]);
    assert!(
        find(&poll(&kq), 2, Filter::USER).is_some(),
        "trigger during the disabled period is reported on EV_ENABLE"
    );
}

// ---- EV_RECEIPT ------------------------------------------------------------------------------

#[test]
fn receipt_reports_success_as_an_error_entry_with_data_zero() {
    let kq = kq();
    let change = Kevent::user(11, Flags::ADD | Flags::RECEIPT, 0, 0xBEEF);
    let events = submit(&kq, &[change], 4, Some(Duration::ZERO)).unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    let entry = events[0];
    assert!(entry.is_error(), "{entry:?}");
    assert_eq!(entry.data(), 0);
    assert!(entry.error().is_none());
    assert_eq!(entry.ident(), 11);
    assert_eq!(entry.filter(), Filter::USER);
    assert_eq!(entry.udata(), 0xBEEF);
    assert_eq!(
        entry.flags(),
        Flags::ERROR,
        "flags = EV_ERROR exactly: {entry:?}"
    );
    // The change was applied.
    assert_eq!(receipt(&kq, Kevent::user(11, Flags::DELETE, 0, 0)), 0);
}

#[test]
fn receipt_does_not_collect_events() {
    let kq = kq();
    register(
        &kq,
        &[Kevent::user(1, Flags::ADD, 0, 1), Kevent::trigger(1, 1)],
    );
    let events = submit(
        &kq,
        &[Kevent::user(2, Flags::ADD | Flags::RECEIPT, 0, 2)],
        8,
        Some(Duration::ZERO),
    )
    .unwrap();
    assert_eq!(
        events.len(),
        1,
        "only the receipt, not the pending USER event: {events:?}"
    );
    assert_eq!(events[0].ident(), 2);
    assert!(events[0].is_error());
    // The pending event is still there for the next call.
    assert!(find(&poll(&kq), 1, Filter::USER).is_some());
}

#[test]
fn receipts_come_back_in_change_order_with_their_outcomes() {
    let kq = kq();
    let (a, _b) = unix_pair();
    let changes = [
        Kevent::user(1, Flags::ADD | Flags::RECEIPT, 0, 1),
        Kevent::user(2, Flags::DELETE | Flags::RECEIPT, 0, 2),
        Kevent::read(&a, Flags::ADD | Flags::RECEIPT, 3),
    ];
    let events = submit(&kq, &changes, 8, Some(Duration::ZERO)).unwrap();
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events.iter().all(Kevent::is_error), "{events:?}");
    assert_eq!(
        events.iter().map(|e| e.udata()).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        events.iter().map(|e| e.data()).collect::<Vec<_>>(),
        [0, i64::from(libc::ENOENT), 0]
    );
}

// ---- EV_EOF ----------------------------------------------------------------------------------

#[test]
fn eof_is_returned_when_the_peer_shuts_down() {
    let kq = kq();
    let (a, b) = unix_pair();
    register(&kq, &[Kevent::read(&a, Flags::ADD, 1)]);
    assert!(poll(&kq).is_empty());
    b.shutdown(Shutdown::Write).unwrap();
    let ev = wait_for(&kq, id(&a), Filter::READ);
    assert!(ev.is_eof(), "{ev:?}");
    assert!(!ev.is_error(), "{ev:?}");
    assert_eq!(ev.data(), 0);
    assert_eq!(ev.udata(), 1);
    assert_no_action_flags(&ev);
}

// ---- EV_ERROR --------------------------------------------------------------------------------

#[test]
fn error_entry_is_the_change_itself_with_ev_error_and_errno() {
    let kq = kq();
    let bad: i32 = 1_000_000;
    let change = Kevent::read(bad, Flags::ADD, 0xE44);
    let events = submit(&kq, &[change], 4, Some(Duration::ZERO)).unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    let entry = events[0];
    assert!(entry.is_error(), "{entry:?}");
    assert_eq!(entry.data(), i64::from(libc::EBADF));
    assert_eq!(
        entry.error().and_then(|e| e.raw_os_error()),
        Some(libc::EBADF)
    );
    assert_eq!(entry.ident(), bad as usize);
    assert_eq!(entry.filter(), Filter::READ);
    assert_eq!(entry.udata(), 0xE44);
    assert_eq!(
        entry.flags(),
        Flags::ERROR,
        "flags = EV_ERROR exactly: {entry:?}"
    );
}
