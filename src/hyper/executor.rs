//! hyper's `rt::Executor` on knote: where hyper puts the tasks it starts itself (an HTTP/2
//! connection's streams and pings, a client connection's background driver).

use std::future::Future;

use hyper::rt::Executor;

use crate::runtime::Handle;

/// Spawns hyper's `Send` futures as knote tasks: on the runtime of the handle it was made
/// with, or (made with [`new`](KnoteExecutor::new) / `Default`) on the runtime current where
/// hyper spawns, which is where the connection is being driven.
///
/// The tasks are detached: hyper keeps track of them itself.
///
/// # Panics
/// [`new`](KnoteExecutor::new)'s executor panics when hyper spawns outside a knote runtime
/// (as [`crate::spawn`] does); give it a handle to spawn from anywhere.
#[derive(Clone, Debug, Default)]
pub struct KnoteExecutor {
    handle: Option<Handle>,
}

impl KnoteExecutor {
    /// Spawns on the runtime current at each spawn.
    pub fn new() -> KnoteExecutor {
        KnoteExecutor { handle: None }
    }

    /// Spawns on `handle`'s runtime, from any thread.
    pub fn with_handle(handle: Handle) -> KnoteExecutor {
        KnoteExecutor {
            handle: Some(handle),
        }
    }
}

impl<F> Executor<F> for KnoteExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        // Dropping the join handle detaches the task.
        match &self.handle {
            Some(handle) => drop(handle.spawn(future)),
            None => drop(crate::spawn(future)),
        }
    }
}

/// Spawns hyper's futures, `Send` or not, as local tasks of the current-thread runtime this
/// thread drives ([`crate::spawn_local`]): what HTTP/2 over a `!Send` service or body needs
/// (hyper's `http2::Builder` takes any executor, and its futures are then `!Send`).
///
/// # Panics
/// When hyper spawns on a thread that is not driving a current-thread knote runtime (inside
/// its `block_on`, or a `LocalRuntime`), as [`crate::spawn_local`] does.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalExecutor;

impl LocalExecutor {
    /// The executor (it holds nothing: it spawns on the thread's runtime).
    pub fn new() -> LocalExecutor {
        LocalExecutor
    }
}

impl<F> Executor<F> for LocalExecutor
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn execute(&self, future: F) {
        // Dropping the join handle detaches the task.
        drop(crate::spawn_local(future));
    }
}
