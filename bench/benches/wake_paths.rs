//! The two ways a multi-thread runtime can wake a sleeping worker, on the reactor alone (no
//! executor): a kqueue per worker, or one kqueue shared by all workers.
//!
//! ```text
//! # all designs, W = 2 and 4 (~75 s)
//! KNOTE_BENCH_PIN=1 cargo bench -p knote-bench --bench wake_paths
//! # unpinned (noisy on small VMs)
//! cargo bench -p knote-bench --bench wake_paths
//! # W = 4 only
//! KNOTE_BENCH_WORKERS=4 cargo bench -p knote-bench --bench wake_paths
//! # shared measured first
//! KNOTE_BENCH_FIRST=shared cargo bench -p knote-bench --bench wake_paths
//! KNOTE_BENCH_OP=shared/4:20000 target/release/deps/wake_paths-*   # 20,000 wakes, no criterion
//! KNOTE_BENCH_OP=paired/4:25 target/release/deps/wake_paths-*      # the paired ratios only
//! ```
//!
//! W threads sleep in `kevent(None)` and the bench thread wakes one of them with an
//! `EVFILT_USER` trigger (`NOTE_TRIGGER` on an `EV_CLEAR` knote), then spins until a woken thread
//! acknowledges by incrementing an atomic (the cheapest acknowledgement there is: no system
//! call on either side, so the round trip is the wake path itself, and every design uses it):
//!
//! - `per_worker/W`: each thread waits on its own kqueue holding its own `EV_CLEAR` user knote,
//!   and the bench triggers kqueue `i` to wake thread `i`, round robin, so each wake is aimed at a
//!   thread that has been asleep for at least one other round trip. This is how knote wakes a
//!   worker (`executor/src/runtime/multi_thread.rs`): the idle protocol wakes a *particular*
//!   worker, the one that was taken off the sleeper list, with a trigger on the kqueue it
//!   sleeps in (its own, or the runtime's home kqueue if it is the one waiting there).
//! - `per_worker_lifo/W`: the same kqueues, but the bench wakes the thread that acknowledged
//!   last — the order of knote's sleeper stack (`notify_one` pops the most recently parked
//!   worker). That thread may still be on its way back into `kevent` when the trigger lands,
//!   as the thread that just acknowledged may be in the shared design.
//! - `shared/W`: all W threads wait on one kqueue holding one `EV_CLEAR` user knote; the bench
//!   triggers it and whichever thread the kernel wakes acknowledges.
//!
//! A *targeted* wake in the shared design cannot be written with kevent: the sleepers on one
//! kqueue are indistinguishable to it, a trigger wakes "some" waiter (whichever the kernel
//! picks), and there is no way to say which. A shared-kqueue runtime therefore has to let any
//! worker take any wake-up and find the work itself (a shared or stolen queue); the per-worker
//! design pays one kqueue per worker for the ability to wake exactly the worker it means.
//!
//! The criterion functions of one W are in one group (`wake_W`), so every run measures every
//! design, one after the other; quote the ratio shared ÷ per_worker, not the times.
//!
//! Printed before criterion runs, outside its timing:
//!
//! - a *census* per design: a fixed number of wakes on a fresh set of threads, then how many
//!   times the waiters returned from `kevent` per trigger (does one trigger on an `EV_CLEAR`
//!   knote release one waiter or a herd?), how those returns were spread over the threads,
//!   (Linux) how many times the waiters went to sleep per trigger (voluntary context switches,
//!   `getrusage(RUSAGE_THREAD)`: a waiter woken for nothing goes back to sleep *inside*
//!   `kevent` — it never returns, so only this count sees it), and the waiters' CPU time per
//!   trigger (`CLOCK_THREAD_CPUTIME_ID`, all of them together);
//! - a *paired* ratio: every design's threads alive at once, timed in alternating blocks (see
//!   `paired`), so that a slow phase of the machine hits all designs in the same round.
//!
//! `KNOTE_BENCH_PIN=1` (Linux) pins the bench thread to one CPU and waiter `i` to the `1 + i`-th
//! (see `pin`). Unpinned, where the scheduler puts the woken thread (the spinning bench
//! thread's CPU, an idle one, a halted virtual CPU) changes a round trip by a factor of 2–5
//! from one run to the next on a 2-vCPU VM, which swamps the difference between the designs.
//!
//! With `KNOTE_BENCH_OP=DESIGN/W:COUNT` (e.g. `shared/4:20000`; COUNT may be 0) the binary runs
//! only that census and exits, without criterion: system calls counted over COUNT wakes minus
//! those over 0, divided by COUNT, are the system calls per wake. Count them with
//! `perf stat -e 'syscalls:sys_enter_*'` where the tracepoints are available: `strace -f -c`
//! slows every call enough to create contention (futex calls on the shim's lock) that a
//! full-speed run does not have.

