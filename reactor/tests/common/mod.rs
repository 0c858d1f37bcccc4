//! Helpers shared by the conformance tests (each test binary includes this module).
//!
//! Everything here goes through the public API only, so the suite runs unchanged on native
//! kqueue and on the Linux epoll shim. Waits are bounded: `GUARD` is a hang guard, never a speed
//! requirement.

#![allow(dead_code)]

use std::fs::File;
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use knote_reactor::{Filter, Flags, Kevent, Kqueue};

/// Generous upper bound for anything that should happen "soon" (a hang guard only).
pub const GUARD: Duration = Duration::from_secs(5);

/// A short wait used to check that nothing (more) arrives.
pub const QUIET: Duration = Duration::from_millis(50);

/// A fresh kqueue with exact `data` (the default).
pub fn kq() -> Kqueue {
    Kqueue::new().expect("Kqueue::new")
}

/// A fresh kqueue in fast mode (`exact_data(false)`).
pub fn fast_kq() -> Kqueue {
    Kqueue::builder()
        .exact_data(false)
        .build()
        .expect("Kqueue::builder().exact_data(false).build()")
}

/// `kevent(changes, [n slots], timeout)`, returning the entries written.
pub fn submit(
    kq: &Kqueue,
    changes: &[Kevent],
    n: usize,
    timeout: Option<Duration>,
) -> io::Result<Vec<Kevent>> {
    let mut events = vec![Kevent::zeroed(); n];
    let got = kq.kevent(changes, &mut events, timeout)?;
    assert!(got <= n, "kevent returned {got} > {n} entries");
    events.truncate(got);
    Ok(events)
}

/// Collects up to `n` events without changes, waiting up to `timeout`.
///
/// `EINTR` is retried (a signal test elsewhere in the process may interrupt any wait); every
/// other error panics.
pub fn wait(kq: &Kqueue, n: usize, timeout: Option<Duration>) -> Vec<Kevent> {
    loop {
        match submit(kq, &[], n, timeout) {
            Ok(events) => return events,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("kevent failed: {e}"),
        }
    }
}

/// Collects whatever is ready now (zero timeout).
pub fn poll(kq: &Kqueue) -> Vec<Kevent> {
    wait(kq, 64, Some(Duration::ZERO))
}

/// Applies `changes` and panics if any of them fails.
pub fn register(kq: &Kqueue, changes: &[Kevent]) {
    if let Err(e) = kq.apply(changes) {
        panic!("registering {changes:?} failed: {e}");
    }
}

/// Applies one change with `EV_RECEIPT` and returns its outcome: 0 on success, else the errno.
pub fn receipt(kq: &Kqueue, change: Kevent) -> i64 {
    let change = change.with_flags(change.flags() | Flags::RECEIPT);
    let events = submit(kq, &[change], 1, Some(Duration::ZERO)).expect("kevent with a receipt");
    assert_eq!(
        events.len(),
        1,
        "one receipt entry expected, got {events:?}"
    );
    let entry = events[0];
    assert!(entry.is_error(), "receipt entry lacks EV_ERROR: {entry:?}");
    assert_eq!(entry.ident(), change.ident(), "receipt ident: {entry:?}");
    assert_eq!(entry.filter(), change.filter(), "receipt filter: {entry:?}");
    entry.data()
}

/// The events of knote `(ident, filter)` in `events`.
pub fn of(events: &[Kevent], ident: usize, filter: Filter) -> Vec<Kevent> {
    events
        .iter()
        .filter(|e| e.ident() == ident && e.filter() == filter)
        .copied()
        .collect()
}

/// The single event of knote `(ident, filter)` in `events`, if any (panics on duplicates).
pub fn find(events: &[Kevent], ident: usize, filter: Filter) -> Option<Kevent> {
    let found = of(events, ident, filter);
    assert!(
        found.len() <= 1,
        "knote ({ident}, {filter:?}) reported more than once in one call: {events:?}"
    );
    found.first().copied()
}

/// Waits (up to `GUARD`) for an event satisfying `pred`; other events are dropped.
pub fn wait_until(kq: &Kqueue, pred: impl Fn(&Kevent) -> bool) -> Option<Kevent> {
    let start = Instant::now();
    while start.elapsed() < GUARD {
        let events = wait(kq, 64, Some(Duration::from_millis(20)));
        if let Some(e) = events.iter().find(|e| pred(e)) {
            return Some(*e);
        }
    }
    None
}

