//! JoinHandle and JoinError: output, abort, detach, panics.

mod common;

use std::future::pending;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{each, on, watchdog, DropGuard, Flavour};
use knote_executor::runtime::Builder;
use knote_executor::sync::oneshot;
use knote_executor::task::yield_now;
use knote_executor::time::sleep;
use knote_executor::{spawn, JoinError};

#[test]
#[cfg_attr(miri, ignore)]
fn output_and_is_finished() {
    each(|rt, _| {
        let (tx, rx) = oneshot::channel::<()>();
        let h = rt.spawn(async move {
            rx.await.unwrap();
            "done"
        });
        rt.block_on(async {
            for _ in 0..10 {
                yield_now().await;
            }
        });
        assert!(!h.is_finished(), "waits for the oneshot");
        tx.send(()).unwrap();
        assert_eq!(rt.block_on(h).unwrap(), "done");

        let h = rt.spawn(async { 3 });
        common::wait_until(Duration::from_secs(5), "task to finish", || {
            // Drive a current-thread runtime meanwhile.
            rt.block_on(yield_now());
            h.is_finished()
        });
        assert_eq!(rt.block_on(h).unwrap(), 3);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn abort_pending_task_drops_its_future() {
    each(|rt, _| {
        let (guard, dropped) = DropGuard::new();
        let started = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&started);
        let h = rt.spawn(async move {
            let _guard = guard;
            s.store(true, Ordering::SeqCst);
            pending::<()>().await;
        });
        rt.block_on(async {
            while !started.load(Ordering::SeqCst) {
                sleep(Duration::from_millis(1)).await;
            }
        });
        assert!(!dropped.load(Ordering::SeqCst));
        h.abort();
        let err = rt.block_on(h).expect_err("aborted");
        assert!(err.is_cancelled());
        assert!(!err.is_panic());
        assert!(
            dropped.load(Ordering::SeqCst),
            "the future's destructor ran"
        );
        assert_eq!(rt.handle().live_tasks(), 0);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
#[allow(clippy::async_yields_async)] // the block_on future hands the JoinHandle out on purpose
fn abort_before_first_poll() {
    each(|rt, _| {
        let (guard, dropped) = DropGuard::new();
        let polled = Arc::new(AtomicBool::new(false));
        let p = Arc::clone(&polled);
        let h = rt.block_on(async move {
            let h = spawn(async move {
                let _guard = guard;
                p.store(true, Ordering::SeqCst);
            });
            // Same poll: a current-thread runtime has not run it yet.
            h.abort();
            h
        });
        // On a multi-thread runtime a worker may have run it to completion before the abort.
        match rt.block_on(h) {
            Ok(()) => assert!(polled.load(Ordering::SeqCst)),
            Err(e) => assert!(e.is_cancelled()),
        }
        assert!(dropped.load(Ordering::SeqCst));
    });
    // On a current-thread runtime it is certain that the task never ran.
    watchdog(|| {
        let rt = Builder::new_current_thread().build().unwrap();
        let polled = Arc::new(AtomicBool::new(false));
        let p = Arc::clone(&polled);
        let h = rt.spawn(async move { p.store(true, Ordering::SeqCst) });
        h.abort();
        assert!(rt.block_on(h).unwrap_err().is_cancelled());
        assert!(
            !polled.load(Ordering::SeqCst),
            "an aborted task is never polled"
        );
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn abort_finished_task_keeps_output() {
    each(|rt, _| {
        let h = rt.spawn(async { 11 });
        while !h.is_finished() {
            rt.block_on(sleep(Duration::from_millis(1)));
        }
        h.abort();
        h.abort();
        assert_eq!(rt.block_on(h).unwrap(), 11);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn abort_task_running_on_another_worker() {
    on(&[Flavour::Multi4, Flavour::Multi1], |rt, _| {
        let (guard, dropped) = DropGuard::new();
        let spins = Arc::new(AtomicUsize::new(0));
        let s = Arc::clone(&spins);
        let h = rt.spawn(async move {
            let _guard = guard;
            loop {
                s.fetch_add(1, Ordering::SeqCst);
                yield_now().await;
            }
        });
        // Abort from this (non-worker) thread while it spins on a worker.
        common::wait_until(Duration::from_secs(5), "the task to spin", || {
            spins.load(Ordering::SeqCst) > 100
        });
        h.abort();
        let err = common::block_on_plain(h, Duration::from_secs(10)).unwrap_err();
        assert!(err.is_cancelled());
        assert!(dropped.load(Ordering::SeqCst));
        let before = spins.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(spins.load(Ordering::SeqCst), before, "it no longer runs");
        assert_eq!(rt.handle().live_tasks(), 0);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn abort_from_another_task_and_from_many_threads() {
    each(|rt, _| {
        let count = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..64)
            .map(|_| {
                let g = DropGuard::counting(&count);
                rt.spawn(async move {
                    let _g = g;
                    sleep(Duration::from_secs(3600)).await;
                })
            })
            .collect();
        let handles = Arc::new(handles);
        // Half aborted by a task, half by plain threads.
        let hs = Arc::clone(&handles);
        rt.block_on(rt.spawn(async move {
            for h in hs.iter().take(32) {
                h.abort();
            }
        }))
        .unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let hs = Arc::clone(&handles);
                std::thread::spawn(move || {
                    for h in hs.iter().skip(32 + t * 8).take(8) {
                        h.abort();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let handles = Arc::try_unwrap(handles).unwrap();
        rt.block_on(async {
            for h in handles {
                assert!(h.await.unwrap_err().is_cancelled());
            }
        });
        assert_eq!(count.load(Ordering::SeqCst), 64);
        assert_eq!(rt.handle().live_tasks(), 0);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn dropping_the_handle_detaches() {
    each(|rt, _| {
        let done = Arc::new(AtomicBool::new(false));
        let d = Arc::clone(&done);
        let (tx, rx) = oneshot::channel::<()>();
        drop(rt.spawn(async move {
            sleep(Duration::from_millis(5)).await;
            d.store(true, Ordering::SeqCst);
            tx.send(()).unwrap();
        }));
        rt.block_on(rx).unwrap();
        assert!(done.load(Ordering::SeqCst));
        // And a detached task that spawns its own detached work.
        let (tx, rx) = oneshot::channel::<u32>();
        drop(rt.spawn(async move {
            drop(spawn(async move {
                yield_now().await;
                tx.send(5).unwrap();
            }));
        }));
        assert_eq!(rt.block_on(rx).unwrap(), 5);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn panic_payload_str_and_string() {
    each(|rt, _| {
        let err = rt
            .block_on(rt.spawn(async {
                if true {
                    panic!("boom");
                }
            }))
            .unwrap_err();
        assert!(err.is_panic());
        assert!(!err.is_cancelled());
        assert_eq!(err.to_string(), "task panicked with message \"boom\"");
        assert!(format!("{err:?}").contains("boom"));
        let payload = err.into_panic();
        assert_eq!(*payload.downcast_ref::<&str>().unwrap(), "boom");

        let err = rt
            .block_on(rt.spawn(async {
                yield_now().await;
                // A runtime value: a formatted message (literal arguments would be folded
                // into a `&'static str` payload by the compiler).
                let n = std::hint::black_box(42);
                if n > 0 {
                    panic!("boom {n}");
                }
            }))
            .unwrap_err();
        assert_eq!(err.to_string(), "task panicked with message \"boom 42\"");
        let payload = err.try_into_panic().unwrap();
        assert_eq!(payload.downcast_ref::<String>().unwrap(), "boom 42");

        let err = rt
            .block_on(rt.spawn(async {
                std::panic::panic_any(17u32);
            }))
            .unwrap_err();
        assert_eq!(err.to_string(), "task panicked");
        assert_eq!(*err.into_panic().downcast_ref::<u32>().unwrap(), 17);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn cancelled_join_error() {
    watchdog(|| {
        let rt = Builder::new_current_thread().build().unwrap();
        let h = rt.spawn(pending::<()>());
        h.abort();
        let err: JoinError = rt.block_on(h).unwrap_err();
        assert_eq!(err.to_string(), "task was cancelled");
        assert_eq!(format!("{err:?}"), "JoinError::Cancelled");
        let err = err.try_into_panic().expect_err("not a panic");
        assert!(err.is_cancelled());
        let io: std::io::Error = err.into();
        assert!(io.to_string().contains("cancelled"));
        let h = rt.spawn(pending::<()>());
        h.abort();
        let err = rt.block_on(h).unwrap_err();
        assert!(
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| err.into_panic())).is_err()
        );
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn panicking_tasks_do_not_take_down_the_runtime() {
    each(|rt, _| {
        let survivors = Arc::new(AtomicUsize::new(0));
        let (guard, dropped) = DropGuard::new();
        let results = rt.block_on(async {
            let mut hs = Vec::new();
            for i in 0..40u32 {
                let survivors = Arc::clone(&survivors);
                hs.push(spawn(async move {
                    yield_now().await;
                    if i % 2 == 0 {
                        panic!("task {i} fails");
                    }
                    survivors.fetch_add(1, Ordering::SeqCst);
                }));
            }
            // A panic whose future holds a guard: the guard is dropped during unwinding.
            hs.push(spawn(async move {
                let _g = guard;
                yield_now().await;
                panic!("with guard");
            }));
            let mut panics = 0;
            for h in hs {
                if let Err(e) = h.await {
                    assert!(e.is_panic());
                    panics += 1;
                }
            }
            panics
        });
        assert_eq!(results, 21);
        assert_eq!(survivors.load(Ordering::SeqCst), 20);
        assert!(dropped.load(Ordering::SeqCst));
        // Still usable: new tasks, timers, blocking work.
        let v = rt.block_on(async {
            sleep(Duration::from_millis(2)).await;
            let a = spawn(async { 1 }).await.unwrap();
            let b = knote_executor::spawn_blocking(|| 2).await.unwrap();
            a + b
        });
        assert_eq!(v, 3);
        assert_eq!(rt.handle().live_tasks(), 0);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn panic_in_block_on_future_propagates_and_runtime_survives() {
    each(|rt, _| {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(async {
                yield_now().await;
                panic!("main future");
            })
        }));
        assert!(r.is_err());
        assert_eq!(rt.block_on(rt.spawn(async { 4 })).unwrap(), 4);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn panicking_destructor_is_contained() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("destructor panics");
        }
    }
    each(|rt, _| {
        let h = rt.spawn(async {
            let _p = PanicOnDrop;
            pending::<()>().await;
        });
        rt.block_on(async {
            for _ in 0..5 {
                yield_now().await;
            }
        });
        h.abort();
        assert!(rt.block_on(h).unwrap_err().is_cancelled());
        assert_eq!(rt.block_on(rt.spawn(async { 1 })).unwrap(), 1);
    });
}

/// An abort that lands while the task returns `Pending` from its first poll (when it files
/// itself in the registry): the abort's store and the task's store must not miss each other
/// (store buffering left 1 of ~28k such handles unresolved). The interleaving is rare; the
/// loom model `abort_against_register_idle` checks it exhaustively, this checks the real thing.
#[test]
#[cfg_attr(miri, ignore)]
fn abort_at_the_first_pending_always_resolves() {
    watchdog(|| {
        let rt = Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let rounds = if cfg!(debug_assertions) {
            5_000
        } else {
            30_000
        };
        let mut handles = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let started = Arc::new(AtomicBool::new(false));
            let s = Arc::clone(&started);
            let h = rt.spawn(async move {
                s.store(true, Ordering::SeqCst);
                pending::<()>().await;
            });
            while !started.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
            h.abort();
            handles.push(h);
        }
        rt.block_on(async {
            for h in handles {
                assert!(h.await.unwrap_err().is_cancelled());
            }
        });
    });
}
