//! The driver: one kqueue, the slot arena its events lead into, and the change list that rides
//! along with its next wait.
//!
//! A runtime thread calls [`Driver::turn`] to wait; each event's `udata` is a [`Token`] that
//! names a slot; the slot's readiness is set and the waker parked there is woken, which
//! schedules the task. Cross-thread wake-ups of a sleeping thread are one EVFILT_USER knote
//! (`NOTE_TRIGGER`), sent only by whoever finds the thread asleep (the runtimes coalesce them).
//!
//! Changes: I/O registrations are applied at once (the caller wants to know whether the fd can
//! be registered at all, EBADF included). Timer changes go into [`Driver`]'s pending list and
//! ride along with the next `kevent` of the thread that drives this kqueue; when someone else
//! queues a change (a timer dropped on another worker, a `sleep` polled outside the runtime's
//! threads), it flushes the list itself, because the driving thread may be asleep.

pub(crate) mod slots;
mod waiters;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use knote_reactor::{note, Filter, Flags, Kevent, Kqueue};

use slots::Slots;
pub(crate) use slots::{ready, Direction, Slot, Snapshot, Token, WaitKey};

use crate::runtime::context;

/// `udata` of the driver's own EVFILT_USER knote (ident 0): never a valid token, whose
/// generation would have to be 2^32 - 1 with index 2^32 - 1.
const WAKE_UDATA: usize = usize::MAX;
const WAKE_IDENT: usize = 0;

/// Timer changes waiting for the next `kevent` of this driver.
#[derive(Default)]
struct Pending {
    /// Arm (or re-arm) a slot's timer to fire at an instant. Made relative when submitted, so
    /// the time it waited in the list is not added to the sleep.
    arms: Vec<(Token, Instant)>,
    /// Delete a slot's timer, then release the slot (not before: a new owner of the index
    /// would reuse the knote's ident, and the delete must not hit the new owner's timer).
    deletes: Vec<Token>,
    /// Some slot was armed twice in this batch (a reset): keep only its last arm.
    rearmed: bool,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.arms.is_empty() && self.deletes.is_empty()
    }
}

/// See the module docs.
pub(crate) struct Driver {
    kq: Kqueue,
    slots: Slots,
    pending: Mutex<Pending>,
    has_pending: AtomicBool,
}

/// What a call to [`Driver::turn`] saw.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Turn {
    /// Events handled (wake-up trigger included).
    pub(crate) events: usize,
    /// Whether the driver's wake-up knote fired.
    pub(crate) woken: bool,
}

impl Driver {
    pub(crate) fn new() -> io::Result<Driver> {
        // Readiness is all an executor needs: the shim then skips the per-event `data`
        // measurements (see the reactor's `KqueueBuilder::exact_data`).
        let kq = Kqueue::builder().exact_data(false).build()?;
        kq.apply(&[Kevent::user(
            WAKE_IDENT,
            Flags::ADD | Flags::CLEAR,
            0,
            WAKE_UDATA,
        )])?;
        Ok(Driver {
            kq,
            slots: Slots::new(),
            pending: Mutex::new(Pending::default()),
            has_pending: AtomicBool::new(false),
        })
    }

    /// The kqueue (for its pollable fd).
    pub(crate) fn kqueue(&self) -> &Kqueue {
        &self.kq
    }

    /// Wakes whoever waits in [`turn`](Driver::turn) (or makes the next wait return at once).
    pub(crate) fn wake(&self) {
        let trigger = Kevent::trigger(WAKE_IDENT, WAKE_UDATA);
        // A trigger on our own knote fails only if the kqueue itself is gone; the waiter then
        // has nothing to wait on either.
        let _ = self.kq.kevent(&[trigger], &mut [], Some(Duration::ZERO));
    }

    pub(crate) fn slot(&self, token: Token) -> &Slot {
        self.slots
            .get(token.index())
            .expect("a live token names an allocated slot")
    }

