//! The slot arena: where an event's `udata` leads.
//!
//! Every registration (fd readiness, signal, process, ...) owns one [`Slot`] for as long as it lives. The
//! `udata` of its knotes is a [`Token`]: the slot's index in the low 32 bits and the slot's
//! *generation* in the high 32 bits. Turning an event into a wake-up is an index into a page
//! (two shifts and a load, no hashing, no lock) and one compare-and-swap that succeeds only if
//! the generation still matches.
//!
//! Why an index and a generation rather than a pointer (Dillon's original proposal, and
//! tokio's choice): with several threads collecting events from kqueues, an event for a
//! registration may already sit in some thread's event list when its owner drops it. A pointer
//! would then need a deferred, epoch-like release to stay valid. Here slots are never freed
//! while the driver lives (a freed slot goes to a free list and is reused), so any index that
//! was ever handed out stays a valid address; the generation, bumped on every release, tells an
//! event for a dead registration (or for a reused fd number, whose new registration has a new
//! token) from a live one. The generation lives in the same atomic word as the readiness bits,
//! so "is this still the registration I was told about" and "mark it ready" are one atomic
//! step: a stale event can never set readiness on the slot's next owner.

use std::sync::atomic::{AtomicI64, AtomicPtr, AtomicU64, Ordering};
use std::sync::Mutex;

use futures_util::task::AtomicWaker;

/// Readiness bits, in the low 16 bits of a slot's state word.
pub(crate) mod ready {
    /// EVFILT_READ fired (or an error that a read will report).
    pub(crate) const READABLE: u16 = 1;
    /// EVFILT_WRITE fired (or an error that a write will report).
    pub(crate) const WRITABLE: u16 = 2;
    /// EVFILT_READ came with EV_EOF: the peer will send nothing more.
    pub(crate) const READ_CLOSED: u16 = 4;
    /// EVFILT_WRITE came with EV_EOF: the peer will read nothing more.
    pub(crate) const WRITE_CLOSED: u16 = 8;
    /// An EV_ERROR entry named this registration.
    pub(crate) const ERROR: u16 = 16;
    /// Any other filter (USER, SIGNAL, PROC, VNODE) fired.
    pub(crate) const EVENT: u16 = 64;

    /// The bits that concern the read side of a registration.
    pub(crate) const READ_SIDE: u16 = READABLE | READ_CLOSED | ERROR | EVENT;
    /// The bits that concern the write side.
    pub(crate) const WRITE_SIDE: u16 = WRITABLE | WRITE_CLOSED | ERROR;
}

const READY_MASK: u64 = 0xffff;
const TICK_SHIFT: u32 = 16;
const TICK_MASK: u64 = 0xffff << TICK_SHIFT;
const GEN_SHIFT: u32 = 32;

/// The `udata` of a registration's knotes: slot index (low half) and generation (high half).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token(pub(crate) u64);

impl Token {
    fn new(index: u32, generation: u32) -> Token {
        Token(u64::from(generation) << GEN_SHIFT | u64::from(index))
    }

    pub(crate) fn index(self) -> u32 {
        self.0 as u32
    }

    pub(crate) fn generation(self) -> u32 {
        (self.0 >> GEN_SHIFT) as u32
    }

    /// As a kevent `udata` word.
    pub(crate) fn udata(self) -> usize {
        self.0 as usize
    }

    pub(crate) fn from_udata(udata: usize) -> Token {
        Token(udata as u64)
    }
}

// The token must fit the `udata` word unchanged.
const _: () = assert!(
    usize::BITS >= 64,
    "knote-executor needs a 64-bit target: a kevent udata carries index and generation"
);

/// A snapshot of a slot's readiness: the bits, and the tick at which they were read, so that
/// clearing them later does not erase an event that arrived in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) bits: u16,
    tick: u16,
}

