//! Connection churn: echo servers on knote, and clients that connect, echo a few messages with
//! a verifiable pattern, check every byte, close, and start over, paced to a rate.
//!
//! A message (a *frame*) is `connection id (u64) | sequence number (u32) | payload length
//! (u32) | payload | FNV-1a checksum of all before it (u32)`, little-endian; the payload is
//! pseudo-random bytes seeded by the id and the sequence number. An echo is checked against
//! that pattern, field by field, so a byte flipped, a frame of another connection, one out of
//! order or one cut short is told apart in the report.
//!
//! The conversation (what to write, what to expect back, what counts as lost or corrupted) is
//! written once, [`converse`], over a [`Transport`]: knote's `TcpStream` on the runtimes, and a
//! blocking std `TcpStream` on plain threads, so the servers are also checked by a client that
//! does not run on knote at all.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use knote::net::{TcpListener, TcpStream};
use knote::time::timeout;

use super::report::Counters;
use super::shared::{limited, Shared, STOP_POLL, WAIT_LIMIT};

/// The longest payload of a frame.
const MAX_PAYLOAD: usize = 2048;
/// Bytes of a frame around its payload: id, sequence number, length; checksum.
const HEADER: usize = 16;
const TRAILER: usize = 4;
/// The most frames one connection echoes.
const MAX_FRAMES: u64 = 6;