use std::hint::{black_box, spin_loop};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use knote::reactor::{Flags, Kevent, Kqueue};

/// The environment variable that selects census-only mode (`DESIGN/W:COUNT`).
const OP_ENV: &str = "KNOTE_BENCH_OP";
/// The environment variable that puts the shared design first in every group.
const FIRST_ENV: &str = "KNOTE_BENCH_FIRST";
/// The environment variable listing the thread counts to measure.
const WORKERS_ENV: &str = "KNOTE_BENCH_WORKERS";
/// The environment variable that pins the threads (Linux): `KNOTE_BENCH_PIN=1`.
#[cfg(any(target_os = "linux", target_os = "android"))]
const PIN_ENV: &str = "KNOTE_BENCH_PIN";

/// The `EV_CLEAR` user knote a wake triggers.
const WAKE: usize = 0;
/// A user knote *without* `EV_CLEAR`: once triggered it stays triggered, so every waiter on the
/// kqueue sees it. Triggered only to shut the threads down.
const STOP: usize = 1;
/// Wakes in the census printed before criterion runs.
const CENSUS_WAKES: u64 = 20_000;
/// Spins on the acknowledgement before the bench thread starts yielding its core (on a
/// 2-core machine the woken thread may need it).
const SPINS_BEFORE_YIELD: u32 = 20_000;
/// A wake not acknowledged within this is a bug, not a slow machine.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Design {
    /// A kqueue per thread; the bench triggers them round robin, so every wake is aimed at a
    /// thread that has been asleep for at least one other round trip.
    PerWorker,
    /// A kqueue per thread; the bench triggers the one of the thread that acknowledged last,
    /// which is the order knote's idle protocol wakes in (`notify_one` pops the sleeper stack:
    /// the most recently parked worker first).
    PerWorkerLifo,
    /// One kqueue, one knote; the kernel picks the thread.
    Shared,
}

impl Design {
    const ALL: [Design; 3] = [Design::PerWorker, Design::PerWorkerLifo, Design::Shared];

    fn name(self) -> &'static str {
        match self {
            Design::PerWorker => "per_worker",
            Design::PerWorkerLifo => "per_worker_lifo",
            Design::Shared => "shared",
        }
    }

    fn parse(name: &str) -> Option<Design> {
        Design::ALL.into_iter().find(|d| d.name() == name)
    }
}

/// What one waiter thread reports, each in its own cache line.
#[derive(Default)]
#[repr(align(128))]
struct Slot {
    /// Returns from `kevent` that delivered `WAKE` (the stop return is not counted).
    returns: AtomicUsize,
    /// Voluntary context switches (times it went to sleep) while it ran, or `usize::MAX`.
    sleeps: AtomicUsize,
    /// CPU time (user + system) it used while it ran, in nanoseconds.
    cpu_ns: AtomicU64,
}

/// State shared by the bench thread and the waiters.
struct Shared {
    /// The acknowledgement: every `WAKE` delivery adds one.
    acks: AtomicU64,
    /// The index of the thread that acknowledged last (written before `acks`).
    last: AtomicUsize,
    stop: AtomicBool,
    slots: Vec<Slot>,
}

/// W threads asleep in `kevent`, ready to be woken one at a time.
struct Sleepers {
    design: Design,
    /// One per thread (per-worker), or the single shared one.
    kqs: Vec<Arc<Kqueue>>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// Round-robin target of the next `PerWorker` wake.
    next: usize,
    triggers: u64,
}

/// This thread's voluntary context switches so far (Linux: `RUSAGE_THREAD`).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn voluntary_switches() -> Option<usize> {
    // SAFETY: getrusage writes one `rusage` into the zeroed value it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, exclusively borrowed `rusage`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    (rc == 0).then_some(usage.ru_nvcsw as usize)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn voluntary_switches() -> Option<usize> {
    None
}

