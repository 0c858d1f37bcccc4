//! task_local!: scopes follow futures across awaits and worker threads.

mod common;

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use common::{each, on, Flavour};
use knote_executor::task::{yield_now, JoinSet};
use knote_executor::task_local;

task_local! {
    /// The value each test task carries.
    static NUMBER: u32;
    static NAME: String;
}

#[test]
#[cfg_attr(miri, ignore)]
fn value_follows_each_task_across_awaits_and_threads() {
    each(|rt, _| {
        let threads = Arc::new(Mutex::new(HashSet::new()));
        rt.block_on(async {
            let mut set = JoinSet::new();
            for i in 0..16u32 {
                let threads = Arc::clone(&threads);
                set.spawn(NUMBER.scope(i, async move {
                    for _ in 0..100 {
                        assert_eq!(NUMBER.get(), i, "another task's value leaked in");
                        threads.lock().unwrap().insert(std::thread::current().id());
                        yield_now().await;
                    }
                    i
                }));
            }
            let mut seen = 0;
            while let Some(r) = set.join_next().await {
                seen += r.unwrap();
            }
            assert_eq!(seen, (0..16).sum());
        });
        assert!(!threads.lock().unwrap().is_empty());
        assert!(
            NUMBER.try_with(|_| ()).is_err(),
            "nothing left on this thread"
        );
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn nested_scopes_shadow_and_restore() {
    each(|rt, _| {
        rt.block_on(NUMBER.scope(1, async {
            assert_eq!(NUMBER.get(), 1);
            NUMBER
                .scope(2, async {
                    assert_eq!(NUMBER.get(), 2);
                    yield_now().await;
                    assert_eq!(NUMBER.get(), 2);
                    NAME.scope("inner".to_string(), async {
                        NAME.with(|n| assert_eq!(n, "inner"));
                        assert_eq!(NUMBER.get(), 2);
                    })
                    .await;
                    assert!(NAME.try_with(|_| ()).is_err());
                })
                .await;
            assert_eq!(NUMBER.get(), 1, "the outer value is back");
            NUMBER.sync_scope(3, || assert_eq!(NUMBER.get(), 3));
            assert_eq!(NUMBER.get(), 1);
        }));
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn with_outside_a_scope_panics_and_try_with_errs() {
    let err = NUMBER.try_with(|v| *v).unwrap_err();
    assert_eq!(err.to_string(), "task-local value not set");
    let panic = catch_unwind(|| NUMBER.with(|v| *v)).unwrap_err();
    let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("task-local value not set"), "{msg}");
    on(&[Flavour::Current], |rt, _| {
        rt.block_on(async {
            let h = knote_executor::spawn(async { NUMBER.try_with(|v| *v).is_err() });
            assert!(
                h.await.unwrap(),
                "a spawned task does not inherit the scope"
            );
        });
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_panicking_poll_restores_the_slot() {
    let r = catch_unwind(AssertUnwindSafe(|| {
        NUMBER.sync_scope(5, || panic!("inside"));
    }));
    assert!(r.is_err());
    assert!(
        NUMBER.try_with(|_| ()).is_err(),
        "the panic left the value set"
    );
    each(|rt, _| {
        rt.block_on(async {
            let h = knote_executor::spawn(NUMBER.scope(8, async { panic!("in the task") }));
            assert!(h.await.unwrap_err().is_panic());
            assert!(NUMBER.try_with(|_| ()).is_err());
        });
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn the_inner_future_is_dropped_inside_the_scope() {
    struct ReadsOnDrop(Arc<Mutex<Option<u32>>>);
    impl Drop for ReadsOnDrop {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = NUMBER.try_with(|v| *v).ok();
        }
    }
    each(|rt, _| {
        let seen = Arc::new(Mutex::new(None));
        let guard = ReadsOnDrop(Arc::clone(&seen));
        let h = rt.spawn(NUMBER.scope(42, async move {
            let _guard = guard;
            std::future::pending::<()>().await
        }));
        rt.block_on(async {
            yield_now().await;
        });
        h.abort();
        assert!(rt.block_on(h).unwrap_err().is_cancelled());
        assert_eq!(*seen.lock().unwrap(), Some(42));
    });
}
