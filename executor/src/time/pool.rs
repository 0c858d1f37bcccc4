//! The timer entries of one driver: fixed-size pages that live as long as the driver, handed
//! out and taken back through a free list, each entry reference-counted.
//!
//! Why not one heap allocation per entry (an `Arc`, what this replaced): a runtime with many
//! sleeps spends its time in the allocator (a million live entries are far more than its
//! per-thread caches hold), and each allocation carries the allocator's header and the
//! `Arc`'s weak count. Here an entry costs its 48 bytes, pages are never returned before the
//! driver goes (so memory reached through an entry's pointer stays valid as long as the driver
//! does), and an entry is reused once its last reference is given back.
//!
//! References: the `Sleep` holds one, the insertion stack one while the entry is on it, and
//! each heap item one (a reset to an earlier deadline leaves a stale item behind, which holds
//! its own). [`EntryRef`] has no `Drop`: references are given back with [`Pool::release`], or
//! collected in a [`Freed`] batch that returns them to the free list under one lock.

use std::ops::Deref;
use std::ptr::NonNull;

use crate::loom::future::AtomicWaker;
use crate::loom::sync::atomic::{fence, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use crate::loom::sync::Mutex;
use crate::loom::Locked;

/// Entries per page: a page is about 12 KiB, so capacity overshoot stays below one page.
const PAGE: usize = 256;

/// One timer: what a `Sleep` and the driver share. See `time::driver` for the protocol.
pub(crate) struct Entry {
    /// References held (see the module docs); 0 on the free list.
    refs: AtomicU32,
    /// `time::driver`'s state bits.
    pub(super) state: AtomicU32,
    /// The deadline the `Sleep` wants (ns on the clock's scale).
    pub(super) deadline: AtomicU64,
    /// The next entry on the insertion stack, or on the free list.
    pub(super) next: AtomicPtr<Entry>,
    /// The task to wake when it fires.
    pub(crate) waker: AtomicWaker,
}

impl Entry {
    fn new() -> Entry {
        Entry {
            refs: AtomicU32::new(0),
            state: AtomicU32::new(0),
            deadline: AtomicU64::new(0),
            next: AtomicPtr::new(std::ptr::null_mut()),
            waker: AtomicWaker::new(),
        }
    }
}

/// A counted reference to an entry of a [`Pool`]: valid while that pool lives (the pool
/// belongs to a driver's `Timers`; every reference is held by those timers or by a `Sleep`,
/// which holds the driver). Given back with [`Pool::release`], never dropped silently (a
/// reference dropped without it only keeps its entry from being reused).
pub(crate) struct EntryRef(NonNull<Entry>);

// SAFETY: an `Entry` is atomics and an `AtomicWaker`, all meant to be shared between threads;
// the reference only points at one (it owns nothing that is tied to a thread).
unsafe impl Send for EntryRef {}
// SAFETY: as for `Send`: `&EntryRef` only gives `&Entry`, which is `Sync`.
unsafe impl Sync for EntryRef {}

impl Deref for EntryRef {
    type Target = Entry;

    fn deref(&self) -> &Entry {
        // SAFETY: the entry lies in a page of a pool that lives as long as this reference (see
        // the type's docs), pages are never freed before the pool is, and an entry with a
        // reference outstanding is not on the free list; only shared references to entries are
        // ever made (their fields are atomics).
        unsafe { self.0.as_ref() }
    }
}

impl EntryRef {
    /// Another reference to the same entry.
    pub(super) fn clone_ref(&self) -> EntryRef {
        // Relaxed, as `Arc::clone`: the new reference is made from one this thread holds.
        self.refs.fetch_add(1, Ordering::Relaxed);
        EntryRef(self.0)
    }

    /// A reference that `alloc` already counted (its `refs` argument) and no `EntryRef` holds
    /// yet.
    ///
    /// # Safety
    /// Such an uncounted reference is made once per count `alloc` was given beyond one.
    pub(super) unsafe fn counted_copy(&self) -> EntryRef {
        EntryRef(self.0)
    }

    /// Gives up the reference as a pointer (for the intrusive insertion stack).
    pub(super) fn into_raw(self) -> *mut Entry {
        self.0.as_ptr()
    }

    /// Takes back a reference given up with [`into_raw`](EntryRef::into_raw).
    ///
    /// # Safety
    /// `ptr` came from `into_raw`, and each such pointer is taken back once.
    pub(super) unsafe fn from_raw(ptr: *mut Entry) -> EntryRef {
        // SAFETY: `into_raw` made it from a `NonNull`.
        EntryRef(unsafe { NonNull::new_unchecked(ptr) })
    }
}

struct Inner {
    /// The free list, linked through `Entry::next`.
    free: *mut Entry,
    /// Every page, as `Box::into_raw` made it (raw, so that moving the list retags nothing).
    pages: Vec<NonNull<[Entry]>>,
    /// Entries handed out and not yet back on the free list.
    live: usize,
}

// SAFETY: the pointers lead into the pages this pool owns; they are followed under the lock
// (the free list) or freed in `drop`.
unsafe impl Send for Inner {}

/// One driver's entries. See the module docs.
pub(crate) struct Pool {
    inner: Mutex<Inner>,
}

/// References whose count reached zero, to be put on the free list together
/// ([`Pool::free`]).
pub(crate) struct Freed {
    head: *mut Entry,
    tail: *mut Entry,
    count: usize,
}

impl Freed {
    pub(crate) fn new() -> Freed {
        Freed {
            head: std::ptr::null_mut(),
            tail: std::ptr::null_mut(),
            count: 0,
        }
    }

    /// Gives back `entry`; if it was the last reference, keeps the entry for the free list.
    pub(crate) fn release(&mut self, entry: EntryRef) {
        if let Some(ptr) = last_reference(entry) {
            // Only this thread can reach the entry now: link it in.
            // SAFETY: as in `EntryRef::deref` (nobody else holds a reference any more).
            unsafe { ptr.as_ref() }
                .next
                .store(self.head, Ordering::Relaxed);
            if self.head.is_null() {
                self.tail = ptr.as_ptr();
            }
            self.head = ptr.as_ptr();
            self.count += 1;
        }
    }
}

/// Gives back a reference; `Some` if it was the last one (the entry is then unreachable by
/// others and must go to the free list). Its waker is gone by then: the `Sleep`'s reference
/// is always among those given back, and its cancel takes the waker first.
fn last_reference(entry: EntryRef) -> Option<NonNull<Entry>> {
    // Release, then Acquire if last, as `Arc`'s drop: every use of the entry through another
    // reference happens before it is reused.
    if entry.refs.fetch_sub(1, Ordering::Release) != 1 {
        return None;
    }
    fence(Ordering::Acquire);
    Some(entry.0)
}

impl Pool {
    pub(crate) fn new() -> Pool {
        Pool {
            inner: Mutex::new(Inner {
                free: std::ptr::null_mut(),
                pages: Vec::new(),
                live: 0,
            }),
        }
    }

    /// A fresh entry for `deadline` with `refs` references (the caller's, and the insertion
    /// stack's if it pushes it at once), state 0 and no waker.
    pub(crate) fn alloc(&self, deadline: u64, refs: u32) -> EntryRef {
        let ptr = {
            let mut inner = self.inner.locked();
            if inner.free.is_null() {
                inner.grow();
            }
            let ptr = inner.free;
            // SAFETY: a free-list pointer leads to an entry of one of our pages, which only
            // this lock's holder reaches while it is on the list.
            let entry = unsafe { &*ptr };
            inner.free = entry.next.load(Ordering::Relaxed);
            inner.live += 1;
            ptr
        };
        // SAFETY: just taken off the free list (not null: `grow` filled it); no other thread
        // holds a reference to it (its count is 0), and the lock's release and the next
        // taker's acquire order these stores before any later use.
        let entry = unsafe { &*ptr };
        entry.deadline.store(deadline, Ordering::Relaxed);
        entry.state.store(0, Ordering::Relaxed);
        entry.next.store(std::ptr::null_mut(), Ordering::Relaxed);
        entry.refs.store(refs, Ordering::Relaxed);
        // SAFETY: not null (see above).
        EntryRef(unsafe { NonNull::new_unchecked(ptr) })
    }

    /// Gives back one reference (a freed entry goes on the free list at once).
    pub(crate) fn release(&self, entry: EntryRef) {
        let mut freed = Freed::new();
        freed.release(entry);
        self.free(freed);
    }

    /// Puts a batch of freed entries on the free list (one lock).
    pub(crate) fn free(&self, freed: Freed) {
        if freed.count == 0 {
            return;
        }
        let mut inner = self.inner.locked();
        // SAFETY: `tail` is the last entry of the batch, which only this thread reaches.
        unsafe { &*freed.tail }
            .next
            .store(inner.free, Ordering::Relaxed);
        inner.free = freed.head;
        inner.live -= freed.count;
    }

    /// Entries handed out and not yet freed (tests: nothing leaks).
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.inner.locked().live
    }

    /// Entries this pool holds (in its pages), free or not.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn capacity(&self) -> usize {
        self.inner.locked().pages.len() * PAGE
    }
}

