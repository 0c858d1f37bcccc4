//! knote's current-thread runtime and tokio's, side by side, in one run.
//!
//! ```text
//! cargo bench -p knote-bench --bench rt_current_thread                # under a minute, 2 cores
//! cargo bench -p knote-bench --bench rt_current_thread -- yield_many  # one workload
//! bench/executor_ratios.sh                    # both executor benches, 3 interleaved runs,
//!                                             # a knote ÷ tokio table
//! ```
//!
//! Every workload is one criterion group (`ct_NAME`) holding a `knote` and a `tokio` function,
//! so criterion measures the two in the same process run, one after the other. Quote the
//! ratios, not the times (see `bench/BENCHMARKS.md`). The workload code is written once, in
//! the `workloads!` macro, and expanded twice: in `on_knote` and in `on_tokio`, whose only
//! differences are the imports (`spawn`, `yield_now`, `sleep`, `timeout`, `oneshot`, …) and
//! how the runtime is built. So both sides run literally the same code shape.
//!
//! - Both runtimes are built the way an application builds them: tokio with `enable_all()`
//!   (I/O and time drivers on, as `#[tokio::main]` does; a tokio current-thread runtime then
//!   parks in epoll, like knote, which always has its kqueue). tokio's own bench builds its
//!   current-thread runtime without drivers; that is the one deliberate difference.
//! - Channels: each side uses its runtime's idiomatic channel — `knote::sync::oneshot` and
//!   `tokio::sync::oneshot`. knote re-exports tokio's oneshot (chosen by
//!   `benches/sync_primitives.rs`), so `ping_pong` and `cross_thread_wake` compare executors.
//!
//! The workloads (one iteration each; `Throughput` counts the operations named in brackets):
//!
//! - From tokio's `benches/rt_current_thread.rs`, same parameters:
//!   - `spawn_many_local` [1,000 spawns]: inside `block_on`, spawn 1,000 empty tasks, then
//!     await every `JoinHandle`.
//!   - `spawn_many_remote_idle` [1,000 spawns]: spawn 1,000 empty tasks through the handle,
//!     from outside the runtime, then `block_on` awaiting every handle.
//!   - `spawn_many_remote_busy` [1,000 spawns]: the same while a task that forever re-spawns
//!     itself keeps the run queue non-empty.
//! - tokio's multi-thread workloads, on one thread (tokio has no current-thread version; the
//!   completion signal is a oneshot awaited by `block_on`, since blocking it would deadlock):
//!   - `ping_pong` [1,000 pairs]: 1,000 tasks, each spawning a partner and exchanging one
//!     message each way with it through two oneshot channels.
//!   - `yield_many` [200,000 yields]: 200 tasks each yielding 1,000 times.
//!   - `chained_spawn` [1,000 spawns]: a chain of 1,000 tasks, each spawning the next.
//! - Beyond tokio's benches:
//!   - `sleep_100k` [100,000 sleeps]: 100,000 tasks each sleeping 1 ms (timers registered
//!     and fired; the 1 ms itself is a small part of an iteration).
//!   - `sleep_1m` [1,000,000 sleeps]: the same with 1,000,000 tasks (a timer structure of a
//!     million entries: registered, ordered, fired).
//!   - `sleep_drop_100k` [100,000 sleeps]: one task creating 100,000 `sleep(1 s)`, polling each
//!     once (which registers its timer) and dropping it unfired (the cost of a cancelled
//!     timeout).
//!   - `timeout_ready` [1,000 timeouts]: one task awaiting `timeout(1 s, ready)` 1,000 times
//!     (the cost of a timeout whose future is ready at once: no timer should be armed).
//!   - `cross_thread_wake` [200 round trips]: a task sends a oneshot sender to a std thread
//!     (std `mpsc`), the thread completes it, the task wakes: each round trip is one wake-up of
//!     the runtime's thread from another thread, while it sleeps in epoll.
//!   - `spawn_blocking` [100 closures]: 100 `spawn_blocking` of an empty closure, then await
//!     them all (the pool's threads stay alive between iterations on both sides).
//!
//! With `KNOTE_BENCH_OP=GROUP/SIDE:COUNT` (e.g. `ct_yield_many/knote:10`) the binary sets one
//! workload up, runs COUNT iterations and exits, without criterion: for `valgrind
//! --tool=callgrind` or `perf` (`executor_ratios.sh --callgrind` uses it).
//! `KNOTE_BENCH_FIRST=tokio` measures tokio before knote in every group (the ratio script
//! alternates it between runs, so neither side always goes first).

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use criterion::Criterion;