/// One registration's shared state.
pub(crate) struct Slot {
    /// generation (32) | tick (16) | readiness bits (16).
    state: AtomicU64,
    /// The task waiting to read (or for the timer, or for a generic event).
    pub(crate) reader: AtomicWaker,
    /// The task waiting to write.
    pub(crate) writer: AtomicWaker,
    /// The `data` of the latest generic event (a signal's delivery count, a process's status).
    pub(crate) data: AtomicI64,
    /// The `fflags` of the latest generic event (which PROC/VNODE notes fired, or-ed).
    pub(crate) fflags: AtomicU64,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            state: AtomicU64::new(0),
            reader: AtomicWaker::new(),
            writer: AtomicWaker::new(),
            data: AtomicI64::new(0),
            fflags: AtomicU64::new(0),
        }
    }

    fn generation(&self) -> u32 {
        (self.state.load(Ordering::Acquire) >> GEN_SHIFT) as u32
    }

    /// Sets `bits` if the slot still belongs to `generation`; bumps the tick. Returns whether
    /// it did.
    pub(crate) fn set_ready(&self, generation: u32, bits: u16) -> bool {
        self.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                if (s >> GEN_SHIFT) as u32 != generation {
                    return None;
                }
                let tick = ((s & TICK_MASK) >> TICK_SHIFT).wrapping_add(1) & 0xffff;
                Some((s & !TICK_MASK) | tick << TICK_SHIFT | u64::from(bits))
            })
            .is_ok()
    }

    /// The current readiness of `generation` (empty if the slot has moved on).
    pub(crate) fn snapshot(&self, generation: u32) -> Snapshot {
        let s = self.state.load(Ordering::Acquire);
        if (s >> GEN_SHIFT) as u32 != generation {
            return Snapshot { bits: 0, tick: 0 };
        }
        Snapshot {
            bits: (s & READY_MASK) as u16,
            tick: ((s & TICK_MASK) >> TICK_SHIFT) as u16,
        }
    }

    /// Clears `bits` from the readiness seen in `seen`, unless an event arrived since (the tick
    /// moved): then the caller will simply find the registration ready again. This is what makes
    /// "operation failed with EAGAIN, then clear readiness" safe against an edge that arrived in
    /// between.
    pub(crate) fn clear(&self, generation: u32, seen: Snapshot, bits: u16) {
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                let tick = ((s & TICK_MASK) >> TICK_SHIFT) as u16;
                if (s >> GEN_SHIFT) as u32 != generation || tick != seen.tick {
                    return None;
                }
                Some(s & !u64::from(bits))
            });
    }
}

/// Page `p` holds `FIRST_PAGE << p` slots: the arena grows by doubling without ever moving a
/// slot, so a slot's address is fixed for the driver's lifetime.
const FIRST_PAGE_SHIFT: u32 = 5;
const FIRST_PAGE: usize = 1 << FIRST_PAGE_SHIFT;
const PAGES: usize = 28; // 32 * (2^28 - 1) slots: room for every u32 index

struct FreeList {
    free: Vec<u32>,
    next: u32,
}

/// The arena.
pub(crate) struct Slots {
    pages: [AtomicPtr<Slot>; PAGES],
    free: Mutex<FreeList>,
    /// Slots handed out and not yet released (kept under the free-list lock, read without it).
    live: std::sync::atomic::AtomicUsize,
}

fn locate(index: u32) -> (usize, usize) {
    let x = index as usize + FIRST_PAGE;
    let page = (usize::BITS - 1 - x.leading_zeros()) as usize - FIRST_PAGE_SHIFT as usize;
    (page, x - (FIRST_PAGE << page))
}