/// A pseudo-random sequence (splitmix64): payloads and frame counts, reproducible from a seed.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    /// The sequence of `seed`.
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next number.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// FNV-1a, 32 bits: the frame checksum.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The payload of frame `seq` of connection `conn`.
fn payload(conn: u64, seq: u32) -> Vec<u8> {
    let mut rng = Rng::new(conn.rotate_left(32) ^ u64::from(seq));
    let len = rng.below(MAX_PAYLOAD as u64 + 1) as usize;
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

/// Frame `seq` of connection `conn`, as written.
pub(crate) fn frame(conn: u64, seq: u32) -> Vec<u8> {
    let payload = payload(conn, seq);
    let mut f = Vec::with_capacity(HEADER + payload.len() + TRAILER);
    f.extend_from_slice(&conn.to_le_bytes());
    f.extend_from_slice(&seq.to_le_bytes());
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(&payload);
    let sum = fnv1a(&f);
    f.extend_from_slice(&sum.to_le_bytes());
    f
}

/// Checks that `echo` is frame `seq` of connection `conn`, saying what is wrong if not.
pub(crate) fn check_frame(conn: u64, seq: u32, echo: &[u8]) -> Result<(), String> {
    if echo.len() < HEADER + TRAILER {
        return Err(format!("{} bytes, shorter than any frame", echo.len()));
    }
    let word = |at: usize, n: usize| -> u64 {
        echo[at..at + n]
            .iter()
            .rev()
            .fold(0, |v, &b| (v << 8) | u64::from(b))
    };
    let (got_conn, got_seq, len) = (word(0, 8), word(8, 4) as u32, word(12, 4) as usize);
    if got_conn != conn || got_seq != seq {
        return Err(format!(
            "frame {got_seq} of connection {got_conn} came back for frame {seq} of connection \
             {conn}"
        ));
    }
    if HEADER + len + TRAILER != echo.len() {
        return Err(format!(
            "frame {seq} of connection {conn} says {len} payload bytes in a {}-byte echo",
            echo.len()
        ));
    }
    let body = &echo[..HEADER + len];
    if fnv1a(body) as u64 != word(HEADER + len, 4) {
        return Err(format!("frame {seq} of connection {conn}: bad checksum"));
    }
    if body[HEADER..] != payload(conn, seq)[..] {
        return Err(format!(
            "frame {seq} of connection {conn}: payload differs (checksum matched)"
        ));
    }
    Ok(())
}

/// One write and the echo it expects: a frame, or (pipelined) all of a connection's frames.
#[derive(Clone, Debug)]
pub(crate) struct Round {
    /// What to write.
    bytes: Vec<u8>,
    /// The frames in it: sequence number and length.
    frames: Vec<(u32, usize)>,
}

/// What one connection says: its id and its rounds.
#[derive(Clone, Debug)]
pub(crate) struct Conversation {
    conn: u64,
    rounds: Vec<Round>,
}

impl Conversation {
    /// The conversation of connection `conn`: 1 to [`MAX_FRAMES`] frames, one round trip
    /// each, or all in one write for every fourth connection (so the server also sees
    /// several frames in one read, and echoes larger writes).
    pub(crate) fn new(conn: u64) -> Conversation {
        let frames = 1 + Rng::new(!conn).below(MAX_FRAMES) as u32;
        let mut rounds: Vec<Round> = Vec::new();
        for seq in 0..frames {
            let f = frame(conn, seq);
            match rounds.last_mut() {
                Some(round) if conn % 4 == 0 => {
                    round.frames.push((seq, f.len()));
                    round.bytes.extend_from_slice(&f);
                }
                _ => rounds.push(Round {
                    frames: vec![(seq, f.len())],
                    bytes: f,
                }),
            }
        }
        Conversation { conn, rounds }
    }

    /// Checks the echo of `round`: frames that came back wrong, each with what was wrong.
    fn check(&self, round: &Round, echo: &[u8]) -> Vec<String> {
        let mut at = 0;
        let mut wrong = Vec::new();
        for &(seq, len) in &round.frames {
            if let Err(why) = check_frame(self.conn, seq, &echo[at..at + len]) {
                wrong.push(why);
            }
            at += len;
        }
        wrong
    }
}

/// A connected stream as [`converse`] needs it; every method is bounded in time.
pub(crate) trait Transport {
    /// Writes all of `bytes`.
    fn write_all(&mut self, bytes: &[u8]) -> impl Future<Output = io::Result<()>>;
    /// Fills `buf`.
    fn read_exact(&mut self, buf: &mut [u8]) -> impl Future<Output = io::Result<()>>;
    /// Reads what comes, 0 at end of stream.
    fn read(&mut self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>>;
    /// Shuts the write side: the peer reads end of stream.
    fn shutdown_write(&mut self) -> io::Result<()>;
}

/// How a client connects and waits: on knote, or on a plain thread.
pub(crate) trait Client {
    /// Its streams.
    type Stream: Transport;
    /// Connects to `addr`.
    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>>;
    /// Waits until `when`.
    fn sleep_until(&self, when: Instant) -> impl Future<Output = ()>;
}

/// A failed step of a conversation: what it was, and the error.
type Failed = (&'static str, io::Error);

/// Runs the conversation of connection `conn` over a fresh connection to `addr`, counting
/// messages sent, echoed, lost and corrupted, the connection if it all went right, and the
/// error (by step) if something failed.
pub(crate) async fn converse<C: Client>(client: &C, addr: SocketAddr, conn: u64, shared: &Shared) {
    let c = &shared.counters;
    let conversation = Conversation::new(conn);
    let (mut sent, mut echoed) = (0, 0);
    let result: Result<(), Failed> = async {
        let mut stream = client
            .connect(addr)
            .await
            .map_err(|e| ("churn connect", e))?;
        for round in &conversation.rounds {
            stream
                .write_all(&round.bytes)
                .await
                .map_err(|e| ("churn write", e))?;
            sent += round.frames.len() as u64;
            Shared::add(&c.messages_sent, round.frames.len() as u64);
            let mut echo = vec![0; round.bytes.len()];
            stream
                .read_exact(&mut echo)
                .await
                .map_err(|e| ("churn read", e))?;
            let wrong = conversation.check(round, &echo);
            let fine = (round.frames.len() - wrong.len()) as u64;
            echoed += round.frames.len() as u64;
            Shared::add(&c.messages_echoed, fine);
            Shared::add(&c.bytes_echoed, round.bytes.len() as u64);
            if let Some(first) = wrong.first() {
                Shared::add(&c.messages_corrupted, wrong.len() as u64);
                shared.incident(format!("corrupted echo: {first}"));
                // The stream is out of step with the conversation: nothing more to check.
                return Ok(());
            }
        }
        stream.shutdown_write().map_err(|e| ("churn shutdown", e))?;
        let mut extra = [0; 64];
        match stream
            .read(&mut extra)
            .await
            .map_err(|e| ("churn close", e))?
        {
            0 => Shared::add(&c.connections, 1),
            n => {
                Shared::add(&c.messages_corrupted, 1);
                shared.incident(format!(
                    "connection {conn}: {n} bytes more than was sent came back"
                ));
            }
        }
        Ok(())
    }
    .await;
    if let Err((what, err)) = result {
        Shared::add(&c.messages_lost, sent - echoed);
        shared.error(what, &err);
    }
}

/// Hands out connection ids and the time each connection is due, `rate` per second from the
/// start of the run, none due at or after its deadline.
#[derive(Debug)]
pub(crate) struct Pacer {
    rate: f64,
    next: AtomicU64,
    started: Instant,
    deadline: Instant,
}

impl Pacer {
    /// Pacing at `rate` connections per second over `shared`'s run.
    pub(crate) fn new(rate: f64, shared: &Shared) -> Pacer {
        Pacer {
            rate,
            next: AtomicU64::new(0),
            started: shared.started,
            deadline: shared.deadline,
        }
    }

    /// The next connection's id and when it is due; `None` once they would be due too late.
    pub(crate) fn next(&self) -> Option<(u64, Instant)> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let due = self.started + Duration::from_secs_f64(id as f64 / self.rate);
        (due < self.deadline).then_some((id, due))
    }
}

/// A client's loop: takes the next connection from `pacer`, waits until it is due, runs it
/// against one of `servers` (by id, in turn), until the pacer has none left or the run stops.
pub(crate) async fn client_loop<C: Client>(
    client: C,
    servers: Vec<SocketAddr>,
    pacer: Arc<Pacer>,
    shared: Arc<Shared>,
) {
    /// Counts this loop in [`Shared::clients`] while it runs.
    struct Running<'a>(&'a AtomicUsize);
    impl Drop for Running<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    shared.clients.fetch_add(1, Ordering::SeqCst);
    let _running = Running(&shared.clients);
    while let Some((conn, due)) = pacer.next() {
        if shared.stopping() {
            break;
        }
        client.sleep_until(due).await;
        let addr = servers[conn as usize % servers.len()];
        converse(&client, addr, conn, &shared).await;
    }
}

/// Clients on a knote runtime, with knote's `TcpStream`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KnoteClient;

impl Transport for TcpStream {
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        limited("write", AsyncWriteExt::write_all(self, bytes)).await
    }
    async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        limited("read", AsyncReadExt::read_exact(self, buf)).await
    }
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        limited("read", AsyncReadExt::read(self, buf)).await
    }
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

