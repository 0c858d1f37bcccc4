//! Echo throughput per runtime flavour, knote vs tokio vs the hand-written kqueue loop, in one
//! run: 64 loopback connections × 64-byte messages from one load generator, the same for every
//! contestant.
//!
//! - **current-thread**: `examples/echo.rs`'s `serve` (knote::net, futures-io `read` /
//!   `write_all`, a 64 KiB buffer per connection) on knote's current-thread runtime; the same
//!   service on tokio's current-thread runtime with tokio::net; and `examples/reactor_echo.rs`'s
//!   `serve` (one kqueue, no runtime: the ceiling). Server thread pinned to the first CPU the
//!   process may use, load thread(s) to the second.
//! - **multi-thread**: the first two on their multi-thread runtimes (`ECHO_WORKERS` workers),
//!   unpinned (the workers need the cores the load also runs on).
//!
//! Rounds interleave the contestants (A B C, then C B A, …); the output is each contestant's
//! median messages per second with the range, and the ratios of the medians with the range of
//! the per-round ratios.
//!
//! ```text
//! cargo bench -p knote-bench --bench echo    # both flavours
//! ECHO_FLAVOUR=current cargo bench -p knote-bench --bench echo
//! ```
//!
//! Env: `ECHO_FLAVOUR` (current, multi, both), `ECHO_ROUNDS` (default 7), `ECHO_MS` per round
//! (300), `ECHO_WORKERS` (2), `ECHO_CLIENTS` load threads (1).
//!
//! For `strace -c -f` the binary also runs one side as a server process
//! (`echo --serve knote|knote-multi|tokio|tokio-multi|reactor`, printing `listening on ADDR` to
//! stderr and exiting once its 64 connections have closed) and the load alone
//! (`echo --load ADDR ROUNDS`: every connection echoes ROUNDS messages, then all close):
//! `bench/syscalls.sh` traces the server process only.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// The examples' `main`s are their entry points when built as examples; unused here.
#[allow(dead_code)]
#[path = "../../examples/echo.rs"]
mod knote_echo;
#[allow(dead_code)]
#[path = "../../examples/reactor_echo.rs"]
mod reactor_echo;

const CONNS: usize = 64;
const MSG: usize = 64;
/// The read buffer of the tokio service: the knote example's (and the hand-written loop's).
const READ_BUF: usize = 64 * 1024;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Pins the calling thread to the `k`-th CPU the process may run on (modulo their count); with
/// a single CPU allowed there is nothing to keep apart and it does nothing.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn pin(k: usize) {
    // SAFETY: cpu_set_t is plain data; the calls get valid pointers to one value each.
    unsafe {
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        let rc = libc::sched_getaffinity(0, std::mem::size_of_val(&allowed), &mut allowed);
        assert_eq!(rc, 0, "sched_getaffinity: {}", io::Error::last_os_error());
        let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &allowed))
            .collect();
        if cpus.len() < 2 {
            return;
        }
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpus[k % cpus.len()], &mut one);
        let rc = libc::sched_setaffinity(0, std::mem::size_of_val(&one), &one);
        assert_eq!(rc, 0, "sched_setaffinity: {}", io::Error::last_os_error());
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn pin(_k: usize) {}

/// A contestant: serves `CONNS` connections on the listener until they have all closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Knote,
    KnoteMulti,
    Tokio,
    TokioMulti,
    Reactor,
}

