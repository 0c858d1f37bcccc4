//! LocalRuntime: a runtime driven by the host's own poll(2) loop.

mod common;

use std::cell::{Cell, RefCell};
use std::os::fd::{AsFd, AsRawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{watchdog, DropGuard};
use futures_util::StreamExt;
use knote_executor::runtime::Builder;
use knote_executor::sync::{mpsc, oneshot};
use knote_executor::task::yield_now;
use knote_executor::time::{interval, sleep};
use knote_executor::{spawn, spawn_local, LocalRuntime};

/// poll(2) on the runtime's fd: whether it became readable within `timeout`.
fn fd_readable(rt: &LocalRuntime, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd: rt.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    loop {
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        assert!(n >= 0, "poll: {}", std::io::Error::last_os_error());
        return n > 0;
    }
}

/// The host's loop, as an application would write it: turn without blocking; when nothing
/// is ready, sleep in poll(2) on the runtime's fd. Stops when `done()` or after `limit`
/// (then panics: the runtime failed to make its fd readable for pending work).
fn host_loop(rt: &LocalRuntime, limit: Duration, mut done: impl FnMut() -> bool) -> usize {
    let deadline = Instant::now() + limit;
    let mut polls = 0;
    loop {
        let more = rt.turn(Some(Duration::ZERO)).expect("turn");
        if done() {
            return polls;
        }
        if !more {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "host loop: no progress within {limit:?}");
            // Wake at least every 50 ms to re-check `done` (a lost wake-up still fails the
            // deadline, since `done` cannot become true without a turn).
            if fd_readable(rt, left.min(Duration::from_secs(5))) {
                polls += 1;
            }
        }
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn host_loop_runs_tasks_and_timers() {
    watchdog(|| {
        let rt = LocalRuntime::new().unwrap();
        let start = Instant::now();
        let h = rt.spawn(async {
            sleep(Duration::from_millis(20)).await;
            Instant::now()
        });
        let local = Rc::new(Cell::new(0));
        let l = Rc::clone(&local);
        let hl = rt.spawn_local(async move {
            for _ in 0..3 {
                sleep(Duration::from_millis(2)).await;
                l.set(l.get() + 1);
            }
        });
        let polls = host_loop(&rt, Duration::from_secs(10), || {
            h.is_finished() && hl.is_finished()
        });
        assert!(
            polls >= 1,
            "the host slept in poll(2) and was woken by the timer"
        );
        let finished = rt.block_on(h).unwrap();
        assert!(finished - start >= Duration::from_millis(20));
        rt.block_on(hl).unwrap();
        assert_eq!(local.get(), 3);
        assert_eq!(rt.live_tasks(), 0);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn timer_rearmed_by_a_task_woken_in_the_same_turn() {
    // A task that sleeps in a loop: each wake-up comes from the kqueue, and the task arms the
    // next timer while `turn` runs it. That new timer must reach the kqueue before `turn`
    // returns, or the host sleeps in poll(2) forever.
    watchdog(|| {
        let rt = LocalRuntime::new().unwrap();
        let ticks = Rc::new(Cell::new(0u32));
        let t = Rc::clone(&ticks);
        let h = rt.spawn_local(async move {
            for _ in 0..5 {
                sleep(Duration::from_millis(3)).await;
                t.set(t.get() + 1);
            }
        });
        host_loop(&rt, Duration::from_secs(10), || h.is_finished());
        assert_eq!(ticks.get(), 5);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn interval_in_a_host_loop() {
    watchdog(|| {
        let rt = LocalRuntime::new().unwrap();
        let start = Instant::now();
        let h = rt.spawn_local(async move {
            let mut iv = interval(Duration::from_millis(4));
            for _ in 0..6 {
                iv.tick().await;
            }
        });
        host_loop(&rt, Duration::from_secs(10), || h.is_finished());
        assert!(start.elapsed() >= Duration::from_millis(20));
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn wake_from_another_thread_makes_the_fd_readable() {
    watchdog(|| {
        let rt = LocalRuntime::new().unwrap();
        let (tx, rx) = oneshot::channel::<u32>();
        let h = rt.spawn_local(async move { rx.await.unwrap() });
        rt.run_until_stalled().unwrap();
        assert!(!h.is_finished());
        // Idle: the fd is not readable.
        assert!(
            !fd_readable(&rt, Duration::ZERO),
            "idle runtime's fd is readable"
        );
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            tx.send(7).unwrap();
        });
        assert!(
            fd_readable(&rt, Duration::from_secs(5)),
            "a cross-thread wake-up must make the kqueue fd readable"
        );
        rt.run_until_stalled().unwrap();
        assert!(h.is_finished());
        assert_eq!(rt.block_on(h).unwrap(), 7);
        t.join().unwrap();
        // And again: the trigger is one per sleep, not one per runtime.
        let (tx, rx) = oneshot::channel::<u32>();
        let h = rt.spawn_local(async move { rx.await.unwrap() });
        rt.run_until_stalled().unwrap();
        std::thread::spawn(move || tx.send(8).unwrap())
            .join()
            .unwrap();
        assert!(fd_readable(&rt, Duration::from_secs(5)));
        rt.run_until_stalled().unwrap();
        assert_eq!(rt.block_on(h).unwrap(), 8);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn handle_spawn_from_another_thread_makes_the_fd_readable() {
    watchdog(|| {
        let rt = LocalRuntime::new().unwrap();
        rt.run_until_stalled().unwrap();
        let handle = rt.handle().clone();
        let ran = Arc::new(AtomicBool::new(false));
        let r = Arc::clone(&ran);
        let h = std::thread::spawn(move || {
            handle.spawn(async move {
                r.store(true, Ordering::SeqCst);
                5
            })
        })
        .join()
        .unwrap();
        assert!(fd_readable(&rt, Duration::from_secs(5)));
        host_loop(&rt, Duration::from_secs(10), || h.is_finished());
        assert!(ran.load(Ordering::SeqCst));
        assert_eq!(rt.block_on(h).unwrap(), 5);
        // Many spawns from many threads: all run.
        let count = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let handle = rt.handle().clone();
                let count = Arc::clone(&count);
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let count = Arc::clone(&count);
                        drop(handle.spawn(async move {
                            count.fetch_add(1, Ordering::SeqCst);
                        }));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        host_loop(&rt, Duration::from_secs(10), || {
            count.load(Ordering::SeqCst) == 200
        });
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn mpsc_stream_from_a_thread_in_a_host_loop() {
    watchdog(|| {
        let rt = LocalRuntime::new().unwrap();
        let (tx, mut rx) = mpsc::unbounded::<u32>();
        let sum = Rc::new(Cell::new(0u32));
        let s = Rc::clone(&sum);
        let h = rt.spawn_local(async move {
            while let Some(v) = rx.next().await {
                s.set(s.get() + v);
            }
        });
        let t = std::thread::spawn(move || {
            for i in 0..1000 {
                tx.unbounded_send(i).unwrap();
                if i % 64 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        });
        host_loop(&rt, Duration::from_secs(10), || h.is_finished());
        t.join().unwrap();
        assert_eq!(sum.get(), (0..1000).sum::<u32>());
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn run_until_stalled_returns() {
    watchdog(|| {
        let rt = LocalRuntime::new().unwrap();
        let count = Rc::new(Cell::new(0));
        let mut hs = Vec::new();
        for _ in 0..10 {
            let c = Rc::clone(&count);
            hs.push(rt.spawn_local(async move {
                for _ in 0..5 {
                    yield_now().await;
                }
                c.set(c.get() + 1);
            }));
        }
        // One that never finishes must not keep run_until_stalled from returning.
        let forever = rt.spawn(std::future::pending::<()>());
        let turns = rt.run_until_stalled().unwrap();
        assert!(turns >= 1);
        assert_eq!(count.get(), 10);
        assert!(hs.iter().all(|h| h.is_finished()));
        assert!(!forever.is_finished());
        assert_eq!(rt.live_tasks(), 1);
        // Nothing to do: returns at once.
        assert_eq!(rt.run_until_stalled().unwrap(), 1);
        forever.abort();
        rt.run_until_stalled().unwrap();
        assert_eq!(rt.live_tasks(), 0);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawn_local_inside_tasks_and_enter() {
    watchdog(|| {
        let rt = LocalRuntime::new().unwrap();
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = Rc::clone(&log);
        let h = rt.spawn_local(async move {
            let l2 = Rc::clone(&l);
            // knote_executor::spawn_local from inside a task of the LocalRuntime.
            spawn_local(async move { l2.borrow_mut().push("inner") })
                .await
                .unwrap();
            // And a Send task through knote_executor::spawn.
            let v = spawn(async { 2 }).await.unwrap();
            l.borrow_mut().push("outer");
            v
        });
        assert_eq!(rt.block_on(h).unwrap(), 2);
        assert_eq!(*log.borrow(), vec!["inner", "outer"]);
        // enter(): Handle::current and spawn work outside turn.
        let _g = rt.enter();
        let h = spawn(async { 3 });
        host_loop(&rt, Duration::from_secs(5), || h.is_finished());
        assert_eq!(rt.block_on(h).unwrap(), 3);
        assert!(format!("{rt:?}").contains("LocalRuntime"));
        assert_eq!(rt.as_fd().as_raw_fd(), rt.as_raw_fd());
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn blocking_pool_wakes_the_host() {
    watchdog(|| {
        let rt = LocalRuntime::new().unwrap();
        let h = rt.spawn_local(async {
            knote_executor::spawn_blocking(|| {
                std::thread::sleep(Duration::from_millis(10));
                11
            })
            .await
            .unwrap()
        });
        host_loop(&rt, Duration::from_secs(10), || h.is_finished());
        assert_eq!(rt.block_on(h).unwrap(), 11);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn dropping_a_local_runtime_drops_its_tasks() {
    watchdog(|| {
        let rt = LocalRuntime::new().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let handle = rt.handle().clone();
        let mut hs = Vec::new();
        for _ in 0..20 {
            let g = DropGuard::counting(&count);
            let rc = Rc::new(());
            hs.push(rt.spawn_local(async move {
                let _g = g;
                let _rc = rc;
                sleep(Duration::from_secs(3600)).await;
            }));
        }
        let (_tx, rx) = oneshot::channel::<()>();
        let g = DropGuard::counting(&count);
        hs.push(rt.spawn(async move {
            let _g = g;
            let _ = rx.await;
        }));
        rt.run_until_stalled().unwrap();
        assert_eq!(handle.live_tasks(), 21);
        drop(rt);
        assert_eq!(count.load(Ordering::SeqCst), 21);
        assert_eq!(handle.live_tasks(), 0);
        for h in hs {
            assert!(common::block_on_plain(h, Duration::from_secs(5))
                .unwrap_err()
                .is_cancelled());
        }
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn local_runtime_from_builder() {
    watchdog(|| {
        let rt = Builder::new_current_thread()
            .event_capacity(4)
            .build_local()
            .unwrap();
        let h = rt.spawn_local(async {
            let hs: Vec<_> = (0..32u64)
                .map(|i| {
                    spawn_local(async move {
                        sleep(Duration::from_millis(i % 4)).await;
                        i
                    })
                })
                .collect();
            let mut s = 0;
            for h in hs {
                s += h.await.unwrap();
            }
            s
        });
        host_loop(&rt, Duration::from_secs(10), || h.is_finished());
        assert_eq!(rt.block_on(h).unwrap(), (0..32).sum::<u64>());
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn turn_with_a_timeout_waits_for_a_timer() {
    watchdog(|| {
        let rt = LocalRuntime::new().unwrap();
        // Before the sleep is made: its deadline counts from its creation.
        let start = Instant::now();
        let h = rt.spawn(sleep(Duration::from_millis(15)));
        let deadline = start + Duration::from_secs(10);
        while !h.is_finished() {
            assert!(
                Instant::now() < deadline,
                "turn(None) never ran the timer's task"
            );
            rt.turn(None).unwrap();
        }
        assert!(start.elapsed() >= Duration::from_millis(15));
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn an_event_that_wakes_the_block_on_future_leaves_no_trigger_behind() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    use knote_executor::io::AsyncFd;

    watchdog(|| {
        let rt = LocalRuntime::new().unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let got = rt.block_on(async move {
            let a = AsyncFd::new(a).unwrap();
            // Written once the future waits: its wake-up comes from the READ event the
            // runtime's own wait collects, on the thread that runs it.
            let writer = spawn(async move { (&b).write_all(b"x").unwrap() });
            let mut byte = [0u8; 1];
            loop {
                let mut guard = a.readable().await.unwrap();
                if let Ok(n) = guard.try_io(|fd| fd.get_ref().read(&mut byte)) {
                    writer.await.unwrap();
                    break n.unwrap();
                }
            }
        });
        assert_eq!(got, 1);
        // The thread was awake when that waker ran: nothing may have triggered the kqueue's
        // wake-up knote (which would leave it readable, and cost a trigger and its wait).
        assert!(
            !fd_readable(&rt, Duration::ZERO),
            "the block_on future's waker triggered the kqueue of the thread that ran it"
        );
    });
}