#[path = "support/mod.rs"]
mod support;
use support::{workload, Prepared, OP_ENV};

const NUM_SPAWN: usize = 1_000;
const NUM_PINGS: usize = 1_000;
const YIELD_TASKS: usize = 200;
const NUM_YIELD: usize = 1_000;
const CHAIN: usize = 1_000;
const NUM_SLEEPS: usize = 100_000;
const NUM_SLEEPS_1M: usize = 1_000_000;
const NUM_DROPPED: usize = 100_000;
const SLEEP: Duration = Duration::from_millis(1);
const NUM_TIMEOUTS: usize = 1_000;
const ROUND_TRIPS: usize = 200;
const NUM_BLOCKING: usize = 100;

/// The workloads, written once and expanded in `on_knote` and `on_tokio`: the names `spawn`,
/// `spawn_blocking`, `yield_now`, `sleep`, `timeout`, `oneshot` and `current_thread` resolve
/// to each runtime's own.
macro_rules! workloads {
    () => {
        use super::*;

        /// A completion signal shared by many tasks: whichever finishes last takes it.
        type Done = Arc<Mutex<Option<oneshot::Sender<()>>>>;

        fn done_signal() -> (Done, oneshot::Receiver<()>) {
            let (tx, rx) = oneshot::channel();
            (Arc::new(Mutex::new(Some(tx))), rx)
        }

        fn signal(done: &Done) {
            if let Some(tx) = done.lock().unwrap().take() {
                tx.send(()).unwrap();
            }
        }

        pub fn spawn_many_local() -> Prepared {
            let rt = current_thread();
            let mut handles = Vec::with_capacity(NUM_SPAWN);
            Prepared::new(move || {
                rt.block_on(async {
                    for _ in 0..NUM_SPAWN {
                        handles.push(spawn(async move {}));
                    }
                    for handle in handles.drain(..) {
                        handle.await.unwrap();
                    }
                })
            })
        }

        pub fn spawn_many_remote_idle() -> Prepared {
            let rt = current_thread();
            let rt_handle = rt.handle().clone();
            let mut handles = Vec::with_capacity(NUM_SPAWN);
            Prepared::new(move || {
                for _ in 0..NUM_SPAWN {
                    handles.push(rt_handle.spawn(async {}));
                }
                rt.block_on(async {
                    for handle in handles.drain(..) {
                        handle.await.unwrap();
                    }
                })
            })
        }

        pub fn spawn_many_remote_busy() -> Prepared {
            let rt = current_thread();
            let rt_handle = rt.handle().clone();
            let mut handles = Vec::with_capacity(NUM_SPAWN);
            rt.spawn(async {
                fn iter() {
                    spawn(async { iter() });
                }
                iter()
            });
            Prepared::new(move || {
                for _ in 0..NUM_SPAWN {
                    handles.push(rt_handle.spawn(async {}));
                }
                rt.block_on(async {
                    for handle in handles.drain(..) {
                        handle.await.unwrap();
                    }
                })
            })
        }

        pub fn ping_pong() -> Prepared {
            let rt = current_thread();
            let rem = Arc::new(AtomicUsize::new(0));
            Prepared::new(move || {
                rem.store(NUM_PINGS, Relaxed);
                let rem = rem.clone();
                let (done, done_rx) = done_signal();
                rt.block_on(async move {
                    spawn(async move {
                        for _ in 0..NUM_PINGS {
                            let rem = rem.clone();
                            let done = done.clone();
                            spawn(async move {
                                let (tx1, rx1) = oneshot::channel();
                                let (tx2, rx2) = oneshot::channel();
                                spawn(async move {
                                    rx1.await.unwrap();
                                    tx2.send(()).unwrap();
                                });
                                tx1.send(()).unwrap();
                                rx2.await.unwrap();
                                if 1 == rem.fetch_sub(1, Relaxed) {
                                    signal(&done);
                                }
                            });
                        }
                    });
                    done_rx.await.unwrap();
                })
            })
        }

        pub fn yield_many() -> Prepared {
            let rt = current_thread();
            let rem = Arc::new(AtomicUsize::new(0));
            Prepared::new(move || {
                rem.store(YIELD_TASKS, Relaxed);
                let (done, done_rx) = done_signal();
                rt.block_on(async {
                    for _ in 0..YIELD_TASKS {
                        let rem = rem.clone();
                        let done = done.clone();
                        spawn(async move {
                            for _ in 0..NUM_YIELD {
                                yield_now().await;
                            }
                            if 1 == rem.fetch_sub(1, Relaxed) {
                                signal(&done);
                            }
                        });
                    }
                    done_rx.await.unwrap();
                })
            })
        }

        fn chain(done_tx: oneshot::Sender<()>, n: usize) {
            if n == 0 {
                done_tx.send(()).unwrap();
            } else {
                spawn(async move {
                    chain(done_tx, n - 1);
                });
            }
        }

        pub fn chained_spawn() -> Prepared {
            let rt = current_thread();
            Prepared::new(move || {
                let (done_tx, done_rx) = oneshot::channel();
                rt.block_on(async {
                    spawn(async move {
                        chain(done_tx, CHAIN);
                    });
                    done_rx.await.unwrap();
                })
            })
        }

        pub fn sleep_100k() -> Prepared {
            sleeps(NUM_SLEEPS)
        }

        pub fn sleep_1m() -> Prepared {
            sleeps(NUM_SLEEPS_1M)
        }

        pub fn sleep_drop_100k() -> Prepared {
            let rt = current_thread();
            Prepared::new(move || {
                rt.block_on(async {
                    spawn(async {
                        for _ in 0..NUM_DROPPED {
                            let s = std::pin::pin!(sleep(Duration::from_secs(1)));
                            poll_once(s).await;
                        }
                    })
                    .await
                    .unwrap();
                })
            })
        }

        /// Polls `fut` once (registering whatever it waits for), whatever the result.
        async fn poll_once<F: std::future::Future>(mut fut: std::pin::Pin<&mut F>) {
            std::future::poll_fn(|cx| {
                let _ = fut.as_mut().poll(cx);
                std::task::Poll::Ready(())
            })
            .await
        }

        fn sleeps(n: usize) -> Prepared {
            let rt = current_thread();
            let rem = Arc::new(AtomicUsize::new(0));
            Prepared::new(move || {
                rem.store(n, Relaxed);
                let (done, done_rx) = done_signal();
                rt.block_on(async {
                    for _ in 0..n {
                        let rem = rem.clone();
                        let done = done.clone();
                        spawn(async move {
                            sleep(SLEEP).await;
                            if 1 == rem.fetch_sub(1, Relaxed) {
                                signal(&done);
                            }
                        });
                    }
                    done_rx.await.unwrap();
                })
            })
        }

        pub fn timeout_ready() -> Prepared {
            let rt = current_thread();
            Prepared::new(move || {
                rt.block_on(async {
                    spawn(async {
                        for i in 0..NUM_TIMEOUTS {
                            let ready = async move { black_box(i) };
                            black_box(timeout(Duration::from_secs(1), ready).await.unwrap());
                        }
                    })
                    .await
                    .unwrap()
                })
            })
        }

        pub fn cross_thread_wake() -> Prepared {
            let rt = current_thread();
            let (req_tx, req_rx) = mpsc::channel::<oneshot::Sender<()>>();
            // Ends when the last request sender (owned by the step closure) is dropped.
            std::thread::spawn(move || {
                while let Ok(tx) = req_rx.recv() {
                    let _ = tx.send(());
                }
            });
            Prepared::new(move || {
                let req_tx = req_tx.clone();
                rt.block_on(async {
                    spawn(async move {
                        for _ in 0..ROUND_TRIPS {
                            let (tx, rx) = oneshot::channel();
                            req_tx.send(tx).unwrap();
                            rx.await.unwrap();
                        }
                    })
                    .await
                    .unwrap()
                })
            })
        }

        pub fn spawn_blocking_batch() -> Prepared {
            let rt = current_thread();
            let mut handles = Vec::with_capacity(NUM_BLOCKING);
            Prepared::new(move || {
                rt.block_on(async {
                    for i in 0..NUM_BLOCKING {
                        handles.push(spawn_blocking(move || black_box(i)));
                    }
                    for handle in handles.drain(..) {
                        black_box(handle.await.unwrap());
                    }
                })
            })
        }
    };
}

