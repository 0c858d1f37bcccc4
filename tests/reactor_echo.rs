//! The `reactor_echo` example's server, driven by real loopback clients.
//!
//! The example file is compiled into this test as a module, so what is tested is exactly what
//! `cargo run --example reactor_echo` runs. Every socket has timeouts and every wait a deadline:
//! a broken reactor fails these tests, it does not hang them.

// The example's `main` is its entry point when built as an example; it is unused here.
#[allow(dead_code)]
#[path = "../examples/reactor_echo.rs"]
mod echo;

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use echo::{serve, Stats};

/// Longest any single socket operation may block before the test fails.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the server may take to stop after its last client left.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts `serve` on an ephemeral loopback port in its own thread.
fn start(max_conns: usize) -> (SocketAddr, JoinHandle<io::Result<Stats>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local_addr");
    let handle = thread::spawn(move || {
        let result = serve(listener, Some(max_conns));
        if let Err(err) = &result {
            // Shown with the failing test's output, next to the client's symptom.
            eprintln!("serve failed: {err}");
        }
        result
    });
    (addr, handle)
}

/// Waits (bounded) for the server thread to return and hands back its stats.
fn stop(handle: JoinHandle<io::Result<Stats>>) -> Stats {
    let deadline = Instant::now() + STOP_TIMEOUT;
    while !handle.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the server did not stop within {STOP_TIMEOUT:?} after its last client"
        );
        thread::sleep(Duration::from_millis(10));
    }
    match handle.join() {
        Ok(Ok(stats)) => stats,
        Ok(Err(err)) => panic!("serve returned an error: {err}"),
        Err(_) => panic!("the server thread panicked"),
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Deterministic bytes that differ between clients and positions, so a mix-up shows.
fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ seed.wrapping_mul(131) ^ (i >> 8)) as u8)
        .collect()
}

fn round_trip(stream: &mut TcpStream, message: &[u8]) {
    stream.write_all(message).expect("write to the echo server");
    let mut back = vec![0; message.len()];
    stream
        .read_exact(&mut back)
        .expect("read the echo back (server stopped or stalled?)");
    assert!(back == message, "the echo differs from what was sent");
}

/// Reads until EOF (bounded by the socket's read timeout) and returns how much came.
fn set_rcvbuf(stream: &TcpStream, bytes: libc::c_int) {
    // SAFETY: SO_RCVBUF reads one int from the pointer, whose length is given.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVBUF: {}", io::Error::last_os_error());
}

/// Bytes waiting in `stream`'s receive queue.
fn queued(stream: &TcpStream) -> libc::c_int {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer, which is live.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(rc, 0, "FIONREAD: {}", io::Error::last_os_error());
    n
}

fn read_to_eof(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    stream.read_to_end(&mut all).expect("read until EOF");
    all
}

