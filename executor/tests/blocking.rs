//! The blocking pool.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{each, wait_until, watchdog};
use knote_executor::runtime::Builder;
use knote_executor::{spawn_blocking, Handle};

#[test]
#[cfg_attr(miri, ignore)]
fn returns_its_value() {
    each(|rt, _| {
        assert_eq!(rt.block_on(rt.spawn_blocking(|| 6 * 7)).unwrap(), 42);
        let v = rt.block_on(async {
            let a = spawn_blocking(|| String::from("from the pool"))
                .await
                .unwrap();
            let b = Handle::current().spawn_blocking(|| 1).await.unwrap();
            (a, b)
        });
        assert_eq!(v, (String::from("from the pool"), 1));
        // The pool's threads are in the runtime's context.
        let in_ctx = rt
            .block_on(rt.spawn_blocking(|| Handle::try_current().is_ok()))
            .unwrap();
        assert!(in_ctx);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn blocking_closure_can_block_on_tasks() {
    // A blocking closure that spawns a task and waits for it with a plain thread park.
    each(|rt, _| {
        let v = rt
            .block_on(rt.spawn_blocking(|| {
                let h = knote_executor::spawn(async { 5 });
                common::block_on_plain(h, Duration::from_secs(10)).unwrap()
            }))
            .unwrap();
        assert_eq!(v, 5);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn panic_becomes_a_join_error() {
    each(|rt, _| {
        let err = rt
            .block_on(rt.spawn_blocking(|| -> u8 { panic!("blocking boom") }))
            .unwrap_err();
        assert!(err.is_panic());
        assert_eq!(
            *err.into_panic().downcast_ref::<&str>().unwrap(),
            "blocking boom"
        );
        // The pool still works (the thread survived or was replaced).
        assert_eq!(rt.block_on(rt.spawn_blocking(|| 1)).unwrap(), 1);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn max_blocking_threads_bounds_concurrency() {
    watchdog(|| {
        let rt = Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(2)
            .build()
            .unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let max_threads = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (running, max, max_threads) = (
                    Arc::clone(&running),
                    Arc::clone(&max),
                    Arc::clone(&max_threads),
                );
                let handle = rt.handle().clone();
                rt.spawn_blocking(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(now, Ordering::SeqCst);
                    max_threads.fetch_max(handle.blocking_threads(), Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                    i
                })
            })
            .collect();
        let out = rt.block_on(async {
            let mut out = Vec::new();
            for h in handles {
                out.push(h.await.unwrap());
            }
            out
        });
        assert_eq!(out, (0..8).collect::<Vec<_>>());
        let max = max.load(Ordering::SeqCst);
        assert!(
            max <= 2,
            "{max} closures ran at once with max_blocking_threads(2)"
        );
        assert_eq!(max, 2, "two threads should have been used");
        assert!(max_threads.load(Ordering::SeqCst) <= 2);
        assert!(rt.handle().blocking_threads() <= 2);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn one_thread_runs_closures_in_order() {
    watchdog(|| {
        let rt = Builder::new_current_thread()
            .max_blocking_threads(1)
            .build()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let hs: Vec<_> = (0..10)
            .map(|i| {
                let log = Arc::clone(&log);
                rt.spawn_blocking(move || log.lock().unwrap().push(i))
            })
            .collect();
        rt.block_on(async {
            for h in hs {
                h.await.unwrap();
            }
        });
        assert_eq!(*log.lock().unwrap(), (0..10).collect::<Vec<_>>());
        assert_eq!(rt.handle().blocking_threads(), 1);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn idle_threads_retire_after_keep_alive() {
    watchdog(|| {
        let keep_alive = Duration::from_millis(50);
        let rt = Builder::new_current_thread()
            .thread_keep_alive(keep_alive)
            .build()
            .unwrap();
        assert_eq!(
            rt.handle().blocking_threads(),
            0,
            "no thread before any work"
        );
        let finished_at = rt.block_on(rt.spawn_blocking(Instant::now)).unwrap();
        wait_until(Duration::from_secs(5), "the idle thread to retire", || {
            rt.handle().blocking_threads() == 0
        });
        assert!(
            finished_at.elapsed() >= keep_alive,
            "the thread retired before keep_alive"
        );
        // A new closure starts a new thread.
        assert_eq!(rt.block_on(rt.spawn_blocking(|| 3)).unwrap(), 3);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn abort_a_queued_closure() {
    watchdog(|| {
        let rt = Builder::new_current_thread()
            .max_blocking_threads(1)
            .build()
            .unwrap();
        let release = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        let (r, s) = (Arc::clone(&release), Arc::clone(&started));
        let busy = rt.spawn_blocking(move || {
            s.store(true, Ordering::SeqCst);
            while !r.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            "busy done"
        });
        wait_until(Duration::from_secs(5), "busy to start", || {
            started.load(Ordering::SeqCst)
        });
        let ran = Arc::new(AtomicBool::new(false));
        let ran2 = Arc::clone(&ran);
        let queued = rt.spawn_blocking(move || ran2.store(true, Ordering::SeqCst));
        queued.abort();
        // Aborting the running one has no effect: it cannot be interrupted.
        busy.abort();
        release.store(true, Ordering::SeqCst);
        let err = rt.block_on(queued).unwrap_err();
        assert!(err.is_cancelled());
        assert!(!ran.load(Ordering::SeqCst), "an aborted closure never runs");
        let busy = rt.block_on(busy);
        // Either it finished (abort came too late) or it was marked cancelled after the
        // fact; it must not hang, and it did run to completion.
        if let Ok(v) = busy {
            assert_eq!(v, "busy done");
        }
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawn_blocking_from_a_plain_thread_via_handle() {
    each(|rt, _| {
        let handle = rt.handle().clone();
        let h = std::thread::spawn(move || handle.spawn_blocking(|| 99))
            .join()
            .unwrap();
        assert_eq!(rt.block_on(h).unwrap(), 99);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn many_blocking_closures() {
    each(|rt, _| {
        let sum = rt.block_on(async {
            let hs: Vec<_> = (0..200u64).map(|i| spawn_blocking(move || i)).collect();
            let mut sum = 0;
            for h in hs {
                sum += h.await.unwrap();
            }
            sum
        });
        assert_eq!(sum, (0..200).sum::<u64>());
    });
}
