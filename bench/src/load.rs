//! The load generator: synchronous threads with blocking sockets (neither runtime under test).
//!
//! Every connection has one request in flight at a time: a thread writes one request on each
//! of its connections, then reads each reply back whole, and repeats. The time from a
//! connection's write to the end of its reply is that request's latency; each thread records
//! them in its own HDR histogram, merged at the end.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::http::ResponseReader;

/// How long a load socket waits for a reply before the run fails (a stuck server must not
/// hang the tool).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// The HTTP request: `GET /` on a keep-alive connection.
const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: knote-bench\r\n\r\n";

/// What a connection sends and waits for.
#[derive(Clone, Copy, Debug)]
pub enum Protocol {
    /// A message of this many bytes, echoed back whole.
    Echo {
        /// The message size in bytes.
        msg: usize,
    },
    /// `GET /` on an HTTP/1.1 keep-alive connection; the reply must be `200`.
    Http,
}

/// When a run stops.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    /// After this long (replies in flight then are still awaited, not counted).
    Elapsed(Duration),
    /// Once every connection has made this many round trips.
    Rounds(u64),
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct LoadResult {
    /// Round trips (or connections, for churn) completed in `secs`.
    pub count: u64,
    /// The measured time in seconds.
    pub secs: f64,
    /// Latency in nanoseconds of every round trip completed.
    pub latency: Histogram<u64>,
}

impl LoadResult {
    /// Round trips per second.
    pub fn rate(&self) -> f64 {
        self.count as f64 / self.secs.max(1e-9)
    }

    /// The latency at `quantile` (0..1) in microseconds; `None` with no samples.
    pub fn latency_us(&self, quantile: f64) -> Option<f64> {
        (!self.latency.is_empty()).then(|| self.latency.value_at_quantile(quantile) as f64 / 1e3)
    }
}

/// An empty latency histogram: 1 ns to 60 s, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Records `elapsed` (clamped to the histogram's range).
fn record(hist: &mut Histogram<u64>, elapsed: Duration) {
    let ns = (elapsed.as_nanos() as u64).clamp(1, hist.high());
    hist.saturating_record(ns);
}

/// Merges the threads' histograms into one.
pub fn merge(histograms: impl IntoIterator<Item = Histogram<u64>>) -> Histogram<u64> {
    let mut all = new_histogram();
    for h in histograms {
        all.add(&h).expect("histograms of the same bounds merge");
    }
    all
}

/// Opens `n` connections to `addr` (TCP_NODELAY, a reply timeout).
pub fn connect(addr: SocketAddr, n: usize) -> io::Result<Vec<TcpStream>> {
    (0..n).map(|_| open(addr)).collect()
}

fn open(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("connect to {addr}: {e}")))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
    stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
    Ok(stream)
}

/// One connection's side of the protocol: its request, and how its reply is read.
struct Peer<'a> {
    stream: &'a mut TcpStream,
    http: ResponseReader,
    reply: Vec<u8>,
}