impl Side {
    fn parse(name: &str) -> Option<Side> {
        Some(match name {
            "knote" => Side::Knote,
            "knote-multi" => Side::KnoteMulti,
            "tokio" => Side::Tokio,
            "tokio-multi" => Side::TokioMulti,
            "reactor" => Side::Reactor,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Side::Knote => "knote",
            Side::KnoteMulti => "knote-multi",
            Side::Tokio => "tokio",
            Side::TokioMulti => "tokio-multi",
            Side::Reactor => "reactor",
        }
    }

    fn multi(self) -> bool {
        matches!(self, Side::KnoteMulti | Side::TokioMulti)
    }

    /// Serves on `listener` until `CONNS` connections were accepted and have closed.
    fn serve(self, listener: TcpListener) -> io::Result<()> {
        let workers = env("ECHO_WORKERS", 2) as usize;
        match self {
            Side::Knote | Side::KnoteMulti => {
                let rt = if self == Side::Knote {
                    knote::runtime::Builder::new_current_thread().build()?
                } else {
                    knote::runtime::Builder::new_multi_thread()
                        .worker_threads(workers)
                        .build()?
                };
                listener.set_nonblocking(true)?;
                let stats = rt.block_on(async {
                    let listener = knote::net::TcpListener::from_std(listener)?;
                    knote_echo::serve(listener, Some(CONNS)).await
                })?;
                check_served(stats.accepted, stats.failed)
            }
            Side::Tokio | Side::TokioMulti => {
                let rt = if self == Side::Tokio {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?
                } else {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(workers)
                        .enable_all()
                        .build()?
                };
                listener.set_nonblocking(true)?;
                let failed = rt.block_on(tokio_serve(listener))?;
                check_served(CONNS, failed)
            }
            Side::Reactor => {
                let stats = reactor_echo::serve(listener, Some(CONNS))?;
                check_served(stats.accepted, 0)
            }
        }
    }
}

fn check_served(accepted: usize, failed: usize) -> io::Result<()> {
    if accepted != CONNS || failed != 0 {
        return Err(io::Error::other(format!(
            "served {accepted} connections of {CONNS}, {failed} ended with an error"
        )));
    }
    Ok(())
}

/// `examples/echo.rs`'s service on tokio: a task per connection, a 64 KiB buffer, read and
/// `write_all` until EOF, then shut the write side. Returns the connections that failed.
async fn tokio_serve(listener: TcpListener) -> io::Result<usize> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let mut tasks = Vec::new();
    for _ in 0..CONNS {
        let (mut stream, _) = listener.accept().await?;
        tasks.push(tokio::spawn(async move {
            stream.set_nodelay(true)?;
            let mut buf = vec![0; READ_BUF];
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    return stream.shutdown().await;
                }
                stream.write_all(&buf[..n]).await?;
            }
        }));
    }
    let mut failed = 0;
    for task in tasks {
        if !matches!(task.await, Ok(Ok(()))) {
            failed += 1;
        }
    }
    Ok(failed)
}

/// The load: `CONNS` connections split over `clients` threads (pinned to the second CPU when
/// `pinned`), each writing one message on each of its connections, then reading each echo
/// back, until `stop` says so or each connection has echoed `rounds` messages. Returns the
/// messages echoed and the seconds from the first write to the moment it stopped counting.
fn load(
    addr: SocketAddr,
    clients: usize,
    pinned: bool,
    rounds: Option<u64>,
    ms: Option<u64>,
) -> (u64, f64) {
    let conns: Vec<TcpStream> = (0..CONNS)
        .map(|_| {
            let s = TcpStream::connect(addr).expect("connect");
            s.set_nodelay(true).expect("TCP_NODELAY");
            s.set_read_timeout(Some(Duration::from_secs(30)))
                .expect("SO_RCVTIMEO");
            s
        })
        .collect();
    let mut groups: Vec<Vec<TcpStream>> = (0..clients).map(|_| Vec::new()).collect();
    for (i, c) in conns.into_iter().enumerate() {
        groups[i % clients].push(c);
    }
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let threads: Vec<_> = groups
        .into_iter()
        .map(|mut group| {
            let (done, count) = (Arc::clone(&done), Arc::clone(&count));
            std::thread::spawn(move || {
                if pinned {
                    pin(1);
                }
                let msg = [7u8; MSG];
                let mut buf = [0u8; MSG];
                let mut round = 0;
                while !done.load(Ordering::Relaxed) && rounds.map_or(true, |r| round < r) {
                    for c in group.iter_mut() {
                        c.write_all(&msg).expect("load: write");
                    }
                    for c in group.iter_mut() {
                        c.read_exact(&mut buf).expect("load: read the echo");
                    }
                    count.fetch_add(group.len() as u64, Ordering::Relaxed);
                    round += 1;
                }
                // Dropping the group closes its connections: the server sees EOF.
            })
        })
        .collect();
    let timed = ms.map(|ms| {
        std::thread::sleep(Duration::from_millis(ms));
        let n = count.load(Ordering::Relaxed);
        let secs = start.elapsed().as_secs_f64();
        done.store(true, Ordering::SeqCst);
        (n, secs)
    });
    for t in threads {
        t.join().expect("a load thread panicked");
    }
    timed.unwrap_or_else(|| (count.load(Ordering::Relaxed), start.elapsed().as_secs_f64()))
}