impl Client for KnoteClient {
    type Stream = TcpStream;
    async fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = limited("connect", TcpStream::connect(addr)).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
    async fn sleep_until(&self, when: Instant) {
        knote::time::sleep_until(knote::time::Instant::from_std(when)).await;
    }
}

/// Clients on a plain thread, with blocking std sockets (timeouts on every call); their
/// futures never wait, and are run by [`run_blocking`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct StdClient;

impl Transport for std::net::TcpStream {
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        io::Write::write_all(self, bytes)
    }
    async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        io::Read::read_exact(self, buf)
    }
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        io::Read::read(self, buf)
    }
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

impl Client for StdClient {
    type Stream = std::net::TcpStream;
    async fn connect(&self, addr: SocketAddr) -> io::Result<std::net::TcpStream> {
        let stream = std::net::TcpStream::connect_timeout(&addr, WAIT_LIMIT)?;
        stream.set_read_timeout(Some(WAIT_LIMIT))?;
        stream.set_write_timeout(Some(WAIT_LIMIT))?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
    async fn sleep_until(&self, when: Instant) {
        std::thread::sleep(when.saturating_duration_since(Instant::now()));
    }
}

/// Runs a future that never waits (one made of blocking calls, as [`StdClient`]'s) on this
/// thread. One that does wait is a bug of the caller: it is reported, not spun on.
pub(crate) fn run_blocking<T>(f: impl Future<Output = T>) -> io::Result<T> {
    struct NoWake;
    impl Wake for NoWake {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(NoWake));
    match pin!(f).poll(&mut Context::from_waker(&waker)) {
        Poll::Ready(value) => Ok(value),
        Poll::Pending => Err(io::Error::other(
            "a blocking client's future waited, which it never should",
        )),
    }
}

/// Which server this is, for the report and its counter.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Server {
    /// On the multi-thread runtime.
    MultiThread,
    /// On the current-thread runtime.
    CurrentThread,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::MultiThread => "the echo server on the multi-thread runtime",
            Server::CurrentThread => "the echo server on the current-thread runtime",
        }
    }

    fn accepted(self, c: &Counters) -> &AtomicU64 {
        match self {
            Server::MultiThread => &c.accepted_multi_thread,
            Server::CurrentThread => &c.accepted_current_thread,
        }
    }
}

