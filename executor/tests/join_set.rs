//! JoinSet, AbortHandle and task ids.

mod common;

use std::collections::HashSet;
use std::future::pending;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{each, on, DropGuard, Flavour};
use knote_executor::runtime::Builder;
use knote_executor::sync::oneshot;
use knote_executor::task::{self, yield_now, JoinSet};

/// Results come out in the order the tasks finish (each finish is caused by the test, one at a
/// time), not the order they were spawned.
#[test]
#[cfg_attr(miri, ignore)]
fn results_come_in_completion_order() {
    each(|rt, _| {
        rt.block_on(async {
            let mut set = JoinSet::new();
            let mut senders = Vec::new();
            for i in 0..5u32 {
                let (tx, rx) = oneshot::channel::<()>();
                senders.push(Some(tx));
                set.spawn(async move {
                    rx.await.unwrap();
                    i
                });
            }
            assert_eq!(set.len(), 5);
            for i in [3usize, 1, 4, 0, 2] {
                senders[i].take().unwrap().send(()).unwrap();
                assert_eq!(set.join_next().await.unwrap().unwrap(), i as u32);
            }
            assert!(set.is_empty());
            assert!(set.join_next().await.is_none(), "an empty set ends");
        });
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn many_tasks_all_joined() {
    each(|rt, _| {
        rt.block_on(async {
            let mut set = JoinSet::new();
            for i in 0..2_000u64 {
                set.spawn(async move {
                    if i % 3 == 0 {
                        yield_now().await;
                    }
                    i
                });
            }
            let mut sum = 0;
            let mut n = 0;
            while let Some(r) = set.join_next().await {
                sum += r.unwrap();
                n += 1;
            }
            assert_eq!(n, 2_000);
            assert_eq!(sum, 1_999 * 2_000 / 2);
        });
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn abort_all_gives_cancelled_errors() {
    each(|rt, _| {
        rt.block_on(async {
            let mut set = JoinSet::new();
            let mut ids = HashSet::new();
            for _ in 0..4 {
                ids.insert(set.spawn(pending::<()>()).id());
            }
            // One that finishes before the abort keeps its result.
            let (tx, rx) = oneshot::channel();
            set.spawn(async move {
                tx.send(()).unwrap();
            });
            rx.await.unwrap();
            for _ in 0..10 {
                yield_now().await;
            }
            set.abort_all();
            let mut cancelled = HashSet::new();
            let mut ok = 0;
            while let Some(r) = set.join_next_with_id().await {
                match r {
                    Ok(_) => ok += 1,
                    Err(e) => {
                        assert!(e.is_cancelled(), "{e}");
                        cancelled.insert(e.id());
                    }
                }
            }
            assert_eq!(ok, 1);
            assert_eq!(cancelled, ids, "each pending task cancelled, by id");
        });
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn dropping_the_set_aborts_its_tasks() {
    each(|rt, _| {
        let dropped = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let mut set = JoinSet::new();
            for _ in 0..6 {
                let guard = DropGuard::counting(&dropped);
                let started = Arc::clone(&started);
                set.spawn(async move {
                    let _guard = guard;
                    started.fetch_add(1, Ordering::SeqCst);
                    pending::<()>().await
                });
            }
            let mut rounds = 0;
            while started.load(Ordering::SeqCst) < 6 {
                rounds += 1;
                assert!(rounds < 1_000_000, "tasks never started");
                yield_now().await;
            }
            drop(set);
            let mut rounds = 0;
            while dropped.load(Ordering::SeqCst) < 6 {
                rounds += 1;
                assert!(rounds < 1_000_000, "dropping the set left futures alive");
                yield_now().await;
            }
        });
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn detach_all_lets_tasks_run_on() {
    each(|rt, _| {
        rt.block_on(async {
            let mut set = JoinSet::new();
            let (tx, rx) = oneshot::channel::<()>();
            let (done_tx, done_rx) = oneshot::channel();
            set.spawn(async move {
                rx.await.unwrap();
                done_tx.send(()).unwrap();
            });
            set.detach_all();
            assert!(set.is_empty());
            drop(set);
            tx.send(()).unwrap();
            done_rx.await.expect("the detached task finished");
        });
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn shutdown_drops_every_future_and_empties_the_set() {
    each(|rt, _| {
        let dropped = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let mut set = JoinSet::new();
            for _ in 0..5 {
                let guard = DropGuard::counting(&dropped);
                set.spawn(async move {
                    let _guard = guard;
                    pending::<()>().await
                });
            }
            set.shutdown().await;
            assert!(set.is_empty());
            assert_eq!(dropped.load(Ordering::SeqCst), 5);
        });
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn panics_surface_as_join_errors() {
    each(|rt, _| {
        rt.block_on(async {
            let mut set = JoinSet::new();
            let id = set.spawn(async { panic!("boom") }).id();
            let err = set.join_next().await.unwrap().unwrap_err();
            assert!(err.is_panic());
            assert_eq!(err.id(), id);
            assert!(err.to_string().contains("boom"), "{err}");
        });
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn try_join_next_does_not_wait() {
    each(|rt, _| {
        rt.block_on(async {
            let mut set: JoinSet<u32> = JoinSet::new();
            assert!(set.try_join_next().is_none(), "empty");
            let (tx, rx) = oneshot::channel::<()>();
            set.spawn(async move {
                rx.await.unwrap();
                9
            });
            for _ in 0..20 {
                yield_now().await;
                assert!(set.try_join_next().is_none(), "not finished yet");
            }
            tx.send(()).unwrap();
            let mut rounds = 0;
            let got = loop {
                if let Some(r) = set.try_join_next() {
                    break r.unwrap();
                }
                rounds += 1;
                assert!(rounds < 1_000_000, "finished task never seen");
                yield_now().await;
            };
            assert_eq!(got, 9);
            assert!(set.is_empty());
        });
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawn_local_tasks_join_on_current_thread() {
    on(&[Flavour::Current], |rt, _| {
        rt.block_on(async {
            let mut set = JoinSet::new();
            let shared = Rc::new(std::cell::Cell::new(0));
            for i in 1..=4 {
                let shared = Rc::clone(&shared);
                set.spawn_local(async move {
                    yield_now().await;
                    shared.set(shared.get() + i);
                    Rc::new(i)
                });
            }
            let mut total = 0;
            while let Some(r) = set.join_next().await {
                total += *r.unwrap();
            }
            assert_eq!(total, 10);
            assert_eq!(shared.get(), 10);
        });
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawn_on_and_blocking_members() {
    each(|rt, _| {
        let handle = rt.handle().clone();
        rt.block_on(async move {
            let mut set = JoinSet::new();
            set.spawn_on(async { 1 }, &handle);
            set.spawn_blocking(|| 2);
            let mut got = Vec::new();
            while let Some(r) = set.join_next().await {
                got.push(r.unwrap());
            }
            got.sort_unstable();
            assert_eq!(got, vec![1, 2]);
        });
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn abort_handle_from_another_thread_cancels() {
    each(|rt, _| {
        let (guard, dropped) = DropGuard::new();
        let h = rt.spawn(async move {
            let _guard = guard;
            pending::<()>().await
        });
        let abort = h.abort_handle();
        assert_eq!(abort.id(), h.id());
        assert!(!abort.is_finished());
        std::thread::spawn(move || abort.abort()).join().unwrap();
        let err = rt.block_on(h).unwrap_err();
        assert!(err.is_cancelled());
        assert!(dropped.load(Ordering::SeqCst));
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn abort_handle_outlives_its_task() {
    each(|rt, _| {
        let h = rt.spawn(async { 5 });
        let abort = h.abort_handle();
        assert_eq!(rt.block_on(h).unwrap(), 5);
        assert!(abort.is_finished());
        // The task is gone and its JoinHandle too: aborting is a no-op, not a crash.
        abort.abort();
        let again = abort.clone();
        drop(abort);
        assert!(again.is_finished());
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn task_ids_match_inside_and_outside_and_are_unique() {
    each(|rt, _| {
        assert!(task::try_id().is_none(), "no task on a plain thread");
        rt.block_on(async {
            assert!(task::try_id().is_none(), "block_on's own future is no task");
            let mut set = JoinSet::new();
            let mut outside = HashSet::new();
            for _ in 0..50 {
                outside.insert(set.spawn(async { task::id() }).id());
            }
            assert_eq!(outside.len(), 50, "ids are unique");
            let mut inside = HashSet::new();
            while let Some(r) = set.join_next_with_id().await {
                let (id, seen) = r.unwrap();
                assert_eq!(id, seen, "task::id() inside is the handle's id");
                inside.insert(seen);
            }
            assert_eq!(inside, outside);
            let h = knote_executor::spawn(async {
                let before = task::id();
                yield_now().await;
                assert_eq!(task::id(), before, "stable across polls");
                before
            });
            let id = h.id();
            assert_eq!(h.await.unwrap(), id);
            assert_eq!(format!("{id}"), id.as_u64().to_string());
            assert_eq!(format!("{id:?}"), format!("Id({})", id.as_u64()));
        });
        let r = catch_unwind(AssertUnwindSafe(task::id));
        assert!(r.is_err(), "task::id() outside a task panics");
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn join_set_wakes_the_owner_from_a_plain_thread() {
    common::watchdog(|| {
        let rt = Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let mut set = JoinSet::new();
            let (tx, rx) = oneshot::channel::<u8>();
            set.spawn(async move { rx.await.unwrap() });
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                tx.send(4).unwrap();
            });
            assert_eq!(set.join_next().await.unwrap().unwrap(), 4);
            t.join().unwrap();
        });
    });
}

/// Every task's allocation holds a `Result<T, JoinError>`, and spawn-heavy code stores many
/// `JoinHandle`s: a larger error moved a small task's allocation out of the allocator's fast
/// size class (measured: twice the malloc/free instructions per spawn).
#[test]
fn join_error_and_handle_stay_two_words() {
    use std::mem::size_of;
    assert_eq!(size_of::<knote_executor::JoinError>(), 16);
    assert_eq!(size_of::<Result<(), knote_executor::JoinError>>(), 16);
    assert_eq!(size_of::<knote_executor::JoinHandle<u64>>(), 16);
}
