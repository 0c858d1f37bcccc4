//! `LocalRuntime`: a runtime that owns no thread, for applications that own their main loop.

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use super::current_thread::{Core, CurrentThread};
use super::handle::Inner;
use super::{EnterGuard, Handle, Scheduler};
use crate::task::{self, JoinHandle, Spawn};

/// A runtime driven by the host application's own loop.
///
/// It owns no thread: the host waits on [`as_raw_fd`](AsRawFd::as_raw_fd) (the kqueue's fd,
/// readable whenever a task was woken, an fd became ready or a timer fired, from any thread)
/// together with its own fds, and calls [`turn`](LocalRuntime::turn) when it is readable (or
/// when `turn` said more work is ready). Tasks may be `!Send` ([`spawn_local`]).
///
/// ```no_run
/// # fn main() -> std::io::Result<()> {
/// use std::os::fd::AsRawFd;
/// use std::time::Duration;
///
/// let rt = knote_executor::runtime::LocalRuntime::new()?;
/// rt.spawn_local(async { knote_executor::time::sleep(Duration::from_millis(10)).await });
/// let mut more = true;
/// while more || rt.live_tasks() > 0 {
///     if !more {
///         // Nothing ready: sleep in the host's own poll(2), knote's fd among the host's fds.
///         let mut fds = [libc::pollfd { fd: rt.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
///         // SAFETY: one valid pollfd.
///         unsafe { libc::poll(fds.as_mut_ptr(), 1, 1000) };
///     }
///     more = rt.turn(Some(Duration::ZERO))?;
/// }
/// # Ok(()) }
/// ```
///
/// [`spawn_local`]: LocalRuntime::spawn_local
pub struct LocalRuntime {
    handle: Handle,
    shared: Arc<CurrentThread>,
    core: Box<Core>,
    shut_down: std::cell::Cell<bool>,
    /// `!Send`: local tasks and the core stay on this thread.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl LocalRuntime {
    /// A new embedding runtime with default settings.
    pub fn new() -> io::Result<LocalRuntime> {
        super::Builder::new_current_thread().build_local()
    }

    pub(crate) fn from_handle(handle: Handle) -> LocalRuntime {
        let Inner::Current(shared) = &handle.inner else {
            unreachable!("build_local makes a current-thread runtime")
        };
        let shared = Arc::clone(shared);
        let core = shared.take_core().expect("a new runtime has its core");
        shared.claim_local();
        shared.set_embedded();
        LocalRuntime {
            handle,
            shared,
            core,
            shut_down: std::cell::Cell::new(false),
            _not_send: std::marker::PhantomData,
        }
    }

    /// The runtime's handle (to spawn `Send` tasks from other threads).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Makes this runtime the current one on this thread until the guard drops (so that
    /// `knote::spawn`, `sleep` and `AsyncFd::new` find it outside `turn`).
    pub fn enter(&self) -> EnterGuard {
        self.handle.enter()
    }

    /// Spawns a `Send` task.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// Spawns a task that stays on this thread (it may hold `Rc`s, `RefCell`s, ...).
    pub fn spawn_local<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let how = Spawn {
            sched: Scheduler::Current(Arc::clone(&self.shared)),
            tracked: true,
        };
        // SAFETY: this runtime is `!Send` and claimed this thread for local tasks, so its core
        // (the only place that runs its runnables) lives on this thread; woken from elsewhere,
        // they reach the core through the remote queue, and `task::cancel` leaks rather than
        // drop one off this thread.
        unsafe { task::spawn_local_inner(how, future) }
    }

    /// One turn of the loop: runs the tasks that are ready (a bounded batch) and polls the
    /// kqueue without waiting; if no task was ready, first waits up to `timeout` (`None`:
    /// until something happens) for the kqueue. Returns whether tasks are still ready, in
    /// which case the host should turn again before it sleeps.
    ///
    /// # Panics
    /// When called from inside one of this (or another) runtime's tasks.
    #[track_caller]
    pub fn turn(&self, timeout: Option<Duration>) -> io::Result<bool> {
        super::context::assert_not_driving("LocalRuntime::turn");
        let _enter = self.handle.enter();
        self.shared.turn(&self.core, timeout)
    }

    /// Turns without waiting until no task is ready; returns how many turns that took.
    pub fn run_until_stalled(&self) -> io::Result<usize> {
        let mut turns = 1;
        while self.turn(Some(Duration::ZERO))? {
            turns += 1;
        }
        Ok(turns)
    }

    /// Runs `future` to completion, driving the runtime meanwhile (for start-up and tests;
    /// the host loop's job otherwise).
    ///
    /// # Panics
    /// When called from inside one of this (or another) runtime's tasks.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        super::context::assert_not_driving("LocalRuntime::block_on");
        let _enter = self.handle.enter();
        self.shared.drive_owned(&self.core, future)
    }

    /// Shuts down: cancels every task (as dropping does) and waits at most `timeout` for
    /// blocking closures still running (dropping waits for them without limit).
    pub fn shutdown_timeout(self, timeout: Duration) {
        self.shared.shutdown(&self.handle, Some(&self.core));
        self.handle.blocking().shutdown(Some(timeout));
        self.shut_down.set(true);
    }

    /// How many tasks are idle (see [`Handle::live_tasks`]).
    pub fn live_tasks(&self) -> usize {
        self.handle.live_tasks()
    }
}

impl AsRawFd for LocalRuntime {
    fn as_raw_fd(&self) -> RawFd {
        self.shared.driver.kqueue().as_raw_fd()
    }
}

impl AsFd for LocalRuntime {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.shared.driver.kqueue().as_fd()
    }
}

impl Drop for LocalRuntime {
    fn drop(&mut self) {
        if self.shut_down.get() {
            return;
        }
        self.shared.shutdown(&self.handle, Some(&self.core));
        self.handle.blocking().shutdown(None);
    }
}

impl std::fmt::Debug for LocalRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRuntime")
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}
