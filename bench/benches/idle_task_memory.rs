//! Memory per idle task, knote and tokio side by side: N tasks (10,000 and 100,000) spawned
//! and run to their first `Pending`, then never woken again.
//!
//! ```text
//! cargo bench -p knote-bench --bench idle_task_memory    # the full table (a few seconds)
//! ```
//!
//! Method (the same for both runtimes): a counting global allocator tracks the bytes (and
//! blocks) allocated and not yet freed. After the runtime is built and has run one task and
//! one short sleep (so one-time structures exist), that count is the baseline; then N tasks
//! are spawned from inside `block_on` and driven until every one of them has been polled once
//! and is waiting; the growth over the baseline, divided by N, is the cost of one idle task.
//! It includes whatever the runtime keeps per task (the task cell, registry or owned-tasks
//! entry, timer entry) and what its queues grew to while the tasks were queued (capacity they
//! keep). The resident set size (from `/proc/self/statm`, Linux only) grows by roughly the
//! same amount, allocator overhead included; it is printed as a cross-check. Every case runs
//! in a fresh child process, so no case inherits another's heap.
//!
//! What the tasks wait on:
//! - `pending`: `std::future::pending()` — the task alone.
//! - `oneshot`: the receiver of a oneshot channel whose sender is kept (in a vector allocated
//!   before the baseline) — each runtime's idiomatic channel (`knote::sync::oneshot`, which is
//!   tokio's re-exported, and `tokio::sync::oneshot`), so the channel's own size is counted too.
//! - `sleep`: a one-hour `sleep` — the task and an armed timer.
//!
//! Run without `--bench` (as `cargo test --benches` does) it measures N = 1,000 only, as a
//! smoke test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::Command;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counts the bytes and blocks allocated and not yet freed.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; the counters are only statistics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The environment variable that makes this binary measure one case (the child processes).
const CASE_ENV: &str = "KNOTE_MEM_CASE";

const RUNTIMES: [&str; 2] = ["knote", "tokio"];
/// Current-thread, and multi-thread with 2 workers.
const FLAVORS: [&str; 2] = ["current_thread", "multi_thread"];
const WAITS: [&str; 3] = ["pending", "oneshot", "sleep"];

/// What one case measured, per task.
struct Measured {
    bytes: f64,
    blocks: f64,
    rss: Option<f64>,
    spawn_and_poll: Duration,
    shutdown: Duration,
}

fn live() -> (isize, isize) {
    (
        LIVE_BYTES.load(Ordering::SeqCst),
        LIVE_BLOCKS.load(Ordering::SeqCst),
    )
}

/// Resident set size in bytes, where `/proc/self/statm` exists.
fn rss() -> Option<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page as f64)
}

/// One case, written once and expanded for each runtime (as in the `rt_*` benches): the names
/// `spawn`, `yield_now`, `sleep`, `oneshot` and `runtime` resolve to each runtime's own.
macro_rules! measure {
    () => {
        use super::*;

        pub fn measure(flavor: &str, wait: &str, n: usize) -> Measured {
            let rt = runtime(flavor);
            // One task, one timer and a oneshot first, so one-time structures are not counted.
            rt.block_on(async {
                spawn(async {}).await.unwrap();
                sleep(Duration::from_micros(1)).await;
                let (tx, rx) = oneshot::channel::<()>();
                tx.send(()).unwrap();
                rx.await.unwrap();
            });
            let polled = Arc::new(AtomicUsize::new(0));
            let mut senders = Vec::with_capacity(n);
            let rss_before = rss();
            let (bytes_before, blocks_before) = live();
            let started = Instant::now();
            rt.block_on(async {
                for _ in 0..n {
                    let polled = polled.clone();
                    match wait {
                        "pending" => {
                            spawn(async move {
                                polled.fetch_add(1, Ordering::Relaxed);
                                std::future::pending::<()>().await;
                            });
                        }
                        "oneshot" => {
                            let (tx, rx) = oneshot::channel::<()>();
                            senders.push(tx);
                            spawn(async move {
                                polled.fetch_add(1, Ordering::Relaxed);
                                let _ = rx.await;
                            });
                        }
                        "sleep" => {
                            spawn(async move {
                                polled.fetch_add(1, Ordering::Relaxed);
                                sleep(Duration::from_secs(3600)).await;
                            });
                        }
                        _ => unreachable!("unknown wait {wait:?}"),
                    }
                }
                while polled.load(Ordering::Relaxed) < n {
                    yield_now().await;
                }
            });
            let spawn_and_poll = started.elapsed();
            // The last task may still be finishing its first poll (multi-thread).
            std::thread::sleep(Duration::from_millis(20));
            let (bytes_after, blocks_after) = live();
            let rss_after = rss();
            let started = Instant::now();
            drop(rt);
            let shutdown = started.elapsed();
            drop(senders);
            Measured {
                bytes: (bytes_after - bytes_before) as f64 / n as f64,
                blocks: (blocks_after - blocks_before) as f64 / n as f64,
                rss: rss_before
                    .zip(rss_after)
                    .map(|(before, after)| (after - before) / n as f64),
                spawn_and_poll,
                shutdown,
            }
        }
    };
}

