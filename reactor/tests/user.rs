//! The `USER` row of the filter table of SEMANTICS.md: `NOTE_TRIGGER`, the `NOTE_FF*` operations on the
//! low 24 bits of `fflags`, `data`, level vs `EV_CLEAR`, and triggers from other threads.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use knote_reactor::{note, Filter, Flags, Kevent};

#[test]
fn trigger_fires_a_user_event() {
    let kq = kq();
    register(&kq, &[Kevent::user(1, Flags::ADD, 0, 0x5EED)]);
    assert!(poll(&kq).is_empty(), "an untriggered USER knote reported");
    register(&kq, &[Kevent::trigger(1, 0x5EED)]);
    let events = poll(&kq);
    assert_eq!(events.len(), 1, "{events:?}");
    let ev = events[0];
    assert_eq!(ev.ident(), 1);
    assert_eq!(ev.filter(), Filter::USER);
    assert_eq!(ev.udata(), 0x5EED);
    assert_eq!(
        ev.fflags() & !note::FFLAGSMASK,
        0,
        "no control bits returned: {ev:?}"
    );
    assert_no_action_flags(&ev);
}

#[test]
fn trigger_in_the_same_call_as_add() {
    let kq = kq();
    let events = submit(
        &kq,
        &[Kevent::user(2, Flags::ADD, 0, 2), Kevent::trigger(2, 2)],
        4,
        Some(Duration::ZERO),
    )
    .unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].ident(), 2);
    assert_eq!(events[0].udata(), 2);
}

/// FreeBSD clears `fflags` before `filt_userattach` looks for `NOTE_TRIGGER`, so the creating
/// `EV_ADD` does not fire the knote (its value bits are still stored); macOS fires it.
#[test]
fn note_trigger_in_the_adding_change_does_not_fire() {
    let kq = kq();
    register(
        &kq,
        &[Kevent::user(
            4,
            Flags::ADD | Flags::CLEAR,
            note::TRIGGER | note::FFCOPY | 0x21,
            4,
        )],
    );
    let events = poll(&kq);
    if cfg!(target_vendor = "apple") {
        let ev = find(&events, 4, Filter::USER).expect("macOS fires on EV_ADD");
        assert_eq!(ev.fflags() & !note::FFLAGSMASK, 0, "{ev:?}");
        return;
    }
    assert!(
        events.is_empty(),
        "NOTE_TRIGGER in a creating EV_ADD fired: {events:?}"
    );
    // A trigger afterwards fires it, with the value given at creation.
    register(&kq, &[Kevent::trigger(4, 4)]);
    let ev = find(&poll(&kq), 4, Filter::USER).expect("triggered");
    assert_eq!(ev.fflags(), 0x21, "{ev:?}");
    assert!(poll(&kq).is_empty());
}

#[test]
fn data_is_the_last_data_given() {
    let kq = kq();
    register(&kq, &[Kevent::user(1, Flags::ADD | Flags::CLEAR, 0, 0)]);
    register(&kq, &[Kevent::trigger(1, 0).with_data(42)]);
    assert_eq!(find(&poll(&kq), 1, Filter::USER).unwrap().data(), 42);
    // A change that does not trigger still updates the data.
    register(
        &kq,
        &[Kevent::user(1, Flags::empty(), note::FFNOP, 0).with_data(9)],
    );
    assert!(poll(&kq).is_empty());
    register(&kq, &[Kevent::trigger(1, 0).with_data(-7)]);
    assert_eq!(find(&poll(&kq), 1, Filter::USER).unwrap().data(), -7);
}

#[test]
fn without_clear_it_stays_triggered() {
    let kq = kq();
    register(
        &kq,
        &[Kevent::user(1, Flags::ADD, 0, 0), Kevent::trigger(1, 0)],
    );
    for round in 0..3 {
        let ev = find(&poll(&kq), 1, Filter::USER);
        assert!(
            ev.is_some(),
            "round {round}: a level USER event must stay triggered"
        );
    }
    assert!(!find(&poll(&kq), 1, Filter::USER)
        .unwrap()
        .flags()
        .contains(Flags::CLEAR));
}

#[test]
fn with_clear_it_fires_once_per_trigger() {
    let kq = kq();
    register(&kq, &[Kevent::user(1, Flags::ADD | Flags::CLEAR, 0, 0)]);
    for _ in 0..3 {
        register(&kq, &[Kevent::trigger(1, 0)]);
        let ev = find(&poll(&kq), 1, Filter::USER).expect("one event per trigger");
        assert!(ev.flags().contains(Flags::CLEAR), "{ev:?}");
        assert!(poll(&kq).is_empty(), "EV_CLEAR USER event fired twice");
    }
    // Triggers before a collection coalesce into one event.
    register(&kq, &[Kevent::trigger(1, 0), Kevent::trigger(1, 0)]);
    register(&kq, &[Kevent::trigger(1, 0)]);
    assert_eq!(of(&poll(&kq), 1, Filter::USER).len(), 1);
    assert!(poll(&kq).is_empty());
}

