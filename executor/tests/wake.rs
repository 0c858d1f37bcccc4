//! Wake-up storms and cross-thread wake-up round trips.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::each;
use futures_util::StreamExt;
use knote_executor::sync::{mpsc, oneshot};
use knote_executor::task::yield_now;
use knote_executor::{spawn, Handle};

const TASKS: usize = 1000;
const WAKER_THREADS: usize = 8;

#[test]
#[cfg_attr(miri, ignore)]
fn oneshot_storm_from_many_threads() {
    each(|rt, _| {
        let completions: Arc<Vec<AtomicUsize>> =
            Arc::new((0..TASKS).map(|_| AtomicUsize::new(0)).collect());
        let mut senders = Vec::with_capacity(TASKS);
        let mut handles = Vec::with_capacity(TASKS);
        for i in 0..TASKS {
            let (tx, rx) = oneshot::channel::<usize>();
            senders.push((i, tx));
            let completions = Arc::clone(&completions);
            handles.push(rt.spawn(async move {
                let v = rx.await.expect("sender sends");
                completions[v].fetch_add(1, Ordering::SeqCst);
                v
            }));
        }
        // Let (most) tasks park on their receivers first, so the sends are real wake-ups.
        rt.block_on(async {
            for _ in 0..10 {
                yield_now().await;
            }
        });
        let barrier = Arc::new(Barrier::new(WAKER_THREADS));
        let mut chunks: Vec<Vec<(usize, oneshot::Sender<usize>)>> =
            (0..WAKER_THREADS).map(|_| Vec::new()).collect();
        for (n, s) in senders.into_iter().enumerate() {
            chunks[n % WAKER_THREADS].push(s);
        }
        let threads: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    for (i, tx) in chunk {
                        tx.send(i).unwrap();
                    }
                })
            })
            .collect();
        let outputs = rt.block_on(async {
            let mut out = Vec::with_capacity(TASKS);
            for h in handles {
                out.push(h.await.unwrap());
            }
            out
        });
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(outputs, (0..TASKS).collect::<Vec<_>>());
        for (i, c) in completions.iter().enumerate() {
            assert_eq!(c.load(Ordering::SeqCst), 1, "task {i} completed once");
        }
        assert_eq!(rt.handle().live_tasks(), 0);
    });
}

/// Completes once `counter` reaches `target`; stores its waker where the wakers find it.
struct UntilCount {
    counter: Arc<AtomicUsize>,
    target: usize,
    slot: Arc<Mutex<Option<Waker>>>,
    polls: Arc<AtomicUsize>,
}

