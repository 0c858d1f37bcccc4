//! Shutdown: every future is dropped, JoinHandles resolve, nothing hangs.

mod common;

use std::future::pending;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{block_on_plain, each, on, wait_until, watchdog, DropGuard, Flavour};
use knote_executor::runtime::Builder;
use knote_executor::sync::{mpsc, oneshot};
use knote_executor::task::yield_now;
use knote_executor::time::sleep;
use knote_executor::{spawn, JoinHandle, LocalRuntime};

const LIMIT: Duration = Duration::from_secs(10);

#[test]
#[cfg_attr(miri, ignore)]
fn drop_cancels_pending_tasks_of_every_kind() {
    each(|rt, _| {
        let dropped = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let mut handles: Vec<JoinHandle<()>> = Vec::new();
        let mut keep_senders = Vec::new();
        // Waiting on channels that never fire (the senders stay alive).
        for _ in 0..10 {
            let (tx, rx) = oneshot::channel::<()>();
            keep_senders.push(tx);
            let (g, s) = (DropGuard::counting(&dropped), Arc::clone(&started));
            handles.push(rt.spawn(async move {
                let _g = g;
                s.fetch_add(1, Ordering::SeqCst);
                let _ = rx.await;
                unreachable!("the sender never sends");
            }));
        }
        let (_mtx, mrx) = mpsc::unbounded::<()>();
        let mut mrx = Some(mrx);
        for _ in 0..1 {
            let (g, s) = (DropGuard::counting(&dropped), Arc::clone(&started));
            let mut rx = mrx.take().unwrap();
            handles.push(rt.spawn(async move {
                let _g = g;
                s.fetch_add(1, Ordering::SeqCst);
                let _ = futures_util::StreamExt::next(&mut rx).await;
            }));
        }
        // Sleeping for an hour.
        for _ in 0..10 {
            let (g, s) = (DropGuard::counting(&dropped), Arc::clone(&started));
            handles.push(rt.spawn(async move {
                let _g = g;
                s.fetch_add(1, Ordering::SeqCst);
                sleep(Duration::from_secs(3600)).await;
            }));
        }
        // A cycle: A awaits B's sender, B awaits A's; nothing else can reach them.
        for _ in 0..5 {
            let (tx_a, rx_a) = oneshot::channel::<()>();
            let (tx_b, rx_b) = oneshot::channel::<()>();
            let (g, s) = (DropGuard::counting(&dropped), Arc::clone(&started));
            handles.push(rt.spawn(async move {
                let _g = g;
                let _keep = tx_a;
                s.fetch_add(1, Ordering::SeqCst);
                let _ = rx_b.await;
            }));
            let (g, s) = (DropGuard::counting(&dropped), Arc::clone(&started));
            handles.push(rt.spawn(async move {
                let _g = g;
                let _keep = tx_b;
                s.fetch_add(1, Ordering::SeqCst);
                let _ = rx_a.await;
            }));
        }
        // Detached ones too.
        for _ in 0..5 {
            let (g, s) = (DropGuard::counting(&dropped), Arc::clone(&started));
            drop(rt.spawn(async move {
                let _g = g;
                s.fetch_add(1, Ordering::SeqCst);
                pending::<()>().await;
            }));
        }
        let total = handles.len() + 5;
        rt.block_on(async {
            while started.load(Ordering::SeqCst) < total {
                sleep(Duration::from_millis(1)).await;
            }
        });
        // Tasks spawned but never polled.
        for _ in 0..5 {
            let g = DropGuard::counting(&dropped);
            handles.push(rt.spawn(async move {
                let _g = g;
                pending::<()>().await;
            }));
        }
        let idle = total;
        let total = total + 5;
        let handle = rt.handle().clone();
        // Tasks enter the registry when they first go idle: the started ones all will (a worker
        // may still be finishing a first poll), the never-polled ones only if a worker gets to
        // them first.
        wait_until(LIMIT, "the started tasks to go idle", || {
            handle.live_tasks() >= idle
        });
        assert!(handle.live_tasks() <= total);
        assert_eq!(dropped.load(Ordering::SeqCst), 0);
        drop(rt);
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            total,
            "every future was dropped"
        );
        assert_eq!(handle.live_tasks(), 0);
        for h in handles {
            assert!(h.is_finished());
            let err = block_on_plain(h, LIMIT).unwrap_err();
            assert!(err.is_cancelled());
        }
        drop(keep_senders);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawn_after_drop_resolves_cancelled() {
    each(|rt, _| {
        let handle = rt.handle().clone();
        drop(rt);
        let (g, dropped) = DropGuard::new();
        let h = handle.spawn(async move {
            let _g = g;
            pending::<()>().await;
        });
        let err = block_on_plain(h, LIMIT).unwrap_err();
        assert!(err.is_cancelled());
        assert!(dropped.load(Ordering::SeqCst));
        // From a plain thread too, and onto the pool.
        let h2 = handle.clone();
        let h = std::thread::spawn(move || h2.spawn(async { 1 }))
            .join()
            .unwrap();
        assert!(block_on_plain(h, LIMIT).unwrap_err().is_cancelled());
        let ran = Arc::new(AtomicBool::new(false));
        let r = Arc::clone(&ran);
        let h = handle.spawn_blocking(move || r.store(true, Ordering::SeqCst));
        assert!(block_on_plain(h, LIMIT).unwrap_err().is_cancelled());
        assert!(!ran.load(Ordering::SeqCst));
        assert_eq!(handle.live_tasks(), 0);
        // Awaited on a new runtime instead.
        let rt2 = Builder::new_current_thread().build().unwrap();
        let h = handle.spawn(async { 2 });
        assert!(rt2.block_on(h).unwrap_err().is_cancelled());
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn wake_after_drop_is_harmless() {
    // Tasks woken (by their channels) after the runtime is gone.
    each(|rt, _| {
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..20 {
            let (tx, rx) = oneshot::channel::<()>();
            senders.push(tx);
            handles.push(rt.spawn(async move {
                let _ = rx.await;
            }));
        }
        rt.block_on(sleep(Duration::from_millis(2)));
        drop(rt);
        for tx in senders {
            let _ = tx.send(());
        }
        for h in handles {
            assert!(block_on_plain(h, LIMIT).unwrap_err().is_cancelled());
        }
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn destructors_that_spawn_or_wake_during_shutdown() {
    struct SpawnOnDrop(Arc<AtomicUsize>);
    impl Drop for SpawnOnDrop {
        fn drop(&mut self) {
            let count = Arc::clone(&self.0);
            // Spawning while the runtime shuts down: the new task is cancelled, its future
            // dropped, and nothing hangs.
            let g = DropGuard::counting(&count);
            let _ = knote_executor::Handle::try_current().map(|h| {
                h.spawn(async move {
                    let _g = g;
                    pending::<()>().await;
                })
            });
        }
    }
    each(|rt, _| {
        let count = Arc::new(AtomicUsize::new(0));
        let mut hs = Vec::new();
        for _ in 0..10 {
            let s = SpawnOnDrop(Arc::clone(&count));
            hs.push(rt.spawn(async move {
                let _s = s;
                pending::<()>().await;
            }));
        }
        rt.block_on(async {
            for _ in 0..10 {
                yield_now().await;
            }
        });
        let handle = rt.handle().clone();
        drop(rt);
        assert_eq!(
            count.load(Ordering::SeqCst),
            10,
            "the tasks spawned on drop were dropped"
        );
        assert_eq!(handle.live_tasks(), 0);
        for h in hs {
            assert!(block_on_plain(h, LIMIT).unwrap_err().is_cancelled());
        }
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn drop_waits_for_running_blocking_closures() {
    each(|rt, _| {
        let started = Arc::new(AtomicBool::new(false));
        let finished = Arc::new(AtomicBool::new(false));
        let (s, f) = (Arc::clone(&started), Arc::clone(&finished));
        let h = rt.spawn_blocking(move || {
            s.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(30));
            f.store(true, Ordering::SeqCst);
            5
        });
        wait_until(LIMIT, "the closure to start", || {
            started.load(Ordering::SeqCst)
        });
        drop(rt);
        assert!(
            finished.load(Ordering::SeqCst),
            "drop returned before the running closure"
        );
        // A started closure completes normally.
        assert_eq!(block_on_plain(h, LIMIT).unwrap(), 5);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn shutdown_timeout_returns_despite_a_stuck_blocking_closure() {
    each(|rt, _| {
        let release = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        let (r, s) = (Arc::clone(&release), Arc::clone(&started));
        let h = rt.spawn_blocking(move || {
            s.store(true, Ordering::SeqCst);
            let deadline = Instant::now() + LIMIT;
            while !r.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        wait_until(LIMIT, "the closure to start", || {
            started.load(Ordering::SeqCst)
        });
        let t = Duration::from_millis(50);
        let start = Instant::now();
        rt.shutdown_timeout(t);
        assert!(start.elapsed() >= t, "returned before the timeout");
        release.store(true, Ordering::SeqCst);
        // The closure was running: it completes.
        block_on_plain(h, LIMIT).unwrap();
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn shutdown_background_does_not_wait() {
    each(|rt, _| {
        let release = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        let (r, s) = (Arc::clone(&release), Arc::clone(&started));
        let h = rt.spawn_blocking(move || {
            s.store(true, Ordering::SeqCst);
            let deadline = Instant::now() + LIMIT;
            while !r.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            7
        });
        wait_until(LIMIT, "the closure to start", || {
            started.load(Ordering::SeqCst)
        });
        let pending_task = rt.spawn(pending::<()>());
        // Returns while the closure is still blocked (the watchdog catches a hang).
        rt.shutdown_background();
        assert!(block_on_plain(pending_task, LIMIT)
            .unwrap_err()
            .is_cancelled());
        release.store(true, Ordering::SeqCst);
        assert_eq!(block_on_plain(h, LIMIT).unwrap(), 7);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn queued_blocking_closures_are_cancelled_at_shutdown() {
    watchdog(|| {
        let rt = Builder::new_current_thread()
            .max_blocking_threads(1)
            .build()
            .unwrap();
        let started = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&started);
        let first = rt.spawn_blocking(move || {
            s.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
        });
        wait_until(LIMIT, "the first closure to start", || {
            started.load(Ordering::SeqCst)
        });
        let ran = Arc::new(AtomicUsize::new(0));
        let queued: Vec<_> = (0..5)
            .map(|_| {
                let ran = Arc::clone(&ran);
                rt.spawn_blocking(move || {
                    ran.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        drop(rt);
        block_on_plain(first, LIMIT).unwrap();
        for h in queued {
            // Either it had been taken by the thread before shutdown, or it was cancelled.
            match block_on_plain(h, LIMIT) {
                Ok(()) => {}
                Err(e) => assert!(e.is_cancelled()),
            }
        }
        assert!(ran.load(Ordering::SeqCst) <= 5);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn shutdown_timeout_with_a_task_stuck_in_its_poll() {
    // A task blocks inside its poll (a bug in user code, but it happens) past the shutdown
    // timeout, then asks to be polled again. Shutdown gives up waiting for the worker; when
    // the poll finally returns, the task must still be cancelled: its future dropped, its
    // JoinHandle resolved, the runtime's count of live tasks back to 0.
    on(&[Flavour::Multi1, Flavour::Multi4], |rt, _| {
        let (g, dropped) = DropGuard::new();
        let in_poll = Arc::new(AtomicBool::new(false));
        let ip = Arc::clone(&in_poll);
        let h = rt.spawn(async move {
            let _g = g;
            loop {
                ip.store(true, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(200));
                yield_now().await;
            }
        });
        let handle = rt.handle().clone();
        wait_until(LIMIT, "the task to block", || {
            in_poll.load(Ordering::SeqCst)
        });
        rt.shutdown_timeout(Duration::from_millis(20));
        let err = block_on_plain(h, LIMIT).expect_err("cancelled");
        assert!(err.is_cancelled());
        assert!(dropped.load(Ordering::SeqCst), "the future was dropped");
        wait_until(LIMIT, "live_tasks to reach 0", || handle.live_tasks() == 0);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn shutdown_timeout_with_a_task_that_spawns_while_stuck() {
    // Like above, but the stuck poll spawns new tasks once it resumes.
    on(&[Flavour::Multi1, Flavour::Multi4], |rt, _| {
        let dropped = Arc::new(AtomicUsize::new(0));
        let in_poll = Arc::new(AtomicBool::new(false));
        let (ip, d) = (Arc::clone(&in_poll), Arc::clone(&dropped));
        let (tx, rx) = std::sync::mpsc::channel();
        let h = rt.spawn(async move {
            ip.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(200));
            let g = DropGuard::counting(&d);
            let child = spawn(async move {
                let _g = g;
                pending::<()>().await;
            });
            tx.send(child).unwrap();
        });
        let handle = rt.handle().clone();
        wait_until(LIMIT, "the task to block", || {
            in_poll.load(Ordering::SeqCst)
        });
        rt.shutdown_timeout(Duration::from_millis(20));
        // The parent finishes its poll after shutdown: it completes (or is cancelled).
        let _ = block_on_plain(h, LIMIT);
        let child = rx.recv_timeout(LIMIT).unwrap();
        let err = block_on_plain(child, LIMIT).expect_err("the child is cancelled");
        assert!(err.is_cancelled());
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
        wait_until(LIMIT, "live_tasks to reach 0", || handle.live_tasks() == 0);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn many_runtimes_built_and_dropped_with_work_in_flight() {
    // Many runtimes created and dropped in a row, each with work in flight: no thread,
    // fd or task survives (checked loosely: this finishes, and each handle is empty).
    watchdog(|| {
        for i in 0..30 {
            let rt = match i % 3 {
                0 => Builder::new_current_thread().build().unwrap(),
                1 => Builder::new_multi_thread()
                    .worker_threads(1)
                    .build()
                    .unwrap(),
                _ => Builder::new_multi_thread()
                    .worker_threads(4)
                    .build()
                    .unwrap(),
            };
            let handle = rt.handle().clone();
            for _ in 0..20 {
                drop(rt.spawn(async {
                    sleep(Duration::from_millis(1)).await;
                    pending::<()>().await;
                }));
            }
            rt.block_on(sleep(Duration::from_millis(1)));
            drop(rt);
            assert_eq!(handle.live_tasks(), 0);
        }
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn local_runtime_shutdown_timeout() {
    watchdog(|| {
        let rt = LocalRuntime::new().unwrap();
        let release = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        let (r, s) = (Arc::clone(&release), Arc::clone(&started));
        let h = rt.handle().spawn_blocking(move || {
            s.store(true, Ordering::SeqCst);
            let deadline = Instant::now() + LIMIT;
            while !r.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let (g, dropped) = DropGuard::new();
        let t = rt.spawn_local(async move {
            let _g = g;
            pending::<()>().await;
        });
        rt.run_until_stalled().unwrap();
        wait_until(LIMIT, "the closure to start", || {
            started.load(Ordering::SeqCst)
        });
        let timeout = Duration::from_millis(30);
        let start = Instant::now();
        rt.shutdown_timeout(timeout);
        assert!(start.elapsed() >= timeout);
        assert!(dropped.load(Ordering::SeqCst));
        assert!(block_on_plain(t, LIMIT).unwrap_err().is_cancelled());
        release.store(true, Ordering::SeqCst);
        block_on_plain(h, LIMIT).unwrap();
    });
}

/// A chain of idle tasks, each holding the sender that wakes the next: dropping task i's
/// future wakes task i + 1. Shutdown must cancel the chain in a loop; cancelling inside the
/// wake-up recursed once per task (a multi-thread runtime overflowed its stack at 100k).
#[test]
#[cfg_attr(miri, ignore)]
fn shutdown_cancels_a_wake_on_drop_chain_iteratively() {
    const N: usize = if cfg!(debug_assertions) {
        100_000
    } else {
        1_000_000
    };
    on(&[Flavour::Current, Flavour::Multi4], |rt, _| {
        let started = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let (first_tx, mut rx) = oneshot::channel::<()>();
        let mut handles = Vec::with_capacity(N);
        for _ in 0..N {
            let (tx, next_rx) = oneshot::channel::<()>();
            let this_rx = std::mem::replace(&mut rx, next_rx);
            let (started, guard) = (Arc::clone(&started), DropGuard::counting(&dropped));
            handles.push(rt.spawn(async move {
                let _guard = guard;
                let _wakes_the_next_on_drop = tx;
                started.fetch_add(1, Ordering::SeqCst);
                let _ = this_rx.await;
            }));
        }
        rt.block_on(async {
            while started.load(Ordering::SeqCst) < N {
                sleep(Duration::from_millis(1)).await;
            }
        });
        let handle = rt.handle().clone();
        wait_until(LIMIT, "every task idle", || handle.live_tasks() == N);
        drop(rt);
        assert_eq!(dropped.load(Ordering::SeqCst), N);
        assert_eq!(handle.live_tasks(), 0);
        drop(first_tx);
        for h in handles.into_iter().step_by(997) {
            assert!(block_on_plain(h, LIMIT).unwrap_err().is_cancelled());
        }
    });
}
