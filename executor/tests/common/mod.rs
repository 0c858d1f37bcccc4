//! Helpers shared by the executor's integration tests.
#![allow(dead_code)]

use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use knote_executor::runtime::Builder;
use knote_executor::Runtime;

/// How long a test body may run before the watchdog fails it (instead of hanging the suite).
pub const WATCHDOG: Duration = Duration::from_secs(30);

/// The runtime flavours most tests run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    Current,
    Multi1,
    Multi4,
}

pub const ALL: [Flavour; 3] = [Flavour::Current, Flavour::Multi1, Flavour::Multi4];
/// The flavours where every task runs on one thread (so orderings are deterministic).
pub const SINGLE: [Flavour; 2] = [Flavour::Current, Flavour::Multi1];

impl Flavour {
    pub fn build(self) -> Runtime {
        match self {
            Flavour::Current => Builder::new_current_thread().build(),
            Flavour::Multi1 => Builder::new_multi_thread().worker_threads(1).build(),
            Flavour::Multi4 => Builder::new_multi_thread().worker_threads(4).build(),
        }
        .expect("build runtime")
    }
}

/// Runs `body` under a watchdog: a test that deadlocks fails after [`WATCHDOG`] instead of
/// hanging. The body's panic (an assertion) is re-raised here.
pub fn watchdog<F: FnOnce() + Send + 'static>(body: F) {
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let name = thread::current().name().unwrap_or("test").to_string();
    let worker = thread::Builder::new()
        .name(format!("{name}-body"))
        .spawn(move || {
            body();
            let _ = done_tx.send(());
        })
        .expect("spawn test body");
    match done_rx.recv_timeout(WATCHDOG) {
        Ok(()) => {
            if let Err(p) = worker.join() {
                resume_unwind(p);
            }
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The body panicked: re-raise its panic.
            match worker.join() {
                Err(p) => resume_unwind(p),
                Ok(()) => unreachable!("the body finished without reporting"),
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("test body did not finish within {WATCHDOG:?} (deadlock or lost wake-up?)")
        }
    }
}

/// Runs `body` once per flavour, each under the watchdog, naming the flavour on failure.
pub fn on<F>(flavours: &[Flavour], body: F)
where
    F: Fn(Runtime, Flavour) + Send + Sync + 'static,
{
    let body = Arc::new(body);
    for &flavour in flavours {
        let body = Arc::clone(&body);
        let result = catch_unwind(AssertUnwindSafe(|| {
            watchdog(move || body(flavour.build(), flavour));
        }));
        if let Err(p) = result {
            eprintln!("failed on flavour {flavour:?}");
            resume_unwind(p);
        }
    }
}

/// Runs `body` on the current-thread runtime and on multi-thread runtimes with 1 and 4 workers.
pub fn each<F>(body: F)
where
    F: Fn(Runtime, Flavour) + Send + Sync + 'static,
{
    on(&ALL, body)
}

/// Sets a flag and bumps a counter when dropped: proves a future's destructor ran.
pub struct DropGuard {
    pub flag: Arc<AtomicBool>,
    pub count: Arc<AtomicUsize>,
}

impl DropGuard {
    pub fn new() -> (DropGuard, Arc<AtomicBool>) {
        let flag = Arc::new(AtomicBool::new(false));
        (
            DropGuard {
                flag: Arc::clone(&flag),
                count: Arc::new(AtomicUsize::new(0)),
            },
            flag,
        )
    }

    pub fn counting(count: &Arc<AtomicUsize>) -> DropGuard {
        DropGuard {
            flag: Arc::new(AtomicBool::new(false)),
            count: Arc::clone(count),
        }
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.flag.store(true, Ordering::SeqCst);
        self.count.fetch_add(1, Ordering::SeqCst);
    }
}

/// A waker that counts its wake-ups (and unparks a thread, if given one).
pub struct CountingWaker {
    pub wakes: AtomicUsize,
    thread: Option<thread::Thread>,
}

impl CountingWaker {
    pub fn new() -> Arc<CountingWaker> {
        Arc::new(CountingWaker {
            wakes: AtomicUsize::new(0),
            thread: None,
        })
    }

    fn for_thread() -> Arc<CountingWaker> {
        Arc::new(CountingWaker {
            wakes: AtomicUsize::new(0),
            thread: Some(thread::current()),
        })
    }

    pub fn count(&self) -> usize {
        self.wakes.load(Ordering::SeqCst)
    }
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        if let Some(t) = &self.thread {
            t.unpark();
        }
    }
}

/// A minimal executor for one future on this thread, independent of knote (to await
/// `JoinHandle`s after their runtime is gone). Gives up (panics) after `limit`.
pub fn block_on_plain<F: Future>(fut: F, limit: Duration) -> F::Output {
    let mut fut = pin!(fut);
    let waker_arc = CountingWaker::for_thread();
    let waker = Waker::from(Arc::clone(&waker_arc));
    let mut cx = Context::from_waker(&waker);
    let deadline = Instant::now() + limit;
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        let now = Instant::now();
        assert!(
            now < deadline,
            "block_on_plain: future still pending after {limit:?}"
        );
        thread::park_timeout((deadline - now).min(Duration::from_millis(50)));
    }
}

/// Polls `cond` every few milliseconds until it holds; panics after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(2));
    }
}

/// A deterministic shuffle (xorshift), so tests do not need a `rand` dependency.
pub fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let j = (seed % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// A pair of connected non-blocking Unix stream sockets.
pub fn socket_pair() -> (
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixStream,
) {
    let (a, b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).expect("nonblocking");
    b.set_nonblocking(true).expect("nonblocking");
    (a, b)
}

/// A non-blocking pipe: (read end, write end).
pub fn pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two fds pipe(2) writes.
    let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(rc, 0, "pipe: {}", std::io::Error::last_os_error());
    for fd in fds {
        // SAFETY: plain fcntl calls on fds we just created.
        unsafe {
            let fl = libc::fcntl(fd, libc::F_GETFL);
            assert!(fl >= 0);
            assert_eq!(libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK), 0);
            assert_eq!(libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC), 0);
        }
    }
    // SAFETY: both fds are open and owned by nothing else.
    unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    }
}

/// read(2) on a raw fd.
pub fn read_fd(fd: std::os::fd::RawFd, buf: &mut [u8]) -> std::io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// write(2) on a raw fd.
pub fn write_fd(fd: std::os::fd::RawFd, buf: &[u8]) -> std::io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