impl Future for UntilCount {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.polls.fetch_add(1, Ordering::Relaxed);
        *self.slot.lock().unwrap() = Some(cx.waker().clone());
        if self.counter.load(Ordering::SeqCst) >= self.target {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn stored_wakers_woken_many_times_concurrently() {
    // 200 tasks, each woken (wake_by_ref and wake on clones) hundreds of times from 8 threads
    // while it is queued, running or idle: each must complete exactly once.
    const N: usize = 200;
    const ROUNDS: usize = 50;
    each(|rt, _| {
        let counter = Arc::new(AtomicUsize::new(0));
        let slots: Vec<Arc<Mutex<Option<Waker>>>> =
            (0..N).map(|_| Arc::new(Mutex::new(None))).collect();
        let done: Arc<Vec<AtomicUsize>> = Arc::new((0..N).map(|_| AtomicUsize::new(0)).collect());
        let polls = Arc::new(AtomicUsize::new(0));
        let target = WAKER_THREADS * ROUNDS;
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let fut = UntilCount {
                    counter: Arc::clone(&counter),
                    target,
                    slot: Arc::clone(&slots[i]),
                    polls: Arc::clone(&polls),
                };
                let done = Arc::clone(&done);
                rt.spawn(async move {
                    fut.await;
                    done[i].fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        let slots = Arc::new(slots);
        let threads: Vec<_> = (0..WAKER_THREADS)
            .map(|t| {
                let slots = Arc::clone(&slots);
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || {
                    for round in 0..ROUNDS {
                        counter.fetch_add(1, Ordering::SeqCst);
                        for (i, slot) in slots.iter().enumerate() {
                            let w = slot.lock().unwrap().clone();
                            if let Some(w) = w {
                                if (i + round + t) % 2 == 0 {
                                    w.wake_by_ref();
                                } else {
                                    w.wake();
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // The last increments happened before the last wakes: everyone can finish.
        rt.block_on(async {
            for h in handles {
                h.await.unwrap();
            }
        });
        for (i, d) in done.iter().enumerate() {
            assert_eq!(d.load(Ordering::SeqCst), 1, "task {i} completed once");
        }
        assert_eq!(rt.handle().live_tasks(), 0);
        // Waking a finished task's stale waker is harmless.
        for slot in slots.iter() {
            if let Some(w) = slot.lock().unwrap().take() {
                w.wake();
            }
        }
        assert_eq!(rt.block_on(rt.spawn(async { 1 })).unwrap(), 1);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn mpsc_fan_in_from_many_threads() {
    each(|rt, _| {
        let (tx, mut rx) = mpsc::unbounded::<(usize, usize)>();
        let consumer = rt.spawn(async move {
            let mut seen = [0usize; WAKER_THREADS];
            let mut total = 0;
            while let Some((t, i)) = rx.next().await {
                assert_eq!(seen[t], i, "per-sender FIFO");
                seen[t] += 1;
                total += 1;
            }
            total
        });
        let threads: Vec<_> = (0..WAKER_THREADS)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        tx.unbounded_send((t, i)).unwrap();
                        if i % 100 == 0 {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(rt.block_on(consumer).unwrap(), WAKER_THREADS * 2000);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn ping_pong_with_a_plain_thread() {
    // A runtime task and a plain thread bounce a counter through two channels: every round
    // is a cross-thread wake-up of a task that sleeps in the kqueue.
    const ROUNDS: u64 = 10_000;
    each(|rt, _| {
        let (to_task, mut task_rx) = mpsc::unbounded::<u64>();
        let (to_thread, thread_rx) = mpsc::unbounded::<u64>();
        let task = rt.spawn(async move {
            let mut last = 0;
            while let Some(v) = task_rx.next().await {
                last = v;
                if to_thread.unbounded_send(v + 1).is_err() {
                    break;
                }
            }
            last
        });
        let thread = std::thread::spawn(move || {
            let mut rx = thread_rx;
            let mut v = 0;
            for _ in 0..ROUNDS {
                to_task.unbounded_send(v).unwrap();
                v = common::block_on_plain(rx.next(), Duration::from_secs(10)).unwrap();
            }
            v
        });
        // Drive the runtime (a current-thread one needs this thread) until the thread is done
        // and has dropped its sender.
        assert_eq!(rt.block_on(task).unwrap(), ROUNDS - 1);
        assert_eq!(thread.join().unwrap(), ROUNDS);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn ping_pong_between_tasks() {
    // Two tasks bouncing through channels; on a multi-thread runtime they may sit on different
    // workers.
    each(|rt, _| {
        let n = rt.block_on(async {
            let (tx, mut rx_b) = mpsc::unbounded::<u32>();
            let (tx_b, mut rx) = mpsc::unbounded::<u32>();
            let b = spawn(async move {
                while let Some(v) = rx_b.next().await {
                    if tx_b.unbounded_send(v + 1).is_err() {
                        break;
                    }
                }
            });
            let mut v = 0;
            for _ in 0..2000 {
                tx.unbounded_send(v).unwrap();
                v = rx.next().await.unwrap();
            }
            drop(tx);
            b.await.unwrap();
            v
        });
        assert_eq!(n, 2000);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawn_storm_from_threads_and_tasks() {
    each(|rt, _| {
        let handle = rt.handle().clone();
        let ran = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let handle = handle.clone();
                let ran = Arc::clone(&ran);
                std::thread::spawn(move || {
                    let hs: Vec<_> = (0..250)
                        .map(|_| {
                            let ran = Arc::clone(&ran);
                            handle.spawn(async move {
                                // Each task spawns a child from inside the runtime.
                                let ran2 = Arc::clone(&ran);
                                let child = Handle::current().spawn(async move {
                                    ran2.fetch_add(1, Ordering::SeqCst);
                                });
                                ran.fetch_add(1, Ordering::SeqCst);
                                child.await.unwrap();
                            })
                        })
                        .collect();
                    hs
                })
            })
            .collect();
        let hs: Vec<_> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        rt.block_on(async {
            for h in hs {
                h.await.unwrap();
            }
        });
        assert_eq!(ran.load(Ordering::SeqCst), 2000);
        assert_eq!(rt.handle().live_tasks(), 0);
    });
}
