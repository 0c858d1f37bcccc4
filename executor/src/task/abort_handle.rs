//! [`AbortHandle`]: cancels a task without owning its result, from any thread, and may outlive
//! the task.
//!
//! `async-task` has no shared handle to a task other than its wakers, and holding a waker in
//! every `JoinHandle` costs every spawn. So the link is made only when an `AbortHandle` is
//! asked for: an `AbortLink` (an `Arc`) holding a pointer to the task's `TaskMeta` under a
//! mutex, installed in the metadata's `link` slot. The task clears the pointer when its future
//! finishes (before async-task can free the metadata); an abort takes the mutex, so it either
//! sees the pointer, while the metadata is alive, or nothing.
//!
//! Installing the link races the task finishing: the installer swaps the link in, then reads
//! `finished`; the task sets `finished`, then reads the link. A Dekker pair (a SeqCst fence
//! between the store and the load on both sides, as in `abort.rs`): at least one of them sees
//! the other, and whoever does clears the pointer. `loom_tests` checks it.

use std::fmt;
use std::ptr::{self, NonNull};

use super::{Id, TaskMeta};
use crate::loom::sync::atomic::{fence, AtomicPtr, Ordering};
use crate::loom::sync::{Arc, Mutex};
use crate::loom::Locked;

/// What an [`AbortHandle`] shares with its task: the task's metadata while its future lives.
pub(crate) struct AbortLink {
    id: Id,
    meta: Mutex<Option<NonNull<TaskMeta>>>,
}

// SAFETY: the pointer is only dereferenced under the mutex, while the task has not finished
// (so async-task has not freed it), and `TaskMeta` is `Sync` (it is the metadata of
// `async_task::Task`s, which the runtime sends between threads).
unsafe impl Send for AbortLink {}
// SAFETY: as above.
unsafe impl Sync for AbortLink {}

impl AbortLink {
    /// Runs `f` on the task's metadata if its future has not finished.
    fn with_meta(&self, f: impl FnOnce(&TaskMeta)) {
        let meta = self.meta.locked();
        if let Some(meta) = *meta {
            // SAFETY: the task clears this pointer (under this mutex) when its future finishes,
            // before async-task may free the metadata; we hold the mutex.
            f(unsafe { meta.as_ref() });
        }
    }

    fn clear(&self) {
        *self.meta.locked() = None;
    }
}

/// The `link` slot of a task's metadata: null until an [`AbortHandle`] is first asked for, then
/// one strong count of the task's `AbortLink`, released only when the metadata is dropped.
pub(crate) struct LinkSlot(AtomicPtr<AbortLink>);

impl LinkSlot {
    pub(crate) fn new() -> LinkSlot {
        LinkSlot(AtomicPtr::new(ptr::null_mut()))
    }

    /// The task's future has finished (called after `finished` was set, SeqCst): unlink the
    /// handles, if there are any.
    pub(crate) fn finish(&self) {
        // The store of `finished`, then this load: see the module docs.
        fence(Ordering::SeqCst);
        let p = self.0.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: a non-null slot holds a strong count until the metadata is dropped, and
            // we are inside the task (its metadata alive).
            unsafe { &*p }.clear();
        }
    }
}

impl Drop for LinkSlot {
    fn drop(&mut self) {
        let p = self.0.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: the slot's strong count, released once, here.
            let link = unsafe { Arc::from_raw(p) };
            link.clear();
        }
    }
}

/// The link of the task whose metadata is `meta`, made on first use. The caller holds the
/// task's `async_task::Task`, so the metadata (and the slot's count) outlive this call.
fn link(meta: &TaskMeta) -> Arc<AbortLink> {
    link_parts(
        meta.id,
        &meta.link,
        || meta.is_finished(),
        NonNull::from(meta),
    )
}

