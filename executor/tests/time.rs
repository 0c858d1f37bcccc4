//! Timers: sleep, sleep_until, timeout, interval.

mod common;

use std::future::{pending, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::{each, on, watchdog, CountingWaker, Flavour, SINGLE};
use futures_util::poll;
use knote_executor::runtime::Builder;
use knote_executor::spawn;
use knote_executor::time::{
    interval, interval_at, sleep, sleep_until, timeout, timeout_at, Instant, MissedTickBehavior,
};

const MS: Duration = Duration::from_millis(1);

#[test]
#[cfg_attr(miri, ignore)]
fn sleep_never_completes_early() {
    each(|rt, _| {
        for ms in [1u64, 5, 20] {
            let d = Duration::from_millis(ms);
            // In the block_on future ...
            let start = Instant::now();
            rt.block_on(sleep(d));
            assert!(start.elapsed() >= d, "block_on sleep({d:?}) woke early");
            // ... and in a task.
            let elapsed = rt
                .block_on(rt.spawn(async move {
                    let start = Instant::now();
                    sleep(d).await;
                    start.elapsed()
                }))
                .unwrap();
            assert!(elapsed >= d, "task sleep({d:?}) woke after {elapsed:?}");
        }
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn concurrent_sleeps_each_respect_their_deadline() {
    each(|rt, _| {
        let base = Instant::now();
        let late = rt.block_on(async move {
            let hs: Vec<_> = (0..200u64)
                .map(|i| {
                    let deadline = base + Duration::from_millis(i % 20);
                    spawn(async move {
                        sleep_until(deadline).await;
                        Instant::now() >= deadline
                    })
                })
                .collect();
            let mut ok = 0;
            for h in hs {
                ok += usize::from(h.await.unwrap());
            }
            ok
        });
        assert_eq!(late, 200);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn sleeps_complete_in_deadline_order() {
    // Single-threaded flavours: completion order must follow deadlines. The 50 tasks are
    // spawned by one task, so they all arm their timers before the runtime next waits, in one
    // change list. Each timer's deadline is made relative when the change list is built and
    // absolute again as the kqueue applies each change, so a thread preempted while a list is
    // applied shifts the changes after that point late (never early). Under heavy CPU load
    // that can swap two deadlines 1 ms apart: the scenario runs up to three times and one
    // clean run is required (a runtime that does not order timers fails every run). Tasks
    // whose deadline had passed before they first ran complete at once, in spawn order: they
    // are left out (with the start 50 ms ahead, that takes a 50 ms stall).
    on(&SINGLE, |_, flavour| {
        let mut attempts = Vec::new();
        for attempt in 0..3u64 {
            let rt = flavour.build();
            let mut durations: Vec<u64> = (1..=50).collect();
            common::shuffle(&mut durations, 0x5eed_1234_abcd_ef01 + attempt);
            // (deadline in ms, whether it was still ahead at the task's first poll)
            let order = Arc::new(Mutex::new(Vec::new()));
            let o = Arc::clone(&order);
            rt.block_on(rt.spawn(async move {
                let base = Instant::now() + Duration::from_millis(50);
                let hs: Vec<_> = durations
                    .iter()
                    .map(|&ms| {
                        let order = Arc::clone(&o);
                        spawn(async move {
                            let deadline = base + Duration::from_millis(ms);
                            let ahead = Instant::now() < deadline;
                            sleep_until(deadline).await;
                            assert!(Instant::now() >= deadline);
                            order.lock().unwrap().push((ms, ahead));
                        })
                    })
                    .collect();
                for h in hs {
                    h.await.unwrap();
                }
            }))
            .unwrap();
            let order = order.lock().unwrap().clone();
            assert_eq!(order.len(), 50);
            let on_time: Vec<u64> = order.iter().filter(|o| o.1).map(|o| o.0).collect();
            if on_time.windows(2).all(|w| w[0] <= w[1]) {
                return;
            }
            attempts.push(on_time);
        }
        panic!("out of deadline order in every attempt: {attempts:?}");
    });
    // Four workers: timers live on different kqueues, so completions on different workers
    // may interleave; each still completes, and not before its deadline.
    on(&[Flavour::Multi4], |rt, _| {
        let mut durations: Vec<u64> = (1..=50).collect();
        common::shuffle(&mut durations, 0x0123_4567_89ab_cdef);
        let base = Instant::now() + Duration::from_millis(5);
        let done = rt.block_on(async {
            let hs: Vec<_> = durations
                .iter()
                .map(|&ms| {
                    spawn(async move {
                        let deadline = base + Duration::from_millis(ms);
                        sleep_until(deadline).await;
                        Instant::now() >= deadline
                    })
                })
                .collect();
            let mut n = 0;
            for h in hs {
                n += usize::from(h.await.unwrap());
            }
            n
        });
        assert_eq!(done, 50);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn timers_expired_together_run_in_deadline_order() {
    // 50 timers armed in shuffled order and submitted to the kqueue, then the runtime's only
    // thread is blocked until all of them are due: they are collected in one wait and their
    // tasks must run in deadline order. (Retried like the test above, for the same reason.)
    on(&SINGLE, |_, flavour| {
        let mut attempts = Vec::new();
        for attempt in 0..3u64 {
            let rt = flavour.build();
            let mut durations: Vec<u64> = (1..=50).collect();
            common::shuffle(&mut durations, 0xfeed_0000_1111_2222 + attempt);
            let order = Arc::new(Mutex::new(Vec::new()));
            let o = Arc::clone(&order);
            rt.block_on(rt.spawn(async move {
                let base = Instant::now() + Duration::from_millis(30);
                let hs: Vec<_> = durations
                    .iter()
                    .map(|&ms| {
                        let order = Arc::clone(&o);
                        spawn(async move {
                            let deadline = base + Duration::from_millis(ms);
                            let ahead = Instant::now() < deadline;
                            sleep_until(deadline).await;
                            order.lock().unwrap().push((ms, ahead));
                        })
                    })
                    .collect();
                // Let the runtime submit the 50 timers to its kqueue (this sleep makes it
                // wait there once), then block its only thread past every deadline.
                sleep(Duration::from_millis(1)).await;
                spawn(async move {
                    let until = base + Duration::from_millis(60);
                    std::thread::sleep(until.saturating_duration_since(Instant::now()));
                })
                .await
                .unwrap();
                for h in hs {
                    h.await.unwrap();
                }
            }))
            .unwrap();
            let order = order.lock().unwrap().clone();
            assert_eq!(order.len(), 50);
            let on_time: Vec<u64> = order.iter().filter(|o| o.1).map(|o| o.0).collect();
            if on_time.windows(2).all(|w| w[0] <= w[1]) {
                return;
            }
            attempts.push(on_time);
        }
        panic!("out of deadline order in every attempt: {attempts:?}");
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn dropped_sleep_does_not_wake_its_task() {
    each(|rt, _| {
        rt.block_on(rt.spawn(async {
            let counter = CountingWaker::new();
            let created = Instant::now();
            {
                let waker = Waker::from(Arc::clone(&counter));
                let mut cx = Context::from_waker(&waker);
                let mut s = sleep(Duration::from_millis(10));
                let _ = Pin::new(&mut s).poll(&mut cx);
                // Dropped armed: its knote must be deleted.
                drop(s);
            }
            // (Had this thread stalled for 10 ms in between, the wake would be legitimate.)
            let dropped_in_time = created.elapsed() < Duration::from_millis(10);
            // Let the runtime apply the delete and release the slot.
            sleep(Duration::from_millis(1)).await;
            // New sleeps reuse the released slots; the old timer (due at 10 ms) must neither
            // wake the dropped sleep's waker nor complete a new 60 ms sleep early.
            let start = Instant::now();
            let counters: Vec<_> = (0..3).map(|_| CountingWaker::new()).collect();
            let mut sleeps = Vec::new();
            for c in &counters {
                let waker = Waker::from(Arc::clone(c));
                let mut cx = Context::from_waker(&waker);
                let mut s = sleep(Duration::from_millis(60));
                let _ = Pin::new(&mut s).poll(&mut cx);
                sleeps.push(s);
            }
            sleep(Duration::from_millis(30)).await;
            // Read the counts, then the clock: a wake counted while the clock still reads
            // < 60 ms came early. (A stalled thread may read it later: then nothing is known.)
            let early: Vec<usize> = counters.iter().map(|c| c.count()).collect();
            if start.elapsed() < Duration::from_millis(60) {
                assert_eq!(
                    early,
                    [0, 0, 0],
                    "a 60 ms sleep was woken before its deadline"
                );
            }
            for s in sleeps {
                s.await;
            }
            assert!(start.elapsed() >= Duration::from_millis(60));
            if dropped_in_time {
                assert_eq!(counter.count(), 0, "a dropped Sleep woke its waker");
            }
        }))
        .unwrap();
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn ten_thousand_dropped_sleeps_then_a_short_one() {
    each(|rt, _| {
        let handle = rt.handle().clone();
        rt.block_on(rt.spawn(async {
            for i in 0..10_000u64 {
                let mut s = sleep(Duration::from_secs(60 + i));
                assert!(poll!(&mut s).is_pending());
            }
            // Sleeps dropped off the worker that armed them (on another thread).
            let mut armed = Vec::new();
            for _ in 0..100 {
                let mut s = sleep(Duration::from_secs(60));
                assert!(poll!(&mut s).is_pending());
                armed.push(s);
            }
            std::thread::spawn(move || drop(armed)).join().unwrap();
            let start = Instant::now();
            sleep(Duration::from_millis(5)).await;
            assert!(start.elapsed() >= Duration::from_millis(5));
        }))
        .unwrap();
        assert_eq!(handle.live_tasks(), 0);
        // Timers still work for new tasks too.
        let start = Instant::now();
        rt.block_on(rt.spawn(sleep(Duration::from_millis(3))))
            .unwrap();
        assert!(start.elapsed() >= Duration::from_millis(3));
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn cancelled_sleeping_tasks_leave_no_live_tasks() {
    each(|rt, _| {
        let hs: Vec<_> = (0..500)
            .map(|_| rt.spawn(sleep(Duration::from_secs(3600))))
            .collect();
        rt.block_on(sleep(Duration::from_millis(2)));
        for h in &hs {
            h.abort();
        }
        rt.block_on(async {
            for h in hs {
                assert!(h.await.unwrap_err().is_cancelled());
            }
        });
        assert_eq!(rt.handle().live_tasks(), 0);
        let start = Instant::now();
        rt.block_on(sleep(Duration::from_millis(3)));
        assert!(start.elapsed() >= Duration::from_millis(3));
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn timeout_ready_and_elapsed() {
    each(|rt, _| {
        rt.block_on(async {
            assert_eq!(timeout(Duration::from_millis(10), async { 5 }).await, Ok(5));
            // Ready at once even with a zero duration.
            assert_eq!(timeout(Duration::ZERO, async { 6 }).await, Ok(6));
            let start = Instant::now();
            let r = timeout(Duration::from_millis(20), pending::<()>()).await;
            assert!(r.is_err());
            assert!(
                start.elapsed() >= Duration::from_millis(20),
                "elapsed early"
            );
            let err = r.unwrap_err();
            assert_eq!(err.to_string(), "deadline has elapsed");
            let io: std::io::Error = err.into();
            assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
            // An inner future that completes before the deadline wins.
            let r = timeout(Duration::from_secs(10), async {
                sleep(Duration::from_millis(5)).await;
                7
            })
            .await;
            assert_eq!(r, Ok(7));
            // timeout_at in the past, inner pending: Err at once.
            let r = timeout_at(Instant::now() - Duration::from_millis(1), pending::<()>()).await;
            assert!(r.is_err());
            // Huge duration does not overflow.
            let mut t = timeout(Duration::MAX, async { 8 });
            let _: &mut _ = t.get_mut();
            let _: &_ = t.get_ref();
            assert_eq!(t.await, Ok(8));
        });
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn timeout_into_inner_keeps_the_future() {
    watchdog(|| {
        let rt = Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let (tx, rx) = knote_executor::sync::oneshot::channel::<u8>();
            let t = timeout(Duration::from_millis(1), rx);
            let mut rx = t.into_inner();
            tx.send(3).unwrap();
            assert_eq!((&mut rx).await, Ok(3));
        });
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn sleep_zero_and_past_deadlines_are_ready_at_once() {
    each(|rt, _| {
        rt.block_on(async {
            assert!(poll!(sleep(Duration::ZERO)).is_ready());
            assert!(poll!(sleep_until(Instant::now() - Duration::from_secs(1))).is_ready());
            let s = sleep_until(Instant::now() - MS);
            assert!(s.is_elapsed());
            s.await;
        });
    });
    // Ready at once even outside a runtime (no timer needed).
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(pin!(sleep(Duration::ZERO)).poll(&mut cx).is_ready());
}

#[test]
fn sleep_polled_outside_a_runtime_panics() {
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut s = sleep(Duration::from_secs(1));
        let _ = Pin::new(&mut s).poll(&mut cx);
    }));
    let p = r.expect_err("must panic outside a runtime");
    let msg = p
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(msg.contains("outside a knote runtime"), "{msg}");
}

#[test]
#[cfg_attr(miri, ignore)]
fn sleep_reset() {
    each(|rt, _| {
        rt.block_on(rt.spawn(async {
            // Armed for an hour, moved to 15 ms from now.
            let mut s = sleep(Duration::from_secs(3600));
            assert!(poll!(&mut s).is_pending());
            let start = Instant::now();
            s.reset(start + Duration::from_millis(15));
            assert_eq!(s.deadline(), start + Duration::from_millis(15));
            (&mut s).await;
            assert!(start.elapsed() >= Duration::from_millis(15));
            assert!(s.is_elapsed());
            // Reset after it elapsed: it waits again.
            let again = Instant::now();
            s.reset(again + Duration::from_millis(10));
            assert!(!s.is_elapsed());
            (&mut s).await;
            assert!(again.elapsed() >= Duration::from_millis(10));
            // Armed for 5 ms, pushed back to 40 ms: the first knote must not complete it.
            let start = Instant::now();
            let mut s = sleep(Duration::from_millis(5));
            // (Pending unless this thread stalled for 5 ms; either way the reset must hold.)
            let _ = poll!(&mut s);
            s.reset(start + Duration::from_millis(40));
            s.await;
            assert!(start.elapsed() >= Duration::from_millis(40));
            // Reset before the first poll.
            let start = Instant::now();
            let mut s = sleep(Duration::from_secs(3600));
            s.reset(start + Duration::from_millis(5));
            s.await;
            assert!(start.elapsed() >= Duration::from_millis(5));
        }))
        .unwrap();
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn sleep_moved_between_tasks_and_threads() {
    // A Sleep armed on one worker and awaited by a task that may run elsewhere.
    each(|rt, _| {
        let start = Instant::now();
        rt.block_on(async {
            let mut s = sleep(Duration::from_millis(20));
            let _ = poll!(&mut s); // arms it here (unless already due)
            spawn(async move {
                s.await;
            })
            .await
            .unwrap();
        });
        assert!(start.elapsed() >= Duration::from_millis(20));
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn interval_first_tick_is_immediate_and_ticks_are_spaced() {
    each(|rt, _| {
        rt.block_on(rt.spawn(async {
            let period = Duration::from_millis(10);
            let before = Instant::now();
            let mut iv = interval(period);
            assert_eq!(iv.period(), period);
            assert_eq!(iv.missed_tick_behavior(), MissedTickBehavior::Burst);
            // The first tick is ready on the first poll.
            let first = match poll!(pin!(iv.tick())) {
                Poll::Ready(t) => t,
                Poll::Pending => panic!("the first tick must be immediate"),
            };
            assert!(first >= before && first <= Instant::now());
            let mut prev = first;
            for k in 1..=5u32 {
                let due = iv.tick().await;
                let now = Instant::now();
                assert_eq!(due, first + period * k, "burst keeps the schedule");
                assert!(due - prev >= period);
                assert!(now >= due, "tick {k} returned before it was due");
                prev = due;
            }
        }))
        .unwrap();
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn interval_at_starts_later() {
    each(|rt, _| {
        rt.block_on(async {
            let start = Instant::now() + Duration::from_millis(15);
            let mut iv = interval_at(start, Duration::from_millis(5));
            assert_eq!(iv.tick().await, start);
            assert!(Instant::now() >= start);
            assert_eq!(iv.tick().await, start + Duration::from_millis(5));
            // reset: the next tick is a period from now.
            let before = Instant::now();
            iv.reset();
            let t = iv.tick().await;
            assert!(t >= before + Duration::from_millis(5));
            assert!(Instant::now() >= t);
        });
    });
    assert!(std::panic::catch_unwind(|| interval(Duration::ZERO)).is_err());
}

/// Ticks an interval of `period`, stalls the thread for `stall` after the first tick, then
/// returns (start, the instant the stall ended, the next `n` ticks' due instants).
async fn stalled_ticks(
    behavior: MissedTickBehavior,
    period: Duration,
    stall: Duration,
    n: usize,
) -> (Instant, Instant, Vec<Instant>) {
    let start = Instant::now();
    let mut iv = interval_at(start, period);
    iv.set_missed_tick_behavior(behavior);
    assert_eq!(iv.missed_tick_behavior(), behavior);
    assert_eq!(iv.tick().await, start);
    // A blocking stall inside the task: ticks are missed.
    std::thread::sleep(stall);
    let stall_end = Instant::now();
    let mut dues = Vec::new();
    for _ in 0..n {
        dues.push(iv.tick().await);
    }
    (start, stall_end, dues)
}

#[test]
#[cfg_attr(miri, ignore)]
fn interval_missed_tick_burst() {
    each(|rt, _| {
        let p = Duration::from_millis(20);
        let (start, stall_end, dues) = rt
            .block_on(rt.spawn(stalled_ticks(MissedTickBehavior::Burst, p, p * 7 / 2, 5)))
            .unwrap();
        // Every missed tick is delivered, on the original schedule.
        for (k, due) in dues.iter().enumerate() {
            assert_eq!(*due, start + p * (k as u32 + 1));
        }
        // The first three were already due when the stall ended: delivered back to back.
        assert!(dues[2] <= stall_end);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn interval_missed_tick_delay() {
    each(|rt, _| {
        let p = Duration::from_millis(20);
        let (start, stall_end, dues) = rt
            .block_on(rt.spawn(stalled_ticks(MissedTickBehavior::Delay, p, p * 7 / 2, 3)))
            .unwrap();
        // The overdue tick fires, then the schedule restarts from "now".
        assert!(dues[0] <= stall_end);
        assert!(dues[0] >= start + p);
        assert!(
            dues[1] >= stall_end + p,
            "Delay: next tick {:?} after the stall end, want >= one period",
            dues[1] - stall_end
        );
        assert!(dues[2] - dues[1] >= p);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn interval_missed_tick_skip() {
    each(|rt, _| {
        let p = Duration::from_millis(20);
        let (start, stall_end, dues) = rt
            .block_on(rt.spawn(stalled_ticks(MissedTickBehavior::Skip, p, p * 7 / 2, 3)))
            .unwrap();
        assert!(dues[0] <= stall_end);
        for (k, due) in dues.iter().enumerate() {
            let since = (*due - start).as_nanos();
            assert_eq!(
                since % p.as_nanos(),
                0,
                "tick {k} off the original schedule"
            );
        }
        // Missed ticks are skipped: the next one is in the future of the stall.
        assert!(dues[1] > stall_end, "Skip delivered a missed tick");
        assert!(dues[1] >= start + p * 4);
        assert!(dues[2] > dues[1]);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn many_timers_from_many_tasks_with_random_churn() {
    // Sleeps of many tasks created, reset and dropped in a mixed order: every surviving
    // sleep completes, none early.
    each(|rt, _| {
        let completed = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let hs: Vec<_> = (0..100u64)
                .map(|i| {
                    let completed = Arc::clone(&completed);
                    spawn(async move {
                        let start = Instant::now();
                        let mut keep = sleep(Duration::from_millis(1 + i % 7));
                        let _ = poll!(&mut keep);
                        for j in 0..20u64 {
                            let mut s = sleep(Duration::from_millis(j + 1));
                            if j % 3 == 0 {
                                let _ = poll!(&mut s);
                                s.reset(Instant::now() + Duration::from_secs(10));
                            }
                        }
                        keep.await;
                        assert!(start.elapsed() >= Duration::from_millis(1 + i % 7));
                        completed.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            for h in hs {
                h.await.unwrap();
            }
        });
        assert_eq!(completed.load(Ordering::SeqCst), 100);
    });
}
