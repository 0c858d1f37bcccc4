//! The driver: one kqueue, the slot arena its events lead into, and the change list that rides
//! along with its next wait.
//!
//! A runtime thread calls [`Driver::turn`] to wait; each event's `udata` is a [`Token`] that
//! names a slot; the slot's readiness is set and the waker parked there is woken, which
//! schedules the task. Cross-thread wake-ups of a sleeping thread are one EVFILT_USER knote
//! (`NOTE_TRIGGER`), sent only by whoever finds the thread asleep (the runtimes coalesce them).
//!
//! Changes: I/O registrations are applied at once (the caller wants to know whether the fd can
//! be registered at all, EBADF included). Timers are not knotes: they live in the driver's
//! [`Timers`] (`time::driver`), which shortens each wait to the earliest deadline, fires what
//! is due after it, and keeps one EVFILT_TIMER knote armed for the earliest deadline (its
//! change rides along with the wait), so that the kqueue's fd is readable when a timer is due
//! even to a host that polls it.

pub(crate) mod slots;
mod waiters;

use std::io;
use std::time::Duration;

use knote_reactor::{Filter, Flags, Kevent, Kqueue};

use slots::Slots;
pub(crate) use slots::{ready, Direction, Slot, Snapshot, Token, WaitKey};

use crate::time::driver::{Timers, KNOTE_UDATA};

/// `udata` of the driver's own EVFILT_USER knote (ident 0): never a valid token, whose
/// generation would have to be 2^32 - 1 with index 2^32 - 1.
const WAKE_UDATA: usize = usize::MAX;
const WAKE_IDENT: usize = 0;

/// The alarm's EVFILT_TIMER knote ([`Driver::alarm`]): its ident (the timers' knote has 0) and
/// `udata` (never a valid token, nor the wake-up's or the timers' knote's).
const ALARM_IDENT: usize = 1;
const ALARM_UDATA: usize = usize::MAX - 2;

/// See the module docs.
pub(crate) struct Driver {
    kq: Kqueue,
    slots: Slots,
    timers: Timers,
}