impl Inner {
    /// Adds a page and puts its entries on the (empty) free list.
    fn grow(&mut self) {
        let page: Box<[Entry]> = (0..PAGE).map(|_| Entry::new()).collect();
        let page = NonNull::from(Box::leak(page));
        let first = page.as_ptr() as *mut Entry;
        for i in 0..PAGE {
            // SAFETY: `i < PAGE`, inside the page just made, which nothing else reaches yet.
            let entry = unsafe { &*first.add(i) };
            let next = if i + 1 < PAGE {
                // SAFETY: as above, `i + 1 < PAGE`.
                unsafe { first.add(i + 1) }
            } else {
                self.free
            };
            entry.next.store(next, Ordering::Relaxed);
        }
        self.free = first;
        self.pages.push(page);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for page in self.pages.drain(..) {
            // SAFETY: made by `Box::leak` in `grow` and freed once, here; the pool is going,
            // so no reference into it is used any more (see `EntryRef`).
            drop(unsafe { Box::from_raw(page.as_ptr()) });
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn entries_are_reused_once_their_last_reference_is_given_back() {
        let pool = Pool::new();
        let a = pool.alloc(5, 1);
        let a2 = a.clone_ref();
        let a3 = a.clone_ref();
        assert_eq!(a.deadline.load(Ordering::Relaxed), 5);
        let raw = a.into_raw();
        pool.release(a2);
        pool.release(a3);
        assert_eq!(pool.live(), 1, "one reference is still out");
        // SAFETY: `raw` came from `into_raw` just above.
        let a = unsafe { EntryRef::from_raw(raw) };
        let mut freed = Freed::new();
        freed.release(a);
        pool.free(freed);
        assert_eq!(pool.live(), 0);
        let b = pool.alloc(7, 1);
        assert_eq!(b.0.as_ptr(), raw, "the freed entry is handed out again");
        assert_eq!(b.deadline.load(Ordering::Relaxed), 7);
        assert_eq!(b.state.load(Ordering::Relaxed), 0);
        pool.release(b);
    }

    #[test]
    fn pages_grow_one_at_a_time_and_keep_their_entries_in_place() {
        let pool = Pool::new();
        let refs: Vec<EntryRef> = (0..PAGE as u64 + 1).map(|i| pool.alloc(i, 1)).collect();
        assert_eq!(pool.capacity(), 2 * PAGE);
        for (i, r) in refs.iter().enumerate() {
            assert_eq!(r.deadline.load(Ordering::Relaxed), i as u64);
        }
        let mut freed = Freed::new();
        for r in refs {
            freed.release(r);
        }
        pool.free(freed);
        assert_eq!(pool.live(), 0);
        // All reused before a third page is made.
        let again: Vec<EntryRef> = (0..2 * PAGE as u64).map(|i| pool.alloc(i, 1)).collect();
        assert_eq!(pool.capacity(), 2 * PAGE);
        for r in again {
            pool.release(r);
        }
    }
}
