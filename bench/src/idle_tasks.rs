//! Memory per idle task, measured inside the process that holds the tasks: the resident set
//! grows by how much when N tasks are spawned that wait forever (`std::future::pending`)?
//! The same steps on both current-thread runtimes.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::runtimes::{knote_runtime, tokio_runtime};
use crate::sys::rss_bytes;

/// What `knote-bench idle-tasks` prints before the figure (the parent looks for it).
pub const PREFIX: &str = "bytes per idle task: ";

/// A task that counts its first poll, then waits forever.
async fn idle_task(polled: Arc<AtomicUsize>) {
    polled.fetch_add(1, Ordering::Relaxed);
    std::future::pending::<()>().await
}

/// Spawns `n` idle tasks with `spawn` and yields until all of them have been polled once, so
/// each has reached its wait. Returns the resident set's growth per task in bytes; `None`
/// where the resident set cannot be read.
async fn park<Y, YF>(n: usize, mut spawn: impl FnMut(Arc<AtomicUsize>), yield_now: Y) -> Option<f64>
where
    Y: Fn() -> YF,
    YF: Future<Output = ()>,
{
    let pid = std::process::id();
    // One task first, so what the runtime creates once (its task storage, queues) exists
    // before the baseline.
    let polled = Arc::new(AtomicUsize::new(0));
    spawn(Arc::clone(&polled));
    while polled.load(Ordering::Relaxed) < 1 {
        yield_now().await;
    }
    let before = rss_bytes(pid)?;
    for _ in 0..n {
        spawn(Arc::clone(&polled));
    }
    while polled.load(Ordering::Relaxed) < n + 1 {
        yield_now().await;
    }
    let after = rss_bytes(pid)?;
    Some((after as f64 - before as f64) / n.max(1) as f64)
}

/// Measures `n` idle tasks on `runtime` (`knote` or `tokio`, current-thread).
pub fn measure(runtime: &str, n: usize) -> io::Result<Option<f64>> {
    match runtime {
        "knote" => {
            let rt = knote_runtime(None)?;
            Ok(rt.block_on(park(
                n,
                |polled| drop(knote::spawn(idle_task(polled))),
                knote::task::yield_now,
            )))
        }
        "tokio" => {
            let rt = tokio_runtime(None)?;
            Ok(rt.block_on(park(
                n,
                |polled| drop(tokio::spawn(idle_task(polled))),
                tokio::task::yield_now,
            )))
        }
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("idle-tasks: unknown runtime {other:?} (knote, tokio)"),
        )),
    }
}