/// Accept errors in a row after which a server gives up (an fd table that stays full, a
/// listener that broke): it says so, and its clients see refused connections.
const ACCEPT_ERRORS_IN_A_ROW: u32 = 100;

/// An echo server: accepts on `listener` until the run stops and every client loop has ended
/// (a loop that starts after the deadline begins no connection), each connection in its own
/// task on the current runtime, then waits (bounded) for its connections to end.
pub(crate) async fn serve(listener: TcpListener, which: Server, shared: Arc<Shared>) {
    let open = Arc::new(AtomicUsize::new(0));
    let mut failures = 0;
    while !shared.stopping() || shared.clients.load(Ordering::SeqCst) > 0 {
        match timeout(STOP_POLL, listener.accept()).await {
            Err(_) => {}
            Ok(Ok((stream, _))) => {
                failures = 0;
                Shared::add(which.accepted(&shared.counters), 1);
                open.fetch_add(1, Ordering::Relaxed);
                let (shared, open) = (Arc::clone(&shared), Arc::clone(&open));
                knote::spawn(async move {
                    if let Err(e) = echo(stream).await {
                        shared.error("churn server echo", &e);
                    }
                    open.fetch_sub(1, Ordering::Relaxed);
                });
            }
            Ok(Err(e)) => {
                shared.error("churn accept", &e);
                failures += 1;
                if failures == ACCEPT_ERRORS_IN_A_ROW {
                    shared.incident(format!(
                        "{} stopped: {failures} accept errors in a row, the last: {e}",
                        which.name()
                    ));
                    break;
                }
            }
        }
    }
    drop(listener);
    let give_up = Instant::now() + 2 * WAIT_LIMIT;
    while open.load(Ordering::Relaxed) > 0 && Instant::now() < give_up {
        knote::time::sleep(Duration::from_millis(10)).await;
    }
    let left = open.load(Ordering::Relaxed);
    if left > 0 {
        shared.incident(format!(
            "{}: {left} connections still open {:?} after the run stopped",
            which.name(),
            2 * WAIT_LIMIT
        ));
    }
}

