//! No socket is hostage to a stuck worker: the I/O registered by a task reaches the task waiting
//! on it while the registering worker is blocked inside a long poll, through another worker
//! (the one that waits in the runtime's home kqueue, or a sleeper whose alarm brings it there).

mod common;

use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{socket_pair, wait_until, watchdog};
use knote_executor::io::AsyncFd;
use knote_executor::runtime::Builder;
use knote_executor::sync::oneshot;

#[test]
#[cfg_attr(miri, ignore)]
fn events_of_a_stuck_workers_kqueue_reach_their_task() {
    stuck_worker(Duration::ZERO);
}

/// The worker registers its first socket only after the other worker has looked for work and
/// gone back to sleep: the worker ran its task before the runtime had any I/O, so the first
/// registration itself must see the home unattended and arm the sleeper's alarm (once, a
/// sleeper slept without a timeout here, and the event waited for the stuck worker).
#[test]
#[cfg_attr(miri, ignore)]
fn a_worker_that_registers_its_first_socket_late_is_still_watched() {
    stuck_worker(Duration::from_millis(50));
}

/// A task registers a socket (after `before_register` of blocking
/// work), has another task wait for it to become readable, then blocks that worker for 1.5 s;
/// the socket's event must reach the waiting task before that.
fn stuck_worker(before_register: Duration) {
    watchdog(move || {
        let rt = Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let (a, mut b) = socket_pair();
        let blocking = Arc::new(AtomicBool::new(false));
        let block_done = Arc::new(AtomicBool::new(false));
        let (done_tx, done_rx) = std::sync::mpsc::channel::<bool>();
        let (blocking2, block_done2) = (Arc::clone(&blocking), Arc::clone(&block_done));
        rt.spawn(async move {
            std::thread::sleep(before_register);
            // Registered by the worker running this task, which then blocks.
            let fd = AsyncFd::new(a).unwrap();
            let (waiting_tx, waiting_rx) = oneshot::channel::<()>();
            let bd = Arc::clone(&block_done2);
            knote_executor::spawn(async move {
                let mut waiting = Some(waiting_tx);
                let ready = fd.readable();
                let mut ready = std::pin::pin!(ready);
                // First poll: interest registered, then tell the blocker.
                let guard = std::future::poll_fn(|cx| {
                    let p = ready.as_mut().poll(cx);
                    if let Some(tx) = waiting.take() {
                        let _ = tx.send(());
                    }
                    p
                })
                .await;
                drop(guard);
                let _ = done_tx.send(bd.load(Ordering::SeqCst));
            });
            let _ = waiting_rx.await;
            // Now block this worker (and its kqueue) for a long time.
            blocking2.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1500));
            block_done2.store(true, Ordering::SeqCst);
        });
        wait_until(Duration::from_secs(10), "the blocker to start", || {
            blocking.load(Ordering::SeqCst)
        });
        b.write_all(b"x").unwrap();
        let block_was_done = done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the reader never woke");
        assert!(
            !block_was_done,
            "the socket's event waited for the worker stuck in a poll"
        );
        drop(rt);
    });
}
