//! The `SIGNAL` row of the semantics' filter table, and trap 7: signals are observed, not
//! consumed, whatever disposition the program sets before or after.
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
        // Documented shim difference (SEMANTICS.md): SIGKILL and SIGSTOP cannot be observed by a handler, so
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
    let mut counted = 0;
    for _ in 0..5 {
        // SAFETY: the reader is not joined yet, so its pthread_t is valid; the signal is ignored.
        let rc = unsafe { libc::pthread_kill(tid.0, sig) };
        assert_eq!(rc, 0);
        // Each delivery is counted before the next is sent: two sent while the reader thread
        // is not yet scheduled (a busy machine) would be one pending signal, as on FreeBSD.
        counted += collect(&kq, sig, 1);
    }
    put(&w, 1);
    let result = reader.join().unwrap();
    assert_eq!(
        result.map_err(|e| e.kind()),
        Ok(1),
        "an ignored signal interrupted the program's own read(2)"
    );
    assert_eq!(counted, 5);
}

/// The disposition of `sig` now.
fn disposition(sig: libc::c_int) -> libc::sigaction {
    // SAFETY: an all-zero sigaction is valid output space; a null `act` only reads.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(sig, std::ptr::null(), &mut sa), 0);
        sa
    }
}

static PROF_HANDLED: AtomicUsize = AtomicUsize::new(0);
extern "C" fn on_prof(_: libc::c_int) {
    PROF_HANDLED.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn a_disposition_set_after_the_first_knote_does_not_end_counting_for_new_knotes() {
    let sig = libc::SIGPROF;
    install(sig, on_prof as *const () as libc::sighandler_t);
    let kq = kq();
    register(&kq, &[Kevent::signal(sig, Flags::ADD, 1)]);
    raise(sig);
    assert_eq!(collect(&kq, sig, 1), 1);
    register(&kq, &[Kevent::signal(sig, Flags::DELETE, 0)]);
    // The program ignores it now; a knote added later still sees every delivery.
    install(sig, libc::SIG_IGN);
    register(&kq, &[Kevent::signal(sig, Flags::ADD, 2)]);
    raise(sig);
    raise(sig);
    assert_eq!(collect(&kq, sig, 2), 2);
    // And back to a handler of the program's: still counted, and the handler still runs.
    install(sig, on_prof as *const () as libc::sighandler_t);
    let kq2 = kq_for(sig, 3);
    let before = PROF_HANDLED.load(Ordering::SeqCst);
    raise(sig);
    assert_eq!(PROF_HANDLED.load(Ordering::SeqCst) - before, 1);
    assert_eq!(collect(&kq2, sig, 1), 1);
}

/// A kqueue with a SIGNAL knote for `sig`.
fn kq_for(sig: libc::c_int, udata: usize) -> Kqueue {
    let kq = kq();
    register(&kq, &[Kevent::signal(sig, Flags::ADD, udata)]);
    kq
}

static CONT_HANDLED: AtomicUsize = AtomicUsize::new(0);
extern "C" fn on_cont(_: libc::c_int) {
    CONT_HANDLED.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn observing_a_signal_keeps_the_programs_sigaction_flags() {
    let sig = libc::SIGCONT;
    let wanted = libc::SA_RESETHAND | libc::SA_NODEFER;
    // SAFETY: an all-zero sigaction is valid; the handler only bumps an atomic.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_cont as *const () as libc::sighandler_t;
        sa.sa_flags = wanted;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaddset(&mut sa.sa_mask, libc::SIGXFSZ);
        assert_eq!(libc::sigaction(sig, &sa, std::ptr::null_mut()), 0);
    }
    let kq = kq_for(sig, 1);
    let now = disposition(sig);
    assert_eq!(
        now.sa_flags & wanted,
        wanted,
        "flags dropped: {:#x}",
        now.sa_flags
    );
    // SAFETY: sigismember reads a valid sigset_t.
    assert_eq!(unsafe { libc::sigismember(&now.sa_mask, libc::SIGXFSZ) }, 1);
    // SA_RESETHAND: the program's handler runs once, then SIGCONT's default (continue) applies.
    raise(sig);
    raise(sig);
    assert_eq!(
        CONT_HANDLED.load(Ordering::SeqCst),
        1,
        "SA_RESETHAND ignored"
    );
    // Documented shim difference: the reset also removes the counting handler, so the second
    // delivery is not counted; FreeBSD counts both.
    let want = if cfg!(any(target_os = "linux", target_os = "android")) {
        1
    } else {
        2
    };
    assert_eq!(collect(&kq, sig, want), want);
    assert!(wait(&kq, 8, Some(QUIET)).is_empty());
}

#[test]
fn an_ignored_sigchld_stays_ignored_and_is_not_recorded() {
    let sig = libc::SIGCHLD;
    install(sig, libc::SIG_IGN);
    let kq = kq_for(sig, 1);
    // SIG_IGN kept: the kernel goes on reaping children by itself.
    assert_eq!(disposition(sig).sa_sigaction, libc::SIG_IGN);
    raise(sig);
    assert!(
        wait(&kq, 8, Some(QUIET)).is_empty(),
        "an ignored SIGCHLD was recorded"
    );
    install(sig, libc::SIG_DFL);
}

static XFSZ_HANDLED: AtomicUsize = AtomicUsize::new(0);
extern "C" fn on_xfsz(_: libc::c_int) {
    XFSZ_HANDLED.fetch_add(1, Ordering::SeqCst);
}

/// FreeBSD records a signal when it is generated, blocked or not. The shim counts deliveries:
/// a blocked signal is counted when the program unblocks it (documented difference).
#[test]
fn a_blocked_signal_is_counted_when_it_is_delivered_on_the_shim() {
    let sig = libc::SIGXFSZ;
    install(sig, on_xfsz as *const () as libc::sighandler_t);
    let kq = kq_for(sig, 1);
    // SAFETY: sigset_t operations on a local set; pthread_sigmask changes this thread's mask
    // only, and it is restored below.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()),
            0
        );
    }
    raise(sig); // pending: blocked in this thread, which raise() targets
    let early = wait(&kq, 8, Some(QUIET));
    if cfg!(any(target_os = "linux", target_os = "android")) {
        assert!(early.is_empty(), "{early:?}");
    } else {
        assert_eq!(
            find(&early, sig as usize, Filter::SIGNAL).map(|e| e.data()),
            Some(1)
        );
    }
    assert_eq!(XFSZ_HANDLED.load(Ordering::SeqCst), 0);
    // SAFETY: as above; unblocking delivers the pending signal before this returns.
    unsafe {
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()),
            0
        );
    }
    assert_eq!(XFSZ_HANDLED.load(Ordering::SeqCst), 1);
    let want = if early.is_empty() { 1 } else { 0 };
    assert_eq!(collect(&kq, sig, want), want);
}
