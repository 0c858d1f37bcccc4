//! Runtimes: the current-thread and multi-thread schedulers, the embedding runtime, the
//! blocking pool, and the `Handle` that reaches any of them.

mod attend;
pub(crate) mod blocking;
mod builder;
pub(crate) mod context;
pub(crate) mod current_thread;
pub(crate) mod gate;
pub(crate) mod handle;
mod idle;
mod local;
pub(crate) mod multi_thread;
pub(crate) mod sleep_flag;
mod thread_parker;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

pub use builder::Builder;
pub use context::EnterGuard;
pub(crate) use handle::WeakHandle;
pub use handle::{Handle, RuntimeFlavor, TryCurrentError};
pub use local::LocalRuntime;

use crate::task::registry::Registry;
use crate::task::{JoinHandle, Runnable, Woken};

/// Tasks run between two polls of the kqueue when the run queue never empties (tokio's
/// figure, a prime so that it does not beat in step with `REMOTE_INTERVAL`), counted from the
/// end of the batch the last poll queued (see [`polls_before_look`]).
pub(crate) const EVENT_INTERVAL: u32 = 61;

/// How many polls a runtime thread runs before it looks at its kqueue again without waiting,
/// after a look (or wait) that handled `events` events: `EVENT_INTERVAL` beyond the batch
/// those events queued.
///
/// Why beyond the batch: the run queue is FIFO, so the tasks a look finds go behind the rest
/// of the batch the previous look queued; looking before that batch has run changes no task's
/// turn, it only adds a system call. Counting the interval from the end of the batch keeps the
/// bound the interval exists for (events and due timers are seen after at most
/// `EVENT_INTERVAL` polls of other work) and takes the hand-written event loop's shape: a
/// harvested batch is served whole, then the next is harvested. (With batches a little longer
/// than the interval, the old count paid one extra `epoll_wait` per batch.)
#[inline]
pub(crate) fn polls_before_look(events: usize) -> u32 {
    EVENT_INTERVAL.saturating_add(u32::try_from(events).unwrap_or(u32::MAX))
}
/// Tasks run between two looks at the queue of tasks woken from other threads, when the local
/// queue never empties.
pub(crate) const REMOTE_INTERVAL: u32 = 31;

/// Queues a task woken (or spawned) from outside the runtime's own threads and wakes the
/// runtime with `notify`; on a runtime that is shutting down the task waits in the queue for
/// the shutdown loop to cancel it (see [`gate`]).
pub(crate) fn push_remote(
    gate: &gate::Gate,
    queue: &crossbeam_queue::SegQueue<Runnable>,
    runnable: Runnable,
    notify: impl FnOnce(),
) {
    gate::push(gate, queue, runnable, notify, crate::task::cancel);
}

