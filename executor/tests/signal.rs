//! `signal::ctrl_c` and `signal::signal`: deliveries sent with `kill` to this process.
//!
//! A signal sent to the test process would reach every test of the binary, so each test that
//! sends one re-runs this binary as a child (`KNOTE_SIGNAL_CHILD=1`, that test alone) and
//! sends its signals there; the parent checks that the child passed.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Flavour, ALL};
use futures_util::StreamExt;
use knote_executor::signal::{self, ctrl_c, SignalKind};
use knote_executor::time::timeout;

const CHILD_ENV: &str = "KNOTE_SIGNAL_CHILD";
const GUARD: Duration = Duration::from_secs(10);

/// In the parent: runs `name` in a child process and checks it passed. In the child: runs
/// `body`.
fn in_child(name: &str, body: impl FnOnce()) {
    if std::env::var_os(CHILD_ENV).is_some() {
        body();
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run the test binary as a child");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the child failed ({}):\n{text}",
        out.status
    );
    assert!(
        text.contains("1 passed"),
        "the child did not run the test:\n{text}"
    );
}

fn raise(signo: i32) {
    // SAFETY: sends a signal to this process; the test has a listener (so a handler) for it.
    assert_eq!(unsafe { libc::kill(libc::getpid(), signo) }, 0);
}

#[test]
fn ctrl_c_resolves_on_a_sigint_and_the_process_survives_it() {
    in_child(
        "ctrl_c_resolves_on_a_sigint_and_the_process_survives_it",
        || {
            for flavour in ALL {
                flavour.build().block_on(async {
                    let interrupted = ctrl_c();
                    raise(libc::SIGINT);
                    timeout(GUARD, interrupted)
                        .await
                        .unwrap_or_else(|_| panic!("{flavour:?}: no SIGINT seen"))
                        .unwrap();
                });
            }
            // All listeners are gone: SIGINT still does not end the process.
            raise(libc::SIGINT);
            std::thread::sleep(Duration::from_millis(10));
        },
    );
}

/// One `SIGUSR1` listener made here, one in a task (on a current-thread runtime the same
/// kqueue and hub; on a multi-thread one too, its home kqueue, the task on a worker): a
/// `SIGUSR1` raised once both listen reaches each exactly once.
async fn here_and_in_a_task_see_one_sigusr1(what: &str) {
    let mut a = signal::signal(SignalKind::user_defined1()).unwrap();
    let (ready_tx, ready_rx) = futures_channel::oneshot::channel();
    let b = knote_executor::spawn(async move {
        let mut b = signal::signal(SignalKind::user_defined1()).unwrap();
        ready_tx.send(()).unwrap();
        timeout(GUARD, b.recv()).await
    });
    ready_rx.await.unwrap();
    raise(libc::SIGUSR1);
    assert_eq!(timeout(GUARD, a.recv()).await, Ok(1), "{what}: listener a");
    assert_eq!(b.await.unwrap(), Ok(1), "{what}: listener b");
}

#[test]
fn two_listeners_of_one_signal_both_see_each_delivery() {
    in_child("two_listeners_of_one_signal_both_see_each_delivery", || {
        for flavour in ALL {
            let what = format!("{flavour:?}");
            flavour
                .build()
                .block_on(here_and_in_a_task_see_one_sigusr1(&what));
        }
    });
}

#[test]
fn two_listeners_waiting_in_two_tasks_are_both_woken() {
    in_child("two_listeners_waiting_in_two_tasks_are_both_woken", || {
        for flavour in ALL {
            flavour.build().block_on(async {
                let mut tasks = Vec::new();
                let mut parked = Vec::new();
                for _ in 0..2 {
                    let mut s = signal::signal(SignalKind::user_defined2()).unwrap();
                    let (tx, rx) = futures_channel::oneshot::channel::<()>();
                    parked.push(rx);
                    let mut tx = Some(tx);
                    // Says when it has parked in `poll_recv`, so both wait when the signal comes.
                    let first = futures_util::future::poll_fn(move |cx| {
                        let p = s.poll_recv(cx);
                        if p.is_pending() {
                            if let Some(tx) = tx.take() {
                                tx.send(()).unwrap();
                            }
                        }
                        p
                    });
                    tasks.push(knote_executor::spawn(timeout(GUARD, first)));
                }
                for rx in parked {
                    rx.await.unwrap();
                }
                raise(libc::SIGUSR2);
                for task in tasks {
                    assert_eq!(task.await.unwrap(), Ok(1), "{flavour:?}");
                }
            });
        }
    });
}

#[test]
fn a_signal_stream_sees_repeated_deliveries() {
    in_child("a_signal_stream_sees_repeated_deliveries", || {
        for flavour in ALL {
            flavour.build().block_on(async {
                let mut hangups = signal::signal(SignalKind::hangup()).unwrap();
                for i in 0..5 {
                    raise(libc::SIGHUP);
                    let n = timeout(GUARD, hangups.next()).await;
                    assert_eq!(n, Ok(Some(1)), "{flavour:?}: delivery {i}");
                }
            });
        }
    });
}

#[test]
fn a_listener_made_later_sees_only_later_deliveries() {
    in_child("a_listener_made_later_sees_only_later_deliveries", || {
        Flavour::Current.build().block_on(async {
            let mut first = signal::signal(SignalKind::terminate()).unwrap();
            raise(libc::SIGTERM);
            assert_eq!(timeout(GUARD, first.recv()).await, Ok(1));
            let mut second = signal::signal(SignalKind::terminate()).unwrap();
            raise(libc::SIGTERM);
            raise(libc::SIGTERM);
            // Each sees what came after it was made; merged deliveries count 1 or 2
            // (a standard signal pending twice is delivered once).
            let a = timeout(GUARD, first.recv()).await.unwrap();
            let b = timeout(GUARD, second.recv()).await.unwrap();
            assert!((1..=2).contains(&a), "{a}");
            assert_eq!(a, b);
        });
    });
}

#[test]
fn listening_outside_a_runtime_or_to_sigkill_is_an_error() {
    assert!(signal::signal(SignalKind::interrupt()).is_err());
    Flavour::Current.build().block_on(async {
        for signo in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, 0, 10_000] {
            let err = signal::signal(SignalKind::from_raw(signo)).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{signo}");
        }
    });
}

#[test]
fn listeners_on_several_kqueues_all_see_each_delivery() {
    // Two listeners on a multi-thread runtime, one made off the workers and one on a worker
    // (both in its home kqueue, one hub), and one on a current-thread runtime on another
    // thread (its own kqueue, its own hub): each sees each delivery.
    in_child("listeners_on_several_kqueues_all_see_each_delivery", || {
        let rt = Flavour::Multi4.build();
        for round in 0..50 {
            let (c_ready_tx, c_ready_rx) = std::sync::mpsc::channel();
            let c = std::thread::spawn(move || {
                Flavour::Current.build().block_on(async {
                    let mut c = signal::signal(SignalKind::user_defined1()).unwrap();
                    c_ready_tx.send(()).unwrap();
                    timeout(GUARD, c.recv()).await
                })
            });
            c_ready_rx.recv().unwrap();
            rt.block_on(here_and_in_a_task_see_one_sigusr1(&format!(
                "round {round}"
            )));
            assert_eq!(c.join().unwrap(), Ok(1), "round {round}: c");
        }
    });
}