impl Peer<'_> {
    fn send(&mut self, protocol: Protocol, message: &[u8]) -> io::Result<()> {
        match protocol {
            Protocol::Echo { .. } => self.stream.write_all(message),
            Protocol::Http => self.stream.write_all(GET),
        }
    }

    fn receive(&mut self, protocol: Protocol, message: &[u8]) -> io::Result<()> {
        match protocol {
            Protocol::Echo { .. } => {
                self.stream.read_exact(&mut self.reply)?;
                if self.reply != message {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the echo differs from the message sent",
                    ));
                }
                Ok(())
            }
            Protocol::Http => {
                let response = self.http.read_response(self.stream)?;
                if response.status != 200 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the server answered {}", response.status),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// Runs `protocol` over `conns`, split over `threads` threads, until `until`.
pub fn run(
    conns: &mut [TcpStream],
    protocol: Protocol,
    threads: usize,
    until: Until,
) -> io::Result<LoadResult> {
    let msg_len = match protocol {
        Protocol::Echo { msg } => msg,
        Protocol::Http => 0,
    };
    let message: Vec<u8> = (0..msg_len).map(|i| b'a' + (i % 26) as u8).collect();
    let per_thread = conns.len().div_ceil(threads.max(1)).max(1);
    let stop = AtomicBool::new(false);
    let count = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = conns
            .chunks_mut(per_thread)
            .map(|group| {
                let (stop, count, message) = (&stop, &count, &message);
                scope.spawn(move || -> io::Result<Histogram<u64>> {
                    let mut hist = new_histogram();
                    let mut peers: Vec<Peer<'_>> = group
                        .iter_mut()
                        .map(|stream| Peer {
                            stream,
                            http: ResponseReader::default(),
                            reply: vec![0; message.len()],
                        })
                        .collect();
                    let mut sent_at = vec![start; peers.len()];
                    let mut round = 0;
                    loop {
                        let more = match until {
                            Until::Elapsed(_) => !stop.load(Ordering::Relaxed),
                            Until::Rounds(n) => round < n,
                        };
                        if !more {
                            return Ok(hist);
                        }
                        for (peer, at) in peers.iter_mut().zip(&mut sent_at) {
                            *at = Instant::now();
                            peer.send(protocol, message)?;
                        }
                        for (peer, at) in peers.iter_mut().zip(&sent_at) {
                            peer.receive(protocol, message)?;
                            record(&mut hist, at.elapsed());
                        }
                        count.fetch_add(peers.len() as u64, Ordering::Relaxed);
                        round += 1;
                    }
                })
            })
            .collect();
        let timed = measure_until(until, &stop, &count, start);
        let mut histograms = Vec::new();
        for worker in workers {
            histograms.push(worker.join().expect("a load thread panicked")?);
        }
        let (n, secs) =
            timed.unwrap_or_else(|| (count.load(Ordering::SeqCst), start.elapsed().as_secs_f64()));
        Ok(LoadResult {
            count: n,
            secs,
            latency: merge(histograms),
        })
    })
}

/// For a timed run: sleeps, takes the count and the time, then tells the threads to stop.
fn measure_until(
    until: Until,
    stop: &AtomicBool,
    count: &AtomicU64,
    start: Instant,
) -> Option<(u64, f64)> {
    let Until::Elapsed(duration) = until else {
        return None;
    };
    std::thread::sleep(duration);
    let n = count.load(Ordering::SeqCst);
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    Some((n, secs))
}

/// Connection churn for `duration` on `threads` threads: connect, one echo of a `msg`-byte
/// message, close, repeat. The count is connections; the latency is of the whole cycle.
pub fn churn(
    addr: SocketAddr,
    msg: usize,
    threads: usize,
    duration: Duration,
) -> io::Result<LoadResult> {
    let message: Vec<u8> = vec![b'c'; msg.max(1)];
    let stop = AtomicBool::new(false);
    let count = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                let (stop, count, message) = (&stop, &count, &message);
                scope.spawn(move || -> io::Result<Histogram<u64>> {
                    let mut hist = new_histogram();
                    let mut reply = vec![0; message.len()];
                    while !stop.load(Ordering::Relaxed) {
                        let at = Instant::now();
                        let mut peer = Peer {
                            stream: &mut open(addr)?,
                            http: ResponseReader::default(),
                            reply: std::mem::take(&mut reply),
                        };
                        let protocol = Protocol::Echo { msg: message.len() };
                        peer.send(protocol, message)?;
                        peer.receive(protocol, message)?;
                        reply = peer.reply;
                        // The connection closes at the end of this iteration (its stream
                        // is a temporary).
                        record(&mut hist, at.elapsed());
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(hist)
                })
            })
            .collect();
        let (n, secs) =
            measure_until(Until::Elapsed(duration), &stop, &count, start).expect("a timed run");
        let mut histograms = Vec::new();
        for worker in workers {
            histograms.push(worker.join().expect("a churn thread panicked")?);
        }
        Ok(LoadResult {
            count: n,
            secs,
            latency: merge(histograms),
        })
    })
}

/// How many idle connections are opened before their first echoes are awaited: below the
/// listen backlog (128 where std's default applies), so no SYN is dropped and retried.
const IDLE_BATCH: usize = 100;