/// Waits on `condvar` while `busy` holds, until `deadline` if there is one (shutdown's wait for
/// workers and for blocking threads); returns the guard either way.
pub(crate) fn wait_while_until<'a, T>(
    condvar: &std::sync::Condvar,
    mut guard: std::sync::MutexGuard<'a, T>,
    deadline: Option<std::time::Instant>,
    mut busy: impl FnMut(&mut T) -> bool,
) -> std::sync::MutexGuard<'a, T> {
    while busy(&mut guard) {
        guard = match deadline {
            None => condvar.wait(guard).unwrap_or_else(|e| e.into_inner()),
            Some(d) => {
                let now = std::time::Instant::now();
                if now >= d {
                    break;
                }
                condvar
                    .wait_timeout(guard, d - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
    }
    guard
}

/// Waits on a runtime thread's kqueue. A failure other than an interruption (which `turn`
/// absorbs) cannot be handled there (retrying would spin on it): it is reported by a panic that
/// names the cause.
pub(crate) fn turn_or_panic(
    driver: &crate::driver::Driver,
    events: &mut [knote_reactor::Kevent],
    timeout: Option<Duration>,
) -> crate::driver::Turn {
    match driver.turn(events, timeout) {
        Ok(turn) => turn,
        Err(e) => panic!("knote: a runtime thread could not wait on its kqueue: {e}"),
    }
}

/// Where a woken task goes: its runtime's queues, or the blocking pool.
#[derive(Clone)]
pub(crate) enum Scheduler {
    Current(Arc<current_thread::CurrentThread>),
    Multi(Arc<multi_thread::MultiThread>),
    Blocking(Arc<blocking::BlockingPool>),
}

impl Scheduler {
    /// async-task's schedule function for every knote task.
    pub(crate) fn schedule(runnable: Runnable, woken: Woken) {
        match &runnable.metadata().sched {
            Scheduler::Current(_) => current_thread::schedule(runnable),
            Scheduler::Multi(_) => multi_thread::schedule(runnable, woken),
            Scheduler::Blocking(_) => blocking::schedule(runnable),
        }
    }

    pub(crate) fn registry(&self) -> Option<&Registry> {
        match self {
            Scheduler::Current(s) => Some(&s.registry),
            Scheduler::Multi(s) => Some(&s.registry),
            Scheduler::Blocking(_) => None,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Scheduler::Current(s) => s.is_closed(),
            Scheduler::Multi(s) => s.is_closed(),
            Scheduler::Blocking(s) => s.is_closed(),
        }
    }
}

/// A runtime: a scheduler, its kqueue(s) and its blocking pool.
///
/// Build one with [`Builder`] (or [`Runtime::new`] for a multi-thread one with a worker per
/// core). Dropping it cancels every task (their futures are dropped, their `JoinHandle`s say
/// cancelled) and waits for running blocking closures; [`shutdown_timeout`] bounds that wait.
///
/// [`shutdown_timeout`]: Runtime::shutdown_timeout
pub struct Runtime {
    handle: Handle,
    shut_down: bool,
}

impl Runtime {
    /// A multi-thread runtime with default settings.
    pub fn new() -> io::Result<Runtime> {
        Builder::new_multi_thread().build()
    }

    pub(crate) fn from_handle(handle: Handle) -> Runtime {
        Runtime {
            handle,
            shut_down: false,
        }
    }

    /// The runtime's handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `future` to completion on this thread, with the runtime as its context. On a
    /// current-thread runtime this thread also runs the spawned tasks and waits on the kqueue;
    /// on a multi-thread one the workers do.
    ///
    /// # Panics
    /// On a thread that is itself running a runtime's tasks (inside a task, or inside another
    /// `block_on`'s future on a current-thread runtime).
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        context::assert_not_driving("Runtime::block_on");
        let _enter = self.handle.enter();
        match &self.handle.inner {
            handle::Inner::Current(s) => s.block_on(future),
            // The future runs on the calling thread, the tasks on the workers.
            handle::Inner::Multi(_) => thread_parker::block_on(future),
        }
    }

    /// Spawns a task; see [`Handle::spawn`].
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// Runs a blocking closure on the pool; see [`Handle::spawn_blocking`].
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.handle.spawn_blocking(f)
    }

    /// Makes this runtime the current one on this thread until the guard drops.
    pub fn enter(&self) -> EnterGuard {
        self.handle.enter()
    }

    /// Shuts down, waiting at most `timeout` for workers to finish their current poll and for
    /// blocking closures to return; threads still busy after that are left to finish alone.
    pub fn shutdown_timeout(mut self, timeout: Duration) {
        self.shutdown(Some(timeout));
    }

    /// Shuts down without waiting for blocking closures.
    pub fn shutdown_background(self) {
        self.shutdown_timeout(Duration::ZERO);
    }

    fn shutdown(&mut self, timeout: Option<Duration>) {
        if std::mem::replace(&mut self.shut_down, true) {
            return;
        }
        if timeout.is_none() && self.on_own_thread() {
            panic!(
                "knote: a Runtime was dropped on one of its own threads (inside one of its \
                 tasks or blocking closures); its shutdown would wait for this very thread \
                 to finish, forever. Drop it outside the runtime, or call shutdown_background"
            );
        }
        match &self.handle.inner {
            handle::Inner::Current(s) => s.shutdown(&self.handle, None),
            handle::Inner::Multi(s) => s.shutdown(&self.handle, timeout),
        }
        self.handle.blocking().shutdown(timeout);
    }
}

impl Runtime {
    /// Whether this thread is one that the runtime's shutdown waits for (a worker, the thread
    /// driving a current-thread runtime, a thread of its blocking pool).
    fn on_own_thread(&self) -> bool {
        let scheduler = match &self.handle.inner {
            handle::Inner::Current(s) => current_thread::is_driving(s),
            handle::Inner::Multi(s) => s.is_worker_thread(),
        };
        scheduler || self.handle.blocking().is_pool_thread()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown(None);
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("handle", &self.handle)
            .finish()
    }
}
