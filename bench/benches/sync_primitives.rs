//! The synchronization primitives `knote::sync` could re-export, measured on knote's own
//! runtimes: futures-channel, tokio's `sync` module (no tokio runtime) and the smol-side crates
//! (`async-channel`, `async-lock`, `event-listener`, `async-broadcast`).
//!
//! ```text
//! # the paired table, then criterion
//! cargo bench -p knote-bench --bench sync_primitives
//! # the paired table only
//! KNOTE_BENCH_PAIRED_ONLY=1 cargo bench -p knote-bench --bench sync_primitives
//! # more rounds (default 15)
//! KNOTE_BENCH_ROUNDS=31 cargo bench -p knote-bench --bench sync_primitives
//! # criterion: one workload family
//! cargo bench -p knote-bench --bench sync_primitives -- mpsc
//! ```
//!
//! Every workload runs on a current-thread runtime (`ct`) and on a multi-thread runtime with two
//! workers (`mt`), the same runtimes for every implementation:
//!
//! - `mpsc`: a spawned producer sends 10,000 `u64`s through a bounded channel (capacity 128) to
//!   the `block_on` consumer. futures-channel, tokio, async-channel.
//! - `oneshot`: 1,000 spawned tasks each answer on their own oneshot, awaited in order.
//!   futures-channel, tokio, async-channel (a bounded(1) channel used once).
//! - `mutex_uncontended`: 10,000 lock/unlock pairs in one task. tokio, async-lock.
//! - `mutex_contended`: 4 tasks × 1,000 increments, each holding the lock across a yield.
//!   tokio, async-lock.
//! - `semaphore`: 8 tasks × 500 acquire/yield/release on a semaphore of 2 permits. tokio,
//!   async-lock.
//! - `notify`: two tasks ping-pong 2,000 times, each waking the other with a notifier and
//!   waiting on its own. tokio `Notify`, `event-listener`.
//! - `broadcast`: one sender, 4 receiving tasks, 2,000 messages through a channel of capacity
//!   64 (the sender waits on a semaphore of 64 permits that the last reader of each message
//!   returns, so no receiver lags and both sides do the same work). tokio, async-broadcast
//!   (whose sender waits for room itself; the permits are taken there too, for the same work).
//!
//! **Paired table** (printed first, outside criterion): for each workload and runtime, R rounds
//! (`KNOTE_BENCH_ROUNDS`); each round times one batch of every implementation, the order
//! rotated from round to round (A B C, B C A, C A B, …) so that a slow phase of the shared
//! machine falls on all of them alike. Each row gives every implementation's time per batch as
//! a ratio to the first implementation's in the same round: the median over the rounds, and the
//! spread (the middle half, 25th–75th percentile). Ratios below 1 are faster than the first
//! column.
//!
//! **Criterion** then measures each implementation in a group per workload and runtime
//! (`mpsc/ct`, …) for absolute times, first column first unless `KNOTE_BENCH_ROTATE=k` rotates
//! the order by `k`.

use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use futures_util::StreamExt;
use knote::runtime::{Builder, Runtime};
use knote::task::yield_now;

const MPSC_MESSAGES: u64 = 10_000;
const MPSC_CAPACITY: usize = 128;
const ONESHOTS: usize = 1_000;
const LOCKS_UNCONTENDED: usize = 10_000;
const CONTENDERS: usize = 4;
const LOCKS_PER_CONTENDER: usize = 1_000;
const SEM_TASKS: usize = 8;
const SEM_PERMITS: usize = 2;
const SEM_ROUNDS: usize = 500;
const PING_PONGS: usize = 2_000;
const BROADCAST_RECEIVERS: usize = 4;
const BROADCAST_MESSAGES: usize = 2_000;
const BROADCAST_CAPACITY: usize = 64;

/// One implementation of a workload: a name and a batch that runs on the given runtime.
type Batch = fn(&Runtime);

/// A workload: its name and its implementations, the first being the ratios' denominator.
struct Workload {
    name: &'static str,
    impls: Vec<(&'static str, Batch)>,
}

// ---------------------------------------------------------------------------------------------
// mpsc

fn mpsc_futures(rt: &Runtime) {
    let (mut tx, mut rx) = futures_channel::mpsc::channel::<u64>(MPSC_CAPACITY);
    let producer = rt.spawn(async move {
        for i in 0..MPSC_MESSAGES {
            // What `SinkExt::send` does, with the channel's own methods.
            std::future::poll_fn(|cx| tx.poll_ready(cx)).await.unwrap();
            tx.start_send(i).unwrap();
        }
    });
    rt.block_on(async move {
        let mut sum = 0;
        while let Some(v) = rx.next().await {
            sum += v;
        }
        producer.await.unwrap();
        black_box(sum);
    });
}

fn mpsc_tokio(rt: &Runtime) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(MPSC_CAPACITY);
    let producer = rt.spawn(async move {
        for i in 0..MPSC_MESSAGES {
            tx.send(i).await.unwrap();
        }
    });
    rt.block_on(async move {
        let mut sum = 0;
        while let Some(v) = rx.recv().await {
            sum += v;
        }
        producer.await.unwrap();
        black_box(sum);
    });
}