/// What a call to [`Driver::turn`] saw.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Turn {
    /// Events handled (wake-up trigger included).
    pub(crate) events: usize,
    /// Whether the driver's wake-up knote fired.
    pub(crate) woken: bool,
    /// Whether the alarm ([`Driver::alarm`]) fired.
    pub(crate) alarm: bool,
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
            timers: Timers::new(),
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

    /// Arms the alarm: a one-shot timer that fires `after` from now, which the wait that
    /// collects it reports ([`Turn::alarm`]), from any thread. (The multi-thread runtime's
    /// guard against stuck workers, `runtime/attend.rs`: it is armed on a sleeping worker's own
    /// kqueue, which has no timers of its own.)
    pub(crate) fn alarm(&self, after: Duration) -> io::Result<()> {
        self.kq.apply(&[Kevent::timer_every(
            ALARM_IDENT,
            Flags::ADD | Flags::ONESHOT,
            after,
            ALARM_UDATA,
        )])
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

    /// Adds the EVFILT_WRITE knote (EV_CLEAR) of an fd registered with `register_fd` without
    /// one, at once (not riding a wait): kqueue evaluates an added knote on attach, and the
    /// epoll shim queues it for a look at its next scan, signalling its wake eventfd, so a
    /// thread asleep in [`turn`](Driver::turn) collects the event if the fd is writable now.
    pub(crate) fn add_write(&self, fd: i32, token: Token) -> io::Result<()> {
        self.kq
            .apply(&[Kevent::write(fd, Flags::ADD | Flags::CLEAR, token.udata())])
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

    /// This driver's timers.
    pub(crate) fn timers(&self) -> &Timers {
        &self.timers
    }

    /// Whether a poll of the kqueue could find anything for a task: some registration or
    /// timer is alive. When not, the schedulers skip their periodic zero-timeout poll (a
    /// system call that could only find the wake-up trigger, which matters to a thread about
    /// to sleep, and sleeping polls anyway).
    pub(crate) fn has_registrations(&self) -> bool {
        self.slots.live() > 0 || self.timers.has_timers()
    }

    /// Whether timers armed since the last turn wait to be taken in.
    pub(crate) fn has_pending(&self) -> bool {
        self.timers.has_queued()
    }

    /// For a thread that leaves this kqueue to another's wait (an embedding host polling its
    /// fd, a runtime shutting down): takes in the timers armed since the last turn, fires
    /// what is due, and arms the timer knote for the earliest deadline, so that the kqueue's
    /// fd is readable when it comes. Collects no event (`Kqueue::apply` takes only receipts;
    /// collecting here could swallow the wake-up trigger meant for a thread asleep in it).
    pub(crate) fn flush(&self) {
        if let Some(arm) = self.timers.leave() {
            self.timers.arm_result(self.kq.apply(&[arm]));
        }
    }

    /// Waits up to `timeout` (shortened to the earliest timer's deadline) for events, then
    /// dispatches them (readiness bits set, wakers woken) and fires the timers that are due.
    /// `events` is the caller's event list (one per thread, so several threads may turn one
    /// driver at once).
    pub(crate) fn turn(
        &self,
        events: &mut [Kevent],
        timeout: Option<Duration>,
    ) -> io::Result<Turn> {
        self.turn_then(events, timeout, &|| ())
    }

    /// [`turn`](Driver::turn), calling `returned` as soon as the wait returns, before anything
    /// is dispatched: a runtime marks itself awake there, so that the wakers its own events run
    /// (on this thread) do not take it for asleep and trigger its kqueue. (`dyn`: one body for
    /// every caller, which keeps the event loop's inlining as it is in `turn`.)
    pub(crate) fn turn_then(
        &self,
        events: &mut [Kevent],
        timeout: Option<Duration>,
        returned: &dyn Fn(),
    ) -> io::Result<Turn> {
        let wait = self.timers.before_wait(timeout);
        let changes = wait.arm.as_slice();
        let result = self.kq.kevent(changes, events, wait.timeout);
        returned();
        let n = match result {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => {
                if !changes.is_empty() {
                    // Whether the arm landed is unknown: it is reported as refused, with the
                    // cause, rather than left to hang a Sleep.
                    self.timers
                        .knote_failed(io::Error::new(e.kind(), e.to_string()));
                }
                self.timers.after_wait(&wait, true);
                return Err(e);
            }
        };
        let mut turn = Turn {
            events: n,
            woken: false,
            alarm: false,
        };
        let mut found = false;
        let mut i = 0;
        while i < n {
            let ev = &events[i];
            i += 1;
            match ev.udata() {
                WAKE_UDATA => turn.woken = true,
                ALARM_UDATA => turn.alarm = true,
                KNOTE_UDATA => {
                    if ev.is_error() {
                        let errno = i32::try_from(ev.data()).unwrap_or(libc::EINVAL);
                        self.timers
                            .knote_failed(io::Error::from_raw_os_error(errno));
                    } else {
                        self.timers.knote_fired();
                    }
                }
                _ => {
                    found = true;
                    i += self.dispatch_run(&events[i - 1..n]) - 1;
                }
            }
        }
        self.timers
            .after_wait(&wait, found || turn.woken || turn.alarm);
        Ok(turn)
    }

    /// Dispatches `evs[0]`, together with `evs[1]` when both are readiness events of one
    /// registration (an fd's READ and WRITE knotes, which a wait reports side by side when both
    /// fired: the epoll shim turns one epoll event into both): one readiness update and one
    /// wake-up pass for the two, as if a single event had set both bits. Returns how many
    /// events it took.
    fn dispatch_run(&self, evs: &[Kevent]) -> usize {
        let ev = &evs[0];
        // Readiness, the common case, is decoded once here; the rest goes to `dispatch`.
        let Some(bits) = fd_readiness(ev) else {
            self.dispatch(ev);
            return 1;
        };
        let more = evs
            .get(1)
            .filter(|next| next.udata() == ev.udata())
            .and_then(fd_readiness);
        self.notify_fd(ev.udata(), bits | more.unwrap_or(0));
        if more.is_some() {
            2
        } else {
            1
        }
    }

    /// Sets readiness `bits` on the registration `udata` names, waking its waiters (nothing,
    /// for a registration dropped since: its generation no longer matches).
    #[inline]
    fn notify_fd(&self, udata: usize, bits: u16) {
        let token = Token::from_udata(udata);
        if let Some(slot) = self.slots.get(token.index()) {
            slot.notify(token.generation(), bits);
        }
    }

    fn dispatch(&self, ev: &Kevent) {
        if let Some(bits) = fd_readiness(ev) {
            self.notify_fd(ev.udata(), bits);
            return;
        }
        let token = Token::from_udata(ev.udata());
        let Some(slot) = self.slots.get(token.index()) else {
            return;
        };
        let generation = token.generation();
        if ev.is_error() {
            // A failed change of ours (a delete of a knote already gone). Errors on
            // registrations surface through the operation.
            if ev.data() == i64::from(libc::ENOENT) {
                return;
            }
            slot.notify(generation, ready::ERROR | ready::READABLE | ready::WRITABLE);
            return;
        }
        // The payload is written only if the generation still matches, in one step with
        // setting EVENT (see `Slot::notify_event`): a stale event's count never lands in the
        // slot's next owner.
        let signal = ev.filter() == Filter::SIGNAL;
        slot.notify_event(generation, ev.data(), ev.fflags(), signal);
    }
}

/// The readiness bits of a READ or WRITE event that is not a change's error entry.
fn fd_readiness(ev: &Kevent) -> Option<u16> {
    if ev.is_error() {
        return None;
    }
    let filter = ev.filter();
    if filter == Filter::READ {
        let closed = if ev.is_eof() { ready::READ_CLOSED } else { 0 };
        Some(ready::READABLE | closed)
    } else if filter == Filter::WRITE {
        let closed = if ev.is_eof() { ready::WRITE_CLOSED } else { 0 };
        Some(ready::WRITABLE | closed)
    } else {
        None
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
        driver.slots.release(old);
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
        driver.slots.release(new);
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn an_fds_read_and_write_events_side_by_side_are_one_update() {
        let driver = Driver::new().unwrap();
        let (a, slot_a) = driver.alloc();
        let (b, slot_b) = driver.alloc();
        let ticks = |slot: &Slot, token: Token| slot.snapshot(token.generation()).tick();
        let (a0, b0) = (ticks(slot_a, a), ticks(slot_b, b));
        let pair = [
            event(3, Filter::READ, Flags::CLEAR, 0, 64, a),
            event(3, Filter::WRITE, Flags::CLEAR | Flags::EOF, 0, 100, a),
            event(4, Filter::READ, Flags::CLEAR, 0, 64, b),
        ];
        assert_eq!(driver.dispatch_run(&pair), 2, "the pair is taken at once");
        assert_eq!(
            slot_a.snapshot(a.generation()).bits,
            ready::READABLE | ready::WRITABLE | ready::WRITE_CLOSED
        );
        assert_eq!(
            ticks(slot_a, a),
            a0.wrapping_add(1),
            "one update for the pair"
        );
        // Another registration's event next to it is its own.
        assert_eq!(driver.dispatch_run(&pair[2..]), 1);
        assert_eq!(ticks(slot_b, b), b0.wrapping_add(1));
        let apart = [
            event(4, Filter::WRITE, Flags::CLEAR, 0, 100, b),
            event(3, Filter::READ, Flags::CLEAR, 0, 64, a),
        ];
        assert_eq!(driver.dispatch_run(&apart), 1, "different registrations");
        // An error entry is never merged: it carries an errno, not readiness.
        let with_error = [
            event(3, Filter::READ, Flags::CLEAR, 0, 64, a),
            event(3, Filter::WRITE, Flags::ERROR, 0, i64::from(libc::EBADF), a),
        ];
        assert_eq!(driver.dispatch_run(&with_error), 1);
        assert_eq!(driver.dispatch_run(&with_error[1..]), 1);
        assert_ne!(slot_a.snapshot(a.generation()).bits & ready::ERROR, 0);
        driver.slots.release(a);
        driver.slots.release(b);
    }
}
