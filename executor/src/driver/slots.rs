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
//!
//! Who waits: per direction, one dedicated waker (the `poll_*_ready` API, timers, generic
//! events: the last registered is kept) and a list of any number of waiters (the
//! `readable()`/`writable()`/`async_io` futures, see `driver::waiters`), under the slot's lock.
//! A `waiting` word (listed counts, "dedicated waker used" flags) lets an event skip the lock
//! and the wakers nobody uses. The payload of generic events (`data`, `fflags`) lives under the
//! lock, and the generation only moves under it, so a stale event's payload cannot land in the
//! next owner either. The protocol is model-checked (`loom_tests` below).

use crate::loom::Locked;
use std::sync::atomic::AtomicPtr;
use std::task::Waker;

use super::waiters::{Waiters, Woken};
use crate::loom::future::AtomicWaker;
use crate::loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::loom::sync::{Mutex, MutexGuard};

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

impl Snapshot {
    /// How many readiness updates the slot had (modulo 2^16) when this was taken.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn tick(&self) -> u16 {
        self.tick
    }

    fn of(state: u64) -> Snapshot {
        Snapshot {
            bits: (state & READY_MASK) as u16,
            tick: ((state & TICK_MASK) >> TICK_SHIFT) as u16,
        }
    }
}

/// A direction of a registration: which dedicated waker and which waiters an event wakes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Reads, and everything that is not a write: timers and generic events.
    Read,
    /// Writes.
    Write,
}