    pub(crate) fn alloc(&self) -> (Token, &Slot) {
        self.slots.alloc()
    }

    /// Registers fd readiness knotes for a new slot. READ and WRITE go in one change list, both
    /// EV_CLEAR (edge-triggered: one event per new readiness, which the slot's bits remember
    /// until an operation reports EAGAIN).
    pub(crate) fn register_fd(&self, fd: i32, read: bool, write: bool) -> io::Result<Token> {
        let (token, _) = self.alloc();
        let mut changes = [Kevent::zeroed(); 2];
        let mut n = 0;
        let flags = Flags::ADD | Flags::CLEAR;
        if read {
            changes[n] = Kevent::read(fd, flags, token.udata());
            n += 1;
        }
        if write {
            changes[n] = Kevent::write(fd, flags, token.udata());
            n += 1;
        }
        match self.kq.apply(&changes[..n]) {
            Ok(()) => Ok(token),
            Err(err) => {
                // One of the two may have been added: delete both, ignore what was not there.
                self.deregister_fd(fd, token, read, write);
                Err(err)
            }
        }
    }

    /// Registers any other knote (signal, process, user, vnode) for a new slot.
    pub(crate) fn register_other(&self, change: Kevent) -> io::Result<Token> {
        let (token, _) = self.alloc();
        match self.kq.apply(&[change.with_udata(token.udata())]) {
            Ok(()) => Ok(token),
            Err(err) => {
                self.slots.release(token);
                Err(err)
            }
        }
    }

    /// Deletes an fd's knotes and releases the slot. Call before the fd is closed.
    pub(crate) fn deregister_fd(&self, fd: i32, token: Token, read: bool, write: bool) {
        let mut changes = [Kevent::zeroed(); 2];
        let mut n = 0;
        if read {
            changes[n] = Kevent::read(fd, Flags::DELETE, 0);
            n += 1;
        }
        if write {
            changes[n] = Kevent::write(fd, Flags::DELETE, 0);
            n += 1;
        }
        // ENOENT / EBADF are fine: the knote is gone either way.
        let _ = self.kq.apply(&changes[..n]);
        self.slots.release(token);
    }

    /// Deletes a knote registered with [`register_other`](Driver::register_other) and
    /// releases the slot.
    pub(crate) fn deregister_other(&self, change: Kevent, token: Token) {
        let _ = self.kq.apply(&[change.with_flags(Flags::DELETE)]);
        self.slots.release(token);
    }

    /// Arms the timer of `token`'s slot for `deadline`; `rearm` if it may be armed already
    /// (EV_ADD on an armed knote re-arms it).
    pub(crate) fn arm_timer(&self, token: Token, deadline: Instant, rearm: bool) {
        self.queue(|p| {
            p.arms.push((token, deadline));
            p.rearmed |= rearm;
        });
    }

    /// Cancels the timer of `token`'s slot and releases the slot once the delete is applied.
    pub(crate) fn cancel_timer(&self, token: Token) {
        self.queue(|p| p.deletes.push(token));
    }

    /// Releases a slot whose knotes are already gone (a fired one-shot timer).
    pub(crate) fn release(&self, token: Token) {
        self.slots.release(token);
    }

