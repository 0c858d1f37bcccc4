//! The time driver: every timer of one driver (kqueue) in a user-space heap, driven by the
//! wait's timeout, with one EVFILT_TIMER knote per driver armed for the earliest deadline.
//!
//! Why not a knote per timer (what this replaced): FreeBSD caps timer knotes system-wide
//! (`kern.kq_calloutmax`, 4096 by default), OpenBSD and DragonFly take milliseconds only, and
//! each knote costs kernel memory and a change per arm and per cancel. Here the number of
//! timers is limited by memory alone, and the kernel sees one timer per driver.
//!
//! Why a heap and not a hierarchical wheel (tokio's): the wheel's first level is its
//! resolution (1 ms in tokio), and knote keeps nanosecond deadlines: a sleep of 100 µs is
//! measured to wake 37 µs late at the median where tokio's wakes 1 ms late. A wheel with a
//! nanosecond first level would need far more levels or slots. The heap orders exact
//! deadlines; its costs, measured (`bench/benches/timer_lateness.rs`, `rt_current_thread`
//! `sleep_1m`/`sleep_drop_100k`, `idle_task_memory`), are within the targets: sleeps of one length are inserted in
//! deadline order (a push sifts no further than one comparison), and a cancel costs no heap
//! operation at all (below).
//!
//! Entries come from the driver's pool (`time::pool`: pages and a free list, a reference count
//! per entry), so arming a timer allocates nothing once the pool has grown; the heap's items
//! are a deadline and a reference each, in storage that grows by a quarter.
//!
//! Protocol (each `Entry` is shared by its `Sleep` and the driver):
//! - **Insert / reset / re-arm** (any thread, no lock): the new deadline is stored in the
//!   entry, which is pushed (once: the `QUEUED` bit) on a lock-free intrusive stack. If the
//!   driver waits for a later instant than the new deadline (`next_wake`), the caller wakes it
//!   (the driver's EVFILT_USER trigger). A reset to a later deadline of an entry in the heap
//!   queues nothing: the heap finds the new deadline when the old one comes up.
//! - **Cancel** (`Sleep` dropped, any thread, no lock): sets `CANCELLED`, drops the waker (so a
//!   cancelled timer holds no task, and no task the runtime, alive) and gives back the
//!   `Sleep`'s reference; the heap gives back its own when the entry comes up, or when
//!   cancelled items outnumber live ones (a compaction, O(n), amortised O(1) per cancel).
//!   Whoever gives back the last reference puts the entry on the free list (under the pool's
//!   lock, a batch at a time from the driver).
//! - **Turn** (the thread that drives the kqueue, under the heap's lock): before waiting,
//!   take the stack into the heap, compute the timeout from the earliest deadline and, if the
//!   turn is going to wait, re-arm the knote if that deadline is earlier than the one it is
//!   armed for (the change rides along with the wait's `kevent`; a turn that only looks, as
//!   another worker taking this driver's events does, never touches the knote, so the knote
//!   has one writer at a time: the driving thread, or the one leaving the kqueue to a host);
//!   publish `next_wake`, then look at the stack once more (a Dekker pair with inserters:
//!   SeqCst on both sides); after waiting, fire what is due in deadline order (wake their
//!   tasks). An entry reset to an earlier deadline while in the heap gets a second item; the
//!   heap goes by the entry's deadline when an item comes up, so the later one is stale by
//!   then and dropped.

use crate::loom::Locked;
use std::io;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, SeqCst};
use std::sync::OnceLock;
use std::task::Waker;
use std::time::Duration;

use knote_reactor::{Flags, Kevent, TimerUnit};

use super::clock::Clock;
pub(crate) use super::pool::{Entry, EntryRef};
use super::pool::{Freed, Pool};
use crate::loom::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize};
use crate::loom::sync::Mutex;

/// The driver's one timer knote: its ident (timer idents are a namespace of their own) and
/// `udata` (never a valid slot token, nor the wake-up knote's `usize::MAX`).
pub(crate) const KNOTE_IDENT: usize = 0;
pub(crate) const KNOTE_UDATA: usize = usize::MAX - 1;

/// The knote is never armed further ahead than this (a far deadline re-arms when it fires):
/// kernels bound a timer's period, and a day is within every bound.
const KNOTE_MAX_NS: u64 = 86_400 * 1_000_000_000;

