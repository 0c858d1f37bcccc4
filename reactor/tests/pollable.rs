//! The kqueue's own fd is pollable (trap 6 and the `Kqueue` docs): it becomes readable whenever
//! `kevent` would return an event — timer expiries, user triggers from other threads, signals,
//! fd readiness — so a host loop can embed the reactor with poll(2).

mod common;

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use knote_reactor::{Filter, Flags, Kevent, Kqueue, TimerUnit};

/// poll(2) for `POLLIN` on the kqueue's fd, up to `timeout_ms` (EINTR retried).
fn kq_readable(kq: &Kqueue, timeout_ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd: kq.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: `pfd` is one valid pollfd and the count passed is 1.
        let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            assert_eq!(err.kind(), std::io::ErrorKind::Interrupted, "poll: {err}");
            continue;
        }
        return rc == 1 && pfd.revents & libc::POLLIN != 0;
    }
}

const GUARD_MS: i32 = 5_000;

#[test]
fn an_empty_kqueue_is_not_readable() {
    let kq = kq();
    assert!(!kq_readable(&kq, 0));
    register(&kq, &[Kevent::user(1, Flags::ADD, 0, 0)]);
    assert!(
        !kq_readable(&kq, 20),
        "untriggered knote made the fd readable"
    );
}

#[test]
fn readable_when_a_timer_expires() {
    let kq = kq();
    let start = Instant::now();
    register(
        &kq,
        &[Kevent::timer(
            1,
            Flags::ADD | Flags::ONESHOT,
            TimerUnit::Millis,
            20,
            0,
        )],
    );
    assert!(
        kq_readable(&kq, GUARD_MS),
        "the kqueue fd did not become readable on timer expiry"
    );
    assert!(start.elapsed() >= Duration::from_millis(18));
    let ev = find(&poll(&kq), 1, Filter::TIMER).expect("the timer once the fd is readable");
    assert_eq!(ev.data(), 1);
}

#[test]
fn readable_when_a_sub_millisecond_timer_expires() {
    let kq = kq();
    register(
        &kq,
        &[Kevent::timer(
            1,
            Flags::ADD | Flags::ONESHOT,
            TimerUnit::Micros,
            300,
            0,
        )],
    );
    assert!(kq_readable(&kq, GUARD_MS));
    assert!(find(&poll(&kq), 1, Filter::TIMER).is_some());
}

#[test]
fn readable_when_a_user_event_is_triggered_from_another_thread() {
    let kq = Arc::new(kq());
    register(&kq, &[Kevent::user(7, Flags::ADD | Flags::CLEAR, 0, 7)]);
    let trigger = Arc::clone(&kq);
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        register(&trigger, &[Kevent::trigger(7, 7)]);
    });
    assert!(
        kq_readable(&kq, GUARD_MS),
        "the kqueue fd did not become readable on a cross-thread trigger"
    );
    t.join().unwrap();
    assert!(find(&poll(&kq), 7, Filter::USER).is_some());
}

#[test]
fn readable_when_a_socket_becomes_readable() {
    let kq = kq();
    let (a, b) = unix_pair();
    register(&kq, &[Kevent::read(&a, Flags::ADD, 0)]);
    // A registration may leave a spurious wakeup behind (the shim's epoll reports the fresh
    // registration's edges), but once a call found nothing the fd must not stay readable: a
    // host loop would spin.
    assert!(poll(&kq).is_empty());
    assert!(
        !kq_readable(&kq, 0),
        "kqueue fd readable with nothing to report"
    );
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        put(&b, 3);
        b
    });
    assert!(kq_readable(&kq, GUARD_MS));
    let _b = t.join().unwrap();
    assert_eq!(find(&poll(&kq), id(&a), Filter::READ).unwrap().data(), 3);
}

#[test]
fn readable_when_a_signal_is_counted() {
    let sig = libc::SIGWINCH; // default action: ignore
    let kq = kq();
    register(&kq, &[Kevent::signal(sig, Flags::ADD, 0)]);
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        // SAFETY: SIGWINCH is ignored by default; raise targets this helper thread.
        unsafe { libc::raise(sig) };
    });
    assert!(kq_readable(&kq, GUARD_MS));
    t.join().unwrap();
    assert_eq!(
        find(&poll(&kq), sig as usize, Filter::SIGNAL)
            .unwrap()
            .data(),
        1
    );
}

#[test]
fn readable_when_a_level_event_is_already_pending() {
    let kq = kq();
    register(
        &kq,
        &[Kevent::user(1, Flags::ADD, 0, 0), Kevent::trigger(1, 0)],
    );
    assert!(kq_readable(&kq, 0));
    // Collecting a level event does not end it.
    assert!(find(&poll(&kq), 1, Filter::USER).is_some());
    assert!(kq_readable(&kq, GUARD_MS));
}
