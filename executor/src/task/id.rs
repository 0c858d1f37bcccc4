//! Task ids: a number per task, unique for the life of the process, handed out by one global
//! counter at spawn (a relaxed increment: uniqueness needs no ordering), and the id of the task
//! this thread is polling right now, kept in a thread-local that each poll sets and restores.

use std::cell::Cell;
use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};

/// A task's id: unique among all tasks spawned in this process, whatever their runtime.
///
/// The same inside the task ([`id`], [`try_id`]) and outside it
/// ([`JoinHandle::id`](super::JoinHandle::id), [`AbortHandle::id`](super::AbortHandle::id),
/// [`JoinError::id`](super::JoinError::id)). Ids are not reused, but a finished task's id says
/// nothing about a task that runs now.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(NonZeroU64);

impl Id {
    /// The next id from the process-wide counter.
    pub(crate) fn next() -> Id {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // 2^64 spawns would take centuries; wrapping to 0 would break uniqueness, so refuse.
        Id(NonZeroU64::new(n).expect("knote: task ids exhausted"))
    }

    /// The id as a number (for logs and metrics).
    pub fn as_u64(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.0)
    }
}

thread_local! {
    /// The task this thread is polling (or dropping the future of), if any.
    static CURRENT: Cell<Option<Id>> = const { Cell::new(None) };
}

/// Makes `id` the current task's id until the guard is dropped, which restores the previous
/// one (so it is right even when a task's poll runs another task's, as `block_on` may).
pub(crate) fn enter(id: Id) -> CurrentGuard {
    CurrentGuard(CURRENT.with(|c| c.replace(Some(id))))
}

/// See [`enter`].
pub(crate) struct CurrentGuard(Option<Id>);

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        let prev = self.0;
        // The thread-local may be gone when a task is dropped during thread exit.
        let _ = CURRENT.try_with(|c| c.set(prev));
    }
}

/// The id of the task that is running now.
///
/// # Panics
/// Outside a task (in `block_on`'s own future, on a plain thread); see [`try_id`].
#[track_caller]
pub fn id() -> Id {
    try_id().expect("knote::task::id called outside a task")
}

/// The id of the task that is running now, or `None` outside a task (in `block_on`'s own
/// future, on a plain thread).
pub fn try_id() -> Option<Id> {
    CURRENT.try_with(|c| c.get()).ok().flatten()
}