/// Echoes one connection until the client shuts its side, then closes; a client silent for
/// longer than [`WAIT_LIMIT`] is an error.
async fn echo(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = limited("echo read", AsyncReadExt::read(&mut stream, &mut buf)).await?;
        if n == 0 {
            return stream.close().await;
        }
        limited(
            "echo write",
            AsyncWriteExt::write_all(&mut stream, &buf[..n]),
        )
        .await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_check_against_their_pattern() {
        for conn in [0, 1, 77, u64::MAX] {
            for seq in 0..4 {
                let f = frame(conn, seq);
                assert_eq!(check_frame(conn, seq, &f), Ok(()));
            }
        }
    }

    #[test]
    fn every_kind_of_damage_is_caught() {
        let f = frame(9, 2);
        let mut flipped = f.clone();
        let last = flipped.len() - 1;
        flipped[HEADER] ^= 1;
        assert!(check_frame(9, 2, &flipped)
            .unwrap_err()
            .contains("checksum"));
        let mut sum = f.clone();
        sum[last] ^= 0x80;
        assert!(check_frame(9, 2, &sum).unwrap_err().contains("checksum"));
        assert!(check_frame(8, 2, &f).unwrap_err().contains("connection 9"));
        assert!(check_frame(9, 1, &f).unwrap_err().contains("frame 2"));
        assert!(check_frame(9, 2, &f[..f.len() - 1])
            .unwrap_err()
            .contains("payload bytes"));
        assert!(check_frame(9, 2, &f[..3]).unwrap_err().contains("shorter"));
    }

    #[test]
    fn a_conversation_pipelines_every_fourth_connection() {
        let pipelined = Conversation::new(8);
        assert_eq!(pipelined.rounds.len(), 1);
        let frames = pipelined.rounds[0].frames.len();
        assert!((1..=MAX_FRAMES as usize).contains(&frames));
        for conn in [1, 2, 3, 5] {
            let c = Conversation::new(conn);
            assert!(c.rounds.iter().all(|r| r.frames.len() == 1));
        }
    }

    /// The first connection id whose conversation is one frame, one round trip.
    fn one_frame() -> u64 {
        (1..)
            .find(|&c| {
                Conversation::new(c)
                    .rounds
                    .iter()
                    .map(|r| r.frames.len())
                    .sum::<usize>()
                    == 1
            })
            .unwrap()
    }

    /// A server on a plain thread that reads [`one_frame`]'s frame from one connection and
    /// answers `reply(request)`.
    fn fake_server(reply: fn(Vec<u8>) -> Vec<u8>) -> (SocketAddr, std::thread::JoinHandle<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
            let mut request = Vec::new();
            let mut buf = [0; 4096];
            let want = frame(one_frame(), 0).len();
            while request.len() < want {
                let n = io::Read::read(&mut s, &mut buf).unwrap();
                assert!(n > 0, "client closed early");
                request.extend_from_slice(&buf[..n]);
            }
            io::Write::write_all(&mut s, &reply(request)).unwrap();
        });
        (addr, server)
    }

    /// Runs [`one_frame`]'s conversation with the std client against `addr`.
    fn converse_once(addr: SocketAddr) -> Shared {
        let shared = Shared::new(Duration::from_secs(10));
        run_blocking(converse(&StdClient, addr, one_frame(), &shared)).unwrap();
        shared
    }

    #[test]
    fn a_flipped_byte_is_counted_as_corrupted() {
        let (addr, server) = fake_server(|mut echo| {
            echo[HEADER + 1] ^= 0x10;
            echo
        });
        let shared = converse_once(addr);
        server.join().unwrap();
        let t = shared.counters.snapshot();
        assert_eq!((t.messages_sent, t.messages_corrupted), (1, 1));
        assert_eq!((t.messages_echoed, t.connections), (0, 0));
        assert_eq!(shared.incidents().len(), 1);
    }

    #[test]
    fn a_server_that_dies_mid_echo_loses_the_message() {
        let (addr, server) = fake_server(|mut echo| {
            echo.truncate(5);
            echo
        });
        let shared = converse_once(addr);
        server.join().unwrap();
        let t = shared.counters.snapshot();
        assert_eq!((t.messages_sent, t.messages_lost), (1, 1));
        let errors: Vec<_> = shared.errors().iter().map(|(k, ..)| k.to_owned()).collect();
        assert_eq!(errors, ["churn read: UnexpectedEof"]);
    }

    #[test]
    fn no_server_is_a_counted_error_not_a_hang() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let shared = converse_once(addr);
        let t = shared.counters.snapshot();
        assert_eq!((t.messages_sent, t.messages_lost), (0, 0));
        assert_eq!(shared.errors().total(), 1);
    }

    #[test]
    fn an_honest_echo_counts_a_connection() {
        let (addr, server) = fake_server(|echo| echo);
        let shared = converse_once(addr);
        server.join().unwrap();
        let t = shared.counters.snapshot();
        assert_eq!((t.messages_echoed, t.connections), (1, 1));
        assert_eq!(shared.errors().total(), 0);
    }

    #[test]
    fn the_pacer_stops_before_the_deadline() {
        let shared = Shared::new(Duration::from_millis(100));
        let pacer = Pacer::new(100.0, &shared);
        let ids: Vec<u64> = std::iter::from_fn(|| pacer.next().map(|(id, _)| id)).collect();
        assert_eq!(ids, (0..10).collect::<Vec<_>>());
    }
}
