//! A task's abort flag and registry entry: the handoff between `JoinHandle::abort` (on any
//! thread) and the task going idle (on its runtime's thread).
//!
//! An aborted task must run once more to drop its future, so someone must wake it. The aborter
//! sets the flag, then reads the entry (to wake the task through it); the task, going idle,
//! publishes its entry, then reads the flag (to wake itself). This is a Dekker pair: with
//! no SeqCst fence between store and load on both sides each can miss the other's store (store
//! buffering) and nobody wakes the task: its `JoinHandle` never resolves. (Fences rather than
//! SeqCst accesses: equivalent here, and what loom models exactly.) `loom_tests` checks the
//! pair.

use crate::loom::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};

use super::registry::EntryKey;

const NO_ENTRY: u64 = u64::MAX;

/// See the module docs.
pub(crate) struct AbortState {
    aborted: AtomicBool,
    /// Set (Release) when the task's future has returned or been dropped, for
    /// `AbortHandle::is_finished` (which has no `async_task::Task` to ask).
    finished: AtomicBool,
    /// Whether the task belongs in the registry (blocking tasks, which cannot be cancelled once
    /// running, do not). Here rather than in `TaskMeta` to share the atomics' padding.
    tracked: bool,
    entry: AtomicU64,
}

impl AbortState {
    pub(crate) fn new(tracked: bool) -> AbortState {
        AbortState {
            aborted: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            tracked,
            entry: AtomicU64::new(NO_ENTRY),
        }
    }

    /// Whether the task belongs in the registry.
    pub(crate) fn tracked(&self) -> bool {
        self.tracked
    }

    /// Whether the task's future has finished (returned, panicked or been cancelled).
    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Records that the task's future has finished.
    pub(crate) fn set_finished(&self) {
        // Then `LinkSlot::finish`'s fence: the Dekker pair with an AbortHandle's link (see
        // `abort_handle.rs`).
        self.finished.store(true, Ordering::Release);
    }

    /// Sets the flag; the entry to wake the task through, if it is idle in the registry.
    pub(crate) fn abort(&self) -> Option<EntryKey> {
        self.aborted.store(true, Ordering::Release);
        // The store above, then the load of `entry`: the fence (paired with `publish`'s)
        // forbids both loads missing both stores.
        fence(Ordering::SeqCst);
        self.entry()
    }

    /// Whether the task was aborted (its next run drops the future).
    pub(crate) fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    /// The task's registry entry, if it has one.
    pub(crate) fn entry(&self) -> Option<EntryKey> {
        EntryKey::decode(self.entry.load(Ordering::Acquire))
    }

    /// Whether the task has no entry yet (a cheap look, on the task's own thread).
    pub(crate) fn has_no_entry(&self) -> bool {
        self.entry.load(Ordering::Relaxed) == NO_ENTRY
    }

    /// Publishes the entry of a task that has just gone idle; whether an abort came first
    /// (then the task must wake itself: the aborter may not have seen the entry).
    pub(crate) fn publish(&self, entry: EntryKey) -> bool {
        self.entry.store(entry.encode(), Ordering::Release);
        fence(Ordering::SeqCst);
        self.is_aborted()
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::atomic::AtomicUsize;
    use crate::loom::sync::Arc;
    use crate::loom::thread;

    /// An abort racing the task's first `Pending`: at least one side wakes the task.
    #[test]
    fn abort_against_register_idle() {
        loom::model(|| {
            let state = Arc::new(AbortState::new(true));
            let wakes = Arc::new(AtomicUsize::new(0));
            let aborter = {
                let (state, wakes) = (Arc::clone(&state), Arc::clone(&wakes));
                thread::spawn(move || {
                    if state.abort().is_some() {
                        wakes.fetch_add(1, Ordering::Relaxed);
                    }
                })
            };
            if state.publish(EntryKey { shard: 0, key: 7 }) {
                wakes.fetch_add(1, Ordering::Relaxed);
            }
            aborter.join().unwrap();
            assert!(
                wakes.load(Ordering::Relaxed) >= 1,
                "an aborted task left unwoken"
            );
        });
    }
}