impl Slots {
    pub(crate) fn new() -> Slots {
        Slots {
            pages: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
            free: Mutex::new(FreeList {
                free: Vec::new(),
                next: 0,
            }),
            live: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Takes a free slot; its readiness is empty and its wakers are unset.
    pub(crate) fn alloc(&self) -> (Token, &Slot) {
        let mut list = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let index = match list.free.pop() {
            Some(index) => index,
            None => {
                let index = list.next;
                list.next = index.checked_add(1).expect("knote: slot arena exhausted");
                let (page, offset) = locate(index);
                if offset == 0 {
                    let slots: Box<[Slot]> = (0..FIRST_PAGE << page).map(|_| Slot::new()).collect();
                    // Published under the free-list lock; readers only ever look at indices
                    // handed out after this store (Release pairs with their Acquire load).
                    self.pages[page].store(Box::into_raw(slots).cast::<Slot>(), Ordering::Release);
                }
                index
            }
        };
        self.live.fetch_add(1, Ordering::Relaxed);
        drop(list);
        let slot = self.get(index).expect("allocated slot has a page");
        (Token::new(index, slot.generation()), slot)
    }

    /// The slot at `index`, if that index was ever handed out.
    pub(crate) fn get(&self, index: u32) -> Option<&Slot> {
        let (page, offset) = locate(index);
        let base = self.pages.get(page)?.load(Ordering::Acquire);
        if base.is_null() {
            return None;
        }
        // SAFETY: a page, once published, holds `FIRST_PAGE << page` initialised slots and is
        // freed only in `Drop` (which has `&mut self`, so no borrow returned here survives it);
        // `offset < FIRST_PAGE << page` by construction of `locate`.
        Some(unsafe { &*base.add(offset) })
    }

    /// Returns a slot to the free list: bumps its generation (so events and readiness checks
    /// carrying the old token find nothing), clears readiness and drops any stored wakers.
    ///
    /// The caller must make sure no knote with this token can still be *created* afterwards
    /// (deletes queued for it have been applied): events for it may still be in flight, and the
    /// generation takes care of those.
    pub(crate) fn release(&self, token: Token) {
        let Some(slot) = self.get(token.index()) else {
            return;
        };
        let bumped = slot
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                if (s >> GEN_SHIFT) as u32 != token.generation() {
                    return None;
                }
                Some(u64::from(token.generation().wrapping_add(1)) << GEN_SHIFT)
            })
            .is_ok();
        if !bumped {
            // Already released: never put an index on the free list twice.
            return;
        }
        drop(slot.reader.take());
        drop(slot.writer.take());
        slot.data.store(0, Ordering::Relaxed);
        slot.fflags.store(0, Ordering::Relaxed);
        let mut list = self.free.lock().unwrap_or_else(|e| e.into_inner());
        list.free.push(token.index());
        self.live.fetch_sub(1, Ordering::Relaxed);
    }

    /// How many slots are in use (a snapshot).
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        for (page, ptr) in self.pages.iter_mut().enumerate() {
            let base = *ptr.get_mut();
            if base.is_null() {
                continue;
            }
            let len = FIRST_PAGE << page;
            // SAFETY: `base` came from `Box::<[Slot]>::into_raw` of exactly `len` slots in
            // `alloc`, and is freed only here, once.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(base, len)) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_covers_pages_without_gaps() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(31), (0, 31));
        assert_eq!(locate(32), (1, 0));
        assert_eq!(locate(95), (1, 63));
        assert_eq!(locate(96), (2, 0));
        let (page, offset) = locate(u32::MAX);
        assert!(page < PAGES && offset < FIRST_PAGE << page);
    }

    #[test]
    fn stale_token_cannot_touch_the_next_owner() {
        let slots = Slots::new();
        let (old, _) = slots.alloc();
        slots.release(old);
        let (new, slot) = slots.alloc();
        assert_eq!(old.index(), new.index());
        assert_ne!(old.generation(), new.generation());
        assert!(!slot.set_ready(old.generation(), ready::READABLE));
        assert_eq!(slot.snapshot(new.generation()).bits, 0);
        assert!(slot.set_ready(new.generation(), ready::READABLE));
        assert_eq!(slot.snapshot(new.generation()).bits, ready::READABLE);
        // Releasing twice does not duplicate the index on the free list.
        slots.release(new);
        slots.release(new);
        let (a, _) = slots.alloc();
        let (b, _) = slots.alloc();
        assert_ne!(a.index(), b.index());
    }

    #[test]
    fn clear_keeps_an_edge_that_arrived_after_the_snapshot() {
        let slots = Slots::new();
        let (t, slot) = slots.alloc();
        slot.set_ready(t.generation(), ready::READABLE);
        let seen = slot.snapshot(t.generation());
        slot.set_ready(t.generation(), ready::READABLE); // a new edge
        slot.clear(t.generation(), seen, ready::READABLE);
        assert_eq!(slot.snapshot(t.generation()).bits, ready::READABLE);
        let seen = slot.snapshot(t.generation());
        slot.clear(t.generation(), seen, ready::READABLE);
        assert_eq!(slot.snapshot(t.generation()).bits, 0);
    }

    #[test]
    fn many_slots_across_pages() {
        let slots = Slots::new();
        let tokens: Vec<Token> = (0..1000).map(|_| slots.alloc().0).collect();
        for (i, t) in tokens.iter().enumerate() {
            assert_eq!(t.index() as usize, i);
            assert!(slots.get(t.index()).is_some());
        }
        assert!(slots.get(5000).is_none());
        for t in tokens {
            slots.release(t);
        }
    }
}