impl Direction {
    /// The readiness bits that concern this direction.
    pub(crate) fn side(self) -> u16 {
        match self {
            Direction::Read => ready::READ_SIDE,
            Direction::Write => ready::WRITE_SIDE,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Its unit in the slot's `waiting` word.
    fn unit(self) -> u64 {
        match self {
            Direction::Read => 1,
            Direction::Write => 1 << 32,
        }
    }

    /// The mask of its waiter count in the `waiting` word.
    fn count_mask(self) -> u64 {
        COUNT_MASK << (32 * self as u32)
    }

    /// Its "the dedicated waker has been used" flag in the `waiting` word.
    fn poll_flag(self) -> u64 {
        POLL_FLAG << (32 * self as u32)
    }
}

/// Per direction, in its half of the `waiting` word: the listed waiters (31 bits) and a flag
/// set once the dedicated waker is used (until the slot is released).
const COUNT_MASK: u64 = 0x7fff_ffff;
const POLL_FLAG: u64 = 1 << 31;

/// A waiter's place in the slot's list: its slab key, and the drain count of its direction
/// when it was inserted (once that moves, an event took the entry out, and the key may name
/// someone else's).
#[derive(Clone, Copy, Debug)]
pub(crate) struct WaitKey {
    index: usize,
    drain: u32,
}

/// The one "register the waker, then look again" sequence, of a slot's dedicated waker
/// ([`Slot::poll_ready`]) and of a timer's (`time::Sleep`): `ready` looks; if it finds
/// nothing, `announce` runs (whatever the waking side must see before it looks for a waker:
/// a slot's "waiting" flag), `waker` goes into `cell`, and `ready` looks again. A wake-up that
/// lands between the looks either finds the waker in `cell` or is seen by the second look,
/// which the waking side guarantees by making its readiness visible before it takes the cell
/// (`AtomicWaker::wake`).
#[inline(always)]
pub(crate) fn ready_or_register<T>(
    cell: &AtomicWaker,
    waker: &Waker,
    mut ready: impl FnMut() -> Option<T>,
    announce: impl FnOnce(),
) -> Option<T> {
    if let Some(seen) = ready() {
        return Some(seen);
    }
    announce();
    cell.register(waker);
    ready()
}

/// What the slot keeps under its lock: the waiter list, and the payload of generic events.
/// The generation only changes under this lock too (in [`Slot::release`]), which is what makes
/// "the slot still belongs to this event's generation, so write its data" one step.
#[derive(Default)]
struct Shared {
    waiters: Waiters,
    /// The `data` of the latest generic event (a signal's delivery count, a process's status).
    data: i64,
    /// The `fflags` of the generic events since the last take, or-ed.
    fflags: u32,
}

/// One registration's shared state.
pub(crate) struct Slot {
    /// generation (32) | tick (16) | readiness bits (16).
    state: AtomicU64,
    /// The dedicated waker of the read direction: the `poll_read_ready` API (the last caller's
    /// waker is kept), a timer, a generic event.
    pub(crate) reader: AtomicWaker,
    /// The dedicated waker of the write direction (`poll_write_ready`).
    pub(crate) writer: AtomicWaker,
    /// Who waits, per direction (read: low half, write: high half): how many listed waiters,
    /// and whether the dedicated waker was ever used. One load tells an event what to wake:
    /// nobody listed costs no lock, a dedicated waker never used costs no RMW.
    waiting: AtomicU64,
    /// Per direction, how many times an event drained its list (see [`WaitKey`]). Changed
    /// under the lock, read without it.
    drains: [AtomicU32; 2],
    shared: Mutex<Shared>,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            state: AtomicU64::new(0),
            reader: AtomicWaker::new(),
            writer: AtomicWaker::new(),
            waiting: AtomicU64::new(0),
            drains: [AtomicU32::new(0), AtomicU32::new(0)],
            shared: Mutex::new(Shared::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // Nothing run under the lock panics (no waker is woken or dropped there).
        self.shared.locked()
    }

    fn generation(&self) -> u32 {
        (self.state.load(Ordering::Acquire) >> GEN_SHIFT) as u32
    }

    /// Sets `bits` if the slot still belongs to `generation`; bumps the tick. Returns whether
    /// it did. The waiter side announces itself in `waiting`, then loads the state (see
    /// [`poll_waiter`](Slot::poll_waiter)); `wake` follows this with an RMW of `waiting`.
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

    /// Sets `bits` for `generation` (see [`set_ready`](Slot::set_ready)) and wakes whoever
    /// waits for them: the dedicated waker of each direction concerned and every listed waiter
    /// of those directions. A stale generation sets and wakes nothing.
    pub(crate) fn notify(&self, generation: u32, bits: u16) {
        if self.set_ready(generation, bits) {
            self.wake(bits);
        }
    }

    /// A generic event (signal, process, user, vnode) for `generation`: stores its payload and
    /// sets EVENT, both under the lock that [`release`](Slot::release) bumps the generation
    /// under, so a stale event's payload never lands in the slot's next owner. A signal's
    /// `data` counts deliveries since the last event (`accumulate`: they add up until taken);
    /// other filters report a state (the latest wins).
    pub(crate) fn notify_event(&self, generation: u32, data: i64, fflags: u32, accumulate: bool) {
        {
            let mut shared = self.lock();
            if self.generation() != generation {
                return;
            }
            if accumulate {
                shared.data = shared.data.wrapping_add(data);
            } else {
                shared.data = data;
            }
            shared.fflags |= fflags;
            // Under the lock: the generation cannot move between the check and this.
            self.set_ready(generation, ready::EVENT);
        }
        self.wake(ready::EVENT);
    }

    /// Takes the payload of the generic events since the last take: `data` (reset if
    /// `accumulate`, the signal case) and the or-ed `fflags`.
    pub(crate) fn take_event(&self, accumulate: bool) -> (i64, u32) {
        let mut shared = self.lock();
        let data = if accumulate {
            std::mem::take(&mut shared.data)
        } else {
            shared.data
        };
        (data, std::mem::take(&mut shared.fflags))
    }

    fn wake(&self, bits: u16) {
        let read = bits & ready::READ_SIDE != 0;
        let write = bits & ready::WRITE_SIDE != 0;
        // Against the waiter side, which announces itself here with an RMW, then loads the
        // state: this side stores the state, then reads this word with an RMW too. RMWs of
        // one word are totally ordered, so either this one comes after the waiter's (and sees
        // it), or the waiter's reads from it and then sees the state stored before it. (A
        // plain load would need SeqCst on both sides; an RMW also lets loom, which models
        // SeqCst accesses as AcqRel, check the argument.)
        let waiting = self.waiting.fetch_or(0, Ordering::AcqRel);
        if read && waiting & Direction::Read.poll_flag() != 0 {
            self.reader.wake();
        }
        if write && waiting & Direction::Write.poll_flag() != 0 {
            self.writer.wake();
        }
        let read_listed = read && waiting & Direction::Read.count_mask() != 0;
        let write_listed = write && waiting & Direction::Write.count_mask() != 0;
        if !read_listed && !write_listed {
            return;
        }
        // Taken under the lock, woken after it: a wake may run the task at once (or drop it).
        let mut woken = Woken::default();
        {
            let mut shared = self.lock();
            for (listed, direction) in [
                (read_listed, Direction::Read),
                (write_listed, Direction::Write),
            ] {
                if !listed {
                    continue;
                }
                let n = shared.waiters.drain(direction, &mut woken) as u64;
                if n > 0 {
                    // Release: a waiter that sees the bump knows its entry is gone (and sees
                    // the readiness set before it).
                    self.drains[direction.index()].fetch_add(1, Ordering::Release);
                    self.waiting
                        .fetch_sub(n * direction.unit(), Ordering::Relaxed);
                }
            }
        }
        woken.wake_all();
    }

    /// The current readiness of `generation` (empty if the slot has moved on).
    pub(crate) fn snapshot(&self, generation: u32) -> Snapshot {
        let s = self.state.load(Ordering::Acquire);
        if (s >> GEN_SHIFT) as u32 != generation {
            return Snapshot { bits: 0, tick: 0 };
        }
        Snapshot::of(s)
    }

    /// Whether any of `bits` is set for `generation`; if none is, parks `waker` in the
    /// dedicated waker of `direction` and looks again (an event that lands in between either
    /// finds the waker or is seen by the second look). The one "register, then look again"
    /// sequence of the `poll_*` APIs, timers and generic events.
    pub(crate) fn poll_ready(
        &self,
        generation: u32,
        direction: Direction,
        bits: u16,
        waker: &Waker,
    ) -> Option<Snapshot> {
        let cell = match direction {
            Direction::Read => &self.reader,
            Direction::Write => &self.writer,
        };
        ready_or_register(
            cell,
            waker,
            || {
                let seen = self.snapshot(generation);
                (seen.bits & bits != 0).then_some(seen)
            },
            || {
                // Announce the dedicated waker (an RMW, once per generation: `wake` reads the
                // word with an RMW after storing the state, so it sees the flag or we see its
                // readiness).
                let flag = direction.poll_flag();
                if self.waiting.load(Ordering::Acquire) & flag == 0 {
                    self.waiting.fetch_or(flag, Ordering::AcqRel);
                }
            },
        )
    }

    /// [`poll_ready`](Slot::poll_ready) for one of several waiters of a direction: the waker
    /// goes into the slot's waiter list under `key` (inserted on a pending poll, updated on
    /// the next ones while the entry lasts), so every waiter is woken by an event, which takes
    /// the entries out. Ready removes an entry still there; so does
    /// [`remove_waiter`](Slot::remove_waiter), which the waiting future's drop calls.
    pub(crate) fn poll_waiter(
        &self,
        generation: u32,
        direction: Direction,
        key: &mut Option<WaitKey>,
        waker: &Waker,
    ) -> Option<Snapshot> {
        let bits = direction.side();
        let drains = &self.drains[direction.index()];
        if key.is_some_and(|k| drains.load(Ordering::Acquire) != k.drain) {
            // An event drained the list (and woke us): the entry is gone.
            *key = None;
        }
        let seen = self.snapshot(generation);
        if seen.bits & bits != 0 {
            self.remove_waiter(direction, key);
            return Some(seen);
        }
        let replaced = {
            let mut shared = self.lock();
            // Under the lock, `drains` cannot move.
            let drain = drains.load(Ordering::Relaxed);
            match *key {
                Some(k) if k.drain == drain => shared.waiters.update(direction, k.index, waker),
                _ => {
                    let index = shared.waiters.insert(direction, waker);
                    *key = Some(WaitKey { index, drain });
                    // An RMW, then the state load below: against `wake`, which stores the
                    // state, then reads this word with an RMW (either it sees us listed, or
                    // we see its readiness).
                    self.waiting.fetch_add(direction.unit(), Ordering::AcqRel);
                    None
                }
            }
        };
        drop(replaced);
        let seen = self.snapshot(generation);
        if seen.bits & bits == 0 {
            return None;
        }
        self.remove_waiter(direction, key);
        Some(seen)
    }

    /// Removes a waiter's entry from the list, if it still has one, with the waker it holds.
    pub(crate) fn remove_waiter(&self, direction: Direction, key: &mut Option<WaitKey>) {
        let Some(k) = key.take() else {
            return;
        };
        let drains = &self.drains[direction.index()];
        if drains.load(Ordering::Acquire) != k.drain {
            // Drained by an event: nothing of ours left, no lock needed.
            return;
        }
        let waker = {
            let mut shared = self.lock();
            if drains.load(Ordering::Relaxed) != k.drain {
                return;
            }
            // Relaxed: a stale, higher count costs an event a look under the lock, no more.
            self.waiting.fetch_sub(direction.unit(), Ordering::Relaxed);
            shared.waiters.remove(direction, k.index)
        };
        drop(waker);
    }

    /// Clears `bits` from the readiness seen in `seen`, unless an event arrived since (the tick
    /// moved): then the caller will simply find the registration ready again. This is what makes
    /// "operation failed with EAGAIN, then clear readiness" safe against an edge that arrived in
    /// between.
    pub(crate) fn clear(&self, generation: u32, seen: Snapshot, bits: u16) {
        // `Err` means "an edge arrived since, or the slot moved on": nothing to clear then.
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

    /// Ends `generation`: bumps it (so events and readiness checks carrying the old token find
    /// nothing), clears readiness, the event payload and every waker. Returns false if the slot
    /// had moved on already (released twice).
    fn release(&self, generation: u32) -> bool {
        let stale = {
            let mut shared = self.lock();
            let bumped = self
                .state
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                    if (s >> GEN_SHIFT) as u32 != generation {
                        return None;
                    }
                    Some(u64::from(generation.wrapping_add(1)) << GEN_SHIFT)
                })
                .is_ok();
            if !bumped {
                return false;
            }
            shared.data = 0;
            shared.fflags = 0;
            self.waiting.store(0, Ordering::Relaxed);
            // Empty in practice: a waiter borrows its registration, which is being dropped.
            shared.waiters.take_all()
        };
        drop(stale);
        drop(self.reader.take());
        drop(self.writer.take());
        true
    }
}

/// Page `p` holds `FIRST_PAGE << p` slots: the arena grows by doubling without ever moving a
/// slot, so a slot's address is fixed for the driver's lifetime. A page is allocated whole but
/// its slots are written one at a time, as each is first handed out: the untouched tail of the
/// newest page (up to half the arena) costs address space, not resident memory.
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
    /// How many slots have been written: the indices below it, and only those, are slots.
    /// Stored (Release) under the free-list lock after the newest is written.
    written: std::sync::atomic::AtomicU32,
    free: Mutex<FreeList>,
    /// Slots handed out and not yet released (kept under the free-list lock, read without it).
    live: std::sync::atomic::AtomicUsize,
}

