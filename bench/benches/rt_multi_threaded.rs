//! knote's multi-thread runtime and tokio's, side by side, in one run.
//!
//! ```text
//! cargo bench -p knote-bench --bench rt_multi_threaded    # 3-4 minutes on 2 cores
//! # only tokio's 4 workers:
//! KNOTE_BENCH_WORKERS=4 cargo bench -p knote-bench --bench rt_multi_threaded
//! bench/executor_ratios.sh            # both executor benches, 3 interleaved runs, a ratio table
//! ```
//!
//! Every workload is one criterion group (`mt_NAME`) holding `knote/W` and `tokio/W` for each
//! worker count W (`KNOTE_BENCH_WORKERS`, default `4,2`: tokio's bench uses 4 workers, which
//! on a 2-core machine means more workers than cores; 2 is one worker per core). criterion
//! measures them in the same process run, one after the other. Quote the ratios, not the times
//! (see `bench/BENCHMARKS.md`). As in `rt_current_thread.rs`, the workload code is written
//! once (`workloads!`) and expanded in `on_knote` and `on_tokio`, which differ only in their
//! imports and in how the runtime is built (tokio with `enable_all()`, as tokio's bench does).
//!
//! Channels: where tokio's bench uses std's `mpsc` (completion signals to the thread in
//! `block_on`) both sides use it too; its `tokio::sync::oneshot` becomes `knote::sync::oneshot`
//! on knote's side, which is tokio's re-exported (chosen by `benches/sync_primitives.rs`).
//!
//! The workloads (one iteration each; `Throughput` counts the operations in brackets):
//!
//! - From tokio's `benches/rt_multi_threaded.rs`, same code and parameters:
//!   - `spawn_many_local` [10,000 spawns]: inside `block_on`, spawn 10,000 tasks that each
//!     decrement an atomic; the last one signals through a std `sync_channel`.
//!   - `spawn_many_remote_idle` [10,000 spawns]: spawn 10,000 empty tasks from outside the
//!     runtime, then `block_on` awaiting every handle.
//!   - `spawn_many_remote_busy1` [10,000 spawns]: the same while 2×W tasks loop on
//!     `yield_now` plus a 10 µs stall.
//!   - `spawn_many_remote_busy2` [1,000 spawns]: the same (1,000 tasks) while W chains of
//!     tasks each stall 10 µs and spawn their successor.
//!   - `ping_pong` [1,000 pairs]: 1,000 tasks, each spawning a partner and exchanging one
//!     message each way with it through two oneshot channels.
//!   - `yield_many` [200,000 yields]: 200 tasks spawned from outside, each yielding 1,000
//!     times, then signalling through a std channel.
//!   - `chained_spawn` [1,000 spawns]: a chain of 1,000 tasks, each spawning the next.
//! - Beyond tokio's benches:
//!   - `sleep_100k` [100,000 sleeps]: 100,000 tasks each sleeping 1 ms, counted down as in
//!     `spawn_many_local`.
//!   - `timeout_ready` [1,000 timeouts]: one task awaiting `timeout(1 s, ready)` 1,000 times.
//!   - `cross_thread_wake` [200 round trips]: a task sends a oneshot sender to a std thread
//!     (std `mpsc`), the thread completes it, the task wakes: a wake-up from another thread
//!     each round trip.
//!   - `spawn_blocking` [100 closures]: 100 `spawn_blocking` of an empty closure from a task,
//!     then await them all.
//!
//! With `KNOTE_BENCH_OP=GROUP/SIDE/W:COUNT` (e.g. `mt_ping_pong/knote/4:10`) the binary sets one
//! workload up, runs COUNT iterations and exits, without criterion (for `perf` or callgrind).
//! `KNOTE_BENCH_FIRST=tokio` measures tokio before knote in every group.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};

#[path = "support/mod.rs"]
mod support;
use support::{workload, Prepared, OP_ENV};

const NUM_SPAWN: usize = 10_000;
const NUM_SPAWN_BUSY2: usize = 1_000;
const STALL_DUR: Duration = Duration::from_micros(10);
const NUM_PINGS: usize = 1_000;
const YIELD_TASKS: usize = 200;
const NUM_YIELD: usize = 1_000;
const CHAIN: usize = 1_000;
const NUM_SLEEPS: usize = 100_000;
const SLEEP: Duration = Duration::from_millis(1);
const NUM_TIMEOUTS: usize = 1_000;
const ROUND_TRIPS: usize = 200;
const NUM_BLOCKING: usize = 100;

/// The environment variable listing the worker counts to measure.
const WORKERS_ENV: &str = "KNOTE_BENCH_WORKERS";

/// Keeps a worker busy for `STALL_DUR` (tokio's bench's `stall`).
fn stall() {
    let now = Instant::now();
    while now.elapsed() < STALL_DUR {
        std::thread::yield_now();
    }
}

