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
//! deadlines; its costs, measured (`benches/timer_lateness.rs`, `rt_current_thread`
//! `sleep_1m`/`sleep_drop_100k`), are within the targets: sleeps of one length are inserted in
//! deadline order (a push sifts no further than one comparison), and a cancel costs no heap
//! operation at all (below).
//!
//! Protocol (each `Entry` is shared by its `Sleep` and the driver):
//! - **Insert / reset / re-arm** (any thread, no lock): the new deadline is stored in the
//!   entry, which is pushed (once: the `QUEUED` bit) on a lock-free intrusive stack. If the
//!   driver waits for a later instant than the new deadline (`next_wake`), the caller wakes it
//!   (the driver's EVFILT_USER trigger). A reset to a later deadline of an entry in the heap
//!   queues nothing: the heap finds the new deadline when the old one comes up.
//! - **Cancel** (`Sleep` dropped, any thread, no lock): sets `CANCELLED` and drops the waker (so
//!   a cancelled timer holds no task, and no task the runtime, alive); the heap drops its
//!   reference when the entry comes up, or when cancelled items outnumber live ones (a
//!   compaction, O(n), amortised O(1) per cancel).
//! - **Turn** (the thread that drives the kqueue, under the heap's lock): before waiting,
//!   take the stack into the heap, compute the timeout from the earliest deadline and re-arm
//!   the knote if that deadline is earlier than the one it is armed for (the change rides
//!   along with the wait's `kevent`); publish `next_wake`, then look at the stack once more
//!   (a Dekker pair with inserters: SeqCst on both sides); after waiting, fire what is due in
//!   deadline order (wake their tasks).

use crate::loom::Locked;
use std::io;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, SeqCst};
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::task::AtomicWaker;
use knote_reactor::{Flags, Kevent, TimerUnit};

use super::clock::Clock;
use crate::loom::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize};
use crate::loom::sync::{Arc, Mutex};

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

/// One timer: what a `Sleep` and the driver share.
pub(crate) struct Entry {
    /// The deadline the `Sleep` wants (ns on the clock's scale).
    deadline: AtomicU64,
    /// The deadline of its live heap item (owner only, under the heap's lock).
    heap_deadline: AtomicU64,
    state: AtomicU32,
    /// The next entry on the insertion stack.
    next: AtomicPtr<Entry>,
    pub(crate) waker: AtomicWaker,
}

impl Entry {
    pub(crate) fn new(deadline: u64) -> Arc<Entry> {
        Arc::new(Entry {
            deadline: AtomicU64::new(deadline),
            heap_deadline: AtomicU64::new(0),
            state: AtomicU32::new(0),
            next: AtomicPtr::new(std::ptr::null_mut()),
            waker: AtomicWaker::new(),
        })
    }

    /// Whether the driver fired it: its clock reached the entry's deadline (and it has not
    /// been re-armed since).
    pub(crate) fn fired(&self) -> bool {
        self.state.load(Acquire) & FIRED != 0
    }
}

/// A heap item: a deadline and the entry it was pushed for (stale once the entry's
/// `heap_deadline` moved on or it was cancelled).
struct Item {
    deadline: u64,
    entry: Arc<Entry>,
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
        s & CANCELLED == 0
            && s & HEAPED != 0
            && self.entry.heap_deadline.load(Relaxed) == self.deadline
    }
}

struct Heap {
    items: std::collections::BinaryHeap<Item>,
    /// The deadline the knote is armed for, if it is armed.
    armed: Option<u64>,
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

    /// Arms a new entry (its first poll): it is queued as it is, no state to reconcile.
    /// Returns whether the caller must wake the driving thread.
    pub(crate) fn arm_new(&self, entry: &Arc<Entry>) -> bool {
        entry.state.store(QUEUED, Relaxed);
        self.push_queued(entry);
        // The Dekker pair with `before_wait`: push, fence, read `next_wake` here; publish
        // `next_wake`, fence, read the stack there. (A fence: loom models SeqCst fences, not
        // SeqCst accesses, and the model of this found the accesses-only version wanting.)
        fence(SeqCst);
        entry.deadline.load(Relaxed) < self.next_wake.load(SeqCst)
    }