/// Every this many timers cancelled while still on the insertion stack, the canceller takes
/// the stack into the heap itself (if its lock is free).
const DRAIN_EVERY: usize = 1024;

/// `Entry::state` bits.
/// On the insertion stack.
const QUEUED: u32 = 1;
/// Has a live item in the heap (set and cleared by the heap's owner only).
const HEAPED: u32 = 2;
/// Its deadline came: popped from the heap and its waker woken.
const FIRED: u32 = 4;
/// Its `Sleep` is gone.
const CANCELLED: u32 = 8;

impl Entry {
    /// Whether the driver fired it: its clock reached the entry's deadline (and it has not
    /// been re-armed since).
    pub(crate) fn fired(&self) -> bool {
        self.state.load(Acquire) & FIRED != 0
    }
}

/// A heap item: a deadline and the entry it was pushed for. An entry may have several (a
/// reset to an earlier deadline pushes another): the heap goes by the entry's deadline when
/// an item comes up, and once the entry fired (or was cancelled) its other items are stale
/// and dropped as they come up.
struct Item {
    deadline: u64,
    entry: EntryRef,
}

impl PartialEq for Item {
    fn eq(&self, other: &Item) -> bool {
        self.deadline == other.deadline
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, other: &Item) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Item {
    // Reversed: `BinaryHeap` is a max-heap, the earliest deadline must be on top.
    fn cmp(&self, other: &Item) -> std::cmp::Ordering {
        other.deadline.cmp(&self.deadline)
    }
}

impl Item {
    fn is_live(&self) -> bool {
        let s = self.entry.state.load(Acquire);
        s & CANCELLED == 0 && s & HEAPED != 0
    }
}

struct Heap {
    items: std::collections::BinaryHeap<Item>,
    /// The deadline the knote is armed for, if it is armed.
    armed: Option<u64>,
}

impl Heap {
    /// Pushes an item, growing the storage by a quarter when full (not the doubling of
    /// `Vec`): the heap is most of a sleeping task's timer memory, and a doubled capacity
    /// would cost up to 16 bytes per timer.
    fn push(&mut self, item: Item) {
        let len = self.items.len();
        if len == self.items.capacity() {
            self.items.reserve_exact((len / 4).max(64));
        }
        self.items.push(item);
    }
}

/// What [`Timers::before_wait`] decided.
pub(crate) struct Wait {
    /// The wait's timeout: the caller's, shortened to the earliest deadline.
    pub(crate) timeout: Option<Duration>,
    /// The knote change to submit with the wait, if the knote must be (re-)armed.
    pub(crate) arm: Option<Kevent>,
    /// A paused clock may jump to this deadline if the wait finds nothing.
    auto_advance: Option<u64>,
    /// `next_wake` was published (the wait may sleep): reset it afterwards.
    published: bool,
    /// The deadline `arm` arms the knote for (the tests' view of the change).
    #[cfg(test)]
    armed_for: Option<u64>,
}

/// `next_wake` while the driving thread is awake: it will look at the stack before it
/// sleeps, nobody needs to wake it.
const AWAKE: u64 = 0;
/// `next_wake` when no timer bounds the wait.
const NEVER: u64 = u64::MAX;

/// One driver's timers. See the module docs.
pub(crate) struct Timers {
    /// The insertion stack (entries hold one reference each while on it).
    queue: AtomicPtr<Entry>,
    /// When the driving thread will next look at its timers unless woken: `AWAKE`, a deadline,
    /// or `NEVER`.
    next_wake: AtomicU64,
    heap: Mutex<Heap>,
    /// Where the entries live.
    pool: Pool,
    /// Items in the heap (a snapshot, for `has_timers`).
    len: AtomicUsize,
    /// Entries cancelled while in the heap since the last compaction.
    cancelled: AtomicUsize,
    /// Entries cancelled while on the stack (a count that wraps).
    cancelled_queued: AtomicUsize,
    clock: Clock,
    /// The clock as the driver last read it (ns): a deadline at or before it is due for sure.
    last_now: AtomicU64,
    /// Why the knote could not be armed, once it could not.
    failed: OnceLock<String>,
    /// Test hook: the next arm asks for a negative period, which the kqueue refuses.
    fail_next_arm: AtomicBool,
    /// Timer knotes this driver holds in its kqueue (0 or 1), counted where they are added and
    /// where they fire or are refused: the tests' view of the kernel side.
    knotes: AtomicUsize,
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers {
            queue: AtomicPtr::new(std::ptr::null_mut()),
            next_wake: AtomicU64::new(AWAKE),
            heap: Mutex::new(Heap {
                items: std::collections::BinaryHeap::new(),
                armed: None,
            }),
            pool: Pool::new(),
            len: AtomicUsize::new(0),
            cancelled: AtomicUsize::new(0),
            cancelled_queued: AtomicUsize::new(0),
            clock: Clock::new(),
            last_now: AtomicU64::new(0),
            failed: OnceLock::new(),
            fail_next_arm: AtomicBool::new(false),
            knotes: AtomicUsize::new(0),
        }
    }

