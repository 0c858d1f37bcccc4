//! The timer driver: any number of sleeps on one timer knote per driver, a refused knote
//! surfacing, resets in every state, cross-thread use, and the paused clock.

mod common;

use std::future::pending;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{each, on, pipe, watchdog, Flavour, SINGLE};
use futures_util::poll;
use knote_executor::io::{AsyncFd, Interest};
use knote_executor::runtime::{Builder, LocalRuntime};
use knote_executor::spawn;
use knote_executor::time::{
    self, __private, interval, sleep, sleep_until, timeout, Instant, MissedTickBehavior,
};

const MS: Duration = Duration::from_millis(1);

#[test]
#[cfg_attr(miri, ignore)]
fn hundred_thousand_sleeps_on_at_most_one_timer_knote_per_driver() {
    const N: usize = 100_000;
    on(&[Flavour::Current, Flavour::Multi4], |rt, flavour| {
        let workers = rt.handle().worker_threads().max(1);
        let fired = Arc::new(AtomicUsize::new(0));
        let max_knotes = Arc::new(AtomicUsize::new(0));
        let handle = rt.handle().clone();
        rt.block_on(async {
            let tasks: Vec<_> = (0..N)
                .map(|i| {
                    let fired = fired.clone();
                    // Spread over 1..=20 ms so the heap holds them all at once.
                    let d = Duration::from_micros(1_000 + (i as u64 * 7919) % 19_000);
                    spawn(async move {
                        sleep(d).await;
                        fired.fetch_add(1, Ordering::Relaxed);
                    })
                })
                .collect();
            // While they wait: every driver holds at most one timer knote (counted round the
            // drivers: `Handle::driver` picks them in turn from outside the workers).
            let probe = {
                let handle = handle.clone();
                let max_knotes = max_knotes.clone();
                let fired = fired.clone();
                std::thread::spawn(move || {
                    while fired.load(Ordering::Relaxed) < N {
                        for _ in 0..workers {
                            let k = __private::timer_knotes(&handle);
                            max_knotes.fetch_max(k, Ordering::Relaxed);
                        }
                        std::thread::sleep(Duration::from_micros(100));
                    }
                })
            };
            for t in tasks {
                t.await.unwrap();
            }
            probe.join().unwrap();
        });
        assert_eq!(fired.load(Ordering::Relaxed), N, "{flavour:?}");
        assert!(max_knotes.load(Ordering::Relaxed) <= 1, "{flavour:?}");
        // (Whether the knote is armed at a given moment depends on whether the runtime waits
        // then: only a waiting turn arms it, and with deadlines this dense it hardly waits.
        // That a host sees the fd readable is `embedded_host_sees_the_kqueue_readable_...`.)
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_refused_timer_knote_surfaces_as_a_panic_not_a_hang() {
    watchdog(|| {
        let rt = Builder::new_current_thread().build().unwrap();
        __private::fail_next_timer_arm(rt.handle());
        let r = rt.block_on(rt.spawn(async {
            sleep(Duration::from_secs(3600)).await;
        }));
        let err = r.expect_err("the sleep must fail, not wait an hour");
        let msg = err.into_panic();
        let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("refused this runtime's timer knote"), "{msg}");
        assert!(msg.contains("Invalid argument"), "{msg}");
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn reset_from_long_to_short_wakes_at_the_short_deadline() {
    // The reported bug: armed for 8 s, reset to 20 ms, woke after the 8 s.
    each(|rt, flavour| {
        rt.block_on(rt.spawn(async move {
            let mut s = sleep(Duration::from_secs(8));
            assert!(poll!(&mut s).is_pending());
            // Let the driver take it into its heap and arm its knote for it.
            sleep(2 * MS).await;
            let start = Instant::now();
            s.reset(start + 20 * MS);
            (&mut s).await;
            let took = start.elapsed();
            assert!(took >= 20 * MS, "{flavour:?}: {took:?}");
            assert!(took < Duration::from_secs(4), "{flavour:?}: {took:?}");
        }))
        .unwrap();
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn reset_to_earlier_while_the_driver_sleeps_on_the_old_deadline() {
    // The reported bug, with the driver really asleep on the old deadline when the reset
    // comes (no other timer, nothing ready): first from the sleep's own task, woken by a
    // channel meanwhile; then from another thread, while the task waits in the sleep.
    each(|rt, flavour| {
        // From the same task.
        let (tx, rx) = futures_channel::oneshot::channel::<()>();
        let signal = std::thread::spawn(move || {
            std::thread::sleep(50 * MS);
            tx.send(()).unwrap();
        });
        rt.block_on(rt.spawn(async move {
            let mut s = sleep(Duration::from_secs(8));
            assert!(poll!(&mut s).is_pending());
            rx.await.unwrap();
            let start = Instant::now();
            s.reset(start + 20 * MS);
            (&mut s).await;
            let took = start.elapsed();
            assert!(took >= 20 * MS, "{flavour:?}: {took:?}");
            assert!(
                took < Duration::from_secs(4),
                "{flavour:?}: same task, {took:?}"
            );
        }))
        .unwrap();
        signal.join().unwrap();
        // From another thread, while the task is parked in the sleep itself.
        let shared = Arc::new(Mutex::new(None::<time::Sleep>));
        let task = {
            let shared = shared.clone();
            rt.spawn(async move {
                *shared.lock().unwrap() = Some(sleep(Duration::from_secs(8)));
                std::future::poll_fn(|cx| {
                    let mut s = shared.lock().unwrap();
                    s.as_mut().expect("put there above").poll_elapsed(cx)
                })
                .await;
            })
        };
        let resetter = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                // Wait for the task to arm it, then for the driver to go to sleep on it.
                for _ in 0..5_000 {
                    if shared.lock().unwrap().is_some() {
                        break;
                    }
                    std::thread::sleep(MS);
                }
                std::thread::sleep(50 * MS);
                let start = Instant::now();
                let mut s = shared.lock().unwrap();
                s.as_mut()
                    .expect("the task armed it")
                    .reset(start + 20 * MS);
                start
            })
        };
        rt.block_on(task).unwrap();
        let start = resetter.join().unwrap();
        let took = start.elapsed();
        assert!(took >= 20 * MS, "{flavour:?}: {took:?}");
        assert!(
            took < Duration::from_secs(4),
            "{flavour:?}: another thread, {took:?}"
        );
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn reset_in_every_state() {
    each(|rt, flavour| {
        rt.block_on(rt.spawn(async move {
            // Never polled.
            let start = Instant::now();
            let mut s = sleep(Duration::from_secs(3600));
            s.reset(start + 5 * MS);
            (&mut s).await;
            assert!(start.elapsed() >= 5 * MS);
            // Elapsed (its entry fired): armed again, later.
            let again = Instant::now();
            s.reset(again + 5 * MS);
            assert!(!s.is_elapsed());
            (&mut s).await;
            assert!(again.elapsed() >= 5 * MS);
            // Armed, moved later: the first deadline must not complete it.
            let start = Instant::now();
            let mut s = sleep(5 * MS);
            assert!(poll!(&mut s).is_pending());
            s.reset(start + 30 * MS);
            (&mut s).await;
            assert!(start.elapsed() >= 30 * MS, "{flavour:?}");
            // Armed, moved earlier, then later again before the driver looked.
            let start = Instant::now();
            let mut s = sleep(Duration::from_secs(3600));
            assert!(poll!(&mut s).is_pending());
            s.reset(start + MS);
            s.reset(start + 15 * MS);
            (&mut s).await;
            assert!(start.elapsed() >= 15 * MS, "{flavour:?}");
            // Into the past: completes at the next turn.
            let mut s = sleep(Duration::from_secs(3600));
            assert!(poll!(&mut s).is_pending());
            s.reset(Instant::now() - MS);
            let t = Instant::now();
            s.await;
            assert!(t.elapsed() < Duration::from_secs(1));
        }))
        .unwrap();
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn sleep_reset_and_dropped_from_another_thread() {
    // Armed on a worker, reset to an earlier deadline and dropped from threads that are not
    // the driver's: the driving thread, asleep for the long deadline, must be woken.
    on(
        &[Flavour::Current, Flavour::Multi1, Flavour::Multi4],
        |rt, flavour| {
            let slot: Arc<Mutex<Option<time::Sleep>>> = Arc::new(Mutex::new(None));
            let woke = Arc::new(AtomicUsize::new(0));
            let task = {
                let slot = slot.clone();
                let woke = woke.clone();
                rt.spawn(async move {
                    let mut s = sleep(Duration::from_secs(3600));
                    assert!(poll!(&mut s).is_pending());
                    // Hand it to another thread, which resets it and gives it back.
                    *slot.lock().unwrap() = Some(s);
                    let start = std::time::Instant::now();
                    loop {
                        let taken = slot.lock().unwrap().take();
                        match taken {
                            Some(s) if s.deadline() < Instant::now() + Duration::from_secs(60) => {
                                s.await;
                                break;
                            }
                            other => {
                                *slot.lock().unwrap() = other;
                                sleep(MS).await;
                            }
                        }
                    }
                    woke.fetch_add(1, Ordering::Relaxed);
                    start.elapsed()
                })
            };
            let resetter = {
                let slot = slot.clone();
                std::thread::spawn(move || loop {
                    if let Some(s) = slot.lock().unwrap().as_mut() {
                        s.reset(Instant::now() + 10 * MS);
                        return;
                    }
                    std::thread::sleep(MS);
                })
            };
            let took = rt.block_on(task).unwrap();
            resetter.join().unwrap();
            assert!(took < Duration::from_secs(10), "{flavour:?}: {took:?}");
            assert_eq!(woke.load(Ordering::Relaxed), 1);
            // A sleep armed in the runtime and dropped on a plain thread.
            let s = rt.block_on(rt.spawn(async {
                let mut s = sleep(Duration::from_secs(3600));
                assert!(poll!(&mut s).is_pending());
                // (In a Vec: clippy frowns at a future whose output is a future.)
                vec![s]
            }));
            std::thread::spawn(move || drop(s)).join().unwrap();
            // The runtime goes on (and shuts down without waiting for the dropped hour).
            rt.block_on(sleep(MS));
        },
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn sleep_armed_from_outside_wakes_the_sleeping_driver() {
    // The runtime's thread sleeps in its kqueue with a long timeout (an hour-long sleep);
    // a sleep of 10 ms armed from another thread (through `enter`) must shorten that wait.
    on(&SINGLE, |rt, flavour| {
        let rt = Arc::new(rt);
        let long = rt.spawn(sleep(Duration::from_secs(3600)));
        let (tx, rx) = futures_channel::oneshot::channel::<()>();
        let outside = {
            let rt = rt.clone();
            std::thread::spawn(move || {
                std::thread::sleep(5 * MS); // let the driver go to sleep
                let _enter = rt.enter();
                let waker = futures_util::task::noop_waker();
                let mut cx = std::task::Context::from_waker(&waker);
                let mut s = sleep(10 * MS);
                assert!(s.poll_elapsed(&mut cx).is_pending());
                drop(_enter);
                rt.spawn(async move {
                    s.await;
                    tx.send(()).unwrap();
                });
            })
        };
        let start = std::time::Instant::now();
        rt.block_on(rx).unwrap();
        outside.join().unwrap();
        assert!(start.elapsed() < Duration::from_secs(10), "{flavour:?}");
        long.abort();
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn ten_thousand_timeouts_of_idle_reads_all_fire() {
    // 2,000 reads on real pipes (each an fd registration that never becomes readable) and
    // 8,000 on futures that never complete: every timeout fires, each no earlier than asked.
    const PIPES: usize = 2_000;
    const IDLE: usize = 8_000;
    on(&[Flavour::Current, Flavour::Multi4], |rt, flavour| {
        let fds: Vec<(OwnedFd, OwnedFd)> = (0..PIPES).map(|_| pipe()).collect();
        let elapsed = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let mut tasks = Vec::new();
            let (reads, writes): (Vec<OwnedFd>, Vec<OwnedFd>) = fds.into_iter().unzip();
            for (i, read) in reads.into_iter().enumerate() {
                let elapsed = elapsed.clone();
                tasks.push(spawn(async move {
                    let fd = AsyncFd::with_interest(read, Interest::READABLE).unwrap();
                    let d = Duration::from_millis(5 + (i % 20) as u64);
                    let start = Instant::now();
                    assert!(timeout(d, fd.readable()).await.is_err());
                    assert!(start.elapsed() >= d);
                    elapsed.fetch_add(1, Ordering::Relaxed);
                }));
            }
            for i in 0..IDLE {
                let elapsed = elapsed.clone();
                tasks.push(spawn(async move {
                    let d = Duration::from_millis(5 + (i % 20) as u64);
                    let start = Instant::now();
                    assert!(timeout(d, pending::<()>()).await.is_err());
                    assert!(start.elapsed() >= d);
                    elapsed.fetch_add(1, Ordering::Relaxed);
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            drop(writes);
        });
        assert_eq!(elapsed.load(Ordering::Relaxed), PIPES + IDLE, "{flavour:?}");
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn embedded_host_sees_the_kqueue_readable_when_a_timer_is_due() {
    use std::os::fd::AsRawFd;
    watchdog(|| {
        let rt = LocalRuntime::new().unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        rt.spawn_local(async move {
            sleep(20 * MS).await;
            d.store(1, Ordering::SeqCst);
        });
        // One turn arms the sleep; then the host waits in its own poll(2), and the kqueue's fd
        // must turn readable when the timer is due (no timeout given to knote at all).
        assert!(!rt.turn(Some(Duration::ZERO)).unwrap());
        let start = std::time::Instant::now();
        let mut fds = [libc::pollfd {
            fd: rt.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, 10_000) };
        assert_eq!(n, 1, "the kqueue's fd never became readable");
        assert!(start.elapsed() >= 15 * MS, "{:?}", start.elapsed());
        while done.load(Ordering::SeqCst) == 0 {
            rt.turn(Some(Duration::from_millis(100))).unwrap();
        }
    });
}

// ---- the paused clock ----------------------------------------------------------------------

fn paused<F: std::future::Future>(body: F) -> F::Output {
    let rt = Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        time::pause();
        body.await
    })
}

#[test]
#[cfg_attr(miri, ignore)]
fn paused_thirty_second_timeout_completes_at_once() {
    let real = std::time::Instant::now();
    paused(async {
        let start = Instant::now();
        let r = timeout(Duration::from_secs(30), pending::<()>()).await;
        assert!(r.is_err());
        // The clock jumped exactly to the deadline.
        assert_eq!(Instant::now() - start, Duration::from_secs(30));
    });
    assert!(
        real.elapsed() < Duration::from_secs(5),
        "{:?}",
        real.elapsed()
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn paused_clock_auto_advances_only_when_idle() {
    paused(async {
        let start = Instant::now();
        // A task that keeps the runtime busy for a while: no advance while it runs.
        let busy = spawn(async {
            for _ in 0..100 {
                knote_executor::task::yield_now().await;
            }
            Instant::now()
        });
        let sleeper = spawn(async move {
            sleep(Duration::from_secs(3600)).await;
            Instant::now()
        });
        let busy_done = busy.await.unwrap();
        assert_eq!(busy_done, start, "time moved while tasks were runnable");
        let woke = sleeper.await.unwrap();
        assert_eq!(woke - start, Duration::from_secs(3600));
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn advance_fires_due_timers_in_deadline_order() {
    // Driven from a task: `advance` yields, and a yielded task runs after the ones it woke.
    paused(async {
        spawn(async {
            let order = Arc::new(Mutex::new(Vec::new()));
            let start = Instant::now();
            let mut tasks = Vec::new();
            for (i, ms) in [30u64, 10, 50, 20, 40].into_iter().enumerate() {
                let order = order.clone();
                tasks.push(spawn(async move {
                    time::sleep_until(start + Duration::from_millis(ms)).await;
                    order.lock().unwrap().push(i);
                }));
            }
            knote_executor::task::yield_now().await; // let them arm
            time::advance(Duration::from_millis(25)).await;
            assert_eq!(*order.lock().unwrap(), vec![1, 3], "due at 10 and 20 ms");
            assert_eq!(Instant::now() - start, Duration::from_millis(25));
            time::advance(Duration::from_millis(25)).await;
            assert_eq!(*order.lock().unwrap(), vec![1, 3, 0, 4, 2]);
            for t in tasks {
                t.await.unwrap();
            }
        })
        .await
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn interval_under_a_paused_clock() {
    paused(async {
        let start = Instant::now();
        let mut iv = interval(Duration::from_secs(10));
        iv.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut dues = Vec::new();
        for _ in 0..5 {
            dues.push(iv.tick().await - start);
        }
        let want: Vec<Duration> = (0..5).map(|k| Duration::from_secs(10 * k)).collect();
        assert_eq!(dues, want);
        // Resumed, the clock runs on from where it stood.
        time::resume();
        assert!(Instant::now() - start >= Duration::from_secs(40));
        let t = Instant::now();
        sleep_until(t + MS).await;
        assert!(t.elapsed() >= MS);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn pause_refused_on_a_multi_thread_runtime() {
    let rt = Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let r = rt.block_on(rt.spawn(async { time::pause() }));
    let err = r.expect_err("pause must refuse a multi-thread runtime");
    let msg = err.into_panic();
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("current-thread"), "{msg}");
}