    /// Pushes an entry whose QUEUED bit this thread set on the stack.
    fn push_queued(&self, entry: &Arc<Entry>) {
        let ptr = Arc::into_raw(Arc::clone(entry)).cast_mut();
        let mut head = self.queue.load(Relaxed);
        loop {
            entry.next.store(head, Relaxed);
            match self.queue.compare_exchange_weak(head, ptr, SeqCst, Relaxed) {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
    }

    /// Arms (first poll) or re-arms (reset, or fired early) `entry` for `deadline`. Returns
    /// whether the caller must wake the driving thread (it waits past `deadline`).
    pub(crate) fn arm(&self, entry: &Arc<Entry>, deadline: u64) -> bool {
        let old = entry.deadline.swap(deadline, AcqRel);
        let prev = entry.state.fetch_and(!FIRED, AcqRel);
        // An entry in the heap whose deadline only moves later needs nothing: the heap finds
        // the new deadline when the old one comes up.
        if prev & HEAPED != 0 && prev & FIRED == 0 && deadline >= old {
            return false;
        }
        self.enqueue(entry, deadline)
    }

    fn enqueue(&self, entry: &Arc<Entry>, deadline: u64) -> bool {
        if entry.state.fetch_or(QUEUED, AcqRel) & QUEUED == 0 {
            self.push_queued(entry);
        }
        // (Already queued: the driver will read the deadline when it takes it.) See
        // `arm_new` for the fence.
        fence(SeqCst);
        deadline < self.next_wake.load(SeqCst)
    }

    /// A `Sleep` is gone: its entry stays where it is until the heap meets it.
    pub(crate) fn cancel(&self, entry: &Entry) {
        let prev = entry.state.fetch_or(CANCELLED, AcqRel);
        drop(entry.waker.take());
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
    fn drain(&self, heap: &mut Heap) {
        let mut ptr = self.queue.swap(std::ptr::null_mut(), SeqCst);
        while !ptr.is_null() {
            // SAFETY: every pointer on the stack came from `Arc::into_raw` in `enqueue`, which
            // put exactly one on it per reference it gave up; the swap above made this thread
            // the only one to take them.
            let entry = unsafe { Arc::from_raw(ptr) };
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
                continue;
            }
            let deadline = entry.deadline.load(Acquire);
            if prev & HEAPED != 0 && entry.heap_deadline.load(Relaxed) <= deadline {
                // Its item comes up no later than it should: the heap re-checks it then.
                continue;
            }
            entry.heap_deadline.store(deadline, Relaxed);
            heap.items.push(Item { deadline, entry });
        }
    }

    fn push(&self, heap: &mut Heap, entry: Arc<Entry>, deadline: u64) {
        entry.heap_deadline.store(deadline, Relaxed);
        if entry.state.fetch_or(HEAPED, AcqRel) & CANCELLED != 0 {
            // Cancelled meanwhile (and the canceller saw no HEAPED): keep it out.
            entry.state.fetch_and(!HEAPED, AcqRel);
            return;
        }
        heap.items.push(Item { deadline, entry });
    }

    /// Fires every entry due at `now`, in deadline order.
    fn fire(&self, heap: &mut Heap, now: u64) {
        while heap.items.peek().is_some_and(|top| top.deadline <= now) {
            let Some(item) = heap.items.pop() else { break };
            if !item.is_live() {
                continue;
            }
            let entry = item.entry;
            let deadline = entry.deadline.load(Acquire);
            if deadline > now {
                // Reset to later since it was pushed: it waits on.
                self.push(heap, entry, deadline);
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
                self.push(heap, entry, moved);
                continue;
            }
            entry.waker.wake();
        }
    }

    /// Drops cancelled and stale items once they outnumber live ones.
    fn compact(&self, heap: &mut Heap) {
        let cancelled = self.cancelled.load(Relaxed);
        if cancelled > 64 && cancelled > heap.items.len() / 2 {
            heap.items.retain(Item::is_live);
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
        wait.arm = self.knote_change(&mut heap, earliest, now);
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

impl Drop for Timers {
    fn drop(&mut self) {
        let mut heap = self.lock();
        // Release the stack's references (the heap's go with it).
        self.drain(&mut heap);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::thread;

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
            let inserter = thread::spawn(move || {
                let entry = Entry::new(far(&t));
                let wake = t.arm_new(&entry);
                (entry, wake)
            });
            let wait = timers.before_wait(None);
            let (entry, wake) = inserter.join().unwrap();
            assert!(
                wait.timeout.is_some() || wake,
                "a timer armed during the wait was neither seen nor woke the driver"
            );
            timers.after_wait(&wait, false);
            drop(entry);
        });
    }

    /// A cancel from another thread racing the driver taking the entry in: the entry ends
    /// up out of the heap or counted for compaction, and every reference is released (loom
    /// reports a leaked `Arc`).
    #[test]
    fn cross_thread_cancel_races_the_drain() {
        loom::model(|| {
            let timers = Arc::new(Timers::new());
            let entry = Entry::new(far(&timers));
            let _ = timers.arm_new(&entry);
            let t = timers.clone();
            let canceller = thread::spawn(move || {
                t.cancel(&entry);
            });
            timers.process();
            canceller.join().unwrap();
            timers.process();
            let heap = timers.lock();
            let live = heap.items.iter().filter(|i| i.is_live()).count();
            assert_eq!(live, 0, "a cancelled timer is live in the heap");
            assert!(
                heap.items.is_empty() || timers.cancelled.load(Relaxed) == heap.items.len(),
                "a cancelled item in the heap is not counted for compaction"
            );
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
            let entry = Entry::new(now);
            let _ = timers.arm_new(&entry);
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
        });
    }
}