    pub(crate) fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Whether any timer may be waiting (in the heap or on its way there).
    pub(crate) fn has_timers(&self) -> bool {
        self.len.load(Relaxed) > 0 || self.has_queued()
    }

    /// Whether `deadline` is known to be due without reading the clock (the driver's last
    /// reading passed it).
    pub(crate) fn known_due(&self, deadline: u64) -> bool {
        deadline <= self.last_now.load(Relaxed)
    }

    /// Whether entries wait on the stack.
    pub(crate) fn has_queued(&self) -> bool {
        !self.queue.load(Acquire).is_null()
    }

    /// Why the knote could not be armed, if it could not.
    pub(crate) fn failure(&self) -> Option<&str> {
        self.failed.get().map(String::as_str)
    }

    /// A new timer (a `Sleep`'s first poll) for `deadline`, which wakes `waker`: an entry
    /// from the pool, queued at once. Returns the `Sleep`'s reference and whether the caller
    /// must wake the driving thread.
    pub(crate) fn insert(&self, deadline: u64, waker: &Waker) -> (EntryRef, bool) {
        // Two references: the caller's and the stack's.
        let entry = self.pool.alloc(deadline, 2);
        entry.waker.register(waker);
        entry.state.store(QUEUED, Relaxed);
        // SAFETY: `alloc` counted the stack's reference.
        self.push_raw(unsafe { entry.counted_copy() });
        // The Dekker pair with `before_wait`: push, fence, read `next_wake` here; publish
        // `next_wake`, fence, read the stack there. (A fence: loom models SeqCst fences, not
        // SeqCst accesses, and the model of this found the accesses-only version wanting.)
        fence(SeqCst);
        let wake = deadline < self.next_wake.load(SeqCst);
        (entry, wake)
    }

