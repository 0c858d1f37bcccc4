//! knote's reactor and mio side by side, on the same work, in one run.
//!
//! ```text
//! cargo bench -p knote-bench --bench reactor_vs_mio -- --quick  # without --quick: < a minute
//! bench/ratios.sh                              # the same, then a knote ÷ mio table
//! bench/syscalls.sh                            # system calls per operation (strace)
//! ```
//!
//! Every group holds the knote function(s) and the mio function of one workload, so criterion
//! measures them in the same process run, one after the other. Quote the ratios, not the times
//! (see `bench/BENCHMARKS.md`). Loopback TCP only. knote uses
//! `Kqueue::builder().exact_data(false)` — what an executor uses — except where a function's
//! name says `exact`.
//!
//! - **`register`**: one connected socket; knote adds `READ` and `WRITE` with
//!   `EV_ADD | EV_CLEAR` in one change list, then `EV_DELETE`s both in a second one (two
//!   `kevent` calls); mio `register`s it for `READABLE | WRITABLE`, then `deregister`s it (two
//!   `epoll_ctl` calls).
//! - **`wait_ready/N`**: N socket pairs, each made readable once (one byte, never read), and a
//!   wait that returns all N. mio is always edge-triggered, so the only way to have its wait
//!   return N every iteration is to re-arm each source (`reregister`, one `epoll_ctl` each) and
//!   then `poll`. `knote_rearm` does the same work the kqueue way: `EV_DISPATCH` knotes
//!   re-enabled with `EV_ENABLE` changes that ride along with the wait — the like-for-like pair
//!   with `mio_rearm` (same semantics; `syscalls.sh` shows how many system calls each side
//!   spends on it). The epoll shim returns at most 256 events per `kevent`, so at N = 512 knote
//!   needs two calls where mio needs one `epoll_wait`; that is counted. `knote_level`
//!   (level-triggered knotes, a wait with an empty change list) and `knote_level_exact` (the
//!   same with exact `data`: bytes readable, at a system call or two per event on the epoll
//!   shim) show what kqueue's other idiom costs; they have no mio counterpart, so their ratio to
//!   `mio_rearm` compares idioms, not implementations.
//! - **`timer`**: knote arms a one-shot `EVFILT_TIMER` of 1 ms and waits for it. mio has no
//!   timers; its equivalent is `Poll::poll` with a 1 ms timeout and nothing registered, and
//!   `knote_timeout_1ms` is the same thing on knote (a `kevent` wait with a 1 ms timeout). All
//!   three are dominated by the 1 ms itself: compare the excess over 1 ms (`ratios.sh` prints
//!   it). mio rounds every timeout up to whole milliseconds (`epoll_wait` takes milliseconds), so
//!   it cannot express a shorter wait at all; `knote_timer_20us` shows knote's sub-millisecond
//!   timer alone, with no mio counterpart.
//!
//! With `KNOTE_SYSCALL_OP=NAME:COUNT` in the environment the binary runs COUNT steps of one
//! workload instead of benchmarking (for `strace -c`; see `bench/syscalls.sh`). `NAME` is
//! one of the names in `WORKLOADS`.

use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode, Throughput};
use knote::reactor::{Flags, Kevent, Kqueue, TimerUnit};
use mio::{Events, Interest, Poll, Token};

/// How many ready sockets one wait returns in `wait_ready`.
const SIZES: [usize; 3] = [1, 64, 512];
/// The timer period (knote) and poll timeout (mio) compared in `timer`.
const PERIOD: Duration = Duration::from_millis(1);
/// A wait that should return at once; long enough that a lost wakeup fails instead of hanging.
const GUARD: Duration = Duration::from_secs(5);
/// The environment variable that selects syscall-counting mode.
const SYSCALL_ENV: &str = "KNOTE_SYSCALL_OP";

/// One repeatable operation, set up once and then stepped many times.
trait Workload {
    /// One operation: one benchmark iteration.
    fn step(&mut self);
}