    fn queue(&self, change: impl FnOnce(&mut Pending)) {
        change(&mut self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        self.has_pending.store(true, Ordering::Release);
        if !context::drives(self) && !context::batching() {
            // The thread that drives this kqueue may be asleep in it: apply the list now.
            self.flush();
        }
    }

    /// Applies the pending changes without collecting any event (`Kqueue::apply` takes only
    /// receipts; collecting here could swallow the wake-up trigger meant for the thread asleep
    /// in this kqueue).
    pub(crate) fn flush(&self) {
        let mut changes = Vec::new();
        let mut releases = Vec::new();
        self.take_pending(&mut changes, &mut releases);
        // Failures (a delete of a timer that already fired) are expected and harmless.
        let _ = self.kq.apply(&changes);
        for token in releases {
            self.slots.release(token);
        }
    }

    /// Whether a poll of the kqueue could find anything for a task: some registration or
    /// timer is alive, or changes wait to be submitted. When not, the schedulers skip their
    /// periodic zero-timeout poll (a system call that could only find the wake-up trigger,
    /// which matters to a thread about to sleep, and sleeping polls anyway).
    pub(crate) fn has_registrations(&self) -> bool {
        self.slots.live() > 0 || self.has_pending()
    }

    /// Whether changes wait for the next `kevent`.
    pub(crate) fn has_pending(&self) -> bool {
        self.has_pending.load(Ordering::Acquire)
    }

    /// Takes the pending changes as kevents (timers made relative to now), and the slots to
    /// release once they are applied.
    fn take_pending(&self, changes: &mut Vec<Kevent>, releases: &mut Vec<Token>) {
        if !self.has_pending.load(Ordering::Acquire) {
            return;
        }
        let mut list = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            self.has_pending.store(false, Ordering::Release);
            std::mem::take(&mut *pending)
        };
        if list.is_empty() {
            return;
        }
        if list.rearmed {
            // The last arm of each slot wins: reverse, stable-sort by slot, keep the first.
            list.arms.reverse();
            list.arms.sort_by_key(|(token, _)| token.index());
            list.arms.dedup_by_key(|(token, _)| token.index());
        }
        // Arms go in deadline order: the backend stamps each change with the clock as it
        // applies it, and deadlines already past all become "1 ns from now", so only deadline
        // order makes timers fire in deadline order. (Usually already sorted: a batch is
        // mostly sleeps of one length armed one after another.)
        if !list.arms.windows(2).all(|w| w[0].1 <= w[1].1) {
            list.arms.sort_by_key(|&(_, deadline)| deadline);
        }
        let now = Instant::now();
        for (token, deadline) in list.arms {
            // At least 1 ns: a zero interval means "no timer" to some kqueues.
            let ns = deadline
                .saturating_duration_since(now)
                .as_nanos()
                .clamp(1, i64::MAX as u128) as i64;
            changes.push(Kevent::new(
                token.index() as usize,
                Filter::TIMER,
                Flags::ADD | Flags::ONESHOT,
                note::NSECONDS,
                ns,
                token.udata(),
            ));
        }
        // Deletes last: a slot armed and dropped within one batch gets its arm, then its
        // delete, in that order (arms of other slots do not care where a delete goes).
        for token in list.deletes {
            changes.push(Kevent::new(
                token.index() as usize,
                Filter::TIMER,
                Flags::DELETE,
                0,
                0,
                0,
            ));
            releases.push(token);
        }
    }

