//! Multi-thread echo throughput, knote vs tokio in one run: the same echo service on both (std
//! sockets in `AsyncFd` on knote, `tokio::net::TcpStream`'s readiness + try_read/try_write on
//! tokio), 64 loopback connections × 64-byte
//! messages, 2 workers each; client load from plain threads (each drives its share of the
//! connections: write one message on each, then read each echo back). Rounds alternate the two
//! runtimes; the output is each side's median messages per second and knote ÷ tokio.
//!
//! A second pair compares the stream APIs the same way: `knote::net::TcpStream` through
//! futures-io's `read`/`write_all` against `tokio::net::TcpStream` through tokio's.
//!
//! `cargo bench -p knote-bench --bench echo_multi` (env: ECHO_ROUNDS, default 7; ECHO_MS per
//! round, 300; ECHO_WORKERS, 2; ECHO_ONLY=knote or tokio runs that side alone and prints the
//! messages echoed, for `strace -c -f` or `perf`: system calls per message).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONNS: usize = 64;
const MSG: usize = 64;
const CLIENT_THREADS: usize = 4;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Echo on knote: accept `CONNS` connections, one task each.
fn knote_server(workers: usize, listener: TcpListener, stop: Arc<AtomicBool>) {
    use knote::io::AsyncFd;
    let rt = knote::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..CONNS {
        let (s, _) = listener.accept().unwrap();
        s.set_nodelay(true).unwrap();
        s.set_nonblocking(true).unwrap();
        tasks.push(rt.spawn(async move {
            let fd = AsyncFd::new(s).unwrap();
            let mut buf = [0u8; MSG];
            loop {
                let n = loop {
                    let mut g = fd.readable().await.unwrap();
                    match g.try_io(|f| f.get_ref().read(&mut buf)) {
                        Ok(r) => break r,
                        Err(_would_block) => continue,
                    }
                };
                let n = match n {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let mut off = 0;
                while off < n {
                    let mut g = fd.writable().await.unwrap();
                    match g.try_io(|f| f.get_ref().write(&buf[off..n])) {
                        Ok(Ok(w)) => off += w,
                        Ok(Err(_)) => return,
                        Err(_would_block) => continue,
                    }
                }
            }
        }));
    }
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(tasks);
    drop(rt);
}

/// Echo on tokio.
fn tokio_server(workers: usize, listener: TcpListener, stop: Arc<AtomicBool>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    listener.set_nonblocking(true).unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        for _ in 0..CONNS {
            let (s, _) = listener.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; MSG];
                loop {
                    let n = loop {
                        if s.readable().await.is_err() {
                            return;
                        }
                        match s.try_read(&mut buf) {
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                            r => break r,
                        }
                    };
                    let n = match n {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let mut off = 0;
                    while off < n {
                        if s.writable().await.is_err() {
                            return;
                        }
                        match s.try_write(&buf[off..n]) {
                            Ok(w) => off += w,
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                            Err(_) => return,
                        }
                    }
                }
            });
        }
    });
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
    }
    rt.shutdown_background();
}

