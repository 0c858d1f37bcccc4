//! `Handle`: a cloneable reference to a runtime, for spawning from anywhere.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Weak};

use super::{blocking, context, current_thread, multi_thread, EnterGuard, Scheduler};
use crate::driver::Driver;
use crate::task::{self, JoinHandle, Spawn};

/// A handle to a runtime: spawn onto it, or enter its context, from any thread.
///
/// Cheap to clone. A handle does not keep the runtime running: once the runtime is dropped,
/// tasks spawned through a handle complete at once as cancelled.
#[derive(Clone)]
pub struct Handle {
    pub(crate) inner: Inner,
}

#[derive(Clone)]
pub(crate) enum Inner {
    Current(Arc<current_thread::CurrentThread>),
    Multi(Arc<multi_thread::MultiThread>),
}

/// A handle that does not keep its runtime's state alive (the blocking pool's threads hold one).
pub(crate) enum WeakHandle {
    Current(Weak<current_thread::CurrentThread>),
    Multi(Weak<multi_thread::MultiThread>),
}

impl WeakHandle {
    pub(crate) fn upgrade(&self) -> Option<Handle> {
        let inner = match self {
            WeakHandle::Current(w) => Inner::Current(w.upgrade()?),
            WeakHandle::Multi(w) => Inner::Multi(w.upgrade()?),
        };
        Some(Handle { inner })
    }
}

/// The error of [`Handle::try_current`]: this thread is not in a runtime's context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryCurrentError(());

impl fmt::Display for TryCurrentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "there is no knote runtime here: call this from a task, from inside `block_on`, \
             or after `Runtime::enter`",
        )
    }
}

impl std::error::Error for TryCurrentError {}

/// Which scheduler a runtime uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuntimeFlavor {
    /// One thread runs every task (`Builder::new_current_thread`, `LocalRuntime`).
    CurrentThread,
    /// Worker threads with work stealing (`Builder::new_multi_thread`).
    MultiThread,
}

impl Handle {
    /// The handle of the runtime this thread is in.
    ///
    /// # Panics
    /// If there is none (see [`try_current`](Handle::try_current)).
    #[track_caller]
    pub fn current() -> Handle {
        match Handle::try_current() {
            Ok(h) => h,
            Err(e) => panic!("{e}"),
        }
    }

    /// The handle of the runtime this thread is in, if any.
    pub fn try_current() -> Result<Handle, TryCurrentError> {
        context::current().ok_or(TryCurrentError(()))
    }

    /// Spawns a task onto this runtime. It starts running at once (on a worker, or on the
    /// current-thread runtime's thread when that next drives it); the [`JoinHandle`] awaits
    /// its output.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let how = match &self.inner {
            Inner::Current(s) => Spawn {
                sched: Scheduler::Current(Arc::clone(s)),
                tracked: true,
            },
            Inner::Multi(s) => Spawn {
                sched: Scheduler::Multi(Arc::clone(s)),
                tracked: true,
            },
        };
        task::spawn_task(how, future)
    }

    /// Runs a blocking closure on the runtime's blocking pool.
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        blocking::spawn_blocking(self.blocking(), f)
    }

    /// Makes this runtime the current one on this thread until the guard drops.
    pub fn enter(&self) -> EnterGuard {
        context::enter(self.clone())
    }

    /// The runtime's flavour.
    pub fn runtime_flavor(&self) -> RuntimeFlavor {
        match self.inner {
            Inner::Current(_) => RuntimeFlavor::CurrentThread,
            Inner::Multi(_) => RuntimeFlavor::MultiThread,
        }
    }

    /// How many tasks are idle: polled at least once, not finished, and waiting to be woken
    /// (the tasks a shutdown must find through the registry). Tasks queued or running at the
    /// moment of the call are not counted; blocking closures never are. Once the runtime is
    /// dropped it is 0: every task was cancelled.
    pub fn live_tasks(&self) -> usize {
        match &self.inner {
            Inner::Current(s) => s.registry.len(),
            Inner::Multi(s) => s.registry.len(),
        }
    }

    /// How many threads the blocking pool has right now.
    pub fn blocking_threads(&self) -> usize {
        self.blocking().threads()
    }

    /// How many worker threads run tasks (1 for a current-thread runtime).
    pub fn worker_threads(&self) -> usize {
        match &self.inner {
            Inner::Current(_) => 1,
            Inner::Multi(s) => s.worker_count(),
        }
    }

    pub(crate) fn blocking(&self) -> &Arc<blocking::BlockingPool> {
        match &self.inner {
            Inner::Current(s) => &s.blocking,
            Inner::Multi(s) => &s.blocking,
        }
    }

    /// The driver that registrations made from this thread belong to.
    pub(crate) fn driver(&self) -> Arc<Driver> {
        match &self.inner {
            Inner::Current(s) => Arc::clone(&s.driver),
            Inner::Multi(s) => s.driver(),
        }
    }

    pub(crate) fn downgrade(&self) -> WeakHandle {
        match &self.inner {
            Inner::Current(s) => WeakHandle::Current(Arc::downgrade(s)),
            Inner::Multi(s) => WeakHandle::Multi(Arc::downgrade(s)),
        }
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("flavor", &self.runtime_flavor())
            .field("workers", &self.worker_threads())
            .finish()
    }
}