    /// Submits pending changes and waits up to `timeout` for events, then dispatches them:
    /// readiness bits set, wakers woken. `events` is the caller's event list (one per thread,
    /// so several threads may turn one driver at once).
    pub(crate) fn turn(
        &self,
        events: &mut [Kevent],
        timeout: Option<Duration>,
    ) -> io::Result<Turn> {
        let mut changes = Vec::new();
        let mut releases = Vec::new();
        self.take_pending(&mut changes, &mut releases);
        // A failed change takes an entry of the event list; with no room left kevent would stop
        // applying the rest. Apply any excess first, as receipts, so every change lands.
        let excess = changes.len().saturating_sub(events.len().max(1));
        let (first, rest) = changes.split_at(excess);
        if !first.is_empty() {
            let _ = self.kq.apply(first);
        }
        let result = self.kq.kevent(rest, events, timeout);
        // The changes are applied whether the wait succeeded or was interrupted.
        for token in releases {
            self.slots.release(token);
        }
        let n = match result {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        let mut turn = Turn {
            events: n,
            woken: false,
        };
        for ev in &events[..n] {
            if ev.udata() == WAKE_UDATA {
                turn.woken = true;
            } else {
                self.dispatch(ev);
            }
        }
        Ok(turn)
    }

    fn dispatch(&self, ev: &Kevent) {
        let token = Token::from_udata(ev.udata());
        let Some(slot) = self.slots.get(token.index()) else {
            return;
        };
        let generation = token.generation();
        if ev.is_error() {
            // A failed change of ours (a timer delete that found nothing is the common one:
            // the timer fired first). Errors on registrations surface through the operation.
            if ev.filter() == Filter::TIMER || ev.data() == i64::from(libc::ENOENT) {
                return;
            }
            slot.notify(generation, ready::ERROR | ready::READABLE | ready::WRITABLE);
            return;
        }
        let filter = ev.filter();
        if filter == Filter::READ {
            let mut bits = ready::READABLE;
            if ev.is_eof() {
                bits |= ready::READ_CLOSED;
            }
            slot.notify(generation, bits);
        } else if filter == Filter::WRITE {
            let mut bits = ready::WRITABLE;
            if ev.is_eof() {
                bits |= ready::WRITE_CLOSED;
            }
            slot.notify(generation, bits);
        } else if filter == Filter::TIMER {
            if slot.set_ready(generation, ready::TIMER) {
                slot.reader.wake();
            }
        } else {
            // The payload is written only if the generation still matches, in one step with
            // setting EVENT (see `Slot::notify_event`): a stale event's count never lands in
            // the slot's next owner.
            slot.notify_event(generation, ev.data(), ev.fflags(), filter == Filter::SIGNAL);
        }
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").field("kq", &self.kq).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// An event as a wait returns it: no flags but those the kernel sets.
    fn event(
        ident: usize,
        filter: Filter,
        flags: Flags,
        fflags: u32,
        data: i64,
        token: Token,
    ) -> Kevent {
        Kevent::new(ident, filter, flags, fflags, data, token.udata())
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_stale_event_touches_nothing_of_the_slots_next_owner() {
        // An event collected for a registration that was dropped before it was dispatched
        // (another thread's event list, or later in this one) meets the slot's next owner.
        let driver = Driver::new().unwrap();
        let (old, _) = driver.alloc();
        driver.release(old);
        let (new, slot) = driver.alloc();
        assert_eq!(
            old.index(),
            new.index(),
            "the free list hands the index out again"
        );
        assert_ne!(old.generation(), new.generation());
        let stale = [
            event(
                libc::SIGUSR1 as usize,
                Filter::SIGNAL,
                Flags::CLEAR,
                0,
                7,
                old,
            ),
            event(9, Filter::USER, Flags::CLEAR, 0x5, 42, old),
            event(3, Filter::READ, Flags::CLEAR | Flags::EOF, 0, 100, old),
            event(3, Filter::WRITE, Flags::CLEAR, 0, 100, old),
            event(
                3,
                Filter::READ,
                Flags::ERROR,
                0,
                i64::from(libc::EBADF),
                old,
            ),
        ];
        for ev in &stale {
            driver.dispatch(ev);
        }
        assert_eq!(slot.snapshot(new.generation()).bits, 0, "stale readiness");
        assert_eq!(
            slot.take_event(true),
            (0, 0),
            "a stale event's payload landed"
        );
        // The same events with the live token do land.
        driver.dispatch(&event(
            libc::SIGUSR1 as usize,
            Filter::SIGNAL,
            Flags::CLEAR,
            0,
            2,
            new,
        ));
        driver.dispatch(&event(
            libc::SIGUSR1 as usize,
            Filter::SIGNAL,
            Flags::CLEAR,
            0,
            3,
            new,
        ));
        assert_eq!(slot.snapshot(new.generation()).bits, ready::EVENT);
        assert_eq!(
            slot.take_event(true),
            (5, 0),
            "signal deliveries add up until taken"
        );
        driver.dispatch(&event(9, Filter::USER, Flags::CLEAR, 0x5, 42, new));
        assert_eq!(slot.take_event(false), (42, 0x5));
        driver.release(new);
    }
}
