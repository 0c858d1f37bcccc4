//! `JoinHandle` and `JoinError`.

use crate::loom::Locked;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use super::abort_handle::AbortHandle;
use super::{coop, Id, Payload, TaskMeta};

/// An owned permission to await a spawned task's result.
///
/// A future of `Result<T, JoinError>`. Dropping it detaches the task (it keeps running);
/// [`abort`](JoinHandle::abort) cancels it.
pub struct JoinHandle<T> {
    task: Option<async_task::Task<Result<T, JoinError>, TaskMeta>>,
    /// The task's id, kept for after `task` has given its output.
    id: Id,
}

impl<T> JoinHandle<T> {
    pub(super) fn new(task: async_task::Task<Result<T, JoinError>, TaskMeta>) -> Self {
        let id = task.metadata().id;
        JoinHandle {
            task: Some(task),
            id,
        }
    }

    /// The task's id (the one [`task::id`](super::id) returns inside it).
    pub fn id(&self) -> Id {
        self.id
    }

    /// A handle that can cancel the task without owning its result, from any thread, and
    /// that may outlive this one.
    pub fn abort_handle(&self) -> AbortHandle {
        match &self.task {
            Some(task) => AbortHandle::new(task.metadata()),
            None => AbortHandle::finished(self.id),
        }
    }

    /// Cancels the task: its future is dropped the next time the runtime gets to it (at once if
    /// it is idle), and awaiting this handle gives a [`JoinError`] for which
    /// [`is_cancelled`](JoinError::is_cancelled) is true. A task that has already finished
    /// keeps its result.
    pub fn abort(&self) {
        if let Some(task) = &self.task {
            if !task.is_finished() {
                // The task must run once more to drop its future: its registry entry holds a
                // waker (a blocking task has none, and runs once anyway, queued or running).
                task.metadata().abort_and_wake();
            }
        }
    }

    /// Whether the task has finished (completed, panicked or been cancelled).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().map_or(true, |t| t.is_finished())
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        std::task::ready!(coop::poll_proceed(cx));
        let task = self
            .task
            .as_mut()
            .expect("JoinHandle polled after it returned its result");
        let out = std::task::ready!(Pin::new(task).poll(cx));
        // Done: nothing to detach any more.
        self.task = None;
        coop::spend();
        Poll::Ready(out)
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Why a task produced no value: it was cancelled, or it panicked.
pub struct JoinError {
    repr: Repr,
    id: Id,
}

enum Repr {
    Cancelled,
    // A Mutex only to make the error `Sync` (payloads are `Send` only); never contended.
    // Boxed so that the error is two words: it sits in every task's allocation (the output),
    // and a panic is the rare case that may pay an allocation.
    Panic(Box<Mutex<Payload>>),
}

impl JoinError {
    pub(crate) fn cancelled(id: Id) -> JoinError {
        JoinError {
            repr: Repr::Cancelled,
            id,
        }
    }

    pub(crate) fn panicked(payload: Payload, id: Id) -> JoinError {
        JoinError {
            repr: Repr::Panic(Box::new(Mutex::new(payload))),
            id,
        }
    }

    /// The id of the task that failed.
    pub fn id(&self) -> Id {
        self.id
    }

    /// Whether the task was cancelled (aborted, or its runtime shut down).
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The panic payload. Panics if the task was cancelled; see
    /// [`try_into_panic`](JoinError::try_into_panic).
    pub fn into_panic(self) -> Payload {
        self.try_into_panic()
            .expect("JoinError::into_panic on a cancelled task")
    }

    /// The panic payload, or the error back if the task was cancelled. Resume the panic with
    /// `std::panic::resume_unwind(payload)`.
    pub fn try_into_panic(self) -> Result<Payload, JoinError> {
        match self.repr {
            Repr::Panic(p) => Ok(p.into_inner().unwrap_or_else(|e| e.into_inner())),
            Repr::Cancelled => Err(self),
        }
    }

    fn panic_message(&self) -> Option<String> {
        let Repr::Panic(p) = &self.repr else {
            return None;
        };
        let p = p.locked();
        if let Some(s) = p.downcast_ref::<&'static str>() {
            Some((*s).to_string())
        } else {
            p.downcast_ref::<String>().cloned()
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.repr, self.panic_message()) {
            (Repr::Cancelled, _) => f.write_str("task was cancelled"),
            (Repr::Panic(_), Some(msg)) => write!(f, "task panicked with message {msg:?}"),
            (Repr::Panic(_), None) => f.write_str("task panicked"),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => f.write_str("JoinError::Cancelled"),
            Repr::Panic(_) => write!(f, "JoinError::Panic({:?})", self.panic_message()),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(e: JoinError) -> std::io::Error {
        std::io::Error::other(e.to_string())
    }
}