/// With `KNOTE_BENCH_PIN=1` (Linux), pins the calling thread to the `k`-th CPU (modulo the
/// count) of the set the process may run on: the bench thread takes the first, waiter `i` the
/// `1 + i`-th. Unpinned, the scheduler decides per wake whether the woken thread runs on the
/// bench thread's CPU (preempting its spin) or on another one, idle or not, and on a small
/// virtual machine that choice moves a round trip by a factor of 2–5 from one run to the next.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn pin(k: usize) {
    if !std::env::var(PIN_ENV).is_ok_and(|v| v == "1") {
        return;
    }
    // SAFETY: cpu_set_t is plain data; the calls get valid pointers to the one value.
    unsafe {
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of_val(&allowed), &mut allowed) != 0 {
            return;
        }
        let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &allowed))
            .collect();
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpus[k % cpus.len()], &mut one);
        let rc = libc::sched_setaffinity(0, std::mem::size_of_val(&one), &one);
        assert_eq!(rc, 0, "sched_setaffinity failed");
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn pin(_k: usize) {}

/// CPU time this thread has used, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    // SAFETY: clock_gettime writes one `timespec` into the zeroed value it is given.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a valid, exclusively borrowed `timespec`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn waiter(kq: Arc<Kqueue>, shared: Arc<Shared>, index: usize, start: Arc<Barrier>) {
    pin(1 + index);
    let slot = &shared.slots[index];
    let mut events = [Kevent::zeroed(); 4];
    let switches_before = voluntary_switches();
    let cpu_before = thread_cpu_ns();
    start.wait();
    // Bounded by the stop: `stop` is set before STOP is triggered, and STOP (no EV_CLEAR) is
    // reported to every waiter on the kqueue until the kqueue is dropped.
    'wait: while !shared.stop.load(Ordering::Acquire) {
        let n = match kq.kevent(&[], &mut events, None) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("waiter {index}: kevent failed: {e}"),
        };
        for ev in &events[..n] {
            match ev.ident() {
                WAKE => {
                    shared.last.store(index, Ordering::Relaxed);
                    shared.acks.fetch_add(1, Ordering::Release);
                    slot.returns.fetch_add(1, Ordering::Relaxed);
                }
                STOP => break 'wait,
                other => panic!("waiter {index}: unexpected knote {other}"),
            }
        }
    }
    let sleeps = match (switches_before, voluntary_switches()) {
        (Some(before), Some(after)) => after - before,
        _ => usize::MAX,
    };
    slot.cpu_ns
        .store(thread_cpu_ns() - cpu_before, Ordering::Release);
    slot.sleeps.store(sleeps, Ordering::Release);
}

impl Sleepers {
    /// Starts W threads and returns once every one of them is on its way into `kevent`.
    fn start(design: Design, workers: usize) -> io::Result<Sleepers> {
        let nkq = match design {
            Design::PerWorker | Design::PerWorkerLifo => workers,
            Design::Shared => 1,
        };
        let mut kqs = Vec::with_capacity(nkq);
        for _ in 0..nkq {
            let kq = Kqueue::builder().exact_data(false).build()?;
            let changes = [
                Kevent::user(WAKE, Flags::ADD | Flags::CLEAR, 0, WAKE),
                Kevent::user(STOP, Flags::ADD, 0, STOP),
            ];
            // No room for error entries: a change that fails fails the call.
            kq.kevent(&changes, &mut [], None)?;
            kqs.push(Arc::new(kq));
        }
        let shared = Arc::new(Shared {
            acks: AtomicU64::new(0),
            last: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            slots: (0..workers).map(|_| Slot::default()).collect(),
        });
        let barrier = Arc::new(Barrier::new(workers + 1));
        let threads = (0..workers)
            .map(|i| {
                let kq = kqs[i % nkq].clone();
                let shared = shared.clone();
                let barrier = barrier.clone();
                std::thread::Builder::new()
                    .name(format!("{}-{i}", design.name()))
                    .spawn(move || waiter(kq, shared, i, barrier))
            })
            .collect::<io::Result<Vec<_>>>()?;
        barrier.wait();
        // Let them reach the wait itself before anything is timed.
        std::thread::sleep(Duration::from_millis(20));
        Ok(Sleepers {
            design,
            kqs,
            shared,
            threads,
            next: 0,
            triggers: 0,
        })
    }