/// Opens `n` connections that then stay idle, each after one echo of one byte (so the server
/// has accepted it and its task or slot is set up when this returns). They are opened in
/// batches: connect a batch, send on each, then await each echo.
pub fn open_idle(addr: SocketAddr, n: usize) -> io::Result<Vec<TcpStream>> {
    let mut idle = Vec::with_capacity(n);
    let protocol = Protocol::Echo { msg: 1 };
    while idle.len() < n {
        let batch = IDLE_BATCH.min(n - idle.len());
        let mut streams = connect(addr, batch)?;
        let mut peers: Vec<Peer<'_>> = streams
            .iter_mut()
            .map(|stream| Peer {
                stream,
                http: ResponseReader::default(),
                reply: vec![0; 1],
            })
            .collect();
        for peer in &mut peers {
            peer.send(protocol, b"i")?;
        }
        for peer in &mut peers {
            peer.receive(protocol, b"i")?;
        }
        drop(peers);
        idle.append(&mut streams);
    }
    Ok(idle)
}

/// Requests per second from `wrk`'s output (its `Requests/sec:` line).
pub fn parse_wrk_rate(output: &str) -> Option<f64> {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Runs `wrk -t1 -c<conns> -d<secs>s` against `addr`: requests per second, or why not.
pub fn wrk(addr: SocketAddr, conns: usize, secs: u64) -> Result<f64, String> {
    let output = std::process::Command::new("wrk")
        .arg("-t1")
        .arg(format!("-c{conns}"))
        .arg(format!("-d{}s", secs.max(1)))
        .arg(format!("http://{addr}/"))
        .output()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "wrk failed ({}): {text}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    if text.contains("Non-2xx") {
        return Err(format!("the server answered errors to wrk: {text}"));
    }
    parse_wrk_rate(&text).ok_or_else(|| format!("no Requests/sec in wrk's output: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_merge() {
        let mut a = new_histogram();
        let mut b = new_histogram();
        for us in 1..=90 {
            record(&mut a, Duration::from_micros(us));
        }
        for us in 91..=100 {
            record(&mut b, Duration::from_micros(us));
        }
        record(&mut b, Duration::from_secs(3600));
        let all = merge([a, b]);
        assert_eq!(all.len(), 101);
        let result = LoadResult {
            count: 101,
            secs: 1.0,
            latency: all,
        };
        let p50 = result.latency_us(0.5).unwrap();
        assert!((50.0..=51.1).contains(&p50), "{p50}");
        // The hour was clamped to the histogram's 60 s.
        assert!(result.latency_us(1.0).unwrap() >= 59.0e6);
        assert_eq!(result.rate(), 101.0);
        let empty = LoadResult {
            count: 0,
            secs: 1.0,
            latency: new_histogram(),
        };
        assert_eq!(empty.latency_us(0.99), None);
    }

    #[test]
    fn wrk_output() {
        let text = "Running 1s test @ http://127.0.0.1:1/\n  1 threads and 64 connections\n\
                    Requests/sec:  81234.56\nTransfer/sec:      9.84MB\n";
        assert_eq!(parse_wrk_rate(text), Some(81234.56));
        assert_eq!(parse_wrk_rate("nothing"), None);
    }

    #[test]
    fn echo_and_http_over_loopback() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // A two-connection server on a thread: the first echoes, the second answers HTTP.
        let server = std::thread::spawn(move || {
            let (mut echo, _) = listener.accept().unwrap();
            let mut buf = [0u8; 64];
            for _ in 0..3 {
                echo.read_exact(&mut buf[..16]).unwrap();
                echo.write_all(&buf[..16]).unwrap();
            }
            let (mut http, _) = listener.accept().unwrap();
            for i in 0..2 {
                let mut got = Vec::new();
                while !got.ends_with(b"\r\n\r\n") {
                    let n = http.read(&mut buf).unwrap();
                    assert_ne!(n, 0);
                    got.extend_from_slice(&buf[..n]);
                }
                if i == 0 {
                    http.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
                        .unwrap();
                } else {
                    // The second response split across writes.
                    http.write_all(b"HTTP/1.1 200 OK\r\nContent-").unwrap();
                    http.flush().unwrap();
                    http.write_all(b"Length: 2\r\n\r\nhi").unwrap();
                }
            }
        });
        let mut conns = connect(addr, 1).unwrap();
        let echoed = run(&mut conns, Protocol::Echo { msg: 16 }, 1, Until::Rounds(3)).unwrap();
        assert_eq!(echoed.count, 3);
        assert_eq!(echoed.latency.len(), 3);
        let mut conns = connect(addr, 1).unwrap();
        let http = run(&mut conns, Protocol::Http, 1, Until::Rounds(2)).unwrap();
        assert_eq!(http.count, 2);
        server.join().unwrap();
    }
}
