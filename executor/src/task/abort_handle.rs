//! [`AbortHandle`]: cancels a task without owning its result, from any thread, and may outlive
//! the task.
//!
//! `async-task` counts a task's wakers among the references that keep its allocation (and the
//! `TaskMeta` inside it) alive, and offers no other shared handle; so a [`TaskRef`] is one of
//! the task's own wakers plus a pointer to its metadata. The abort itself is the same as
//! `JoinHandle::abort`'s (`TaskMeta::abort_and_wake`, whose cross-thread handoff `abort.rs`
//! models).

use std::fmt;
use std::ptr::NonNull;
use std::task::Waker;

use super::{Id, TaskMeta};

/// A counted reference to a task's allocation, for reading its metadata after the
/// [`JoinHandle`](super::JoinHandle) has gone.
pub(crate) struct TaskRef {
    /// The task's own waker: holding it keeps the allocation alive (never woken here).
    _keep: Waker,
    meta: NonNull<TaskMeta>,
}

// SAFETY: a `TaskRef` only reads `TaskMeta` through `&`, and `TaskMeta` is `Sync` (it is the
// metadata of `async_task::Task`s, which the runtime sends between threads); an async-task
// waker is `Send + Sync`.
unsafe impl Send for TaskRef {}
// SAFETY: as above.
unsafe impl Sync for TaskRef {}

impl TaskRef {
    /// A reference to the task that `waker` wakes and whose metadata is `meta`.
    ///
    /// # Safety
    /// `waker` must be one of the task's async-task wakers and `meta` its metadata, so that
    /// the waker's reference keeps `meta` alive.
    pub(crate) unsafe fn new(waker: Waker, meta: &TaskMeta) -> TaskRef {
        TaskRef {
            _keep: waker,
            meta: NonNull::from(meta),
        }
    }

    /// The task's metadata.
    pub(crate) fn meta(&self) -> &TaskMeta {
        // SAFETY: async-task drops the metadata only when it frees the allocation, which it
        // does only when no waker is left; `self._keep` is one (see `new`).
        unsafe { self.meta.as_ref() }
    }
}

impl Clone for TaskRef {
    fn clone(&self) -> TaskRef {
        TaskRef {
            _keep: self._keep.clone(),
            meta: self.meta,
        }
    }
}

/// Cancels a task without owning its result; from
/// [`JoinHandle::abort_handle`](super::JoinHandle::abort_handle).
///
/// `Clone`, `Send` and `Sync`; it may outlive the task and its [`JoinHandle`](super::JoinHandle)
/// (then [`abort`](AbortHandle::abort) does nothing). Dropping it does nothing to the task.
#[derive(Clone)]
pub struct AbortHandle {
    task: TaskRef,
}

impl AbortHandle {
    pub(crate) fn new(task: TaskRef) -> AbortHandle {
        AbortHandle { task }
    }

    /// Cancels the task, as [`JoinHandle::abort`](super::JoinHandle::abort) does: its future
    /// is dropped the next time the runtime gets to it, and its `JoinHandle` gives a cancelled
    /// [`JoinError`](super::JoinError). A task that has finished keeps its result.
    pub fn abort(&self) {
        let meta = self.task.meta();
        if !meta.is_finished() {
            meta.abort_and_wake();
        }
    }

    /// Whether the task has finished running (completed, panicked or been cancelled).
    pub fn is_finished(&self) -> bool {
        self.task.meta().is_finished()
    }

    /// The task's id.
    pub fn id(&self) -> Id {
        self.task.meta().id
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}