mod on_knote {
    /// knote's oneshot (`knote::sync::oneshot`, tokio's re-exported).
    pub use knote::sync::oneshot;
    pub use knote::task::yield_now;
    pub use knote::time::{sleep, timeout};
    pub use knote::{spawn, spawn_blocking};

    pub fn current_thread() -> knote::Runtime {
        knote::runtime::Builder::new_current_thread()
            .build()
            .expect("build a knote current-thread runtime")
    }

    workloads!();
}

mod on_tokio {
    pub use tokio::sync::oneshot;
    pub use tokio::task::{spawn, spawn_blocking, yield_now};
    pub use tokio::time::{sleep, timeout};

    pub fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("build a tokio current-thread runtime")
    }

    workloads!();
}

type Workload = support::Workload<fn() -> Prepared>;

const WORKLOADS: &[Workload] = &[
    workload(
        "spawn_many_local",
        on_knote::spawn_many_local,
        on_tokio::spawn_many_local,
        NUM_SPAWN,
        false,
    ),
    workload(
        "spawn_many_remote_idle",
        on_knote::spawn_many_remote_idle,
        on_tokio::spawn_many_remote_idle,
        NUM_SPAWN,
        false,
    ),
    workload(
        "spawn_many_remote_busy",
        on_knote::spawn_many_remote_busy,
        on_tokio::spawn_many_remote_busy,
        NUM_SPAWN,
        false,
    ),
    workload(
        "ping_pong",
        on_knote::ping_pong,
        on_tokio::ping_pong,
        NUM_PINGS,
        false,
    ),
    workload(
        "yield_many",
        on_knote::yield_many,
        on_tokio::yield_many,
        YIELD_TASKS * NUM_YIELD,
        true,
    ),
    workload(
        "chained_spawn",
        on_knote::chained_spawn,
        on_tokio::chained_spawn,
        CHAIN,
        false,
    ),
    workload(
        "sleep_100k",
        on_knote::sleep_100k,
        on_tokio::sleep_100k,
        NUM_SLEEPS,
        true,
    ),
    workload(
        "sleep_1m",
        on_knote::sleep_1m,
        on_tokio::sleep_1m,
        NUM_SLEEPS_1M,
        true,
    ),
    workload(
        "sleep_drop_100k",
        on_knote::sleep_drop_100k,
        on_tokio::sleep_drop_100k,
        NUM_DROPPED,
        false,
    ),
    workload(
        "timeout_ready",
        on_knote::timeout_ready,
        on_tokio::timeout_ready,
        NUM_TIMEOUTS,
        false,
    ),
    workload(
        "cross_thread_wake",
        on_knote::cross_thread_wake,
        on_tokio::cross_thread_wake,
        ROUND_TRIPS,
        false,
    ),
    workload(
        "spawn_blocking",
        on_knote::spawn_blocking_batch,
        on_tokio::spawn_blocking_batch,
        NUM_BLOCKING,
        false,
    ),
];

/// Both sides of every workload, one group each; a side's runtime is built only if criterion
/// runs that function (a filter argument skips the rest) and dropped right after it.
fn executor(c: &mut Criterion) {
    for w in WORKLOADS {
        let mut group = w.group(c, "ct_");
        for (side, make) in w.sides() {
            let mut prepared = None;
            group.bench_function(side, |b| {
                let p = prepared.get_or_insert_with(make);
                b.iter(|| (p.step)())
            });
            drop(prepared);
        }
        group.finish();
    }
}

/// `KNOTE_BENCH_OP=GROUP/SIDE:COUNT`: set one workload up, run COUNT iterations, exit.
fn op_mode(spec: &str) -> Result<(), String> {
    let (name, count) = support::split_count(spec, "GROUP/SIDE")?;
    let (group, side) = name
        .rsplit_once('/')
        .ok_or_else(|| format!("{OP_ENV}: {name:?} is not GROUP/SIDE"))?;
    let make = support::find(WORKLOADS, "ct_", "{knote,tokio}", group)?.side(side)?;
    support::run_steps(make(), count);
    Ok(())
}

fn main() {
    support::main(op_mode, executor);
}
