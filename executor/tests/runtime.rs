//! Runtimes: block_on, spawn, spawn_local, Handle, enter, builder options.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{each, watchdog, Flavour};
use knote_executor::runtime::{Builder, RuntimeFlavor};
use knote_executor::sync::oneshot;
use knote_executor::task::yield_now;
use knote_executor::{spawn, spawn_local, Handle, LocalRuntime};

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        String::from("<non-string panic>")
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn block_on_returns_the_output() {
    each(|rt, _| {
        assert_eq!(rt.block_on(async { 40 + 2 }), 42);
        // Again, on the same runtime.
        let s = rt.block_on(async {
            yield_now().await;
            String::from("again")
        });
        assert_eq!(s, "again");
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawn_and_await_many() {
    each(|rt, _| {
        let total = rt.block_on(async {
            let handles: Vec<_> = (0..100u64)
                .map(|i| {
                    spawn(async move {
                        yield_now().await;
                        i * 2
                    })
                })
                .collect();
            let mut total = 0;
            for h in handles {
                total += h.await.expect("task ok");
            }
            total
        });
        assert_eq!(total, (0..100u64).map(|i| i * 2).sum());
        assert_eq!(rt.handle().live_tasks(), 0);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn runtime_spawn_outside_block_on() {
    each(|rt, _| {
        let h = rt.spawn(async { 7 });
        let h2 = rt.handle().spawn(async { 8 });
        assert_eq!(rt.block_on(h).unwrap() + rt.block_on(h2).unwrap(), 15);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn nested_spawns_complete() {
    each(|rt, _| {
        let n = rt.block_on(async {
            spawn(async {
                spawn(async { spawn(async { 3 }).await.unwrap() + 2 })
                    .await
                    .unwrap()
                    + 1
            })
            .await
            .unwrap()
        });
        assert_eq!(n, 6);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawn_local_with_rc_in_current_thread_block_on() {
    watchdog(|| {
        let rt = Builder::new_current_thread().build().unwrap();
        let out = rt.block_on(async {
            let shared = Rc::new(std::cell::RefCell::new(Vec::new()));
            let mut handles = Vec::new();
            for i in 0..10 {
                let shared = Rc::clone(&shared);
                handles.push(spawn_local(async move {
                    yield_now().await;
                    shared.borrow_mut().push(i);
                    Rc::strong_count(&shared)
                }));
            }
            for h in handles {
                assert!(h.await.unwrap() >= 2);
            }
            let v = shared.borrow().clone();
            v
        });
        let mut out = out;
        out.sort_unstable();
        assert_eq!(out, (0..10).collect::<Vec<_>>());
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawn_local_on_local_runtime() {
    watchdog(|| {
        let rt = LocalRuntime::new().unwrap();
        let rc = Rc::new(5);
        let rc2 = Rc::clone(&rc);
        let h = rt.spawn_local(async move {
            yield_now().await;
            // A nested spawn_local from inside a task of the LocalRuntime.
            let inner = spawn_local(async move { *rc2 * 2 });
            inner.await.unwrap()
        });
        assert_eq!(rt.block_on(h).unwrap(), 10);
        assert_eq!(Rc::strong_count(&rc), 1, "the task's Rc was dropped");
        assert_eq!(rt.live_tasks(), 0);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawn_local_outside_a_current_thread_runtime_panics() {
    watchdog(|| {
        // No runtime at all.
        let err = catch_unwind(|| {
            drop(spawn_local(async {}));
        })
        .expect_err("spawn_local outside a runtime must panic");
        let msg = panic_message(&*err);
        assert!(msg.contains("spawn_local"), "unclear message: {msg}");

        // Inside a multi-thread runtime's block_on.
        let rt = Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let err = rt
            .block_on(async { catch_unwind(|| drop(spawn_local(async {}))) })
            .expect_err("spawn_local in a multi-thread block_on must panic");
        assert!(panic_message(&*err).contains("current-thread"));

        // Inside a task of a multi-thread runtime.
        let r =
            rt.block_on(rt.spawn(async { catch_unwind(|| drop(spawn_local(async {}))).is_err() }));
        assert!(r.unwrap(), "spawn_local on a worker must panic");

        // In a current-thread runtime's context, but not driving it.
        let ct = Builder::new_current_thread().build().unwrap();
        let _g = ct.enter();
        let err = catch_unwind(|| drop(spawn_local(async {}))).expect_err("not driving: panic");
        assert!(panic_message(&*err).contains("spawn_local"));
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn handle_current_outside_a_runtime() {
    watchdog(|| {
        let err = Handle::try_current().expect_err("no runtime here");
        let text = err.to_string();
        assert!(text.contains("no knote runtime"), "{text}");
        let p = catch_unwind(Handle::current).expect_err("Handle::current must panic");
        assert!(panic_message(&*p).contains("no knote runtime"));
        let p = catch_unwind(|| drop(spawn(async {}))).expect_err("spawn must panic");
        assert!(panic_message(&*p).contains("outside a knote runtime"));
        let p = catch_unwind(|| drop(knote_executor::spawn_blocking(|| ())))
            .expect_err("spawn_blocking must panic");
        assert!(panic_message(&*p).contains("outside a knote runtime"));
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn handle_current_inside_tasks_and_block_on() {
    each(|rt, flavour| {
        let expected = match flavour {
            Flavour::Current => RuntimeFlavor::CurrentThread,
            _ => RuntimeFlavor::MultiThread,
        };
        let (in_block_on, in_task, workers) = rt.block_on(async move {
            let a = Handle::current().runtime_flavor();
            let b = spawn(async { Handle::current().runtime_flavor() })
                .await
                .unwrap();
            (a, b, Handle::current().worker_threads())
        });
        assert_eq!(in_block_on, expected);
        assert_eq!(in_task, expected);
        let expected_workers = match flavour {
            Flavour::Current | Flavour::Multi1 => 1,
            Flavour::Multi4 => 4,
        };
        assert_eq!(workers, expected_workers);
        // Outside block_on the context is gone again.
        assert!(Handle::try_current().is_err());
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn handle_spawn_from_plain_threads() {
    each(|rt, _| {
        let handle = rt.handle().clone();
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let handle = handle.clone();
                std::thread::spawn(move || {
                    (0..25u32)
                        .map(|i| {
                            handle.spawn(async move {
                                yield_now().await;
                                t * 100 + i
                            })
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let handles: Vec<_> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let mut got = rt.block_on(async {
            let mut v = Vec::new();
            for h in handles {
                v.push(h.await.unwrap());
            }
            v
        });
        got.sort_unstable();
        let mut want: Vec<u32> = (0..4)
            .flat_map(|t| (0..25).map(move |i| t * 100 + i))
            .collect();
        want.sort_unstable();
        assert_eq!(got, want);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawn_from_thread_while_block_on_waits() {
    // The runtime is asleep in its kqueue waiting for the oneshot; a spawn from another
    // thread must wake it.
    each(|rt, _| {
        let (tx, rx) = oneshot::channel::<u32>();
        let handle = rt.handle().clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            handle.spawn(async move {
                yield_now().await;
                tx.send(9).unwrap();
            })
        });
        assert_eq!(rt.block_on(rx).unwrap(), 9);
        rt.block_on(t.join().unwrap()).unwrap();
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn enter_sets_the_context() {
    each(|rt, _| {
        assert!(Handle::try_current().is_err());
        {
            let _g = rt.enter();
            let h = Handle::current();
            assert_eq!(h.runtime_flavor(), rt.handle().runtime_flavor());
            // knote_executor::spawn works inside the entered context.
            let jh = spawn(async { 5 });
            drop(_g);
            assert!(Handle::try_current().is_err());
            assert_eq!(rt.block_on(jh).unwrap(), 5);
        }
        // Nested enters restore the previous context.
        let other = Builder::new_current_thread().build().unwrap();
        let outer = rt.enter();
        {
            let _inner = other.enter();
            assert_eq!(
                Handle::current().runtime_flavor(),
                RuntimeFlavor::CurrentThread
            );
        }
        assert_eq!(
            Handle::current().runtime_flavor(),
            rt.handle().runtime_flavor()
        );
        drop(outer);
        assert!(Handle::try_current().is_err());
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn builder_options() {
    watchdog(|| {
        let rt = Builder::new_multi_thread()
            .worker_threads(3)
            .thread_name("knote-test-worker")
            .thread_stack_size(256 * 1024)
            .event_capacity(1)
            .build()
            .unwrap();
        assert_eq!(rt.handle().worker_threads(), 3);
        let names = rt.block_on(async {
            let worker = spawn(async { std::thread::current().name().map(String::from) })
                .await
                .unwrap();
            let blocking =
                knote_executor::spawn_blocking(|| std::thread::current().name().map(String::from))
                    .await
                    .unwrap();
            (worker, blocking)
        });
        assert_eq!(names.0.as_deref(), Some("knote-test-worker"));
        assert_eq!(names.1.as_deref(), Some("knote-test-worker"));

        let counter = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&counter);
        let rt2 = Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name_fn(move || format!("named-{}", c.fetch_add(1, Ordering::SeqCst)))
            .build()
            .unwrap();
        let name = rt2
            .block_on(rt2.spawn(async { std::thread::current().name().map(String::from) }))
            .unwrap()
            .unwrap();
        assert!(name.starts_with("named-"), "{name}");
        assert!(counter.load(Ordering::SeqCst) >= 2);

        // event_capacity(1) still delivers many events.
        let n = rt.block_on(async {
            let hs: Vec<_> = (0..50u64)
                .map(|i| {
                    spawn(async move {
                        knote_executor::time::sleep(Duration::from_millis(i % 5)).await;
                        i
                    })
                })
                .collect();
            let mut sum = 0;
            for h in hs {
                sum += h.await.unwrap();
            }
            sum
        });
        assert_eq!(n, (0..50).sum::<u64>());

        assert!(catch_unwind(|| {
            Builder::new_multi_thread().worker_threads(0);
        })
        .is_err());
        assert!(catch_unwind(|| {
            Builder::new_current_thread().event_capacity(0);
        })
        .is_err());
        assert!(catch_unwind(|| {
            Builder::new_current_thread().max_blocking_threads(0);
        })
        .is_err());
        let err = Builder::new_multi_thread()
            .build_local()
            .expect_err("build_local needs a current-thread builder");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(format!("{:?}", Builder::new_current_thread()).contains("CurrentThread"));
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn runtime_new_has_a_worker_per_core() {
    watchdog(|| {
        let rt = knote_executor::Runtime::new().unwrap();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(rt.handle().worker_threads(), cores);
        assert_eq!(rt.block_on(rt.spawn(async { 1 })).unwrap(), 1);
        let dbg = format!("{rt:?}");
        assert!(dbg.contains("MultiThread"), "{dbg}");
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn two_threads_block_on_one_current_thread_runtime() {
    // One thread drives the core; the other polls its own future and takes the core over
    // when the first returns. Each needs the other's message.
    watchdog(|| {
        let rt = Arc::new(Builder::new_current_thread().build().unwrap());
        let (tx_a, rx_a) = oneshot::channel::<u32>();
        let (tx_b, rx_b) = oneshot::channel::<u32>();
        let rt2 = Arc::clone(&rt);
        let t = std::thread::spawn(move || {
            rt2.block_on(async move {
                // A task on the runtime answers; whichever thread drives runs it.
                let echo = spawn(async move { rx_a.await.unwrap() + 1 });
                let v = echo.await.unwrap();
                tx_b.send(v).unwrap();
                v
            })
        });
        let got = rt.block_on(async move {
            knote_executor::time::sleep(Duration::from_millis(10)).await;
            tx_a.send(41).unwrap();
            rx_b.await.unwrap()
        });
        assert_eq!(got, 42);
        assert_eq!(t.join().unwrap(), 42);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn block_on_inside_a_task_panics() {
    // Blocking a thread that runs a runtime's tasks would stall it: refused with a panic.
    each(|rt, _| {
        let other = Builder::new_current_thread().build().unwrap();
        let other = Arc::new(other);
        let o = Arc::clone(&other);
        let r = rt.block_on(rt.spawn(async move {
            catch_unwind(AssertUnwindSafe(|| o.block_on(async { 1 })))
                .map_err(|p| panic_message(&*p))
        }));
        let msg = r.unwrap().expect_err("nested block_on must panic");
        assert!(msg.contains("block_on"), "{msg}");
    });
}

/// Dropping a runtime on one of its own threads would wait for that thread forever: it panics
/// with a clear message instead (it deadlocked).
#[test]
#[cfg_attr(miri, ignore)]
fn dropping_a_runtime_on_its_own_thread_panics() {
    for blocking in [false, true] {
        watchdog(move || {
            let rt = Builder::new_multi_thread()
                .worker_threads(2)
                .build()
                .unwrap();
            let slot = Arc::new(std::sync::Mutex::new(None::<knote_executor::Runtime>));
            let (tx, rx) = std::sync::mpsc::channel::<Option<String>>();
            let (go_tx, go_rx) = oneshot::channel::<()>();
            let s = Arc::clone(&slot);
            let drop_it = move || {
                let rt = s.lock().unwrap().take();
                let result = catch_unwind(AssertUnwindSafe(move || drop(rt)));
                let message = result.err().map(|p| {
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default()
                });
                let _ = tx.send(message);
            };
            if blocking {
                rt.spawn(async move {
                    let _ = go_rx.await;
                    knote_executor::spawn_blocking(drop_it);
                });
            } else {
                rt.spawn(async move {
                    let _ = go_rx.await;
                    drop_it();
                });
            }
            *slot.lock().unwrap() = Some(rt);
            go_tx.send(()).unwrap();
            let message = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("dropping the runtime on its own thread never returned (deadlock)");
            let message = message.expect("the drop did not panic");
            assert!(message.contains("own threads"), "{message}");
        });
    }
}

/// A runtime built the way tokio code builds one (`enable_all()` and friends) has I/O and
/// timers, as every knote runtime does.
#[test]
#[cfg_attr(miri, ignore)]
fn tokio_style_enable_calls_build_a_working_runtime() {
    use std::io::Write;
    for mut builder in [Builder::new_current_thread(), Builder::new_multi_thread()] {
        let rt = builder
            .enable_all()
            .enable_io()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
            a.set_nonblocking(true).unwrap();
            let fd = knote_executor::io::AsyncFd::new(a).unwrap();
            b.write_all(b"x").unwrap();
            let _ready = fd.readable().await.unwrap();
            knote_executor::time::sleep(Duration::from_millis(1)).await;
        });
    }
}