/// [`link`], on the parts the protocol touches (so that the loom model runs this code).
fn link_parts(
    id: Id,
    slot: &LinkSlot,
    is_finished: impl FnOnce() -> bool,
    meta: NonNull<TaskMeta>,
) -> Arc<AbortLink> {
    let slot = &slot.0;
    let mut current = slot.load(Ordering::Acquire);
    if current.is_null() {
        let fresh = Arc::new(AbortLink {
            id,
            meta: Mutex::new(Some(meta)),
        });
        let raw = Arc::into_raw(Arc::clone(&fresh)) as *mut AbortLink;
        match slot.compare_exchange(ptr::null_mut(), raw, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                // The link's store, then the load of `finished`: see the module docs.
                fence(Ordering::SeqCst);
                // The other half of the pair with `finish`: the task may have finished before
                // the link was there to be cleared.
                if is_finished() {
                    fresh.clear();
                }
                return fresh;
            }
            Err(other) => {
                // SAFETY: `raw` was never published: take its count back.
                drop(unsafe { Arc::from_raw(raw) });
                current = other;
            }
        }
    }
    // SAFETY: the slot's count keeps `current` alive while the metadata is (see above); add
    // ours.
    unsafe {
        Arc::increment_strong_count(current);
        Arc::from_raw(current)
    }
}

/// Cancels a task without owning its result; from
/// [`JoinHandle::abort_handle`](super::JoinHandle::abort_handle).
///
/// `Clone`, `Send` and `Sync`; it may outlive the task and its [`JoinHandle`](super::JoinHandle)
/// (then [`abort`](AbortHandle::abort) does nothing). Dropping it does nothing to the task.
#[derive(Clone)]
pub struct AbortHandle {
    link: Arc<AbortLink>,
}

impl AbortHandle {
    /// A handle to the task whose metadata is `meta` (the caller holds its `Task`).
    pub(crate) fn new(meta: &TaskMeta) -> AbortHandle {
        AbortHandle { link: link(meta) }
    }

    /// A handle to a task whose result has been taken already.
    pub(crate) fn finished(id: Id) -> AbortHandle {
        AbortHandle {
            link: Arc::new(AbortLink {
                id,
                meta: Mutex::new(None),
            }),
        }
    }

    /// Cancels the task, as [`JoinHandle::abort`](super::JoinHandle::abort) does: its future
    /// is dropped the next time the runtime gets to it, and its `JoinHandle` gives a cancelled
    /// [`JoinError`](super::JoinError). A task that has finished keeps its result.
    pub fn abort(&self) {
        self.link.with_meta(|meta| {
            if !meta.is_finished() {
                meta.abort_and_wake();
            }
        });
    }

    /// Whether the task has finished running (completed, panicked or been cancelled).
    pub fn is_finished(&self) -> bool {
        let mut finished = true;
        self.link.with_meta(|meta| finished = meta.is_finished());
        finished
    }

    /// The task's id.
    pub fn id(&self) -> Id {
        self.link.id
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

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::atomic::AtomicBool;
    use crate::loom::thread;

    /// The first AbortHandle being made while the task finishes: afterwards no handle still
    /// points at the metadata (async-task may free it), whichever way they interleave; and a
    /// second handle made meanwhile shares the first one's link.
    #[test]
    fn link_against_finish() {
        loom::model(|| {
            let slot = Arc::new(LinkSlot::new());
            let finished = Arc::new(AtomicBool::new(false));
            // Never dereferenced in the model: only whether it is still set is looked at.
            let fake = NonNull::<TaskMeta>::dangling();
            let task = {
                let (slot, finished) = (Arc::clone(&slot), Arc::clone(&finished));
                thread::spawn(move || {
                    finished.store(true, Ordering::Release);
                    slot.finish();
                })
            };
            let id = Id::next();
            let first = link_parts(id, &slot, || finished.load(Ordering::Acquire), fake);
            let second = link_parts(id, &slot, || finished.load(Ordering::Acquire), fake);
            task.join().unwrap();
            assert!(
                first.meta.locked().is_none(),
                "a handle outlived the task's metadata"
            );
            assert!(
                second.meta.locked().is_none(),
                "a handle outlived the task's metadata"
            );
            drop((first, second));
            drop(slot);
        });
    }
}