mod on_knote {
    pub use knote::spawn;
    /// knote's oneshot (tokio's, re-exported).
    pub use knote::sync::oneshot;
    pub use knote::task::yield_now;
    pub use knote::time::sleep;

    fn runtime(flavor: &str) -> knote::Runtime {
        match flavor {
            "current_thread" => knote::runtime::Builder::new_current_thread().build(),
            _ => knote::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build(),
        }
        .expect("build a knote runtime")
    }

    measure!();
}

mod on_tokio {
    pub use tokio::spawn;
    pub use tokio::sync::oneshot;
    pub use tokio::task::yield_now;
    pub use tokio::time::sleep;

    fn runtime(flavor: &str) -> tokio::runtime::Runtime {
        match flavor {
            "current_thread" => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
            _ => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build(),
        }
        .expect("build a tokio runtime")
    }

    measure!();
}

/// Child process: measure the case `RUNTIME FLAVOR WAIT N` and print one line of numbers.
fn child(spec: &str) -> Result<(), String> {
    let parts: Vec<&str> = spec.split_whitespace().collect();
    let [runtime, flavor, wait, n] = parts[..] else {
        return Err(format!(
            "{CASE_ENV} must be 'RUNTIME FLAVOR WAIT N', not {spec:?}"
        ));
    };
    let n: usize = n.parse().map_err(|_| format!("bad N {n:?}"))?;
    if !FLAVORS.contains(&flavor) || !WAITS.contains(&wait) {
        return Err(format!("unknown flavor or wait in {spec:?}"));
    }
    let m = match runtime {
        "knote" => on_knote::measure(flavor, wait, n),
        "tokio" => on_tokio::measure(flavor, wait, n),
        _ => return Err(format!("unknown runtime {runtime:?}")),
    };
    println!(
        "{} {} {} {} {}",
        m.bytes,
        m.blocks,
        m.rss.map_or("nan".to_owned(), |r| r.to_string()),
        m.spawn_and_poll.as_secs_f64(),
        m.shutdown.as_secs_f64(),
    );
    Ok(())
}

fn run_case(runtime: &str, flavor: &str, wait: &str, n: usize) -> Result<Measured, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .env(CASE_ENV, format!("{runtime} {flavor} {wait} {n}"))
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{runtime} {flavor} {wait} {n}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text
        .split_whitespace()
        .map(|s| s.parse().unwrap_or(f64::NAN))
        .collect();
    if v.len() != 5 {
        return Err(format!("unexpected output {text:?}"));
    }
    Ok(Measured {
        bytes: v[0],
        blocks: v[1],
        rss: (!v[2].is_nan()).then_some(v[2]),
        spawn_and_poll: Duration::from_secs_f64(v[3]),
        shutdown: Duration::from_secs_f64(v[4]),
    })
}

fn main() {
    if let Ok(spec) = std::env::var(CASE_ENV) {
        if let Err(message) = child(&spec) {
            eprintln!("{message}");
            std::process::exit(2);
        }
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if full { &[10_000, 100_000] } else { &[1_000] };
    println!("memory per idle task: bytes allocated and not freed / N (counting allocator),");
    println!("allocations (blocks) per task, RSS growth / N; knote ÷ tokio on bytes");
    println!("multi_thread = 2 workers; each case in a fresh process\n");
    let header = [
        "flavor",
        "waits on",
        "N",
        "knote B/task",
        "tokio B/task",
        "knote÷tokio",
        "blocks k/t",
        "RSS/task k/t",
        "spawn+poll k/t",
        "shutdown k/t",
    ];
    let mut rows = vec![header.map(str::to_owned).to_vec()];
    let mut failed = false;
    for flavor in FLAVORS {
        for wait in WAITS {
            for &n in sizes {
                let results: Vec<Result<Measured, String>> = RUNTIMES
                    .iter()
                    .map(|rt| run_case(rt, flavor, wait, n))
                    .collect();
                let (k, t) = match (&results[0], &results[1]) {
                    (Ok(k), Ok(t)) => (k, t),
                    _ => {
                        for r in &results {
                            if let Err(e) = r {
                                eprintln!("failed: {e}");
                            }
                        }
                        failed = true;
                        continue;
                    }
                };
                let rss = |m: &Measured| m.rss.map_or("n/a".to_owned(), |r| format!("{r:.0}"));
                let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
                rows.push(vec![
                    flavor.to_owned(),
                    wait.to_owned(),
                    n.to_string(),
                    format!("{:.0}", k.bytes),
                    format!("{:.0}", t.bytes),
                    format!("{:.2}", k.bytes / t.bytes),
                    format!("{:.1}/{:.1}", k.blocks, t.blocks),
                    format!("{}/{}", rss(k), rss(t)),
                    format!("{}/{} ms", ms(k.spawn_and_poll), ms(t.spawn_and_poll)),
                    format!("{}/{} ms", ms(k.shutdown), ms(t.shutdown)),
                ]);
            }
        }
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for (i, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            println!("{}", rule.join("  "));
        }
    }
    if failed {
        std::process::exit(1);
    }
}