/// The workloads `KNOTE_SYSCALL_OP` can name (`wait_ready/*` take N after a `/`).
const WORKLOADS: [&str; 10] = [
    "register/knote",
    "register/mio",
    "wait_ready/knote_level/N",
    "wait_ready/knote_level_exact/N",
    "wait_ready/knote_rearm/N",
    "wait_ready/mio_rearm/N",
    "timer/knote_timer_1ms",
    "timer/knote_timeout_1ms",
    "timer/mio_timeout_1ms",
    "timer/knote_timer_20us",
];

/// The workload called `name` in `WORKLOADS`, set up.
fn workload_by_name(name: &str) -> Option<Box<dyn Workload>> {
    let (base, n) = match name.rsplit_once('/') {
        Some((base, n)) if n.bytes().all(|b| b.is_ascii_digit()) => {
            (base, n.parse::<usize>().ok()?)
        }
        _ => (name, 0),
    };
    Some(match base {
        "register/knote" => Box::new(KnoteRegister::new()),
        "register/mio" => Box::new(MioRegister::new()),
        "wait_ready/knote_level" if n > 0 => Box::new(KnoteLevel::new(n, false)),
        "wait_ready/knote_level_exact" if n > 0 => Box::new(KnoteLevel::new(n, true)),
        "wait_ready/knote_rearm" if n > 0 => Box::new(KnoteRearm::new(n)),
        "wait_ready/mio_rearm" if n > 0 => Box::new(MioRearm::new(n)),
        "timer/knote_timer_1ms" => Box::new(KnoteTimer::new(TimerUnit::Millis, 1)),
        "timer/knote_timeout_1ms" => Box::new(KnoteTimeout::new(PERIOD)),
        "timer/mio_timeout_1ms" => Box::new(MioTimeout::new(PERIOD)),
        "timer/knote_timer_20us" => Box::new(KnoteTimer::new(TimerUnit::Micros, 20)),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Sockets

/// `n` connected loopback TCP pairs `(receiver, sender)`, each receiver nonblocking with one
/// byte already in its receive queue.
fn readable_pairs(n: usize) -> Vec<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    (0..n)
        .map(|_| {
            let mut sender = TcpStream::connect(addr).expect("connect");
            let (receiver, _) = listener.accept().expect("accept");
            std::io::Write::write_all(&mut sender, b"x").expect("write one byte");
            // Blocking peek: returns once the byte has arrived, so the first wait sees all N.
            receiver.peek(&mut [0u8; 1]).expect("peek");
            receiver.set_nonblocking(true).unwrap();
            (receiver, sender)
        })
        .collect()
}

/// One connected loopback pair, nonblocking, nothing in flight.
fn idle_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let a = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (b, _) = listener.accept().expect("accept");
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

fn fast_kqueue() -> Kqueue {
    Kqueue::builder()
        .exact_data(false)
        .build()
        .expect("create a kqueue")
}

/// Applies `changes` without collecting events; any failed change fails the call (no room for
/// an error entry), which the benchmark turns into a panic.
fn apply(kq: &Kqueue, changes: &[Kevent]) {
    kq.kevent(changes, &mut [], Some(Duration::ZERO))
        .expect("kevent (changes only)");
}

/// Applies `changes` and waits until `n` events have been collected. Native kqueue returns
/// them all in one call (up to the event list's length); the epoll shim returns at most 256
/// per call, so there N = 512 takes a second `kevent`, and that is part of what is measured.
fn wait_for(kq: &Kqueue, changes: &[Kevent], events: &mut [Kevent], n: usize) {
    let mut got = kq.kevent(changes, events, Some(GUARD)).expect("kevent");
    while got < n {
        let more = kq
            .kevent(&[], &mut events[got..n], Some(GUARD))
            .expect("kevent");
        assert!(more > 0, "only {got} of {n} ready sockets were reported");
        got += more;
    }
    assert_eq!(got, n, "more events than ready sockets");
    black_box(&events[..n]);
}

// ---------------------------------------------------------------------------------------------
// (a) register + deregister

struct KnoteRegister {
    kq: Kqueue,
    _pair: (TcpStream, TcpStream),
    add: [Kevent; 2],
    delete: [Kevent; 2],
}

impl KnoteRegister {
    fn new() -> KnoteRegister {
        let pair = idle_pair();
        let fd = pair.0.as_raw_fd();
        KnoteRegister {
            kq: fast_kqueue(),
            add: [
                Kevent::read(fd, Flags::ADD | Flags::CLEAR, 0),
                Kevent::write(fd, Flags::ADD | Flags::CLEAR, 0),
            ],
            delete: [
                Kevent::read(fd, Flags::DELETE, 0),
                Kevent::write(fd, Flags::DELETE, 0),
            ],
            _pair: pair,
        }
    }
}

impl Workload for KnoteRegister {
    fn step(&mut self) {
        apply(&self.kq, &self.add);
        apply(&self.kq, &self.delete);
    }
}

struct MioRegister {
    poll: Poll,
    stream: mio::net::TcpStream,
    _peer: TcpStream,
}

impl MioRegister {
    fn new() -> MioRegister {
        let (a, b) = idle_pair();
        MioRegister {
            poll: Poll::new().expect("create a mio Poll"),
            stream: mio::net::TcpStream::from_std(a),
            _peer: b,
        }
    }
}

impl Workload for MioRegister {
    fn step(&mut self) {
        let registry = self.poll.registry();
        registry
            .register(
                &mut self.stream,
                Token(0),
                Interest::READABLE | Interest::WRITABLE,
            )
            .expect("register");
        registry.deregister(&mut self.stream).expect("deregister");
    }
}

// ---------------------------------------------------------------------------------------------
// (b) a wait returning N ready events

/// Level-triggered READ knotes: every wait returns all N with an empty change list.
struct KnoteLevel {
    kq: Kqueue,
    _pairs: Vec<(TcpStream, TcpStream)>,
    events: Vec<Kevent>,
    n: usize,
}

impl KnoteLevel {
    fn new(n: usize, exact_data: bool) -> KnoteLevel {
        let kq = Kqueue::builder()
            .exact_data(exact_data)
            .build()
            .expect("create a kqueue");
        let pairs = readable_pairs(n);
        let adds: Vec<Kevent> = pairs
            .iter()
            .enumerate()
            .map(|(i, (receiver, _))| Kevent::read(receiver, Flags::ADD, i))
            .collect();
        apply(&kq, &adds);
        KnoteLevel {
            kq,
            _pairs: pairs,
            events: vec![Kevent::zeroed(); n],
            n,
        }
    }
}

impl Workload for KnoteLevel {
    fn step(&mut self) {
        wait_for(&self.kq, &[], &mut self.events, self.n);
    }
}

/// `EV_DISPATCH` READ knotes, re-enabled by a change list that rides along with each wait.
struct KnoteRearm {
    kq: Kqueue,
    _pairs: Vec<(TcpStream, TcpStream)>,
    enable: Vec<Kevent>,
    events: Vec<Kevent>,
    n: usize,
}

impl KnoteRearm {
    fn new(n: usize) -> KnoteRearm {
        let kq = fast_kqueue();
        let pairs = readable_pairs(n);
        let adds: Vec<Kevent> = pairs
            .iter()
            .enumerate()
            .map(|(i, (receiver, _))| Kevent::read(receiver, Flags::ADD | Flags::DISPATCH, i))
            .collect();
        let enable = pairs
            .iter()
            .enumerate()
            .map(|(i, (receiver, _))| Kevent::read(receiver, Flags::ENABLE, i))
            .collect();
        let mut this = KnoteRearm {
            kq,
            _pairs: pairs,
            enable,
            events: vec![Kevent::zeroed(); n],
            n,
        };
        // The first wait delivers (and so disables) all N: from then on every step looks alike.
        wait_for(&this.kq, &adds, &mut this.events, n);
        this
    }
}

impl Workload for KnoteRearm {
    fn step(&mut self) {
        wait_for(&self.kq, &self.enable, &mut self.events, self.n);
    }
}

/// mio sources re-armed with `reregister` before each `poll`.
struct MioRearm {
    poll: Poll,
    sources: Vec<mio::net::TcpStream>,
    _senders: Vec<TcpStream>,
    events: Events,
    n: usize,
}

impl MioRearm {
    fn new(n: usize) -> MioRearm {
        let poll = Poll::new().expect("create a mio Poll");
        let (receivers, senders): (Vec<_>, Vec<_>) = readable_pairs(n).into_iter().unzip();
        let mut sources: Vec<mio::net::TcpStream> = receivers
            .into_iter()
            .map(mio::net::TcpStream::from_std)
            .collect();
        for (i, source) in sources.iter_mut().enumerate() {
            poll.registry()
                .register(source, Token(i), Interest::READABLE)
                .expect("register");
        }
        let mut this = MioRearm {
            poll,
            sources,
            _senders: senders,
            events: Events::with_capacity(n),
            n,
        };
        // Consume the registration edge, as `KnoteRearm` consumes its first delivery.
        this.poll.poll(&mut this.events, Some(GUARD)).expect("poll");
        assert_eq!(
            this.events.iter().count(),
            n,
            "the first poll missed sockets"
        );
        this
    }
}

impl Workload for MioRearm {
    fn step(&mut self) {
        let registry = self.poll.registry();
        for (i, source) in self.sources.iter_mut().enumerate() {
            registry
                .reregister(source, Token(i), Interest::READABLE)
                .expect("reregister");
        }
        self.poll.poll(&mut self.events, Some(GUARD)).expect("poll");
        let got = self.events.iter().count();
        assert_eq!(got, self.n, "re-armed sources were not all reported");
        black_box(&self.events);
    }
}

// ---------------------------------------------------------------------------------------------
// (c) timers

/// A one-shot `EVFILT_TIMER`, armed by the change list of the wait that waits for it.
struct KnoteTimer {
    kq: Kqueue,
    arm: [Kevent; 1],
    events: [Kevent; 4],
}

impl KnoteTimer {
    fn new(unit: TimerUnit, amount: i64) -> KnoteTimer {
        KnoteTimer {
            kq: fast_kqueue(),
            arm: [Kevent::timer(
                1,
                Flags::ADD | Flags::ONESHOT,
                unit,
                amount,
                0,
            )],
            events: [Kevent::zeroed(); 4],
        }
    }
}

impl Workload for KnoteTimer {
    fn step(&mut self) {
        let got = self
            .kq
            .kevent(&self.arm, &mut self.events, Some(GUARD))
            .expect("kevent");
        assert_eq!(got, 1, "the timer did not fire");
    }
}

/// A `kevent` wait with a timeout and nothing registered: mio's `poll` timeout, on knote.
struct KnoteTimeout {
    kq: Kqueue,
    timeout: Duration,
    events: [Kevent; 4],
}

impl KnoteTimeout {
    fn new(timeout: Duration) -> KnoteTimeout {
        KnoteTimeout {
            kq: fast_kqueue(),
            timeout,
            events: [Kevent::zeroed(); 4],
        }
    }
}

impl Workload for KnoteTimeout {
    fn step(&mut self) {
        let got = self
            .kq
            .kevent(&[], &mut self.events, Some(self.timeout))
            .expect("kevent");
        assert_eq!(got, 0, "an empty kqueue returned an event");
    }
}

/// `Poll::poll` with a timeout and nothing registered: the closest mio has to a timer.
struct MioTimeout {
    poll: Poll,
    timeout: Duration,
    events: Events,
}

impl MioTimeout {
    fn new(timeout: Duration) -> MioTimeout {
        MioTimeout {
            poll: Poll::new().expect("create a mio Poll"),
            timeout,
            events: Events::with_capacity(4),
        }
    }
}

impl Workload for MioTimeout {
    fn step(&mut self) {
        self.poll
            .poll(&mut self.events, Some(self.timeout))
            .expect("poll");
        assert!(self.events.is_empty(), "an empty Poll returned an event");
    }
}

// ---------------------------------------------------------------------------------------------
// Criterion

fn run<W: Workload>(b: &mut criterion::Bencher<'_>, mut workload: W) {
    b.iter(|| workload.step());
}

fn register(c: &mut Criterion) {
    let mut group = c.benchmark_group("register");
    group.bench_function("knote", |b| run(b, KnoteRegister::new()));
    group.bench_function("mio", |b| run(b, MioRegister::new()));
    group.finish();
}

fn wait_ready(c: &mut Criterion) {
    let mut group = c.benchmark_group("wait_ready");
    for n in SIZES {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("knote_level", n), |b| {
            run(b, KnoteLevel::new(n, false))
        });
        group.bench_function(BenchmarkId::new("knote_level_exact", n), |b| {
            run(b, KnoteLevel::new(n, true))
        });
        group.bench_function(BenchmarkId::new("knote_rearm", n), |b| {
            run(b, KnoteRearm::new(n))
        });
        group.bench_function(BenchmarkId::new("mio_rearm", n), |b| {
            run(b, MioRearm::new(n))
        });
    }
    group.finish();
}

fn timer(c: &mut Criterion) {
    let mut group = c.benchmark_group("timer");
    // Every iteration sleeps about a millisecond: flat sampling keeps the sample count (and so
    // the run time) bounded where criterion's linear ramp would need thousands of iterations.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.bench_function("knote_timer_1ms", |b| {
        run(b, KnoteTimer::new(TimerUnit::Millis, 1))
    });
    group.bench_function("knote_timeout_1ms", |b| run(b, KnoteTimeout::new(PERIOD)));
    group.bench_function("mio_timeout_1ms", |b| run(b, MioTimeout::new(PERIOD)));
    group.bench_function("knote_timer_20us", |b| {
        run(b, KnoteTimer::new(TimerUnit::Micros, 20))
    });
    group.finish();
}

