//! The `proxy` example, compiled in as a module: 64 MiB each way through it arrive byte-exact
//! (hashed at both ends) on both runtime flavours, half-closes pass through in both
//! directions, a refused upstream ends that connection only, and its command line.

#[allow(dead_code)]
#[path = "../examples/proxy.rs"]
mod proxy;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::thread;
use std::time::Duration;

use knote::net::TcpListener;
use knote::runtime::{Builder, Runtime};
use proxy::{parse_args, serve, Command, Options};

const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// What each direction carries in the bulk test.
const BULK: u64 = 64 << 20;
const CHUNK: usize = 256 * 1024;

/// Pseudo-random bytes (xorshift64*), `CHUNK` at a time, from `seed`.
struct Bytes(u64);

impl Bytes {
    fn fill(&mut self, buf: &mut [u8]) {
        for word in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let v = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            word.copy_from_slice(&v[..word.len()]);
        }
    }
}

/// A 64-bit FNV-1a-like hash over 8-byte words, with a carry for words split across reads,
/// so any chunking of the same bytes hashes the same.
#[derive(Default)]
struct Hash {
    h: u64,
    carry: Vec<u8>,
    len: u64,
}

impl Hash {
    fn new() -> Hash {
        Hash {
            h: 0xcbf2_9ce4_8422_2325,
            ..Hash::default()
        }
    }

    fn word(&mut self, w: [u8; 8]) {
        self.h = (self.h ^ u64::from_le_bytes(w)).wrapping_mul(0x0000_0100_0000_01b3);
    }

    fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if !self.carry.is_empty() {
            let take = (8 - self.carry.len()).min(data.len());
            self.carry.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.carry.len() < 8 {
                return;
            }
            let w = self.carry[..].try_into().unwrap();
            self.word(w);
            self.carry.clear();
        }
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            self.word(w.try_into().unwrap());
        }
        self.carry.extend_from_slice(words.remainder());
    }

    fn finish(mut self) -> (u64, u64) {
        for (i, b) in std::mem::take(&mut self.carry).into_iter().enumerate() {
            self.h = (self.h ^ (u64::from(b) << (8 * i))).wrapping_mul(0x0000_0100_0000_01b3);
        }
        (self.h, self.len)
    }
}

/// Sends `BULK` pseudo-random bytes from `seed`, then shuts the write side; their hash.
fn send(mut s: std::net::TcpStream, seed: u64) -> (u64, u64) {
    let mut bytes = Bytes(seed);
    let mut hash = Hash::new();
    let mut buf = vec![0; CHUNK];
    let mut left = BULK;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        bytes.fill(&mut buf[..n]);
        hash.update(&buf[..n]);
        s.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    s.shutdown(Shutdown::Write).unwrap();
    hash.finish()
}

/// Reads to EOF; the hash of what arrived.
fn receive(mut s: std::net::TcpStream) -> (u64, u64) {
    let mut hash = Hash::new();
    let mut buf = vec![0; CHUNK];
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            return hash.finish();
        }
        hash.update(&buf[..n]);
    }
}

/// Sends and receives at once on `s`: (hash sent, hash received).
fn send_and_receive(s: std::net::TcpStream, seed: u64) -> ((u64, u64), (u64, u64)) {
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let writer = {
        let s = s.try_clone().unwrap();
        thread::spawn(move || send(s, seed))
    };
    let received = receive(s);
    (writer.join().unwrap(), received)
}

fn runtime(current_thread: bool) -> Runtime {
    if current_thread {
        Builder::new_current_thread().build()
    } else {
        Builder::new_multi_thread().worker_threads(2).build()
    }
    .unwrap()
}

/// Runs the proxy for `conns` connections to `upstream` on `rt` while `clients` runs on the
/// blocking pool with the proxy's address; the proxy's stats and what `clients` returned.
fn through_proxy<T: Send + 'static>(
    rt: &Runtime,
    upstream: SocketAddr,
    conns: usize,
    clients: impl FnOnce(SocketAddr) -> T + Send + 'static,
) -> (proxy::Stats, T) {
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = knote::spawn(serve(listener, upstream, Some(conns)));
        let out = knote::spawn_blocking(move || clients(addr))
            .await
            .expect("the clients passed");
        let stats = knote::time::timeout(IO_TIMEOUT, server)
            .await
            .expect("the proxy stopped after its last connection")
            .unwrap()
            .unwrap();
        (stats, out)
    })
}

fn bulk_both_ways(current_thread: bool) {
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    let upstream_side = thread::spawn(move || {
        let (s, _) = upstream.accept().unwrap();
        send_and_receive(s, 0x5eed_0002)
    });
    let rt = runtime(current_thread);
    let (stats, (client_sent, client_got)) = through_proxy(&rt, upstream_addr, 1, |addr| {
        send_and_receive(std::net::TcpStream::connect(addr).unwrap(), 0x5eed_0001)
    });
    let (upstream_sent, upstream_got) = upstream_side.join().unwrap();
    assert_eq!(client_sent.1, BULK);
    assert_eq!(upstream_sent.1, BULK);
    assert_eq!(upstream_got, client_sent, "client to upstream: byte-exact");
    assert_eq!(client_got, upstream_sent, "upstream to client: byte-exact");
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.failed, 0);
    assert_eq!(stats.carried.to_upstream, BULK);
    assert_eq!(stats.carried.to_client, BULK);
}