fn mpsc_async_channel(rt: &Runtime) {
    let (tx, rx) = async_channel::bounded::<u64>(MPSC_CAPACITY);
    let producer = rt.spawn(async move {
        for i in 0..MPSC_MESSAGES {
            tx.send(i).await.unwrap();
        }
    });
    rt.block_on(async move {
        let mut sum = 0;
        while let Ok(v) = rx.recv().await {
            sum += v;
        }
        producer.await.unwrap();
        black_box(sum);
    });
}

// ---------------------------------------------------------------------------------------------
// oneshot

fn oneshot_futures(rt: &Runtime) {
    rt.block_on(async {
        let rxs: Vec<_> = (0..ONESHOTS)
            .map(|i| {
                let (tx, rx) = futures_channel::oneshot::channel();
                knote::spawn(async move { tx.send(i).unwrap() });
                rx
            })
            .collect();
        for rx in rxs {
            black_box(rx.await.unwrap());
        }
    });
}

fn oneshot_tokio(rt: &Runtime) {
    rt.block_on(async {
        let rxs: Vec<_> = (0..ONESHOTS)
            .map(|i| {
                let (tx, rx) = tokio::sync::oneshot::channel();
                knote::spawn(async move { tx.send(i).unwrap() });
                rx
            })
            .collect();
        for rx in rxs {
            black_box(rx.await.unwrap());
        }
    });
}