/// Short warm-up and measurement, so the whole run takes about a minute on 2 cores; command
/// line options (`--quick`, `--measurement-time`, …) still override these.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = config();
    targets = register, wait_ready, timer
}

/// 512 pairs are 1,024 sockets, more than the usual soft limit of 1,024 fds: raise the soft
/// limit to the hard one.
fn raise_fd_limit() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid, writable `rlimit` for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return;
    }
    if rl.rlim_cur < rl.rlim_max {
        rl.rlim_cur = rl.rlim_max;
        // SAFETY: `rl` is a valid `rlimit`; raising the soft limit up to the hard one is always
        // permitted. On failure the limit stays as it was and large sizes fail loudly in setup.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) };
    }
}

/// `KNOTE_SYSCALL_OP=NAME:COUNT`: set the workload up, run COUNT steps, exit. `strace -c` of a
/// COUNT=0 run is the set-up cost to subtract.
fn syscall_mode(spec: &str) -> Result<(), String> {
    let (name, count) = spec
        .rsplit_once(':')
        .ok_or_else(|| format!("{SYSCALL_ENV} must be NAME:COUNT, not {spec:?}"))?;
    let count: u64 = count
        .parse()
        .map_err(|_| format!("{SYSCALL_ENV}: bad COUNT {count:?}"))?;
    let mut workload = workload_by_name(name).ok_or_else(|| {
        format!(
            "{SYSCALL_ENV}: unknown workload {name:?}; one of: {}",
            WORKLOADS.join(", ")
        )
    })?;
    for _ in 0..count {
        workload.step();
    }
    Ok(())
}

fn main() {
    raise_fd_limit();
    if let Ok(spec) = std::env::var(SYSCALL_ENV) {
        if let Err(message) = syscall_mode(&spec) {
            eprintln!("{message}");
            std::process::exit(2);
        }
        return;
    }
    // What `criterion_main!(benches)` expands to, with the mode switch above.
    benches();
    Criterion::default().configure_from_args().final_summary();
}