/// Waits (up to `GUARD`) for an event of knote `(ident, filter)`; panics if none comes.
pub fn wait_for(kq: &Kqueue, ident: usize, filter: Filter) -> Kevent {
    wait_until(kq, |e| e.ident() == ident && e.filter() == filter)
        .unwrap_or_else(|| panic!("no event for ({ident}, {filter:?}) within {GUARD:?}"))
}

/// Asserts that an event of a fd or user knote carries no action flags (`ADD`, `DELETE`, ...).
pub fn assert_no_action_flags(ev: &Kevent) {
    assert!(
        !ev.flags().intersects(Flags::ACTIONS),
        "returned flags must not carry EV_ADD/DELETE/ENABLE/DISABLE: {ev:?}"
    );
}

/// The raw errno of an `io::Error` (panics if it has none).
pub fn errno(e: &io::Error) -> i32 {
    e.raw_os_error()
        .unwrap_or_else(|| panic!("expected an OS error, got {e:?}"))
}

/// `ident` of a file descriptor.
pub fn id(fd: &impl AsRawFd) -> usize {
    fd.as_raw_fd() as usize
}

/// A connected pair of Unix stream sockets.
pub fn unix_pair() -> (UnixStream, UnixStream) {
    UnixStream::pair().expect("socketpair")
}

/// A connected pair of TCP sockets over 127.0.0.1: (client, server side).
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let client = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    client.set_nodelay(true).unwrap();
    server.set_nodelay(true).unwrap();
    (client, server)
}

/// A pipe, as (read end, write end), both close-on-exec.
pub fn pipe() -> (File, File) {
    let mut fds: [RawFd; 2] = [-1; 2];
    // SAFETY: `fds` is a valid, writable array of two ints, as pipe(2) requires.
    let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(rc, 0, "pipe: {}", io::Error::last_os_error());
    for fd in fds {
        // SAFETY: `fd` was just returned by pipe(2) and is open; F_SETFD takes an int argument.
        let rc = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        assert_eq!(rc, 0, "fcntl(F_SETFD): {}", io::Error::last_os_error());
    }
    // SAFETY: both fds are open and owned by nothing else; each `File` takes sole ownership.
    unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
}

/// `dup(fd)`, close-on-exec.
pub fn dup(fd: &impl AsRawFd) -> OwnedFd {
    // SAFETY: F_DUPFD_CLOEXEC on an fd the caller keeps open; the result is checked below.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    assert!(new >= 0, "dup: {}", io::Error::last_os_error());
    // SAFETY: `new` is a freshly created fd that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(new) }
}

/// Puts `fd` into non-blocking mode.
pub fn set_nonblocking(fd: &impl AsRawFd) {
    let fd = fd.as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL on an fd the caller keeps open.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        assert!(flags >= 0, "F_GETFL: {}", io::Error::last_os_error());
        let rc = libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        assert_eq!(rc, 0, "F_SETFL: {}", io::Error::last_os_error());
    }
}

/// Writes `n` bytes (all `b'x'`) to `w`.
pub fn put(mut w: impl Write, n: usize) {
    w.write_all(&vec![b'x'; n]).expect("write");
}

/// Writes into non-blocking `w` until it would block (bounded); returns the bytes written.
pub fn fill(mut w: impl Write) -> usize {
    let chunk = vec![b'f'; 16 * 1024];
    let mut total = 0usize;
    // Bounded: no loopback buffer pair is anywhere near 256 MiB.
    while total < 256 << 20 {
        match w.write(&chunk) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return total,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("write while filling: {e}"),
        }
    }
    panic!("the send buffer never filled up after {total} bytes");
}

/// An integer socket option.
pub fn sockopt(fd: &impl AsRawFd, level: libc::c_int, name: libc::c_int) -> i64 {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes and `len` holds the size of `value`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "getsockopt: {}", io::Error::last_os_error());
    i64::from(value)
}

/// `SO_SNDBUF` of a socket.
pub fn sndbuf(fd: &impl AsRawFd) -> i64 {
    sockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF)
}

/// A fresh path in the temporary directory (not created).
pub fn temp_path(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("knote-test-{}-{tag}-{n}", std::process::id()))
}

/// Removes the file at the path when dropped.
pub struct TempPath(pub PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `f` on a thread and returns its result, or `None` if it did not finish within `limit`
/// (the thread is then left behind: a hang guard for calls that block forever when broken).
pub fn within<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => Some(value),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            panic!("the helper thread panicked (see its message above)")
        }
    }
}