/// One timed round of `side`: messages per second.
fn round(side: Side, ms: u64, clients: usize) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let pinned = !side.multi();
    let server = std::thread::spawn(move || {
        if pinned {
            pin(0);
        }
        side.serve(listener)
    });
    let (n, secs) = load(addr, clients, pinned, None, Some(ms));
    server
        .join()
        .expect("the server thread panicked")
        .unwrap_or_else(|e| panic!("{}: {e}", side.name()));
    n as f64 / secs
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn range(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// Runs `sides` interleaved for `rounds` rounds and prints the table.
fn compare(title: &str, sides: &[Side], rounds: usize, ms: u64, clients: usize) {
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); sides.len()];
    for r in 0..rounds {
        let order: Vec<usize> = if r % 2 == 0 {
            (0..sides.len()).collect()
        } else {
            (0..sides.len()).rev().collect()
        };
        for i in order {
            rates[i].push(round(sides[i], ms, clients));
        }
    }
    println!(
        "{title}: {CONNS} conns x {MSG} B, {rounds} rounds of {ms} ms, {clients} load thread(s)"
    );
    for (side, r) in sides.iter().zip(&rates) {
        let (lo, hi) = range(r);
        println!(
            "  {:<12} median {:>9.0} msg/s  (range {lo:.0}–{hi:.0})",
            side.name(),
            median(r)
        );
    }
    for (i, a) in sides.iter().enumerate() {
        for (j, b) in sides.iter().enumerate().skip(i + 1) {
            let per_round: Vec<f64> = rates[i].iter().zip(&rates[j]).map(|(x, y)| x / y).collect();
            let (lo, hi) = range(&per_round);
            println!(
                "  {} / {}: {:.2} (ratio of medians; per-round ratios {lo:.2}–{hi:.2})",
                a.name(),
                b.name(),
                median(&rates[i]) / median(&rates[j])
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("echo: bench");
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        let name = args.get(i + 1).map(String::as_str).unwrap_or("");
        let side = Side::parse(name).unwrap_or_else(|| {
            panic!("--serve {name:?}: knote, knote-multi, tokio, tokio-multi or reactor")
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        eprintln!(
            "listening on {}",
            listener.local_addr().expect("local_addr")
        );
        side.serve(listener)
            .unwrap_or_else(|e| panic!("{}: {e}", side.name()));
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--load") {
        let addr: SocketAddr = args
            .get(i + 1)
            .and_then(|a| a.parse().ok())
            .expect("--load ADDR ROUNDS: an address");
        let rounds: u64 = args
            .get(i + 2)
            .and_then(|a| a.parse().ok())
            .expect("--load ADDR ROUNDS: a number of rounds");
        let (n, secs) = load(addr, 1, false, Some(rounds), None);
        println!("{n} messages in {secs:.2} s");
        return;
    }
    let rounds = env("ECHO_ROUNDS", 7) as usize;
    let ms = env("ECHO_MS", 300);
    let clients = env("ECHO_CLIENTS", 1).max(1) as usize;
    let flavour = std::env::var("ECHO_FLAVOUR").unwrap_or_else(|_| "both".to_owned());
    if flavour == "current" || flavour == "both" {
        compare(
            "current-thread (server and load pinned apart)",
            &[Side::Knote, Side::Tokio, Side::Reactor],
            rounds,
            ms,
            clients,
        );
    }
    if flavour == "multi" || flavour == "both" {
        let workers = env("ECHO_WORKERS", 2);
        compare(
            &format!("multi-thread ({workers} workers, unpinned)"),
            &[Side::KnoteMulti, Side::TokioMulti],
            rounds,
            ms,
            clients,
        );
    }
}
