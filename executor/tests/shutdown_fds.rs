//! A runtime's descriptors are closed when its shutdown returns: its kqueues (on the epoll shim,
//! an epoll fd, an eventfd and a timerfd each) must not outlive `drop` or a `shutdown_timeout`
//! whose threads stopped in time, even though the last references to them may be on its worker
//! and blocking-pool threads as those exit. (`shutdown_background` waits for nothing, as in
//! tokio.) A test binary of its own: it counts this process's
//! open descriptors, which any other test running beside it would disturb.

#![cfg(target_os = "linux")]

use std::time::Duration;

use knote_executor::runtime::{Builder, Runtime};
use knote_executor::time::sleep;

/// This process's open descriptors.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// A multi-thread runtime whose workers and blocking pool have each done some work, so that
/// every thread holds references to the runtime when the shutdown begins.
fn busy_runtime() -> Runtime {
    let rt = Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                knote_executor::spawn(async {
                    sleep(Duration::from_millis(1)).await;
                    knote_executor::spawn_blocking(|| 1).await.unwrap()
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), 1);
        }
    });
    rt
}

#[test]
#[cfg_attr(miri, ignore)]
fn every_descriptor_is_closed_when_the_shutdown_returns() {
    // Warm-up: whatever the process opens once (std's lazily opened files, if any).
    drop(busy_runtime());
    let before = open_fds();
    // Each way of shutting down, several times: a worker or pool thread dropping the last
    // reference a little after the shutdown returned is a race that one round may not show.
    for round in 0..30 {
        let rt = busy_runtime();
        assert!(
            open_fds() > before,
            "the runtime has descriptors of its own"
        );
        if round % 2 == 0 {
            drop(rt);
        } else {
            rt.shutdown_timeout(Duration::from_secs(10));
        }
        assert_eq!(
            open_fds(),
            before,
            "round {round}: descriptors still open right after the shutdown returned"
        );
    }
}