#[test]
fn ffcopy_ffor_ffand_ffnop_combine_the_stored_value() {
    let kq = kq();
    register(&kq, &[Kevent::user(1, Flags::ADD | Flags::CLEAR, 0, 0)]);
    let steps = [
        (note::FFCOPY | 0x0F0F, 0x0F0F),
        (note::FFOR | 0xF000, 0xFF0F),
        (note::FFAND | 0x00FF, 0x000F),
        (note::FFNOP | 0x1234, 0x000F),
        (note::FFCOPY | 0x00AB_CDEF, 0x00AB_CDEF),
        (note::FFAND | 0x00FF_FF00, 0x00AB_CD00),
        (note::FFOR | 0x0000_0011, 0x00AB_CD11),
    ];
    for (fflags, expected) in steps {
        register(
            &kq,
            &[Kevent::user(1, Flags::empty(), fflags | note::TRIGGER, 0)],
        );
        let ev = find(&poll(&kq), 1, Filter::USER).expect("triggered");
        assert_eq!(
            ev.fflags(),
            expected,
            "after fflags {fflags:#x}: got {:#x}, expected {expected:#x}",
            ev.fflags()
        );
    }
}

#[test]
fn fflags_change_without_trigger_is_kept_for_the_next_delivery() {
    let kq = kq();
    register(&kq, &[Kevent::user(1, Flags::ADD | Flags::CLEAR, 0, 0)]);
    register(
        &kq,
        &[Kevent::user(1, Flags::empty(), note::FFOR | 0x30, 0)],
    );
    assert!(
        poll(&kq).is_empty(),
        "FFOR without NOTE_TRIGGER must not fire"
    );
    register(
        &kq,
        &[Kevent::user(1, Flags::empty(), note::FFOR | 0x0C, 0)],
    );
    register(&kq, &[Kevent::trigger(1, 0)]);
    assert_eq!(find(&poll(&kq), 1, Filter::USER).unwrap().fflags(), 0x3C);
}

#[test]
fn only_the_low_24_bits_are_stored() {
    let kq = kq();
    register(&kq, &[Kevent::user(1, Flags::ADD | Flags::CLEAR, 0, 0)]);
    // Every value bit set: control bits and NOTE_TRIGGER are not part of the stored value.
    register(
        &kq,
        &[Kevent::user(
            1,
            Flags::empty(),
            note::FFCOPY | note::TRIGGER | note::FFLAGSMASK,
            0,
        )],
    );
    let ev = find(&poll(&kq), 1, Filter::USER).unwrap();
    assert_eq!(ev.fflags(), note::FFLAGSMASK, "{ev:?}");
}

#[test]
fn trigger_of_an_absent_user_event_is_enoent() {
    let kq = kq();
    assert_eq!(
        receipt(&kq, Kevent::trigger(77, 0)),
        i64::from(libc::ENOENT)
    );
}

#[test]
fn user_events_are_independent_by_ident() {
    let kq = kq();
    register(
        &kq,
        &[
            Kevent::user(1, Flags::ADD | Flags::CLEAR, 0, 1),
            Kevent::user(2, Flags::ADD | Flags::CLEAR, 0, 2),
            Kevent::user(3, Flags::ADD | Flags::CLEAR, 0, 3),
        ],
    );
    register(&kq, &[Kevent::trigger(3, 3), Kevent::trigger(1, 1)]);
    let events = poll(&kq);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(find(&events, 1, Filter::USER).is_some());
    assert!(find(&events, 3, Filter::USER).is_some());
    assert!(find(&events, 2, Filter::USER).is_none());
}

#[test]
fn trigger_from_another_thread_wakes_a_blocked_wait() {
    let kq = Arc::new(kq());
    register(
        &kq,
        &[Kevent::user(1, Flags::ADD | Flags::CLEAR, 0, 0xC0FFEE)],
    );
    let trigger = Arc::clone(&kq);
    let triggerer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        register(&trigger, &[Kevent::trigger(1, 0xC0FFEE).with_data(5)]);
    });
    let waiter = Arc::clone(&kq);
    let events = within(GUARD, move || wait(&waiter, 8, None))
        .expect("kevent(None) was not woken by a trigger from another thread");
    triggerer.join().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].udata(), 0xC0FFEE);
    assert_eq!(events[0].data(), 5);
}

#[test]
fn every_change_to_a_user_event_replaces_its_udata() {
    let kq = kq();
    register(&kq, &[Kevent::user(1, Flags::ADD | Flags::CLEAR, 0, 0xAAA)]);
    // As in kqueue(2): the trigger is a change to the knote and carries the udata to keep.
    register(&kq, &[Kevent::trigger(1, 0xBBB)]);
    assert_eq!(find(&poll(&kq), 1, Filter::USER).unwrap().udata(), 0xBBB);
    register(&kq, &[Kevent::user(1, Flags::empty(), note::FFNOP, 0xCCC)]);
    register(&kq, &[Kevent::trigger(1, 0xCCC)]);
    assert_eq!(find(&poll(&kq), 1, Filter::USER).unwrap().udata(), 0xCCC);
}