/// The layout of page `page`'s memory.
fn page_layout(page: usize) -> std::alloc::Layout {
    std::alloc::Layout::array::<Slot>(FIRST_PAGE << page).expect("a page fits the address space")
}

/// The index of page `page`'s first slot.
fn page_start(page: usize) -> usize {
    (FIRST_PAGE << page) - FIRST_PAGE
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
            written: std::sync::atomic::AtomicU32::new(0),
            free: Mutex::new(FreeList {
                free: Vec::new(),
                next: 0,
            }),
            live: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Takes a free slot; its readiness is empty and its wakers are unset.
    pub(crate) fn alloc(&self) -> (Token, &Slot) {
        let mut list = self.free.locked();
        let index = match list.free.pop() {
            Some(index) => index,
            None => {
                let index = list.next;
                list.next = index.checked_add(1).expect("knote: slot arena exhausted");
                let (page, offset) = locate(index);
                let base = if offset == 0 {
                    let layout = page_layout(page);
                    // SAFETY: the layout has a non-zero size (a page holds at least
                    // FIRST_PAGE slots, and a slot is not zero-sized).
                    let base = unsafe { std::alloc::alloc(layout) }.cast::<Slot>();
                    if base.is_null() {
                        std::alloc::handle_alloc_error(layout);
                    }
                    // Published under the free-list lock, which every later store to this
                    // page's slots is made under too (Release pairs with `get`'s Acquire).
                    self.pages[page].store(base, Ordering::Release);
                    base
                } else {
                    // Stored under this lock, when the page's first slot was handed out.
                    self.pages[page].load(Ordering::Relaxed)
                };
                // SAFETY: `base` is page `page`'s allocation, room for `FIRST_PAGE << page`
                // slots, and `offset` is below that (`locate`); this index is `next`, so the
                // slot has never been written and nobody can be reading it (`get` answers only
                // below `written`, which is raised after this write).
                unsafe { base.add(offset).write(Slot::new()) };
                // Release: whoever sees the new count sees the slot written.
                self.written.store(list.next, Ordering::Release);
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
        if index >= self.written.load(Ordering::Acquire) {
            return None;
        }
        let (page, offset) = locate(index);
        let base = self.pages.get(page)?.load(Ordering::Acquire);
        if base.is_null() {
            return None;
        }
        // SAFETY: `index` is below `written`, whose Acquire load saw the slot written (in
        // `alloc`, before the Release store of the count); pages are freed only in `Drop`
        // (which has `&mut self`, so no borrow returned here survives it); `offset` is inside
        // the page by construction of `locate`.
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
        if !slot.release(token.generation()) {
            // Already released: never put an index on the free list twice.
            return;
        }
        let mut list = self.free.locked();
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
        let written = *self.written.get_mut() as usize;
        for (page, ptr) in self.pages.iter_mut().enumerate() {
            let base = *ptr.get_mut();
            if base.is_null() {
                continue;
            }
            let len = written
                .saturating_sub(page_start(page))
                .min(FIRST_PAGE << page);
            // SAFETY: `base` came from `alloc` with `page_layout(page)`, and its first `len`
            // slots are the ones written there (indices below `written`); both are dropped and
            // freed only here, once.
            unsafe {
                std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(base, len));
                std::alloc::dealloc(base.cast(), page_layout(page));
            }
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
        for page in 0..4 {
            assert_eq!(locate(page_start(page) as u32), (page, 0));
        }
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

    /// A page's slots are written as they are handed out, not when the page is allocated: an
    /// index in the newest page that was never handed out is no slot (the arena's untouched
    /// tail costs no resident memory). Dropping the arena drops only the written slots.
    #[test]
    fn slots_are_written_as_they_are_handed_out() {
        let slots = Slots::new();
        // 40 slots: page 0 (32) and 8 of page 1's 64.
        let tokens: Vec<Token> = (0..40).map(|_| slots.alloc().0).collect();
        assert!(slots.get(39).is_some());
        assert!(
            slots.get(40).is_none(),
            "an index never handed out is a slot"
        );
        assert!(slots.get(95).is_none());
        slots.release(tokens[3]);
        // A reused index is still written; a new one is written when handed out.
        assert_eq!(slots.alloc().0.index(), 3);
        assert_eq!(slots.alloc().0.index(), 40);
        assert!(slots.get(40).is_some());
        assert!(slots.get(41).is_none());
    }
}

/// Models of the slot protocol: every interleaving (within loom's preemption bound) of an
/// event's dispatch (`notify`, `notify_event`), a waiter's registration and look again
/// (`poll_waiter`, `poll_ready`), a waiter's removal, the clear after `WouldBlock`, and the
/// release that ends a generation. Run with
/// `RUSTFLAGS="--cfg loom" cargo test -p knote-executor --release --lib loom`.
#[cfg(all(test, loom))]
mod loom_tests {
    use std::future::poll_fn;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Poll, Wake};

    use loom::future::block_on;
    use loom::sync::Arc;
    use loom::thread;

    use super::*;

    /// A fresh slot's generation.
    const GEN: u32 = 0;

    /// Waits as a `readable()` future does, until the slot is readable.
    fn wait_listed(slot: &Slot, direction: Direction) -> Snapshot {
        let mut key = None;
        let seen = block_on(poll_fn(|cx| {
            match slot.poll_waiter(GEN, direction, &mut key, cx.waker()) {
                Some(seen) => Poll::Ready(seen),
                None => Poll::Pending,
            }
        }));
        assert!(key.is_none(), "a completed wait keeps no entry");
        seen
    }

    fn listed(slot: &Slot, direction: Direction) -> u64 {
        slot.waiting.load(Ordering::SeqCst) & direction.count_mask()
    }

    #[test]
    fn a_listed_waiter_is_woken_by_a_concurrent_edge() {
        loom::model(|| {
            let slot = Arc::new(Slot::new());
            let dispatcher = {
                let slot = Arc::clone(&slot);
                thread::spawn(move || slot.notify(GEN, ready::READABLE))
            };
            // A lost wake-up would leave block_on parked forever: loom reports the deadlock.
            let seen = wait_listed(&slot, Direction::Read);
            assert_ne!(seen.bits & ready::READABLE, 0);
            dispatcher.join().unwrap();
            assert_eq!(listed(&slot, Direction::Read), 0);
        });
    }

    #[test]
    fn every_waiter_of_a_direction_is_woken_by_one_edge() {
        loom::model(|| {
            let slot = Arc::new(Slot::new());
            let other = {
                let slot = Arc::clone(&slot);
                thread::spawn(move || wait_listed(&slot, Direction::Read))
            };
            let dispatcher = {
                let slot = Arc::clone(&slot);
                thread::spawn(move || slot.notify(GEN, ready::READABLE))
            };
            wait_listed(&slot, Direction::Read);
            other.join().unwrap();
            dispatcher.join().unwrap();
            assert_eq!(listed(&slot, Direction::Read), 0);
        });
    }

    #[test]
    fn a_write_edge_leaves_a_reader_listed() {
        loom::model(|| {
            let slot = Arc::new(Slot::new());
            let writer = {
                let slot = Arc::clone(&slot);
                thread::spawn(move || wait_listed(&slot, Direction::Write))
            };
            slot.notify(GEN, ready::WRITABLE);
            writer.join().unwrap();
            // A reader now: not ready, listed, and no read edge has taken it out.
            let waker = Waker::from(std::sync::Arc::new(Counter::default()));
            let mut key = None;
            assert!(slot
                .poll_waiter(GEN, Direction::Read, &mut key, &waker)
                .is_none());
            assert_eq!(listed(&slot, Direction::Read), 1);
            slot.remove_waiter(Direction::Read, &mut key);
            assert_eq!(listed(&slot, Direction::Read), 0);
        });
    }

    #[test]
    fn the_dedicated_waker_is_woken_by_a_concurrent_edge() {
        loom::model(|| {
            let slot = Arc::new(Slot::new());
            let dispatcher = {
                let slot = Arc::clone(&slot);
                thread::spawn(move || slot.notify(GEN, ready::WRITABLE))
            };
            let seen = block_on(poll_fn(|cx| {
                match slot.poll_ready(GEN, Direction::Write, ready::WRITE_SIDE, cx.waker()) {
                    Some(seen) => Poll::Ready(seen),
                    None => Poll::Pending,
                }
            }));
            assert_ne!(seen.bits & ready::WRITABLE, 0);
            dispatcher.join().unwrap();
        });
    }

    /// A waker that counts wake-ups (its `Arc`'s strong count tells whether a clone leaked).
    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_dropped_waiter_racing_an_edge_leaves_nothing_behind() {
        loom::model(|| {
            let slot = Arc::new(Slot::new());
            let counter = std::sync::Arc::new(Counter::default());
            let waker = Waker::from(std::sync::Arc::clone(&counter));
            let mut key = None;
            assert!(slot
                .poll_waiter(GEN, Direction::Read, &mut key, &waker)
                .is_none());
            let dispatcher = {
                let slot = Arc::clone(&slot);
                thread::spawn(move || slot.notify(GEN, ready::READABLE))
            };
            // The future is dropped while the edge is dispatched.
            slot.remove_waiter(Direction::Read, &mut key);
            drop(waker);
            dispatcher.join().unwrap();
            assert_eq!(listed(&slot, Direction::Read), 0);
            assert_eq!(
                std::sync::Arc::strong_count(&counter),
                1,
                "a waker clone stayed in the slot"
            );
            assert_eq!(slot.lock().waiters.take_all().len(), 0);
        });
    }

    #[test]
    fn a_stale_generation_never_reaches_the_next_owner() {
        loom::model(|| {
            let slot = Arc::new(Slot::new());
            let dispatcher = {
                let slot = Arc::clone(&slot);
                thread::spawn(move || {
                    // Events collected for generation GEN, dispatched late.
                    slot.notify(GEN, ready::READABLE);
                    slot.notify_event(GEN, 7, 1, true);
                })
            };
            // The owner drops its registration; the slot's next owner looks at it.
            assert!(slot.release(GEN));
            let next = GEN + 1;
            let early = slot.snapshot(next);
            dispatcher.join().unwrap();
            for seen in [early, slot.snapshot(next)] {
                assert_eq!(seen.bits, 0, "stale readiness on the next owner");
            }
            assert_eq!(
                slot.take_event(true),
                (0, 0),
                "stale payload on the next owner"
            );
        });
    }

    #[test]
    fn clear_never_erases_a_newer_edge() {
        loom::model(|| {
            let slot = Arc::new(Slot::new());
            slot.set_ready(GEN, ready::READABLE);
            let first_tick = slot.snapshot(GEN).tick;
            let dispatcher = {
                let slot = Arc::clone(&slot);
                thread::spawn(move || slot.notify(GEN, ready::READABLE))
            };
            // The task's wait saw some edge; its read then would block; it clears.
            let seen = slot.snapshot(GEN);
            slot.clear(GEN, seen, ready::READABLE);
            dispatcher.join().unwrap();
            let end = slot.snapshot(GEN);
            if seen.tick == first_tick {
                // The edge the dispatcher delivered was not seen by the wait: it must stay.
                assert_ne!(end.bits & ready::READABLE, 0, "a newer edge was cleared");
            }
        });
    }
}