    /// One wake: trigger, then spin until a woken thread has acknowledged.
    fn round_trip(&mut self) {
        let target = match self.design {
            Design::PerWorker => {
                let target = self.next;
                self.next = (target + 1) % self.kqs.len();
                target
            }
            Design::PerWorkerLifo => self.shared.last.load(Ordering::Relaxed),
            Design::Shared => 0,
        };
        let kq = &self.kqs[target];
        let before = self.shared.acks.load(Ordering::Acquire);
        kq.kevent(&[Kevent::trigger(WAKE, WAKE)], &mut [], None)
            .expect("NOTE_TRIGGER failed");
        self.triggers += 1;
        let mut spins = 0u32;
        let mut deadline = None;
        while self.shared.acks.load(Ordering::Acquire) == before {
            if spins < SPINS_BEFORE_YIELD {
                spins += 1;
                spin_loop();
                continue;
            }
            std::thread::yield_now();
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + ACK_TIMEOUT);
            assert!(
                Instant::now() < deadline,
                "{}: no waiter acknowledged a wake within {ACK_TIMEOUT:?}",
                self.design.name()
            );
        }
    }

    /// Stops and joins the threads; what each one reported.
    fn stop(mut self) -> Census {
        self.shared.stop.store(true, Ordering::Release);
        for kq in &self.kqs {
            kq.kevent(&[Kevent::trigger(STOP, STOP)], &mut [], None)
                .expect("NOTE_TRIGGER of STOP failed");
        }
        for t in self.threads.drain(..) {
            if let Err(panic) = t.join() {
                std::panic::resume_unwind(panic);
            }
        }
        let slots = &self.shared.slots;
        let returns = slots
            .iter()
            .map(|s| s.returns.load(Ordering::Acquire))
            .collect();
        let sleeps = slots
            .iter()
            .map(|s| s.sleeps.load(Ordering::Acquire))
            .collect();
        let cpu_ns = slots.iter().map(|s| s.cpu_ns.load(Ordering::Acquire)).sum();
        Census {
            design: self.design,
            triggers: self.triggers,
            acks: self.shared.acks.load(Ordering::Acquire),
            returns,
            sleeps,
            cpu_ns,
            elapsed: Duration::ZERO,
        }
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        // `stop` drains the threads; a Sleepers dropped any other way (a panic) still stops
        // them, so that no thread outlives its benchmark.
        if self.threads.is_empty() {
            return;
        }
        self.shared.stop.store(true, Ordering::Release);
        for kq in &self.kqs {
            let _ = kq.kevent(&[Kevent::trigger(STOP, STOP)], &mut [], None);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A fixed number of wakes on a fresh set of threads, counted.
struct Census {
    design: Design,
    triggers: u64,
    acks: u64,
    /// `WAKE` deliveries per thread.
    returns: Vec<usize>,
    /// Voluntary context switches per thread over its life (`usize::MAX`: not measured).
    sleeps: Vec<usize>,
    /// CPU time of all the waiters together (set-up and stop included), in nanoseconds.
    cpu_ns: u64,
    elapsed: Duration,
}

impl Census {
    fn run(design: Design, workers: usize, wakes: u64) -> io::Result<Census> {
        let mut sleepers = Sleepers::start(design, workers)?;
        let start = Instant::now();
        for _ in 0..wakes {
            sleepers.round_trip();
        }
        let elapsed = start.elapsed();
        let mut census = sleepers.stop();
        census.elapsed = elapsed;
        Ok(census)
    }

    fn print(&self) {
        let w = self.returns.len();
        let per = |x: f64| x / self.triggers.max(1) as f64;
        let total: usize = self.returns.iter().sum();
        let spread: Vec<String> = self.returns.iter().map(usize::to_string).collect();
        print!(
            "census {}/{w}: {} triggers, {} acks, {} returns from kevent = {:.4} per trigger \
             (per thread: {})",
            self.design.name(),
            self.triggers,
            self.acks,
            total,
            per(total as f64),
            spread.join(" "),
        );
        if self.sleeps.iter().all(|&s| s != usize::MAX) {
            // Each thread's last sleep is the one the stop ends, not a wake's.
            let sleeps: usize = self.sleeps.iter().sum::<usize>().saturating_sub(w);
            print!(", waiter sleeps {:.4} per trigger", per(sleeps as f64));
        }
        println!(
            ", waiter CPU {:.2} us per trigger, {:.2} us per round trip",
            per(self.cpu_ns as f64 / 1e3),
            self.elapsed.as_secs_f64() * 1e6 / self.triggers.max(1) as f64
        );
    }
}

fn worker_counts() -> Vec<usize> {
    let spec = std::env::var(WORKERS_ENV).unwrap_or_else(|_| "2,4".to_owned());
    let counts: Vec<usize> = spec
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|&w| w > 0)
        .collect();
    if counts.is_empty() {
        eprintln!("{WORKERS_ENV}={spec:?} names no thread count; using 2,4");
        return vec![2, 4];
    }
    counts
}

/// Wakes per block of the paired measurement.
const PAIRED_BLOCK: u64 = 2_000;
/// Rounds of the paired measurement (each round times one block of every design).
const PAIRED_ROUNDS: usize = 25;

/// The median of `xs` (sorted in place); NaN for none.
fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// Every design's threads at once (the others sleep, costing nothing), timed in alternating
/// blocks of `PAIRED_BLOCK` wakes, the order rotated each round: a slow phase of the machine
/// (a noisy neighbour, a frequency change) then hits every design in the same round, and the
/// median over rounds of each round's ratio cancels it. Printed, not given to criterion.
fn paired(workers: usize, rounds: usize, order: &[Design]) -> io::Result<()> {
    let mut sets = order
        .iter()
        .map(|&d| Sleepers::start(d, workers))
        .collect::<io::Result<Vec<_>>>()?;
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); sets.len()];
    for round in 0..rounds {
        for k in 0..sets.len() {
            let j = (k + round) % sets.len();
            let start = Instant::now();
            for _ in 0..PAIRED_BLOCK {
                sets[j].round_trip();
            }
            times[j].push(start.elapsed().as_secs_f64() * 1e6 / PAIRED_BLOCK as f64);
        }
    }
    for set in sets {
        black_box(set.stop());
    }
    let mut line = format!("paired W={workers} ({rounds} rounds x {PAIRED_BLOCK} wakes): median");
    for (d, t) in order.iter().zip(&times) {
        line += &format!(" {} {:.2} us,", d.name(), median(&mut t.clone()));
    }
    if let Some(s) = order.iter().position(|&d| d == Design::Shared) {
        line += " median of round ratios";
        for (p, d) in order.iter().enumerate().filter(|&(p, _)| p != s) {
            let mut ratios: Vec<f64> = (0..rounds).map(|r| times[s][r] / times[p][r]).collect();
            line += &format!(" shared/{} {:.3}", d.name(), median(&mut ratios));
        }
    }
    println!("{}", line.trim_end_matches(','));
    Ok(())
}

