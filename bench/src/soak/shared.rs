//! The state every workload of a soak run shares: the counters, the stop flag, the error
//! tally and the incidents.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::report::{Counters, ErrorTally};

/// The longest any single wait of the soak takes (a connect, a read, a child's exit, a burst
/// of wake-ups): past it the wait counts as failed, so a dead server or a stuck task shows up
/// as an error or an incident instead of a hang. Loopback answers in microseconds; seconds
/// leave room for a machine busy with other work.
pub(crate) const WAIT_LIMIT: Duration = Duration::from_secs(5);

/// How often a workload that is idle (an accept loop, a waiter) looks at the stop flag.
pub(crate) const STOP_POLL: Duration = Duration::from_millis(200);

/// What the workloads of one run share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The running counts.
    pub(crate) counters: Counters,
    /// When the load started.
    pub(crate) started: Instant,
    /// When the load stops.
    pub(crate) deadline: Instant,
    stop: AtomicBool,
    /// Client loops running: the servers accept until the last has ended, so that a
    /// connection begun just before the deadline is still served, not reset.
    pub(crate) clients: AtomicUsize,
    errors: Mutex<ErrorTally>,
    incidents: Mutex<Vec<String>>,
}

impl Shared {
    /// State for a run whose load lasts `duration` from now.
    pub(crate) fn new(duration: Duration) -> Shared {
        let started = Instant::now();
        Shared {
            counters: Counters::default(),
            started,
            deadline: started + duration,
            stop: AtomicBool::new(false),
            clients: AtomicUsize::new(0),
            errors: Mutex::default(),
            incidents: Mutex::default(),
        }
    }

    /// Whether the workloads should stop (the deadline passed, or the run is being ended).
    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || Instant::now() >= self.deadline
    }

    /// Tells every workload to stop.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Adds `n` to a counter.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts an error that happened doing `what`.
    pub(crate) fn error(&self, what: &str, err: &io::Error) {
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(what, err);
    }

    /// Records something that went wrong, stamped with the time into the run.
    pub(crate) fn incident(&self, what: impl std::fmt::Display) {
        let at = self.started.elapsed().as_secs_f64();
        self.incidents
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(format!("at {at:.1} s: {what}"));
    }

    /// The errors so far.
    pub(crate) fn errors(&self) -> ErrorTally {
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The incidents so far.
    pub(crate) fn incidents(&self) -> Vec<String> {
        self.incidents
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Waits for `f` at most [`WAIT_LIMIT`]; past it, an error of kind `TimedOut` naming `what`.
pub(crate) async fn limited<T>(
    what: &'static str,
    f: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    match knote::time::timeout(WAIT_LIMIT, f).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what}: no answer within {WAIT_LIMIT:?}"),
        )),
    }
}