#[test]
fn sixty_four_mib_each_way_on_a_current_thread_runtime() {
    bulk_both_ways(true);
}

#[test]
fn sixty_four_mib_each_way_on_a_multi_thread_runtime() {
    bulk_both_ways(false);
}

#[test]
fn the_hash_sees_a_changed_byte_and_ignores_chunking() {
    let mut data = vec![0; 1000];
    Bytes(7).fill(&mut data);
    let whole = {
        let mut h = Hash::new();
        h.update(&data);
        h.finish()
    };
    let pieces = {
        let mut h = Hash::new();
        for piece in data.chunks(3) {
            h.update(piece);
        }
        h.finish()
    };
    assert_eq!(whole, pieces);
    data[500] ^= 1;
    let mut h = Hash::new();
    h.update(&data);
    assert_ne!(h.finish(), whole);
}

/// Client closes first, then upstream; and on a second connection the upstream closes first.
#[test]
fn half_close_passes_through_both_ways() {
    for current_thread in [true, false] {
        let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
        let upstream_side = thread::spawn(move || {
            // The client half-closes first: EOF arrives here, and this side still writes.
            let (mut s, _) = upstream.accept().unwrap();
            s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let mut got = String::new();
            s.read_to_string(&mut got).unwrap();
            assert_eq!(got, "client first");
            s.write_all(b"upstream after").unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            // The upstream half-closes first: the client reads EOF and still writes.
            let (mut s, _) = upstream.accept().unwrap();
            s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            s.write_all(b"upstream first").unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            let mut got = String::new();
            s.read_to_string(&mut got).unwrap();
            assert_eq!(got, "client after");
        });
        let rt = runtime(current_thread);
        let (stats, ()) = through_proxy(&rt, upstream_addr, 2, |addr| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            s.write_all(b"client first").unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            let mut got = String::new();
            s.read_to_string(&mut got).unwrap();
            assert_eq!(got, "upstream after");

            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let mut got = String::new();
            s.read_to_string(&mut got).unwrap();
            assert_eq!(got, "upstream first");
            s.write_all(b"client after").unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            // The proxy closes its side once both directions are done: EOF (again) here.
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).unwrap();
            assert!(rest.is_empty());
        });
        upstream_side.join().unwrap();
        assert_eq!(stats.accepted, 2);
        assert_eq!(stats.failed, 0);
    }
}

#[test]
fn a_refused_upstream_ends_that_connection_only() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // closed again: nothing listens there now
    let rt = runtime(true);
    let (stats, ()) = through_proxy(&rt, ([127, 0, 0, 1], port).into(), 1, |addr| {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut rest = Vec::new();
        // The proxy drops the client when the upstream refuses: EOF (or a reset), no hang.
        match s.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty()),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
    });
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.failed, 1);
}

/// The upstream resets while the client is idle (not closing its side): the proxy closes the
/// client's connection too instead of waiting on the client forever.
#[test]
fn a_reset_upstream_closes_the_client_side() {
    for current_thread in [true, false] {
        let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
        let upstream_side = thread::spawn(move || {
            let (s, _) = upstream.accept().unwrap();
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: `s` is an open socket; `linger` is a valid `struct linger` of the size
            // passed.
            let rc = unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&s),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
            drop(s); // SO_LINGER 0: the close sends RST
        });
        let rt = runtime(current_thread);
        let (stats, ()) = through_proxy(&rt, upstream_addr, 1, |addr| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let mut rest = Vec::new();
            match s.read_to_end(&mut rest) {
                Ok(_) => assert!(rest.is_empty()),
                Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
            }
        });
        upstream_side.join().unwrap();
        assert_eq!(stats.accepted, 1);
        assert_eq!(stats.failed, 1, "the reset is the connection's error");
    }
}

#[test]
fn command_line() {
    let args = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()));
    assert_eq!(args(&["--help"]), Ok(Command::Help));
    assert_eq!(args(&["a:1", "--help"]), Ok(Command::Help));
    assert_eq!(
        args(&["127.0.0.1:1", "[::1]:2"]),
        Ok(Command::Serve(Options {
            listen: "127.0.0.1:1".into(),
            upstream: "[::1]:2".into(),
            current_thread: false,
            max_conns: None
        }))
    );
    assert_eq!(
        args(&["a:1", "--current-thread", "b:2", "--max-conns", "4"]),
        Ok(Command::Serve(Options {
            listen: "a:1".into(),
            upstream: "b:2".into(),
            current_thread: true,
            max_conns: Some(4)
        }))
    );
    assert!(args(&[]).is_err());
    assert!(args(&["a:1"]).is_err());
    assert!(args(&["a:1", "b:2", "c:3"]).is_err());
    assert!(args(&["a:1", "b:2", "--max-conns"]).is_err());
    assert!(args(&["a:1", "b:2", "--max-conns", "x"]).is_err());
    assert!(args(&["--bogus", "a:1", "b:2"]).is_err());
}
