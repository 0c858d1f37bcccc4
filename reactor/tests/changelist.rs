//! `ChangeList`: changes queued now ride along with the next wait.

mod common;

use std::time::Duration;

use common::*;
use knote_reactor::{ChangeList, Filter, Flags, Kevent};

#[test]
fn queued_changes_are_submitted_with_the_next_wait() {
    let kq = kq();
    let mut list = ChangeList::new();
    list.push(Kevent::user(1, Flags::ADD | Flags::CLEAR, 0, 0x11));
    list.push(Kevent::trigger(1, 0x11));
    assert_eq!(list.len(), 2);
    assert!(!list.is_empty());
    assert_eq!(list.as_slice()[0].udata(), 0x11);
    // Nothing reached the kqueue yet.
    assert_eq!(receipt(&kq, Kevent::trigger(1, 0)), i64::from(libc::ENOENT));
    let mut events = [Kevent::zeroed(); 4];
    let n = list.submit(&kq, &mut events, Some(GUARD)).unwrap();
    assert_eq!(n, 1, "{:?}", &events[..n]);
    assert_eq!(events[0].ident(), 1);
    assert_eq!(events[0].udata(), 0x11);
    assert!(list.is_empty(), "submit empties the list");
    // An empty list is just a wait.
    assert_eq!(
        list.submit(&kq, &mut events, Some(Duration::ZERO)).unwrap(),
        0
    );
}

#[test]
fn a_registration_rides_along_with_a_blocking_wait() {
    let kq = kq();
    let (a, b) = unix_pair();
    let mut list = ChangeList::with_capacity(4);
    list.push(Kevent::read(&a, Flags::ADD, 5));
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        put(&b, 6);
        b
    });
    let mut events = [Kevent::zeroed(); 4];
    let n = list.submit(&kq, &mut events, Some(GUARD)).unwrap();
    let _b = writer.join().unwrap();
    assert_eq!(n, 1, "{:?}", &events[..n]);
    assert_eq!(events[0].filter(), Filter::READ);
    assert_eq!(events[0].udata(), 5);
    assert_eq!(events[0].data(), 6);
}

#[test]
fn failures_of_queued_changes_come_back_as_error_entries() {
    let kq = kq();
    let mut list = ChangeList::new();
    list.extend([
        Kevent::read(1_000_000, Flags::ADD, 1),
        Kevent::user(2, Flags::ADD, 0, 2),
        Kevent::user(3, Flags::DELETE, 0, 3),
    ]);
    let mut events = [Kevent::zeroed(); 4];
    let n = list.submit(&kq, &mut events, Some(GUARD)).unwrap();
    assert_eq!(n, 2, "{:?}", &events[..n]);
    assert_eq!(events[0].data(), i64::from(libc::EBADF));
    assert_eq!(events[1].data(), i64::from(libc::ENOENT));
    assert!(list.is_empty());
    // The good change in between was applied.
    assert_eq!(receipt(&kq, Kevent::user(2, Flags::DELETE, 0, 0)), 0);
}

#[test]
fn a_failure_with_no_room_fails_submit_and_still_empties_the_list() {
    let kq = kq();
    let mut list = ChangeList::new();
    list.push(Kevent::read(1_000_000, Flags::ADD, 1));
    list.push(Kevent::user(2, Flags::ADD, 0, 2));
    let err = list
        .submit(&kq, &mut [], Some(Duration::ZERO))
        .expect_err("no room for the error entry");
    assert_eq!(errno(&err), libc::EBADF);
    assert!(list.is_empty());
    assert_eq!(
        receipt(&kq, Kevent::user(2, Flags::DELETE, 0, 0)),
        i64::from(libc::ENOENT)
    );
}

#[test]
fn clear_drops_queued_changes() {
    let kq = kq();
    let mut list = ChangeList::new();
    list.push(Kevent::user(1, Flags::ADD, 0, 0));
    list.clear();
    assert!(list.is_empty());
    let mut events = [Kevent::zeroed(); 4];
    assert_eq!(
        list.submit(&kq, &mut events, Some(Duration::ZERO)).unwrap(),
        0
    );
    assert_eq!(receipt(&kq, Kevent::trigger(1, 0)), i64::from(libc::ENOENT));
}

#[test]
fn add_delete_add_of_one_fd_in_one_list_leaves_a_working_knote() {
    let kq = kq();
    let (a, b) = unix_pair();
    let changes = [
        Kevent::read(&a, Flags::ADD, 1),
        Kevent::read(&a, Flags::DELETE, 0),
        Kevent::read(&a, Flags::ADD, 2),
    ];
    assert!(submit(&kq, &changes, 4, Some(Duration::ZERO))
        .unwrap()
        .is_empty());
    put(&b, 3);
    let ev = wait_for(&kq, id(&a), Filter::READ);
    assert_eq!((ev.udata(), ev.data()), (2, 3));
}

/// `Kqueue::apply`, short (stack buffers) and long (allocated) lists alike: every change is
/// applied, the first failure is reported, and no pending event is consumed.
#[test]
fn apply_applies_everything_reports_the_first_failure_and_collects_nothing() {
    for len in [2usize, 8, 9, 40] {
        let kq = kq();
        // An event already pending: `apply` must leave it for the next wait.
        kq.apply(&[Kevent::user(1000, Flags::ADD, 0, 7)]).unwrap();
        kq.apply(&[Kevent::trigger(1000, 7)]).unwrap();
        let mut changes: Vec<Kevent> = (0..len)
            .map(|i| Kevent::user(i + 1, Flags::ADD, 0, i))
            .collect();
        // Deleting a knote that does not exist fails with ENOENT, halfway through.
        changes.insert(len / 2, Kevent::user(5000, Flags::DELETE, 0, 0));
        let err = kq.apply(&changes).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "len {len}");
        for i in 0..len {
            assert_eq!(
                receipt(&kq, Kevent::trigger(i + 1, 0)),
                0,
                "change {i} of {len} applied"
            );
        }
        let mut events = [Kevent::zeroed(); 64];
        let n = kq.kevent(&[], &mut events, Some(GUARD)).unwrap();
        let idents: Vec<usize> = events[..n].iter().map(Kevent::ident).collect();
        assert!(
            idents.contains(&1000),
            "the pending event survived apply: {idents:?}"
        );
        assert_eq!(n, len + 1, "{idents:?}");
        assert!(events[..n].iter().all(|e| e.filter() == Filter::USER));
    }
}