/// Echo on knote-net's `TcpStream`, with futures-io's `AsyncReadExt`/`AsyncWriteExt`.
fn knote_net_server(workers: usize, listener: TcpListener, stop: Arc<AtomicBool>) {
    use futures_util::io::{AsyncReadExt, AsyncWriteExt};
    let rt = knote::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .unwrap();
    listener.set_nonblocking(true).unwrap();
    let tasks = rt.block_on(async {
        let listener = knote::net::TcpListener::from_std(listener).unwrap();
        let mut tasks = Vec::new();
        for _ in 0..CONNS {
            let (mut s, _) = listener.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            tasks.push(knote::spawn(async move {
                let mut buf = [0u8; MSG];
                loop {
                    match AsyncReadExt::read(&mut s, &mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }));
        }
        tasks
    });
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(tasks);
    drop(rt);
}

/// Echo on tokio's `TcpStream`, with tokio's `AsyncReadExt`/`AsyncWriteExt`.
fn tokio_io_server(workers: usize, listener: TcpListener, stop: Arc<AtomicBool>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    listener.set_nonblocking(true).unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        for _ in 0..CONNS {
            let (mut s, _) = listener.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; MSG];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
    }
    rt.shutdown_background();
}

/// One round: messages echoed by a server started by `serve`, and the seconds it took.
fn round_count(
    serve: fn(usize, TcpListener, Arc<AtomicBool>),
    workers: usize,
    ms: u64,
) -> (u64, f64) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || serve(workers, listener, stop))
    };
    let conns: Vec<TcpStream> = (0..CONNS)
        .map(|_| {
            let s = TcpStream::connect(addr).unwrap();
            s.set_nodelay(true).unwrap();
            s
        })
        .collect();
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut groups: Vec<Vec<TcpStream>> = (0..CLIENT_THREADS).map(|_| Vec::new()).collect();
    for (i, c) in conns.into_iter().enumerate() {
        groups[i % CLIENT_THREADS].push(c);
    }
    let start = Instant::now();
    let clients: Vec<_> = groups
        .into_iter()
        .map(|mut group| {
            let (done, count) = (Arc::clone(&done), Arc::clone(&count));
            std::thread::spawn(move || {
                let msg = [7u8; MSG];
                let mut buf = [0u8; MSG];
                while !done.load(Ordering::Relaxed) {
                    for c in group.iter_mut() {
                        c.write_all(&msg).unwrap();
                    }
                    for c in group.iter_mut() {
                        c.read_exact(&mut buf).unwrap();
                    }
                    count.fetch_add(group.len() as u64, Ordering::Relaxed);
                }
                drop(group);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(ms));
    let n = count.load(Ordering::Relaxed);
    let elapsed = start.elapsed();
    done.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    server.join().unwrap();
    (n, elapsed.as_secs_f64())
}

/// One round: messages per second echoed by a server started by `serve`.
fn round(serve: fn(usize, TcpListener, Arc<AtomicBool>), workers: usize, ms: u64) -> f64 {
    let (n, secs) = round_count(serve, workers, ms);
    n as f64 / secs
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("echo_multi: bench");
        return;
    }
    let rounds = env("ECHO_ROUNDS", 7) as usize;
    let ms = env("ECHO_MS", 300);
    let workers = env("ECHO_WORKERS", 2) as usize;
    if let Ok(side) = std::env::var("ECHO_ONLY") {
        let serve = match side.as_str() {
            "knote" => knote_server,
            "tokio" => tokio_server,
            other => panic!("ECHO_ONLY={other:?}: knote or tokio"),
        };
        let (mut rates, mut messages) = (Vec::new(), 0);
        for _ in 0..rounds {
            let (n, secs) = round_count(serve, workers, ms);
            rates.push(n as f64 / secs);
            messages += n;
        }
        let rate = median(&mut rates);
        println!(
            "echo {CONNS} conns x {MSG} B, {workers} workers, {side} alone: \
             median {rate:.0} msg/s, {messages} messages"
        );
        return;
    }
    let (mut k, mut t) = (Vec::new(), Vec::new());
    let (mut kn, mut tn) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        if i % 2 == 0 {
            k.push(round(knote_server, workers, ms));
            t.push(round(tokio_server, workers, ms));
            kn.push(round(knote_net_server, workers, ms));
            tn.push(round(tokio_io_server, workers, ms));
        } else {
            tn.push(round(tokio_io_server, workers, ms));
            kn.push(round(knote_net_server, workers, ms));
            t.push(round(tokio_server, workers, ms));
            k.push(round(knote_server, workers, ms));
        }
    }
    let (km, tm) = (median(&mut k), median(&mut t));
    println!(
        "echo {CONNS} conns x {MSG} B, {workers} workers: knote {km:.0} msg/s, tokio {tm:.0} msg/s, knote/tokio {:.2}",
        km / tm
    );
    let (knm, tnm) = (median(&mut kn), median(&mut tn));
    println!(
        "echo via stream traits, {workers} workers: knote::net {knm:.0} msg/s, tokio::net {tnm:.0} msg/s, knote/tokio {:.2}",
        knm / tnm
    );
}