fn benches(c: &mut Criterion) {
    let mut order = Design::ALL;
    if std::env::var(FIRST_ENV).is_ok_and(|v| v == "shared") {
        order.reverse();
    }
    let workers = worker_counts();
    // Outside criterion's timing: the herd count and spread of each design, and the paired
    // ratios.
    for &w in &workers {
        for design in order {
            Census::run(design, w, CENSUS_WAKES)
                .expect("census failed")
                .print();
        }
        paired(w, PAIRED_ROUNDS, &order).expect("paired measurement failed");
    }
    for &w in &workers {
        let mut group = c.benchmark_group(format!("wake_{w}"));
        for design in order {
            let mut sleepers = Sleepers::start(design, w).expect("starting the sleepers failed");
            group.bench_function(BenchmarkId::new(design.name(), w), |b| {
                b.iter(|| sleepers.round_trip());
            });
            black_box(sleepers.stop());
        }
        group.finish();
    }
}

fn op_mode(spec: &str) -> Result<(), String> {
    let usage = || {
        format!(
            "{OP_ENV} must be DESIGN/W:COUNT (DESIGN: per_worker, per_worker_lifo, shared, or \
             paired with COUNT rounds), not {spec:?}"
        )
    };
    let (name, count) = spec.split_once(':').ok_or_else(usage)?;
    let (design, w) = name.split_once('/').ok_or_else(usage)?;
    let w: usize = w.parse().ok().filter(|&w| w > 0).ok_or_else(usage)?;
    let count: u64 = count.parse().map_err(|_| usage())?;
    if design == "paired" {
        let rounds = usize::try_from(count).map_err(|_| usage())?;
        return paired(w, rounds, &Design::ALL).map_err(|e| format!("paired failed: {e}"));
    }
    let design = Design::parse(design).ok_or_else(usage)?;
    let census = Census::run(design, w, count).map_err(|e| format!("census failed: {e}"))?;
    census.print();
    Ok(())
}

fn main() {
    pin(0);
    if let Ok(spec) = std::env::var(OP_ENV) {
        if let Err(message) = op_mode(&spec) {
            eprintln!("{message}");
            std::process::exit(2);
        }
        return;
    }
    // What `criterion_main!` expands to, with the mode switch above.
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(50)
        .configure_from_args();
    benches(&mut criterion);
    Criterion::default().configure_from_args().final_summary();
}