#[test]
fn echoes_messages_for_concurrent_clients() {
    const CLIENTS: usize = 4;
    const MESSAGES: usize = 25;
    let (addr, server) = start(CLIENTS);

    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            thread::spawn(move || {
                let mut stream = connect(addr);
                for m in 0..MESSAGES {
                    // 1 byte up to a little over one 4 KiB page, varying per message.
                    let len = 1 + (m * 173 + id * 59) % 4200;
                    round_trip(&mut stream, &pattern(id * MESSAGES + m, len));
                }
                // Closing is the signal the server counts towards `max_conns`.
                drop(stream);
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client failed");
    }

    let stats = stop(server);
    assert_eq!(stats.accepted, CLIENTS);
    assert_eq!(stats.backoffs, 0);
}

#[test]
fn large_echo_goes_through_the_pending_buffer() {
    // More than the loopback socket buffers on both sides can hold, so the server's writes must
    // block and its WRITE knote must finish the job.
    const LEN: usize = 32 << 20;
    let (addr, server) = start(1);

    let mut reader = connect(addr);
    // A small, fixed receive buffer (it also turns autotuning off): the echo path holds little,
    // so the server's writes must block long before 32 MiB went through.
    set_rcvbuf(&reader, 64 << 10);
    let mut writer = reader.try_clone().expect("try_clone");
    let sent = Arc::new(AtomicUsize::new(0));
    let sender = thread::spawn({
        let sent = Arc::clone(&sent);
        move || {
            let data = pattern(7, LEN);
            for chunk in data.chunks(64 << 10) {
                writer.write_all(chunk).expect("send the large message");
                sent.fetch_add(chunk.len(), Ordering::SeqCst);
            }
            // Half-close: the server drains, echoes the rest, then sees EOF and closes.
            writer.shutdown(Shutdown::Write).expect("shutdown(Write)");
        }
    });
    // Start reading only once the echo path is stuck: neither the sender's progress nor the
    // bytes waiting for the reader have moved for a while. The server then has data to read
    // and nowhere to write it, so its writes have blocked, not merely lagged behind on a busy
    // machine. (Bounded: after 20 s read anyway, and the assertion below says what went wrong.)
    let started = Instant::now();
    let mut last = (usize::MAX, -1, Instant::now());
    while started.elapsed() < Duration::from_secs(20) {
        let now = (sent.load(Ordering::SeqCst), queued(&reader));
        if (now.0, now.1) != (last.0, last.1) {
            last = (now.0, now.1, Instant::now());
        } else if last.2.elapsed() >= Duration::from_millis(500) {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let back = read_to_eof(&mut reader);
    sender.join().expect("the sending thread failed");

    assert_eq!(back.len(), LEN, "the echo came back short or long");
    assert!(
        back == pattern(7, LEN),
        "the echo differs from what was sent"
    );
    let stats = stop(server);
    assert_eq!(stats.accepted, 1);
    assert!(
        stats.blocked_writes >= 1,
        "no write ever blocked: the pending-buffer path was not exercised"
    );
}

#[test]
fn half_close_still_gets_the_echo_then_eof() {
    let (addr, server) = start(2);

    // Send and half-close at once: the READ event may come with EV_EOF and data together.
    let mut stream = connect(addr);
    let message = pattern(3, 1000);
    stream.write_all(&message).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    assert!(read_to_eof(&mut stream) == message);

    // A client that closes without sending anything.
    drop(connect(addr));

    let stats = stop(server);
    assert_eq!(stats.accepted, 2);
}

/// Set in the child process that runs `emfile_child`.
const CHILD_ENV: &str = "KNOTE_ECHO_EMFILE_CHILD";

#[test]
fn accept_backs_off_when_out_of_fds() {
    // Lowering RLIMIT_NOFILE would starve the other tests running in this process, so the
    // scenario runs in a child: this test binary again, running only `emfile_child`.
    let exe = std::env::current_exe().expect("current_exe");
    let log_path = std::env::temp_dir().join(format!(
        "knote-reactor-echo-emfile-{}.log",
        std::process::id()
    ));
    let log = File::create(&log_path).expect("create the child's log");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "emfile_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone the log fd"))
        .stderr(log)
        .spawn()
        .expect("spawn the child test");

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    match status {
        None => panic!("the child did not finish within 60 s; its output:\n{output}"),
        Some(status) => assert!(
            status.success() && output.contains("1 passed"),
            "the child failed ({status}); its output:\n{output}"
        ),
    }
}

#[test]
#[ignore = "run in a child process by accept_backs_off_when_out_of_fds"]
fn emfile_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        // Run by hand with --ignored in a shared process: lowering the fd limit there would
        // break the other tests, so do nothing.
        return;
    }
    const CLIENTS: usize = 24;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    // All connect now (the kernel completes them into the accept queue); the server can only
    // accept a few of them before it runs out of fds.
    let clients: Vec<TcpStream> = (0..CLIENTS).map(|_| connect(addr)).collect();

    // The lowest free fd: every fd the process needs so far is below it.
    let next_fd = File::open("/dev/null").expect("open /dev/null").as_raw_fd();
    // Room for the kqueue (the shim may use a few fds of its own) and a handful of
    // connections; the rest of the queue has to wait for clients to leave.
    set_fd_limit(next_fd as u64 + 10);

    let server = thread::spawn(move || serve(listener, Some(CLIENTS)));
    for (id, mut client) in clients.into_iter().enumerate() {
        round_trip(&mut client, &pattern(id, 64));
        // Frees this client's fd, and (once the server sees EOF) the server's.
        drop(client);
    }
    let stats = stop(server);
    eprintln!("emfile_child: {stats:?}");
    assert_eq!(stats.accepted, CLIENTS);
    assert!(
        stats.backoffs >= 1,
        "the fd limit was never hit: the test did not test anything"
    );
}

/// Lowers the soft `RLIMIT_NOFILE` of this process to `limit`.
fn set_fd_limit(limit: u64) {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid, writable `rlimit` for the duration of the call.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
    assert_eq!(rc, 0, "getrlimit: {}", io::Error::last_os_error());
    rl.rlim_cur = limit as libc::rlim_t;
    // SAFETY: `rl` is a valid `rlimit`; lowering the soft limit below the hard one is always
    // permitted and affects only this (child) process.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) };
    assert_eq!(rc, 0, "setrlimit: {}", io::Error::last_os_error());
}
