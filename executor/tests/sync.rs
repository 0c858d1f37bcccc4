//! knote::sync on knote's runtimes, with no tokio runtime anywhere: watch-based shutdown,
//! a semaphore limiting concurrency, broadcast fan-out, Notify woken from another thread,
//! a contended Mutex and RwLock.

mod common;

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::thread;

use common::each;
use knote_executor::runtime::Builder;
use knote_executor::spawn;
use knote_executor::sync::{broadcast, watch, Mutex, Notify, RwLock, Semaphore};
use knote_executor::task::yield_now;

#[test]
#[cfg_attr(miri, ignore)]
fn watch_shutdown_stops_every_task() {
    each(|rt, _| {
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let ticks = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let mut rx = shutdown_rx.clone();
                let ticks = Arc::clone(&ticks);
                rt.spawn(async move {
                    if i % 2 == 0 {
                        // A busy worker: checks the flag between units of work.
                        while !*rx.borrow_and_update() {
                            ticks.fetch_add(1, Ordering::Relaxed);
                            yield_now().await;
                        }
                    } else {
                        // An idle worker: parked until the value changes.
                        while !*rx.borrow_and_update() {
                            rx.changed().await.expect("sender alive");
                        }
                    }
                })
            })
            .collect();
        rt.block_on(async {
            // Let the workers run for a while, then signal shutdown.
            while ticks.load(Ordering::Relaxed) < 60 {
                yield_now().await;
            }
            shutdown_tx.send(true).expect("receivers alive");
            for h in handles {
                h.await.expect("worker returns after shutdown");
            }
        });
        assert_eq!(
            shutdown_tx.receiver_count(),
            1,
            "every worker dropped its receiver"
        );
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn watch_sender_dropped_ends_changed() {
    each(|rt, _| {
        let (tx, mut rx) = watch::channel(0u32);
        let waiter = rt.spawn(async move {
            let mut seen = Vec::new();
            while rx.changed().await.is_ok() {
                seen.push(*rx.borrow_and_update());
            }
            seen
        });
        rt.block_on(async move {
            for v in 1..=3 {
                tx.send(v).unwrap();
                // Give the waiter a chance to see each value (it may coalesce some).
                for _ in 0..4 {
                    yield_now().await;
                }
            }
            drop(tx);
            let seen = waiter.await.unwrap();
            assert_eq!(
                seen.last(),
                Some(&3),
                "the last value is always seen: {seen:?}"
            );
        });
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn semaphore_limits_concurrency() {
    const LIMIT: usize = 3;
    const TASKS: usize = 10;
    each(|rt, _| {
        let sem = Arc::new(Semaphore::new(LIMIT));
        let active = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let (release_tx, release_rx) = watch::channel(false);
        let handles: Vec<_> = (0..TASKS)
            .map(|_| {
                let sem = Arc::clone(&sem);
                let active = Arc::clone(&active);
                let max = Arc::clone(&max);
                let mut release = release_rx.clone();
                rt.spawn(async move {
                    let _permit = sem.acquire().await.expect("semaphore open");
                    let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(now, Ordering::SeqCst);
                    release.wait_for(|go| *go).await.expect("sender alive");
                    active.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        rt.block_on(async {
            let mut rounds = 0;
            while active.load(Ordering::SeqCst) < LIMIT {
                rounds += 1;
                assert!(rounds < 1_000_000, "permits never all taken");
                yield_now().await;
            }
            // Holders wait for the release: nobody else may get in meanwhile.
            for _ in 0..200 {
                yield_now().await;
            }
            assert_eq!(active.load(Ordering::SeqCst), LIMIT);
            assert_eq!(sem.available_permits(), 0);
            release_tx.send(true).unwrap();
            for h in handles {
                h.await.unwrap();
            }
        });
        assert_eq!(
            max.load(Ordering::SeqCst),
            LIMIT,
            "never more than LIMIT at once"
        );
        assert_eq!(sem.available_permits(), LIMIT, "every permit returned");
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn broadcast_reaches_every_receiver() {
    each(|rt, _| {
        let (tx, _) = broadcast::channel::<u32>(16);
        let receivers: Vec<_> = (0..4)
            .map(|_| {
                let mut rx = tx.subscribe();
                rt.spawn(async move {
                    let mut got = Vec::new();
                    loop {
                        match rx.recv().await {
                            Ok(v) => got.push(v),
                            Err(broadcast::error::RecvError::Closed) => return got,
                            Err(e) => panic!("receiver lagged: {e}"),
                        }
                    }
                })
            })
            .collect();
        rt.block_on(async move {
            for v in 0..10 {
                assert_eq!(tx.send(v).unwrap(), 4, "four subscribers");
                yield_now().await;
            }
            drop(tx);
            for h in receivers {
                assert_eq!(h.await.unwrap(), (0..10).collect::<Vec<_>>());
            }
        });
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn broadcast_lagging_receiver_is_told() {
    each(|rt, _| {
        rt.block_on(async {
            let (tx, mut rx) = broadcast::channel::<u32>(2);
            for v in 0..5 {
                tx.send(v).unwrap();
            }
            match rx.recv().await {
                Err(broadcast::error::RecvError::Lagged(n)) => assert_eq!(n, 3),
                other => panic!("expected Lagged(3), got {other:?}"),
            }
            assert_eq!(rx.recv().await.unwrap(), 3);
            assert_eq!(rx.recv().await.unwrap(), 4);
        });
    });
}

/// A task parked on `Notify` on a current-thread runtime is woken by `notify_one` from a
/// plain thread (the wake crosses threads into the runtime's kqueue).
#[test]
#[cfg_attr(miri, ignore)]
fn notify_from_another_thread_wakes_current_thread_task() {
    common::watchdog(|| {
        let rt = Builder::new_current_thread().build().unwrap();
        let notify = Arc::new(Notify::new());
        let (waiting_tx, waiting_rx) = std_mpsc::channel::<()>();
        let task = rt.spawn({
            let notify = Arc::clone(&notify);
            async move {
                let notified = notify.notified();
                let mut notified = pin!(notified);
                // Registered as a waiter before the other thread is told to notify.
                notified.as_mut().enable();
                waiting_tx.send(()).unwrap();
                notified.await;
                "woken"
            }
        });
        let notifier = thread::spawn({
            let notify = Arc::clone(&notify);
            move || {
                waiting_rx.recv().expect("task registered");
                notify.notify_one();
            }
        });
        assert_eq!(rt.block_on(task).unwrap(), "woken");
        notifier.join().unwrap();
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn notify_waiters_wakes_all_tasks() {
    each(|rt, flavour| {
        let notify = Arc::new(Notify::new());
        let registered = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..5)
            .map(|_| {
                let notify = Arc::clone(&notify);
                let registered = Arc::clone(&registered);
                rt.spawn(async move {
                    let notified = notify.notified();
                    let mut notified = pin!(notified);
                    notified.as_mut().enable();
                    registered.fetch_add(1, Ordering::SeqCst);
                    notified.await;
                })
            })
            .collect();
        rt.block_on(async {
            let mut rounds = 0;
            while registered.load(Ordering::SeqCst) < 5 {
                rounds += 1;
                assert!(rounds < 1_000_000, "tasks never registered ({flavour:?})");
                yield_now().await;
            }
            notify.notify_waiters();
            for h in handles {
                h.await.unwrap();
            }
        });
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn mutex_held_across_await_serializes_tasks() {
    each(|rt, _| {
        // A plain counter behind the lock, read and written across an await.
        let counter = Arc::new(Mutex::new(0u64));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let counter = Arc::clone(&counter);
                rt.spawn(async move {
                    for _ in 0..50 {
                        let mut guard = counter.lock().await;
                        let seen = *guard;
                        yield_now().await;
                        *guard = seen + 1;
                    }
                })
            })
            .collect();
        rt.block_on(async {
            for h in handles {
                h.await.unwrap();
            }
            assert_eq!(*counter.lock().await, 400);
        });
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn rwlock_readers_share_writers_exclude() {
    each(|rt, _| {
        let lock = Arc::new(RwLock::new(Vec::<u32>::new()));
        rt.block_on(async {
            let r1 = lock.read().await;
            let r2 = lock.read().await;
            assert!(lock.try_write().is_err(), "readers exclude a writer");
            drop((r1, r2));
            let writers: Vec<_> = (0..4)
                .map(|i| {
                    let lock = Arc::clone(&lock);
                    spawn(async move {
                        let mut w = lock.write().await;
                        let len = w.len();
                        yield_now().await;
                        assert_eq!(w.len(), len, "no one else wrote meanwhile");
                        w.push(i);
                    })
                })
                .collect();
            for h in writers {
                h.await.unwrap();
            }
            let mut got = lock.read().await.clone();
            got.sort_unstable();
            assert_eq!(got, vec![0, 1, 2, 3]);
        });
    });
}