/// The workloads, written once and expanded in `on_knote` and `on_tokio`: `spawn`,
/// `spawn_blocking`, `yield_now`, `sleep`, `timeout`, `oneshot` and `multi_thread` resolve to
/// each runtime's own.
macro_rules! workloads {
    () => {
        use super::*;

        pub fn spawn_many_local(workers: usize) -> Prepared {
            let rt = multi_thread(workers);
            let (tx, rx) = mpsc::sync_channel(1000);
            let rem = Arc::new(AtomicUsize::new(0));
            Prepared::new(move || {
                rem.store(NUM_SPAWN, Relaxed);
                rt.block_on(async {
                    for _ in 0..NUM_SPAWN {
                        let tx = tx.clone();
                        let rem = rem.clone();
                        spawn(async move {
                            if 1 == rem.fetch_sub(1, Relaxed) {
                                tx.send(()).unwrap();
                            }
                        });
                    }
                    rx.recv().unwrap();
                })
            })
        }

        pub fn spawn_many_remote_idle(workers: usize) -> Prepared {
            let rt = multi_thread(workers);
            let mut handles = Vec::with_capacity(NUM_SPAWN);
            Prepared::new(move || {
                for _ in 0..NUM_SPAWN {
                    handles.push(rt.spawn(async {}));
                }
                rt.block_on(async {
                    for handle in handles.drain(..) {
                        handle.await.unwrap();
                    }
                })
            })
        }

        // Busy with tasks that consume CPU time and yield: yielding is a lower notification
        // priority than spawning.
        pub fn spawn_many_remote_busy1(workers: usize) -> Prepared {
            let rt = multi_thread(workers);
            let rt_handle = rt.handle().clone();
            let mut handles = Vec::with_capacity(NUM_SPAWN);
            let flag = Arc::new(AtomicBool::new(true));
            for _ in 0..(2 * workers) {
                let flag = flag.clone();
                rt.spawn(async move {
                    while flag.load(Relaxed) {
                        yield_now().await;
                        stall();
                    }
                });
            }
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
            .with_stop(move || flag.store(false, Relaxed))
        }

        // Busy with tasks that consume CPU time and spawn new such tasks: spawning goes via a
        // higher notification priority than yielding.
        pub fn spawn_many_remote_busy2(workers: usize) -> Prepared {
            let rt = multi_thread(workers);
            let rt_handle = rt.handle().clone();
            let mut handles = Vec::with_capacity(NUM_SPAWN_BUSY2);
            let flag = Arc::new(AtomicBool::new(true));
            for _ in 0..workers {
                let flag = flag.clone();
                fn iter(flag: Arc<AtomicBool>) {
                    spawn(async move {
                        if flag.load(Relaxed) {
                            stall();
                            iter(flag);
                        }
                    });
                }
                rt.spawn(async move {
                    iter(flag);
                });
            }
            Prepared::new(move || {
                for _ in 0..NUM_SPAWN_BUSY2 {
                    handles.push(rt_handle.spawn(async {}));
                }
                rt.block_on(async {
                    for handle in handles.drain(..) {
                        handle.await.unwrap();
                    }
                })
            })
            .with_stop(move || flag.store(false, Relaxed))
        }

        pub fn ping_pong(workers: usize) -> Prepared {
            let rt = multi_thread(workers);
            let (done_tx, done_rx) = mpsc::sync_channel(1000);
            let rem = Arc::new(AtomicUsize::new(0));
            Prepared::new(move || {
                let done_tx = done_tx.clone();
                let rem = rem.clone();
                rem.store(NUM_PINGS, Relaxed);
                rt.block_on(async {
                    spawn(async move {
                        for _ in 0..NUM_PINGS {
                            let rem = rem.clone();
                            let done_tx = done_tx.clone();
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
                                    done_tx.send(()).unwrap();
                                }
                            });
                        }
                    });
                    done_rx.recv().unwrap();
                })
            })
        }

        pub fn yield_many(workers: usize) -> Prepared {
            let rt = multi_thread(workers);
            let (tx, rx) = mpsc::sync_channel(YIELD_TASKS);
            Prepared::new(move || {
                for _ in 0..YIELD_TASKS {
                    let tx = tx.clone();
                    rt.spawn(async move {
                        for _ in 0..NUM_YIELD {
                            yield_now().await;
                        }
                        tx.send(()).unwrap();
                    });
                }
                for _ in 0..YIELD_TASKS {
                    rx.recv().unwrap();
                }
            })
        }

        fn chain(done_tx: mpsc::SyncSender<()>, n: usize) {
            if n == 0 {
                done_tx.send(()).unwrap();
            } else {
                spawn(async move {
                    chain(done_tx, n - 1);
                });
            }
        }

        pub fn chained_spawn(workers: usize) -> Prepared {
            let rt = multi_thread(workers);
            let (done_tx, done_rx) = mpsc::sync_channel(1000);
            Prepared::new(move || {
                let done_tx = done_tx.clone();
                rt.block_on(async {
                    spawn(async move {
                        chain(done_tx, CHAIN);
                    });
                    done_rx.recv().unwrap();
                })
            })
        }

        pub fn sleep_100k(workers: usize) -> Prepared {
            let rt = multi_thread(workers);
            let (tx, rx) = mpsc::sync_channel(1000);
            let rem = Arc::new(AtomicUsize::new(0));
            Prepared::new(move || {
                rem.store(NUM_SLEEPS, Relaxed);
                rt.block_on(async {
                    for _ in 0..NUM_SLEEPS {
                        let tx = tx.clone();
                        let rem = rem.clone();
                        spawn(async move {
                            sleep(SLEEP).await;
                            if 1 == rem.fetch_sub(1, Relaxed) {
                                tx.send(()).unwrap();
                            }
                        });
                    }
                    rx.recv().unwrap();
                })
            })
        }

        pub fn timeout_ready(workers: usize) -> Prepared {
            let rt = multi_thread(workers);
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

        pub fn cross_thread_wake(workers: usize) -> Prepared {
            let rt = multi_thread(workers);
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

        pub fn spawn_blocking_batch(workers: usize) -> Prepared {
            let rt = multi_thread(workers);
            Prepared::new(move || {
                rt.block_on(async {
                    spawn(async {
                        let mut handles = Vec::with_capacity(NUM_BLOCKING);
                        for i in 0..NUM_BLOCKING {
                            handles.push(spawn_blocking(move || black_box(i)));
                        }
                        for handle in handles {
                            black_box(handle.await.unwrap());
                        }
                    })
                    .await
                    .unwrap()
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

    pub fn multi_thread(workers: usize) -> knote::Runtime {
        knote::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .build()
            .expect("build a knote multi-thread runtime")
    }

    workloads!();
}

mod on_tokio {
    pub use tokio::sync::oneshot;
    pub use tokio::task::{spawn, spawn_blocking, yield_now};
    pub use tokio::time::{sleep, timeout};

    pub fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .expect("build a tokio multi-thread runtime")
    }

    workloads!();
}

type Workload = support::Workload<fn(usize) -> Prepared>;

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
        "spawn_many_remote_busy1",
        on_knote::spawn_many_remote_busy1,
        on_tokio::spawn_many_remote_busy1,
        NUM_SPAWN,
        true,
    ),
    workload(
        "spawn_many_remote_busy2",
        on_knote::spawn_many_remote_busy2,
        on_tokio::spawn_many_remote_busy2,
        NUM_SPAWN_BUSY2,
        true,
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

/// The worker counts to measure: `KNOTE_BENCH_WORKERS` (comma-separated), default 4 and 2.
fn worker_counts() -> Vec<usize> {
    let spec = std::env::var(WORKERS_ENV).unwrap_or_else(|_| "4,2".to_owned());
    let counts: Vec<usize> = spec
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|&n| n > 0)
        .collect();
    if counts.is_empty() {
        eprintln!("{WORKERS_ENV}={spec:?} names no worker count; using 4");
        return vec![4];
    }
    counts
}

/// Both sides of every workload at every worker count, one group per workload; a runtime is
/// built only if criterion runs that function (a filter argument skips the rest) and dropped
/// right after it.
fn executor(c: &mut Criterion) {
    let workers = worker_counts();
    for w in WORKLOADS {
        let mut group = w.group(c, "mt_");
        for &n in &workers {
            for (side, make) in w.sides() {
                let mut prepared = None;
                group.bench_function(BenchmarkId::new(side, n), |b| {
                    let p = prepared.get_or_insert_with(|| make(n));
                    b.iter(|| (p.step)())
                });
                drop(prepared);
            }
        }
        group.finish();
    }
}

/// `KNOTE_BENCH_OP=GROUP/SIDE/W:COUNT`: set one workload up, run COUNT iterations, exit.
fn op_mode(spec: &str) -> Result<(), String> {
    let (name, count) = support::split_count(spec, "GROUP/SIDE/W")?;
    let mut parts = name.split('/');
    let (Some(group), Some(side), Some(n), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("{OP_ENV}: {name:?} is not GROUP/SIDE/W"));
    };
    let n: usize = match n.parse() {
        Ok(n) if n > 0 => n,
        _ => return Err(format!("{OP_ENV}: bad worker count {n:?}")),
    };
    let make = support::find(WORKLOADS, "mt_", "{knote,tokio}/W", group)?.side(side)?;
    support::run_steps(make(n), count);
    Ok(())
}

fn main() {
    support::main(op_mode, executor);
}