fn oneshot_async_channel(rt: &Runtime) {
    rt.block_on(async {
        let rxs: Vec<_> = (0..ONESHOTS)
            .map(|i| {
                let (tx, rx) = async_channel::bounded(1);
                knote::spawn(async move { tx.try_send(i).unwrap() });
                rx
            })
            .collect();
        for rx in rxs {
            black_box(rx.recv().await.unwrap());
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Mutex

fn mutex_uncontended_tokio(rt: &Runtime) {
    let m = tokio::sync::Mutex::new(0u64);
    rt.block_on(async {
        for _ in 0..LOCKS_UNCONTENDED {
            *m.lock().await += 1;
        }
    });
    black_box(m);
}

fn mutex_uncontended_async_lock(rt: &Runtime) {
    let m = async_lock::Mutex::new(0u64);
    rt.block_on(async {
        for _ in 0..LOCKS_UNCONTENDED {
            *m.lock().await += 1;
        }
    });
    black_box(m);
}

/// `CONTENDERS` tasks, each taking the lock `LOCKS_PER_CONTENDER` times with `critical` inside.
fn contend<M, F>(rt: &Runtime, lock: Arc<M>, critical: fn(Arc<M>) -> F)
where
    M: Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    rt.block_on(async move {
        let hs: Vec<_> = (0..CONTENDERS)
            .map(|_| {
                let lock = Arc::clone(&lock);
                knote::spawn(async move {
                    for _ in 0..LOCKS_PER_CONTENDER {
                        critical(Arc::clone(&lock)).await;
                    }
                })
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
    });
}

fn mutex_contended_tokio(rt: &Runtime) {
    contend(
        rt,
        Arc::new(tokio::sync::Mutex::new(0u64)),
        |m| async move {
            let mut g = m.lock().await;
            yield_now().await;
            *g += 1;
        },
    );
}

fn mutex_contended_async_lock(rt: &Runtime) {
    contend(rt, Arc::new(async_lock::Mutex::new(0u64)), |m| async move {
        let mut g = m.lock().await;
        yield_now().await;
        *g += 1;
    });
}

// ---------------------------------------------------------------------------------------------
// Semaphore

fn semaphore_tokio(rt: &Runtime) {
    let sem = Arc::new(tokio::sync::Semaphore::new(SEM_PERMITS));
    rt.block_on(async move {
        let hs: Vec<_> = (0..SEM_TASKS)
            .map(|_| {
                let sem = Arc::clone(&sem);
                knote::spawn(async move {
                    for _ in 0..SEM_ROUNDS {
                        let _p = sem.acquire().await.unwrap();
                        yield_now().await;
                    }
                })
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
    });
}

fn semaphore_async_lock(rt: &Runtime) {
    let sem = Arc::new(async_lock::Semaphore::new(SEM_PERMITS));
    rt.block_on(async move {
        let hs: Vec<_> = (0..SEM_TASKS)
            .map(|_| {
                let sem = Arc::clone(&sem);
                knote::spawn(async move {
                    for _ in 0..SEM_ROUNDS {
                        let _p = sem.acquire().await;
                        yield_now().await;
                    }
                })
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Notify / event-listener ping-pong

fn notify_tokio(rt: &Runtime) {
    let ping = Arc::new(tokio::sync::Notify::new());
    let pong = Arc::new(tokio::sync::Notify::new());
    let other = {
        let (ping, pong) = (Arc::clone(&ping), Arc::clone(&pong));
        rt.spawn(async move {
            for _ in 0..PING_PONGS {
                ping.notified().await;
                pong.notify_one();
            }
        })
    };
    rt.block_on(async move {
        for _ in 0..PING_PONGS {
            ping.notify_one();
            pong.notified().await;
        }
        other.await.unwrap();
    });
}

/// A counted flag woken through `event_listener::Event`: the usual way that crate is used
/// (check, listen, check again, wait).
struct EventFlag {
    pending: AtomicUsize,
    event: event_listener::Event,
}

impl EventFlag {
    fn new() -> EventFlag {
        EventFlag {
            pending: AtomicUsize::new(0),
            event: event_listener::Event::new(),
        }
    }

    fn notify(&self) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        self.event.notify(1);
    }

    fn take(&self) -> bool {
        self.pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    async fn wait(&self) {
        loop {
            if self.take() {
                return;
            }
            let listener = self.event.listen();
            if self.take() {
                return;
            }
            listener.await;
        }
    }
}

fn notify_event_listener(rt: &Runtime) {
    let ping = Arc::new(EventFlag::new());
    let pong = Arc::new(EventFlag::new());
    let other = {
        let (ping, pong) = (Arc::clone(&ping), Arc::clone(&pong));
        rt.spawn(async move {
            for _ in 0..PING_PONGS {
                ping.wait().await;
                pong.notify();
            }
        })
    };
    rt.block_on(async move {
        for _ in 0..PING_PONGS {
            ping.notify();
            pong.wait().await;
        }
        other.await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------------
// broadcast fan-out

fn broadcast_tokio(rt: &Runtime) {
    let (tx, _) = tokio::sync::broadcast::channel::<u64>(BROADCAST_CAPACITY);
    // Room in the channel: the last of the receivers to read a message returns its permit.
    let room = Arc::new(tokio::sync::Semaphore::new(BROADCAST_CAPACITY));
    let seen = Arc::new(
        (0..BROADCAST_MESSAGES)
            .map(|_| AtomicUsize::new(0))
            .collect::<Vec<_>>(),
    );
    let hs: Vec<_> = (0..BROADCAST_RECEIVERS)
        .map(|_| {
            let mut rx = tx.subscribe();
            let (room, seen) = (Arc::clone(&room), Arc::clone(&seen));
            rt.spawn(async move {
                let mut sum = 0;
                while let Ok(v) = rx.recv().await {
                    sum += v;
                    if seen[v as usize].fetch_add(1, Ordering::AcqRel) + 1 == BROADCAST_RECEIVERS {
                        room.add_permits(1);
                    }
                }
                black_box(sum);
            })
        })
        .collect();
    rt.block_on(async move {
        for i in 0..BROADCAST_MESSAGES as u64 {
            room.acquire().await.unwrap().forget();
            tx.send(i).unwrap();
        }
        drop(tx);
        for h in hs {
            h.await.unwrap();
        }
    });
}

fn broadcast_async_broadcast(rt: &Runtime) {
    let (tx, rx) = async_broadcast::broadcast::<u64>(BROADCAST_CAPACITY);
    let room = Arc::new(tokio::sync::Semaphore::new(BROADCAST_CAPACITY));
    let seen = Arc::new(
        (0..BROADCAST_MESSAGES)
            .map(|_| AtomicUsize::new(0))
            .collect::<Vec<_>>(),
    );
    let hs: Vec<_> = (0..BROADCAST_RECEIVERS)
        .map(|_| {
            let mut rx = rx.clone();
            let (room, seen) = (Arc::clone(&room), Arc::clone(&seen));
            rt.spawn(async move {
                let mut sum = 0;
                while let Ok(v) = rx.recv().await {
                    sum += v;
                    if seen[v as usize].fetch_add(1, Ordering::AcqRel) + 1 == BROADCAST_RECEIVERS {
                        room.add_permits(1);
                    }
                }
                black_box(sum);
            })
        })
        .collect();
    // The original receiver would hold every message back: only the clones read.
    drop(rx);
    rt.block_on(async move {
        for i in 0..BROADCAST_MESSAGES as u64 {
            room.acquire().await.unwrap().forget();
            tx.broadcast(i).await.unwrap();
        }
        drop(tx);
        for h in hs {
            h.await.unwrap();
        }
    });
}

// ---------------------------------------------------------------------------------------------

fn workloads() -> Vec<Workload> {
    vec![
        Workload {
            name: "mpsc",
            impls: vec![
                ("futures-channel", mpsc_futures as Batch),
                ("tokio", mpsc_tokio),
                ("async-channel", mpsc_async_channel),
            ],
        },
        Workload {
            name: "oneshot",
            impls: vec![
                ("futures-channel", oneshot_futures as Batch),
                ("tokio", oneshot_tokio),
                ("async-channel", oneshot_async_channel),
            ],
        },
        Workload {
            name: "mutex_uncontended",
            impls: vec![
                ("tokio", mutex_uncontended_tokio as Batch),
                ("async-lock", mutex_uncontended_async_lock),
            ],
        },
        Workload {
            name: "mutex_contended",
            impls: vec![
                ("tokio", mutex_contended_tokio as Batch),
                ("async-lock", mutex_contended_async_lock),
            ],
        },
        Workload {
            name: "semaphore",
            impls: vec![
                ("tokio", semaphore_tokio as Batch),
                ("async-lock", semaphore_async_lock),
            ],
        },
        Workload {
            name: "notify",
            impls: vec![
                ("tokio", notify_tokio as Batch),
                ("event-listener", notify_event_listener),
            ],
        },
        Workload {
            name: "broadcast",
            impls: vec![
                ("tokio", broadcast_tokio as Batch),
                ("async-broadcast", broadcast_async_broadcast),
            ],
        },
    ]
}

fn runtimes() -> Vec<(&'static str, Runtime)> {
    vec![
        (
            "ct",
            Builder::new_current_thread()
                .build()
                .expect("current-thread runtime"),
        ),
        (
            "mt",
            Builder::new_multi_thread()
                .worker_threads(2)
                .build()
                .expect("multi-thread runtime"),
        ),
    ]
}

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}")),
        Err(_) => default,
    }
}

/// The `q`-quantile of sorted `v` (nearest rank).
fn quantile(v: &[f64], q: f64) -> f64 {
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// The paired table: rotated rounds, ratios to the first implementation per round.
fn paired(rounds: usize, runtimes: &[(&'static str, Runtime)]) {
    println!(
        "sync_primitives paired: {rounds} rounds, order rotated each round; \
         time ÷ first column's, median [25th–75th percentile]"
    );
    for w in workloads() {
        for (rt_name, rt) in runtimes {
            // One untimed warm-up batch each.
            for (_, f) in &w.impls {
                f(rt);
            }
            let n = w.impls.len();
            let mut ratios = vec![Vec::with_capacity(rounds); n];
            let mut firsts = Vec::with_capacity(rounds);
            for round in 0..rounds {
                let mut times = vec![Duration::ZERO; n];
                for k in 0..n {
                    let i = (round + k) % n;
                    let start = Instant::now();
                    (w.impls[i].1)(rt);
                    times[i] = start.elapsed();
                }
                firsts.push(times[0].as_secs_f64());
                for i in 0..n {
                    ratios[i].push(times[i].as_secs_f64() / times[0].as_secs_f64());
                }
            }
            firsts.sort_by(f64::total_cmp);
            let mut row = format!(
                "{:<18} {rt_name}  {} {:>8.1} µs",
                w.name,
                w.impls[0].0,
                quantile(&firsts, 0.5) * 1e6
            );
            for (i, r) in ratios.iter_mut().enumerate().skip(1) {
                r.sort_by(f64::total_cmp);
                row.push_str(&format!(
                    " | {} {:.2} [{:.2}–{:.2}]",
                    w.impls[i].0,
                    quantile(r, 0.5),
                    quantile(r, 0.25),
                    quantile(r, 0.75)
                ));
            }
            println!("{row}");
        }
    }
}

fn main() {
    let runtimes = runtimes();
    paired(env_usize("KNOTE_BENCH_ROUNDS", 15), &runtimes);
    if std::env::var_os("KNOTE_BENCH_PAIRED_ONLY").is_some() {
        return;
    }
    let rotate = env_usize("KNOTE_BENCH_ROTATE", 0);
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    for w in workloads() {
        for (rt_name, rt) in &runtimes {
            let mut g = c.benchmark_group(format!("{}/{rt_name}", w.name));
            let n = w.impls.len();
            for k in 0..n {
                let (name, f) = w.impls[(k + rotate) % n];
                g.bench_function(name, |b| b.iter(|| f(rt)));
            }
            g.finish();
        }
    }
    c.final_summary();
}
