//! No allocation outlives a runtime: a counting global allocator, runtimes full of idle tasks
//! built and dropped, live allocations back to the baseline.
//!
//! One test in this file on purpose: the allocator's counters are process-wide.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{socket_pair, Flavour, ALL};
use knote_executor::io::AsyncFd;
use knote_executor::sync::{mpsc, oneshot};
use knote_executor::time::sleep;
use knote_executor::LocalRuntime;

struct Counting;

static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BLOCKS.fetch_add(1, Ordering::SeqCst);
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::SeqCst);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BLOCKS.fetch_add(1, Ordering::SeqCst);
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BLOCKS.fetch_sub(1, Ordering::SeqCst);
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::SeqCst);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::SeqCst);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const IDLE_TASKS: usize = 1000;

/// Builds a runtime of `flavour`, fills it with idle tasks of several kinds, and drops it.
fn round(flavour: Flavour) {
    let rt = flavour.build();
    let handle = rt.handle().clone();
    let mut senders = Vec::with_capacity(IDLE_TASKS);
    let mut sockets: Vec<UnixStream> = Vec::new();
    let mut joins = Vec::with_capacity(IDLE_TASKS + 20);
    let (mtx, _) = mpsc::unbounded::<u8>();
    for i in 0..IDLE_TASKS {
        let (tx, rx) = oneshot::channel::<()>();
        senders.push(tx);
        let m = mtx.clone();
        joins.push(rt.spawn(async move {
            let _m = m;
            if i % 10 == 0 {
                // Some also hold an armed timer.
                sleep(Duration::from_secs(3600)).await;
            }
            let _ = rx.await;
        }));
    }
    // Some wait on sockets.
    for _ in 0..10 {
        let (a, b) = socket_pair();
        sockets.push(b);
        joins.push(rt.spawn(async move {
            let fd = AsyncFd::new(a).unwrap();
            let _ = fd.readable().await;
            drop(fd);
            std::future::pending::<()>().await;
        }));
    }
    // Some finished, some aborted, some blocking.
    for _ in 0..10 {
        joins.push(rt.spawn(async {
            std::hint::black_box(1u8);
        }));
    }
    let blocking = rt.spawn_blocking(|| vec![0u8; 100]);
    rt.block_on(async {
        assert_eq!(blocking.await.unwrap().len(), 100);
        // Until every task has had its first poll (a current-thread runtime polls them only in
        // here, and a busy machine can let a fixed sleep end first): the point is a runtime full
        // of idle tasks when it is dropped (the idle ones and the ten on sockets).
        let deadline = Instant::now() + Duration::from_secs(10);
        while handle.live_tasks() < IDLE_TASKS + 10 {
            assert!(Instant::now() < deadline, "the tasks never all became idle");
            sleep(Duration::from_millis(1)).await;
        }
    });
    joins[0].abort();
    assert!(handle.live_tasks() >= IDLE_TASKS);
    drop(rt);
    assert_eq!(handle.live_tasks(), 0);
    drop(joins);
    drop(senders);
    drop(sockets);
    drop(mtx);
    drop(handle);

    // A LocalRuntime too.
    let lrt = LocalRuntime::new().unwrap();
    let mut senders = Vec::new();
    for i in 0..100 {
        let (tx, rx) = oneshot::channel::<()>();
        senders.push(tx);
        let rc = std::rc::Rc::new([0u8; 64]);
        drop(lrt.spawn_local(async move {
            let _rc = rc;
            if i % 10 == 0 {
                sleep(Duration::from_secs(3600)).await;
            }
            let _ = rx.await;
        }));
    }
    lrt.run_until_stalled().unwrap();
    drop(lrt);
    drop(senders);
}

/// A multi-thread runtime shut down (with a timeout) while a task is stuck in its poll holding
/// an armed timer: the task is cancelled on its worker when the poll returns, and nothing of
/// the runtime may stay behind.
fn stuck_round(flavour: Flavour) {
    let rt = flavour.build();
    let in_poll = Arc::new(AtomicBool::new(false));
    let ip = Arc::clone(&in_poll);
    let h = rt.spawn(async move {
        let mut s = sleep(Duration::from_secs(3600));
        assert!(futures_util::poll!(&mut s).is_pending());
        ip.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(60));
        knote_executor::task::yield_now().await;
        drop(s);
    });
    common::wait_until(Duration::from_secs(10), "the task to block", || {
        in_poll.load(Ordering::SeqCst)
    });
    rt.shutdown_timeout(Duration::from_millis(10));
    assert!(common::block_on_plain(h, Duration::from_secs(10))
        .unwrap_err()
        .is_cancelled());
}

fn live() -> (isize, isize) {
    (
        LIVE_BLOCKS.load(Ordering::SeqCst),
        LIVE_BYTES.load(Ordering::SeqCst),
    )
}

#[test]
#[cfg_attr(miri, ignore)]
fn dropped_runtimes_free_everything() {
    // Warm-up: thread-locals, lazily initialised statics, the first thread spawns.
    for f in ALL {
        round(f);
    }
    stuck_round(Flavour::Multi1);
    // Worker and pool threads free their last bits as they exit, a little after the runtime's
    // drop returned: let them.
    std::thread::sleep(Duration::from_millis(50));
    let (base_blocks, base_bytes) = live();
    const ROUNDS: usize = 3;
    for _ in 0..ROUNDS {
        for f in ALL {
            round(f);
        }
        stuck_round(Flavour::Multi1);
        stuck_round(Flavour::Multi4);
    }
    // Allow a small slack (a thread still exiting, a lazily grown table); a leak of the idle
    // tasks would be thousands of blocks per round.
    const SLACK_BLOCKS: isize = 64;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (blocks, bytes) = live();
        if blocks - base_blocks <= SLACK_BLOCKS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leak: {} blocks / {} bytes still live after {ROUNDS} rounds ({} runtimes, {} idle \
             tasks each)",
            blocks - base_blocks,
            bytes - base_bytes,
            ROUNDS * ALL.len(),
            IDLE_TASKS
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
