//! The `SIGNAL` row of the spec's filter table, and trap 7: signals are observed, not consumed.
//!
//! Signals are process-wide and the tests of this file run in parallel threads of one process, so
//! every test owns its signal number. `raise` delivers to the calling thread before it returns.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use knote_reactor::{Filter, Flags, Kevent, Kqueue};

/// Installs `handler` (a `sighandler_t`: a function address, `SIG_IGN` or `SIG_DFL`) for `sig`.
fn install(sig: libc::c_int, handler: libc::sighandler_t) {
    // SAFETY: an all-zero `sigaction` is a valid value; it is fully initialised below.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = handler;
    sa.sa_flags = libc::SA_RESTART;
    // SAFETY: `sa` is a valid sigaction and the handlers passed here only touch atomics, which is
    // async-signal-safe.
    let rc = unsafe {
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut())
    };
    assert_eq!(rc, 0, "sigaction: {}", std::io::Error::last_os_error());
}

fn raise(sig: libc::c_int) {
    // SAFETY: every signal raised here has a handler, SIG_IGN or an ignoring default action.
    let rc = unsafe { libc::raise(sig) };
    assert_eq!(rc, 0);
}

/// Sums the `data` of `sig`'s events until it reaches `want` (or `GUARD` passes).
fn collect(kq: &Kqueue, sig: libc::c_int, want: i64) -> i64 {
    let start = Instant::now();
    let mut total = 0;
    while total < want && start.elapsed() < GUARD {
        for ev in wait(kq, 8, Some(Duration::from_millis(20))) {
            assert_eq!(ev.filter(), Filter::SIGNAL, "{ev:?}");
            assert_eq!(ev.ident(), sig as usize, "{ev:?}");
            assert!(
                ev.flags().contains(Flags::CLEAR),
                "EV_CLEAR is implied: {ev:?}"
            );
            assert_no_action_flags(&ev);
            total += ev.data();
        }
    }
    total
}

