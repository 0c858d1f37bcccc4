//! The I/O readiness round trip, knote's `AsyncFd` and tokio's side by side, in one run.
//!
//! ```text
//! cargo bench -p knote-bench --bench io_readiness -- --quick
//! KNOTE_BENCH_OP=io_ping_pong/knote:20 valgrind --tool=callgrind target/release/deps/io_readiness-*
//! ```
//!
//! Workloads (one iteration each; on a current-thread runtime, over a Unix socket pair):
//! - `io_ping_pong` [1,000 round trips]: two tasks, one per end, bounce one byte back and
//!   forth; each side waits with `async_io(READABLE)`, so every round trip is two
//!   edge-triggered EVFILT_READ events, each waking the one task waiting on its fd (the
//!   single-waiter wake path) and two `WouldBlock` reads that clear readiness.
//! - `io_readable_ping_pong` [1,000 round trips]: the same with `readable()` + `try_io`.
//!
//! With `KNOTE_BENCH_OP=GROUP/SIDE:COUNT` the binary sets one workload up, runs COUNT
//! iterations and exits, without criterion (for callgrind: instruction counts of the wake
//! path before and after a change).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use criterion::Criterion;

#[path = "support/mod.rs"]
mod support;
use support::{workload, Prepared};

const ROUND_TRIPS: usize = 1_000;

fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socket pair");
    a.set_nonblocking(true).expect("non-blocking");
    b.set_nonblocking(true).expect("non-blocking");
    (a, b)
}

/// Expanded once per runtime: `AsyncFd`, `Interest`, `spawn` and `current_thread` resolve to
/// each runtime's own.
macro_rules! workloads {
    () => {
        use super::*;

        pub fn ping_pong() -> Prepared {
            let rt = current_thread();
            Prepared::new(move || {
                rt.block_on(async {
                    let (a, b) = pair();
                    let a = AsyncFd::new(a).unwrap();
                    let b = AsyncFd::new(b).unwrap();
                    let echo = spawn(async move {
                        let mut byte = [0u8; 1];
                        for _ in 0..ROUND_TRIPS {
                            b.async_io(Interest::READABLE, |mut s| s.read(&mut byte))
                                .await
                                .unwrap();
                            (&*b.get_ref()).write_all(&byte).unwrap();
                        }
                    });
                    let mut byte = [7u8; 1];
                    for _ in 0..ROUND_TRIPS {
                        (&*a.get_ref()).write_all(&byte).unwrap();
                        a.async_io(Interest::READABLE, |mut s| s.read(&mut byte))
                            .await
                            .unwrap();
                    }
                    echo.await.unwrap();
                })
            })
        }

        pub fn readable_ping_pong() -> Prepared {
            let rt = current_thread();
            Prepared::new(move || {
                rt.block_on(async {
                    let (a, b) = pair();
                    let a = AsyncFd::new(a).unwrap();
                    let b = AsyncFd::new(b).unwrap();
                    async fn read_one(fd: &AsyncFd<UnixStream>, byte: &mut [u8; 1]) {
                        loop {
                            let mut guard = fd.readable().await.unwrap();
                            match guard.try_io(|s| (&*s.get_ref()).read(byte)) {
                                Ok(result) => {
                                    result.unwrap();
                                    return;
                                }
                                Err(_would_block) => continue,
                            }
                        }
                    }
                    let echo = spawn(async move {
                        let mut byte = [0u8; 1];
                        for _ in 0..ROUND_TRIPS {
                            read_one(&b, &mut byte).await;
                            (&*b.get_ref()).write_all(&byte).unwrap();
                        }
                    });
                    let mut byte = [7u8; 1];
                    for _ in 0..ROUND_TRIPS {
                        (&*a.get_ref()).write_all(&byte).unwrap();
                        read_one(&a, &mut byte).await;
                    }
                    echo.await.unwrap();
                })
            })
        }
    };
}

mod on_knote {
    use knote::io::{AsyncFd, Interest};
    use knote::spawn;

    fn current_thread() -> knote::Runtime {
        knote::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    workloads!();
}

// tokio 1.54 deprecates `AsyncFd::new` for `unsafe fn register`; the bench's fds are owned.
#[allow(deprecated)]
mod on_tokio {
    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;
    use tokio::spawn;

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    workloads!();
}

type Make = fn() -> Prepared;

const WORKLOADS: &[support::Workload<Make>] = &[
    workload(
        "ping_pong",
        on_knote::ping_pong,
        on_tokio::ping_pong,
        ROUND_TRIPS,
        false,
    ),
    workload(
        "readable_ping_pong",
        on_knote::readable_ping_pong,
        on_tokio::readable_ping_pong,
        ROUND_TRIPS,
        false,
    ),
];

const PREFIX: &str = "io_";

fn op_mode(spec: &str) -> Result<(), String> {
    let shape = "GROUP/SIDE";
    let (name, count) = support::split_count(spec, shape)?;
    let (group, side) = name
        .split_once('/')
        .ok_or_else(|| format!("{}: {name:?} is not {shape}", support::OP_ENV))?;
    let make = support::find(WORKLOADS, PREFIX, shape, group)?.side(side)?;
    support::run_steps(make(), count);
    Ok(())
}

fn benches(c: &mut Criterion) {
    for w in WORKLOADS {
        let mut group = w.group(c, PREFIX);
        for (side, make) in w.sides() {
            let mut prepared = make();
            group.bench_function(side, |b| b.iter(|| (prepared.step)()));
        }
        group.finish();
    }
}

fn main() {
    support::main(op_mode, benches);
}