    /// Pushes a reference to an entry whose QUEUED bit this thread set on the stack.
    fn push_raw(&self, entry: EntryRef) {
        let ptr = entry.into_raw();
        // SAFETY: the reference given up keeps the entry from being reused; the stack holds
        // it from the push on.
        let entry = unsafe { &*ptr };
        let mut head = self.queue.load(Relaxed);
        loop {
            entry.next.store(head, Relaxed);
            match self.queue.compare_exchange_weak(head, ptr, SeqCst, Relaxed) {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
    }

    /// Re-arms `entry` (a reset, or fired early) for `deadline`. Returns whether the caller
    /// must wake the driving thread (it waits past `deadline`).
    pub(crate) fn arm(&self, entry: &EntryRef, deadline: u64) -> bool {
        let old = entry.deadline.swap(deadline, AcqRel);
        let prev = entry.state.fetch_and(!FIRED, AcqRel);
        // An entry in the heap whose deadline only moves later needs nothing: the heap finds
        // the new deadline when the old one comes up.
        if prev & HEAPED != 0 && prev & FIRED == 0 && deadline >= old {
            return false;
        }
        if entry.state.fetch_or(QUEUED, AcqRel) & QUEUED == 0 {
            self.push_raw(entry.clone_ref());
        }
        // (Already queued: the driver will read the deadline when it takes it.) See
        // `insert` for the fence.
        fence(SeqCst);
        deadline < self.next_wake.load(SeqCst)
    }

    /// A `Sleep` is gone: its entry stays where it is until the heap meets it, and goes back
    /// to the pool when nothing holds it any more.
    pub(crate) fn cancel(&self, entry: EntryRef) {
        let prev = entry.state.fetch_or(CANCELLED, AcqRel);
        drop(entry.waker.take());
        self.pool.release(entry);
        if prev & HEAPED != 0 {
            self.cancelled.fetch_add(1, Relaxed);
        } else if prev & QUEUED != 0
            && self.cancelled_queued.fetch_add(1, Relaxed) % DRAIN_EVERY == DRAIN_EVERY - 1
        {
            // Timers armed and dropped again without a turn in between (a task creating and
            // cancelling timeouts in one long poll) would pile up on the stack until the next
            // turn: take them in now and then, if the heap is free.
            if let Ok(mut heap) = self.heap.try_lock() {
                self.drain(&mut heap);
                self.len.store(heap.items.len(), Relaxed);
            }
        }
    }

    /// Takes the insertion stack into the heap (under its lock).
    #[inline]
    fn drain(&self, heap: &mut Heap) {
        // Most turns find the stack empty: a load, not the swap (a push that lands after it
        // is one that came after this drain; `before_wait` looks again after publishing).
        if !self.queue.load(Acquire).is_null() {
            self.drain_stack(heap);
        }
    }

    fn drain_stack(&self, heap: &mut Heap) {
        let mut freed = Freed::new();
        let mut ptr = self.queue.swap(std::ptr::null_mut(), SeqCst);
        while !ptr.is_null() {
            // SAFETY: every pointer on the stack is a reference given up by `push_raw`, once
            // per push; the swap above made this thread the only one to take them.
            let entry = unsafe { EntryRef::from_raw(ptr) };
            ptr = entry.next.load(Relaxed);
            // Off the stack and (unless cancelled) in the heap, in one step: a reset that sees
            // HEAPED from here on relies on the heap re-checking its deadline (`fire`).
            let prev = entry
                .state
                .fetch_update(AcqRel, Acquire, |s| {
                    Some(if s & CANCELLED != 0 {
                        s & !QUEUED
                    } else {
                        (s & !QUEUED) | HEAPED
                    })
                })
                .unwrap_or_else(|s| s);
            if prev & CANCELLED != 0 {
                freed.release(entry);
                continue;
            }
            // (Already in the heap, for a later deadline: the earlier item fires it, the
            // other one is stale by then.)
            let deadline = entry.deadline.load(Acquire);
            heap.push(Item { deadline, entry });
        }
        self.pool.free(freed);
    }

    /// Puts a live entry (back) in the heap for `deadline`.
    fn push(&self, heap: &mut Heap, entry: EntryRef, deadline: u64, freed: &mut Freed) {
        if entry.state.fetch_or(HEAPED, AcqRel) & CANCELLED != 0 {
            // Cancelled meanwhile (and the canceller saw no HEAPED): keep it out.
            entry.state.fetch_and(!HEAPED, AcqRel);
            freed.release(entry);
            return;
        }
        heap.push(Item { deadline, entry });
    }

    /// Fires every entry due at `now`, in deadline order.
    #[inline]
    fn fire(&self, heap: &mut Heap, now: u64) {
        if heap.items.peek().is_some_and(|top| top.deadline <= now) {
            self.fire_due(heap, now);
        }
    }

    fn fire_due(&self, heap: &mut Heap, now: u64) {
        let mut freed = Freed::new();
        while heap.items.peek().is_some_and(|top| top.deadline <= now) {
            let Some(item) = heap.items.pop() else { break };
            if !item.is_live() {
                freed.release(item.entry);
                continue;
            }
            let entry = item.entry;
            let deadline = entry.deadline.load(Acquire);
            if deadline > now {
                // Reset to later since it was pushed: it waits on.
                self.push(heap, entry, deadline, &mut freed);
                continue;
            }
            let _ = entry
                .state
                .fetch_update(AcqRel, Acquire, |s| Some((s & !HEAPED) | FIRED));
            // A reset that ran before FIRED was set cleared nothing, and, finding the entry in
            // the heap, queued nothing: seen here (the reset's store comes before its RMW of
            // the state, which ours follows), its deadline is put back in the heap. So FIRED
            // always means "the clock reached the deadline the entry has now".
            let moved = entry.deadline.load(Acquire);
            if moved != deadline {
                entry.state.fetch_and(!FIRED, AcqRel);
                self.push(heap, entry, moved, &mut freed);
                continue;
            }
            entry.waker.wake();
            freed.release(entry);
        }
        self.pool.free(freed);
    }

    /// Drops cancelled and stale items once they outnumber live ones.
    fn compact(&self, heap: &mut Heap) {
        let cancelled = self.cancelled.load(Relaxed);
        if cancelled > 64 && cancelled > heap.items.len() / 2 {
            let mut items = std::mem::take(&mut heap.items).into_vec();
            let mut freed = Freed::new();
            let mut i = 0;
            while i < items.len() {
                if items[i].is_live() {
                    i += 1;
                } else {
                    freed.release(items.swap_remove(i).entry);
                }
            }
            heap.items = items.into();
            self.pool.free(freed);
            self.cancelled.store(0, Relaxed);
        }
    }

    fn lock(&self) -> crate::loom::sync::MutexGuard<'_, Heap> {
        self.heap.locked()
    }

    /// Before a wait of up to `timeout`: takes in new timers and decides the real timeout and
    /// whether the knote must be re-armed (submit `Wait::arm` with the wait).
    pub(crate) fn before_wait(&self, timeout: Option<Duration>) -> Wait {
        let mut heap = self.lock();
        let sleeps = timeout != Some(Duration::ZERO);
        let mut published = false;
        let earliest = loop {
            self.drain(&mut heap);
            self.compact(&mut heap);
            let earliest = heap.items.peek().map(|i| i.deadline);
            if !sleeps || self.clock.is_paused() {
                break earliest;
            }
            // Publish when we will look again, then check for inserts that did not see it.
            self.next_wake.store(earliest.unwrap_or(NEVER), SeqCst);
            published = true;
            fence(SeqCst);
            if self.queue.load(SeqCst).is_null() {
                break earliest;
            }
        };
        self.len.store(heap.items.len(), Relaxed);
        let now = self.clock.now();
        let mut wait = Wait {
            timeout,
            arm: None,
            auto_advance: None,
            published,
            #[cfg(test)]
            armed_for: None,
        };
        let Some(earliest) = earliest else {
            return wait;
        };
        if self.clock.is_paused() {
            // Never sleep on a paused clock with a timer pending: look for I/O, and jump to
            // the deadline if there is none (tokio's auto-advance).
            if sleeps {
                wait.timeout = Some(Duration::ZERO);
                wait.auto_advance = Some(earliest);
            }
            return wait;
        }
        let left = Duration::from_nanos(earliest.saturating_sub(now));
        wait.timeout = Some(timeout.map_or(left, |t| t.min(left)));
        if sleeps {
            // Only a turn that waits arms the knote. A look without waiting may run beside the
            // owner's wait (another worker taking a stuck worker's events): two arms computed
            // under the lock but submitted outside it, in either order, could leave the knote
            // armed for another deadline than `armed` says, or gone while it says armed.
            wait.arm = self.knote_change(&mut heap, earliest, now);
            #[cfg(test)]
            if wait.arm.is_some() {
                wait.armed_for = heap.armed;
            }
        }
        wait
    }

    /// The change that re-arms the knote for `earliest`, if it is armed later (or not at all).
    fn knote_change(&self, heap: &mut Heap, earliest: u64, now: u64) -> Option<Kevent> {
        if heap.armed.is_some_and(|armed| armed <= earliest) || self.failed.get().is_some() {
            return None;
        }
        let left = earliest.saturating_sub(now).clamp(1, KNOTE_MAX_NS);
        heap.armed = Some(now + left);
        // Counted when submitted (EV_ADD on the armed knote modifies it: still one); a
        // refusal takes it back.
        self.knotes.store(1, Relaxed);
        let amount = if self.fail_next_arm.swap(false, Relaxed) {
            -1
        } else {
            left as i64
        };
        Some(Kevent::timer(
            KNOTE_IDENT,
            Flags::ADD | Flags::ONESHOT,
            TimerUnit::Nanos,
            amount,
            KNOTE_UDATA,
        ))
    }

    /// The knote fired (it was one-shot: it is gone).
    pub(crate) fn knote_fired(&self) {
        self.lock().armed = None;
        self.knotes.store(0, Relaxed);
    }

    /// The kqueue refused the knote: every timer of this driver fails (their `Sleep`s panic
    /// with the cause when polled), never a silent hang.
    pub(crate) fn knote_failed(&self, err: io::Error) {
        let mut heap = self.lock();
        heap.armed = None;
        self.knotes.store(0, Relaxed);
        let _ = self.failed.set(format!(
            "knote: the kqueue refused this runtime's timer knote ({err}); its timers cannot fire"
        ));
        self.drain(&mut heap);
        for item in heap.items.iter() {
            item.entry.waker.wake();
        }
    }

    /// After the wait: fires what is due (a paused clock first jumps to the next deadline if
    /// the wait found nothing to do).
    pub(crate) fn after_wait(&self, wait: &Wait, found_events: bool) {
        if wait.published {
            self.next_wake.store(AWAKE, SeqCst);
        }
        if let Some(to) = wait.auto_advance {
            if !found_events {
                self.clock.advance_to(to);
            }
        }
        self.process();
    }

    /// Takes in new timers and fires what is due now.
    pub(crate) fn process(&self) {
        let mut heap = self.lock();
        self.drain(&mut heap);
        let now = self.clock.now();
        self.last_now.store(now, Relaxed);
        self.fire(&mut heap, now);
        self.len.store(heap.items.len(), Relaxed);
    }

    /// For a thread about to leave the kqueue to someone else's wait (an embedding host
    /// polling its fd): takes in new timers, fires what is due, and returns the knote change
    /// that makes the fd readable at the earliest deadline. From now on inserts earlier than
    /// that deadline wake the kqueue.
    pub(crate) fn leave(&self) -> Option<Kevent> {
        let mut heap = self.lock();
        loop {
            self.drain(&mut heap);
            let now = self.clock.now();
            self.fire(&mut heap, now);
            let earliest = heap.items.peek().map(|i| i.deadline);
            self.next_wake.store(earliest.unwrap_or(NEVER), SeqCst);
            fence(SeqCst);
            if !self.queue.load(SeqCst).is_null() {
                continue;
            }
            self.len.store(heap.items.len(), Relaxed);
            return match earliest {
                Some(e) if !self.clock.is_paused() => self.knote_change(&mut heap, e, now),
                _ => None,
            };
        }
    }

    /// The kevent submitting `leave`'s change failed, or the change came back refused.
    pub(crate) fn arm_result(&self, result: io::Result<()>) {
        if let Err(e) = result {
            self.knote_failed(e);
        }
    }

    /// Test hook: make the next knote arm fail (see `fail_next_arm`).
    pub(crate) fn fail_next_arm(&self) {
        self.fail_next_arm.store(true, Relaxed);
        // Force a re-arm at the next wait.
        self.lock().armed = None;
    }

    /// Timer knotes this driver holds in its kqueue (see `knotes`).
    pub(crate) fn knotes(&self) -> usize {
        self.knotes.load(Relaxed)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn noop() -> &'static Waker {
        futures_util::task::noop_waker_ref()
    }

    /// An hour ahead on the driver's clock.
    fn far(timers: &Timers) -> u64 {
        timers.clock().now() + 3_600_000_000_000
    }

    #[test]
    fn a_look_without_waiting_leaves_the_knote_alone() {
        let timers = Timers::new();
        let (entry, _) = timers.insert(far(&timers), noop());
        // A turn that only looks (another worker taking this driver's events) does not arm.
        let look = timers.before_wait(Some(Duration::ZERO));
        assert!(look.arm.is_none(), "a look without waiting armed the knote");
        assert_eq!(look.timeout, Some(Duration::ZERO));
        timers.after_wait(&look, false);
        assert_eq!(timers.knotes(), 0);
        // The turn that waits does, for the earliest deadline, and only once.
        let wait = timers.before_wait(None);
        assert!(wait.arm.is_some(), "the waiting turn did not arm the knote");
        assert_eq!(wait.armed_for, Some(entry.deadline.load(Relaxed)));
        timers.after_wait(&wait, false);
        let again = timers.before_wait(Some(Duration::from_secs(1)));
        assert!(again.arm.is_none(), "armed again for the same deadline");
        timers.after_wait(&again, false);
        timers.cancel(entry);
    }

    #[test]
    fn entries_go_back_to_the_pool_whoever_gives_up_the_last_reference() {
        let timers = Timers::new();
        timers.clock().pause();
        let now = timers.clock().now();
        // Fired, then dropped by its Sleep.
        let (fired, _) = timers.insert(now, noop());
        timers.process();
        assert!(fired.fired());
        assert_eq!(timers.pool.live(), 1, "only the Sleep holds it");
        timers.cancel(fired);
        // Dropped while on the stack: freed when the driver takes it in.
        let (queued, _) = timers.insert(now + 10, noop());
        timers.cancel(queued);
        assert_eq!(timers.pool.live(), 1, "the stack still holds it");
        timers.process();
        // Dropped while in the heap, after a reset to earlier (two items): freed when both
        // items are gone.
        let (heaped, _) = timers.insert(now + 1_000, noop());
        timers.process();
        let _ = timers.arm(&heaped, now + 500);
        timers.process();
        assert_eq!(timers.lock().items.len(), 2);
        timers.cancel(heaped);
        assert_eq!(timers.pool.live(), 1);
        timers.clock().advance(Duration::from_nanos(1_000));
        timers.process();
        assert_eq!(timers.pool.live(), 0, "an entry was not given back");
        assert!(timers.lock().items.is_empty());
    }

    #[test]
    fn a_reset_to_earlier_fires_at_the_new_deadline_and_the_stale_item_is_dropped() {
        let timers = Timers::new();
        timers.clock().pause();
        let now = timers.clock().now();
        let (entry, _) = timers.insert(now + 1_000, noop());
        timers.process();
        let _ = timers.arm(&entry, now + 10);
        timers.clock().advance(Duration::from_nanos(10));
        timers.process();
        assert!(entry.fired(), "the earlier deadline did not fire");
        // Re-armed later than the stale item: the stale one must not fire it.
        let _ = timers.arm(&entry, now + 2_000);
        timers.clock().advance(Duration::from_nanos(990));
        timers.process();
        assert!(
            !entry.fired(),
            "fired by the stale item of its old deadline"
        );
        timers.clock().advance(Duration::from_nanos(1_000));
        timers.process();
        assert!(entry.fired());
        timers.cancel(entry);
        assert_eq!(timers.pool.live(), 0);
    }

    #[test]
    fn compaction_gives_cancelled_entries_back() {
        let timers = Timers::new();
        let deadline = far(&timers);
        let entries: Vec<_> = (0..1_000)
            .map(|i| timers.insert(deadline + i, noop()).0)
            .collect();
        timers.process();
        let mut keep = Vec::new();
        for (i, e) in entries.into_iter().enumerate() {
            if i % 10 == 0 {
                keep.push(e);
            } else {
                timers.cancel(e);
            }
        }
        // The next turn compacts: 900 cancelled of 1,000.
        let wait = timers.before_wait(Some(Duration::ZERO));
        timers.after_wait(&wait, false);
        assert_eq!(timers.lock().items.len(), 100);
        assert_eq!(timers.pool.live(), 100);
        for e in keep {
            timers.cancel(e);
        }
    }

    #[test]
    fn the_heap_grows_by_a_quarter() {
        let timers = Timers::new();
        let deadline = far(&timers);
        // (Fewer under Miri, which is slow.)
        let n: u64 = if cfg!(miri) { 1_000 } else { 10_000 };
        let entries: Vec<_> = (0..n)
            .map(|i| timers.insert(deadline + i, noop()).0)
            .collect();
        timers.process();
        let heap = timers.lock();
        let (len, cap) = (heap.items.len(), heap.items.capacity());
        drop(heap);
        assert_eq!(len as u64, n);
        assert!(cap < len + len / 4 + 64, "capacity {cap} for {len} items");
        for e in entries {
            timers.cancel(e);
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::Arc;
    use crate::loom::thread;

    fn noop() -> &'static Waker {
        futures_util::task::noop_waker_ref()
    }

    /// An hour ahead on the driver's clock: never due within a model.
    fn far(timers: &Timers) -> u64 {
        timers.clock().now() + 3_600_000_000_000
    }

    /// An insert from another thread while the driver prepares to sleep: either the driver's
    /// wait sees the timer (its timeout is bounded) or the inserter is told to wake it.
    #[test]
    fn cross_thread_insert_is_seen_or_wakes() {
        loom::model(|| {
            let timers = Arc::new(Timers::new());
            let t = timers.clone();
            let inserter = thread::spawn(move || t.insert(far(&t), noop()));
            let wait = timers.before_wait(None);
            let (entry, wake) = inserter.join().unwrap();
            assert!(
                wait.timeout.is_some() || wake,
                "a timer armed during the wait was neither seen nor woke the driver"
            );
            timers.after_wait(&wait, false);
            timers.cancel(entry);
        });
    }

    /// A cancel from another thread racing the driver taking the entry in: the entry ends
    /// up out of the heap or counted for compaction, and goes back to the pool once both
    /// sides are done with it (whichever gave up the last reference).
    #[test]
    fn cross_thread_cancel_races_the_drain() {
        loom::model(|| {
            let timers = Arc::new(Timers::new());
            let (entry, _) = timers.insert(far(&timers), noop());
            let t = timers.clone();
            let canceller = thread::spawn(move || {
                t.cancel(entry);
            });
            timers.process();
            canceller.join().unwrap();
            timers.process();
            {
                let heap = timers.lock();
                let live = heap.items.iter().filter(|i| i.is_live()).count();
                assert_eq!(live, 0, "a cancelled timer is live in the heap");
                assert!(
                    heap.items.is_empty() || timers.cancelled.load(Relaxed) == heap.items.len(),
                    "a cancelled item in the heap is not counted for compaction"
                );
                if heap.items.is_empty() {
                    assert_eq!(timers.pool.live(), 0, "the entry was not given back");
                }
            }
        });
    }

    /// A `Sleep` dropped on another thread while the driver fires its entry: both give up a
    /// reference at once; exactly one puts the entry on the free list, and the next timer
    /// gets it (the free list's lock orders the first owner's last use before the reuse).
    #[test]
    fn cross_thread_drop_races_the_fire_and_the_entry_is_reused() {
        loom::model(|| {
            let timers = Arc::new(Timers::new());
            timers.clock().pause();
            let now = timers.clock().now();
            let (entry, _) = timers.insert(now, noop());
            let first = entry.clone_ref();
            let t = timers.clone();
            let dropper = thread::spawn(move || t.cancel(entry));
            timers.process();
            dropper.join().unwrap();
            assert_eq!(timers.pool.live(), 1, "`first` holds it");
            timers.pool.release(first);
            assert_eq!(timers.pool.live(), 0, "the entry was not given back");
            let (next, _) = timers.insert(now + 1, noop());
            assert_eq!(next.state.load(Relaxed), QUEUED, "reused with old state");
            timers.cancel(next);
        });
    }

    /// A reset to an earlier deadline from another thread while the driver fires the old
    /// one: the entry is either fired for the deadline it has now, or waits in the heap (or
    /// on the stack) for it; never fired for a deadline it no longer has.
    #[test]
    fn cross_thread_reset_races_the_fire() {
        loom::model(|| {
            let timers = Arc::new(Timers::new());
            timers.clock().pause();
            let now = timers.clock().now();
            let (entry, _) = timers.insert(now, noop());
            let entry = Arc::new(entry);
            let e = entry.clone();
            let t = timers.clone();
            let resetter = thread::spawn(move || {
                let _ = t.arm(&e, now + 1_000);
            });
            timers.process();
            resetter.join().unwrap();
            if entry.fired() {
                assert_eq!(
                    entry.deadline.load(Acquire),
                    now,
                    "fired for a moved deadline"
                );
            }
            // Whatever happened, once the clock reaches the new deadline it fires.
            timers.clock().advance(Duration::from_nanos(1_000));
            timers.process();
            assert!(entry.fired(), "the reset deadline never fired");
            let entry = Arc::try_unwrap(entry).ok().expect("the resetter is done");
            timers.cancel(entry);
        });
    }

    /// Another worker looking at this driver's kqueue without waiting (taking a stuck
    /// worker's events), with a new earlier timer, while the owner prepares to wait: the
    /// knote ends up armed for the deadline the driver believes (each side submits its
    /// change outside the heap's lock, as `Driver::turn` does, in either order).
    #[test]
    fn a_look_beside_the_owners_wait_leaves_the_knote_to_the_owner() {
        loom::model(|| {
            let timers = Arc::new(Timers::new());
            let later = far(&timers) + 1_000;
            let (old, _) = timers.insert(later, noop());
            // The kernel's knote: the deadline of the last change submitted.
            let kernel = Arc::new(crate::loom::sync::Mutex::new(None::<u64>));
            let (t, k) = (timers.clone(), kernel.clone());
            let thief = thread::spawn(move || {
                let (new, _) = t.insert(later - 1_000, noop());
                let look = t.before_wait(Some(Duration::ZERO));
                if let Some(d) = look.armed_for {
                    *k.locked() = Some(d);
                }
                t.after_wait(&look, false);
                new
            });
            let wait = timers.before_wait(None);
            if let Some(d) = wait.armed_for {
                *kernel.locked() = Some(d);
            }
            let new = thief.join().unwrap();
            timers.after_wait(&wait, false);
            assert_eq!(
                *kernel.locked(),
                timers.lock().armed,
                "the knote is armed for another deadline than the driver believes"
            );
            timers.cancel(old);
            timers.cancel(new);
        });
    }
}