static USR1_HANDLED: AtomicUsize = AtomicUsize::new(0);
extern "C" fn on_usr1(_: libc::c_int) {
    USR1_HANDLED.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn counts_deliveries_and_the_own_handler_still_runs() {
    let sig = libc::SIGUSR1;
    install(sig, on_usr1 as *const () as libc::sighandler_t);
    let kq = kq();
    register(&kq, &[Kevent::signal(sig, Flags::ADD, 0x516)]);
    assert!(poll(&kq).is_empty());
    let before = USR1_HANDLED.load(Ordering::SeqCst);
    raise(sig);
    raise(sig);
    raise(sig);
    assert_eq!(
        USR1_HANDLED.load(Ordering::SeqCst) - before,
        3,
        "the application's handler must run for every delivery"
    );
    let ev = find(&poll(&kq), sig as usize, Filter::SIGNAL).expect("SIGNAL after raise");
    assert_eq!(ev.data(), 3, "{ev:?}");
    assert_eq!(ev.udata(), 0x516);
    assert!(
        ev.flags().contains(Flags::CLEAR),
        "EV_CLEAR is implied: {ev:?}"
    );
    assert_no_action_flags(&ev);
    // Deliveries since the last retrieval.
    assert!(poll(&kq).is_empty());
    raise(sig);
    assert_eq!(
        find(&poll(&kq), sig as usize, Filter::SIGNAL)
            .unwrap()
            .data(),
        1
    );
    assert_eq!(USR1_HANDLED.load(Ordering::SeqCst) - before, 4);
}

#[test]
fn an_ignored_signal_is_still_counted() {
    let sig = libc::SIGUSR2;
    install(sig, libc::SIG_IGN);
    let kq = kq();
    register(&kq, &[Kevent::signal(sig, Flags::ADD, 2)]);
    raise(sig);
    raise(sig);
    // Still alive: SIG_IGN was honoured (SIGUSR2's default action would end the process).
    assert_eq!(collect(&kq, sig, 2), 2);
}

#[test]
fn a_signal_ignored_by_default_is_counted() {
    let sig = libc::SIGWINCH;
    let kq = kq();
    register(&kq, &[Kevent::signal(sig, Flags::ADD, 3)]);
    raise(sig);
    raise(sig);
    raise(sig);
    assert_eq!(collect(&kq, sig, 3), 3);
}

static URG_HANDLED: AtomicUsize = AtomicUsize::new(0);
extern "C" fn on_urg(_: libc::c_int) {
    URG_HANDLED.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn a_process_directed_signal_is_counted() {
    let sig = libc::SIGURG;
    install(sig, on_urg as *const () as libc::sighandler_t);
    let kq = kq();
    register(&kq, &[Kevent::signal(sig, Flags::ADD, 4)]);
    for round in 1..=2 {
        // SAFETY: kill(2) on our own pid with a signal whose handler only bumps an atomic.
        let rc = unsafe { libc::kill(libc::getpid(), sig) };
        assert_eq!(rc, 0);
        // Wait for this delivery before sending the next, so that the two cannot merge.
        let start = Instant::now();
        while URG_HANDLED.load(Ordering::SeqCst) < round && start.elapsed() < GUARD {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(URG_HANDLED.load(Ordering::SeqCst), round, "handler runs");
    }
    assert_eq!(collect(&kq, sig, 2), 2);
}

static VTALRM_HANDLED: AtomicUsize = AtomicUsize::new(0);
extern "C" fn on_vtalrm(_: libc::c_int) {
    VTALRM_HANDLED.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn delete_stops_counting_and_readd_starts_afresh() {
    let sig = libc::SIGVTALRM;
    install(sig, on_vtalrm as *const () as libc::sighandler_t);
    let kq = kq();
    register(&kq, &[Kevent::signal(sig, Flags::ADD, 5)]);
    raise(sig);
    register(&kq, &[Kevent::signal(sig, Flags::DELETE, 0)]);
    raise(sig);
    assert!(poll(&kq).is_empty(), "a deleted SIGNAL knote reported");
    register(&kq, &[Kevent::signal(sig, Flags::ADD, 6)]);
    raise(sig);
    let ev = find(&poll(&kq), sig as usize, Filter::SIGNAL).expect("after re-adding");
    assert_eq!(ev.data(), 1);
    assert_eq!(ev.udata(), 6);
    assert_eq!(VTALRM_HANDLED.load(Ordering::SeqCst), 3);
}

static ALRM_HANDLED: AtomicUsize = AtomicUsize::new(0);
extern "C" fn on_alrm(_: libc::c_int) {
    ALRM_HANDLED.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn every_kqueue_counts_for_itself() {
    let sig = libc::SIGALRM;
    install(sig, on_alrm as *const () as libc::sighandler_t);
    let kq1 = kq();
    let kq2 = kq();
    register(&kq1, &[Kevent::signal(sig, Flags::ADD, 1)]);
    register(&kq2, &[Kevent::signal(sig, Flags::ADD, 2)]);
    raise(sig);
    raise(sig);
    assert_eq!(
        find(&poll(&kq1), sig as usize, Filter::SIGNAL)
            .unwrap()
            .data(),
        2
    );
    raise(sig);
    assert_eq!(
        find(&poll(&kq2), sig as usize, Filter::SIGNAL)
            .unwrap()
            .data(),
        3
    );
    assert_eq!(
        find(&poll(&kq1), sig as usize, Filter::SIGNAL)
            .unwrap()
            .data(),
        1
    );
    assert_eq!(ALRM_HANDLED.load(Ordering::SeqCst), 3);
}

#[test]
fn sigkill_and_sigstop() {
    let kq = kq();
    for sig in [libc::SIGKILL, libc::SIGSTOP] {
        let outcome = receipt(&kq, Kevent::signal(sig, Flags::ADD, 0));
        // Documented shim difference (g): SIGKILL and SIGSTOP cannot be observed by a handler, so
        // the shim refuses them; FreeBSD accepts the registration.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        assert_eq!(outcome, i64::from(libc::EINVAL), "signal {sig}");
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        assert_eq!(outcome, 0, "signal {sig}");
    }
}

#[test]
fn an_invalid_signal_number_is_einval() {
    let kq = kq();
    for sig in [0, 1000] {
        assert_eq!(
            receipt(&kq, Kevent::signal(sig, Flags::ADD, 0)),
            i64::from(libc::EINVAL),
            "signal {sig}"
        );
    }
}

/// A `pthread_t` handed to the signalling thread.
struct Tid(libc::pthread_t);
// SAFETY: a pthread_t is an identifier; sending it to another thread to pass to pthread_kill
// is what it is for.
unsafe impl Send for Tid {}

#[test]
fn observing_an_ignored_signal_does_not_interrupt_other_system_calls() {
    let sig = libc::SIGTTOU;
    install(sig, libc::SIG_IGN);
    let kq = kq();
    register(&kq, &[Kevent::signal(sig, Flags::ADD, 0)]);
    let (r, w) = pipe();
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        // SAFETY: pthread_self has no preconditions.
        let _ = tid_tx.send(Tid(unsafe { libc::pthread_self() }));
        let mut byte = [0u8; 1];
        // A plain read(2): an interruption would surface as ErrorKind::Interrupted.
        std::io::Read::read(&mut &r, &mut byte)
    });
    let tid = tid_rx.recv_timeout(GUARD).expect("the reader started");
    for _ in 0..5 {
        // SAFETY: the reader is not joined yet, so its pthread_t is valid; the signal is ignored.
        let rc = unsafe { libc::pthread_kill(tid.0, sig) };
        assert_eq!(rc, 0);
        std::thread::sleep(Duration::from_millis(20));
    }
    put(&w, 1);
    let result = reader.join().unwrap();
    assert_eq!(
        result.map_err(|e| e.kind()),
        Ok(1),
        "an ignored signal interrupted the program's own read(2)"
    );
    assert_eq!(collect(&kq, sig, 5), 5);
}
