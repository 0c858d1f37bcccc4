//! The epoll shim: kqueue's semantics on Linux.
//!
//! One kqueue is one epoll instance plus user-space knotes:
//!
//! ```text
//!   epfd (the kqueue's fd) ── wake eventfd ...... readable iff the ready queue is non-empty
//!        │                 ── user fds ......... READ/WRITE: EPOLLET, one registration per fd
//!        │                 ── inner epoll ....... READ/WRITE: WRITE of fds whose modes differ
//!        │                 ── timerfd ........... TIMER: armed at the earliest deadline
//!        │                 ── signal eventfd .... SIGNAL: shared, written by the counting handler
//!        │                 ── pidfds ............ PROC: one per knote (EPOLLONESHOT)
//!        └──────────────── ── inotify fd ........ VNODE: one per kqueue, a watch per inode
//!   State (one mutex): knotes (slab), ident table, ready queue (FIFO of knote refs), and each
//!   filter's per-kqueue state (`Shared`: the fd table, the timer heap, …).
//! ```
//!
//! kqueue's model carries over directly: sources *activate* knotes, which go on a FIFO ready
//! queue (at most once each); `kevent` pops from it, asks the knote's filter what it reports now,
//! and delivers. The code is organised the way `kern_event.c` is: the generic phases —
//! applying a change (`changes.rs`, FreeBSD's `kqueue_register`) and collecting
//! (`collect.rs`, `kqueue_scan`) — call each filter through one interface (`filter.rs`, FreeBSD's
//! `struct filterops`), and each filter lives in a file of its own: `read_write.rs`, `timer.rs`,
//! `user.rs`, `signal.rs`, `proc.rs`, `vnode.rs`. The `filter_table!` below is the one place a filter is
//! wired in; `filter.rs` says how to add one.
//!
//! Every epoll token carries, in its top bits, the table entry of the filter that registered it
//! (kind 0 is the kqueue's own wake eventfd), so each report goes back to its filter.

mod abi;
mod changes;
mod collect;
mod fdinfo;
#[macro_use]
mod filter;
mod knote;
mod os;
mod sigcount;
mod timer_heap;

pub(crate) use abi::*;

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use slab::Slab;

use self::filter::{
    Attached, Delivery, FilterOps, Member, Outcome, TOKEN_CORE, TOKEN_PAYLOAD_BITS,
    TOKEN_PAYLOAD_MASK,
};
use self::knote::Knote;
use super::Options;
use crate::Kevent;

// The filter table: the one place a filter is wired in (see `filter.rs`). Each line declares the
// filter's module and gives it a variant of `Ext` (its knote state), a `FilterId` (its epoll
// token kind) and a field of `Shared` (its per-kqueue state). Table order is the order of
// `prepare_scan` and `sync`: timers expire before fd knotes are re-checked.
filter_table! {
    timer: Timer => timer::Timer,
    read_write: ReadWrite => read_write::ReadWrite,
    user: User => user::User,
    signal: Signal => signal::Signal,
    process: Proc => proc::Proc,
    vnode: Vnode => vnode::Vnode,
}

/// How many epoll events one wait harvests at most (on the stack).
const HARVEST: usize = 256;

/// Generations (of knotes and fd registrations), as they fit in an epoll token's payload beside
/// a 32-bit index and a filter's flag bit.
const GEN_MASK: u32 = (1 << 27) - 1;

/// The core's one token: the wake eventfd.
const WAKE_TOKEN: u64 = TOKEN_CORE << TOKEN_PAYLOAD_BITS;

/// A ready-queue entry: knote index and generation.
type KnoteRef = (usize, u32);

/// Everything behind the kqueue's one lock.
struct State {
    knotes: Slab<Knote>,
    /// Knotes by `(filter, ident)`, for the filters that index them there (all but READ/WRITE,
    /// which keep their fd table).
    idents: HashMap<(i32, usize), usize, IdentHasher>,
    ready: VecDeque<KnoteRef>,
    /// The wake eventfd is signalled (mirrors `!ready.is_empty()` between calls).
    woken: bool,
    next_gen: u32,
    /// Each filter's per-kqueue state.
    filters: Shared,
}

/// The kqueue of the Linux backend.
pub(crate) struct Selector {
    epfd: OwnedFd,
    wake: OwnedFd,
    exact: bool,
    state: Mutex<State>,
}

impl Selector {
    pub(crate) fn new(options: &Options) -> io::Result<Selector> {
        let epfd = os::epoll_create()?;
        let wake = os::eventfd()?;
        // The wake eventfd is level-triggered: it keeps the kqueue's fd readable for as long as
        // events are queued.
        os::epoll_ctl(
            epfd.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            wake.as_raw_fd(),
            libc::EPOLLIN as u32,
            WAKE_TOKEN,
        )?;
        let mut filters = Shared::default();
        dispatch::init(&mut filters, epfd.as_raw_fd())?;
        Ok(Selector {
            epfd,
            wake,
            exact: options.exact_data,
            state: Mutex::new(State {
                knotes: Slab::new(),
                idents: HashMap::default(),
                ready: VecDeque::new(),
                woken: false,
                next_gen: 0,
                filters,
            }),
        })
    }

    pub(crate) fn as_raw_fd(&self) -> RawFd {
        self.epfd.as_raw_fd()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is kept consistent at every point a panic could unwind from, so a poisoned
        // lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn kevent(
        &self,
        changes: &[Kevent],
        events: &mut [Kevent],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let mut state = self.lock();
        let mut n = 0;
        let mut receipts = false;
        for change in changes {
            let change = change.0;
            let result = state.apply(self, &change);
            let wants_entry = result.is_err() || change.flags() & EV_RECEIPT != 0;
            if !wants_entry {
                continue;
            }
            let errno = result.err().unwrap_or(0);
            if n == events.len() {
                // No room to report it: the call fails with this errno (a receipt for a
                // successful change has nothing to fail with) and the rest is not applied.
                self.sync_and_unlock(state)?;
                if errno != 0 {
                    return Err(io::Error::from_raw_os_error(errno));
                }
                return Ok(n);
            }
            // FreeBSD writes the change back with flags = EV_ERROR exactly.
            let mut entry = change;
            entry.set_flags(EV_ERROR);
            entry.set_data(i64::from(errno));
            events[n] = Kevent(entry);
            n += 1;
            receipts = true;
        }
        if receipts || events.is_empty() {
            // kqueue returns error and receipt entries at once, without collecting events.
            self.sync_and_unlock(state)?;
            return Ok(n);
        }
        self.collect(state, events, timeout)
    }

    /// Waits for and delivers events; the lock is released while blocked in epoll.
    fn collect<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        events: &mut [Kevent],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let deadline = timeout
            .map(|t| os::now_ns().saturating_add(u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)));
        let mut buf = [MaybeUninit::<libc::epoll_event>::uninit(); HARVEST];
        let max = events.len().clamp(1, HARVEST);
        // Harvest without blocking first only when something is queued already (its delivery
        // must not wait); otherwise the one epoll_wait below is the only system call.
        let mut looked = false;
        if !state.ready.is_empty() {
            if let Ok(got) =
                os::epoll_wait(self.epfd.as_raw_fd(), &mut buf[..max], Some(Duration::ZERO))
            {
                self.process_reports(&mut state, &buf[..got]);
            }
            looked = true;
        }
        loop {
            let n = self.scan(&mut state, events);
            if n > 0 {
                self.sync_and_unlock(state)?;
                return Ok(n);
            }
            let remaining = match deadline {
                None => None,
                Some(d) => {
                    let now = os::now_ns();
                    if looked && now >= d {
                        self.sync_and_unlock(state)?;
                        return Ok(0);
                    }
                    Some(Duration::from_nanos(d.saturating_sub(now)))
                }
            };
            // Any kqueue's observed-and-ignored signal can interrupt this wait: snapshot always.
            let signals_before = sigcount::deliveries();
            self.sync_and_unlock(state)?;
            let got = os::epoll_wait(self.epfd.as_raw_fd(), &mut buf[..max], remaining);
            state = self.lock();
            looked = true;
            match got {
                Ok(mut got) => {
                    self.process_reports(&mut state, &buf[..got]);
                    // The stack buffer holds HARVEST reports; a longer event list is filled
                    // from further non-blocking looks, as kqueue fills it in one call. Only
                    // while looks queue something: a report that queues nothing (the wake
                    // eventfd, level-triggered, is in every look while it is readable) would
                    // otherwise make this loop forever, holding the lock, for an event list no
                    // longer than the buffer.
                    while got == max && events.len() > max && state.ready.len() < events.len() {
                        let before = state.ready.len();
                        got = os::epoll_wait(
                            self.epfd.as_raw_fd(),
                            &mut buf[..max],
                            Some(Duration::ZERO),
                        )
                        .unwrap_or(0);
                        self.process_reports(&mut state, &buf[..got]);
                        if state.ready.len() == before {
                            break;
                        }
                    }
                }
                Err(e)
                    if e.kind() == io::ErrorKind::Interrupted
                        && sigcount::interruption_was_silent(signals_before) =>
                {
                    // Only an ignored signal we observe for a SIGNAL knote interrupted the
                    // wait; kqueue would not have been interrupted, so wait on.
                }
                Err(e) => {
                    // A broken wake eventfd is the worse news of the two.
                    self.sync_and_unlock(state)?;
                    return Err(e);
                }
            }
        }
    }

    /// Brings the kernel side in line with the state before the lock is released: the wake
    /// eventfd readable iff events are queued, and each filter's `sync` (the timerfd armed at the
    /// earliest deadline).
    /// A failed drain of the wake eventfd (it is not open any more) is returned.
    #[must_use = "the wake eventfd must be signalled after unlocking when this says so"]
    fn sync(&self, state: &mut State) -> io::Result<bool> {
        // Entries of knotes deleted since they were queued are dead weight; dropping them from
        // both ends keeps a change-only caller's queue from growing and the fd from reading as
        // readable for nothing.
        while let Some(&(idx, gen)) = state.ready.front() {
            if state.is_live(idx, gen) {
                break;
            }
            state.ready.pop_front();
        }
        while let Some(&(idx, gen)) = state.ready.back() {
            if state.is_live(idx, gen) {
                break;
            }
            state.ready.pop_back();
        }
        let pending = !state.ready.is_empty();
        let mut signal = false;
        let mut drained = Ok(());
        if pending != state.woken {
            if pending {
                // Written by the caller once the lock is released: a waiter woken by the write
                // goes straight for this lock, and would find it held (a futex round trip per
                // cross-thread wake-up, measured). Writing late can leave the eventfd
                // readable with nothing queued (a consumer drained in between); `wake_report`
                // drains such a stale signal.
                signal = true;
            } else {
                drained = os::eventfd_drain(self.wake.as_raw_fd());
            }
            state.woken = pending;
        }
        dispatch::sync(state);
        drained.map(|()| signal)
    }

    /// `sync`, unlock, then the eventfd write `sync` asked for. Fails with the wake eventfd's
    /// error (the kqueue is broken then: that is the error the call reports).
    fn sync_and_unlock(&self, mut state: MutexGuard<'_, State>) -> io::Result<()> {
        let signal = self.sync(&mut state);
        drop(state);
        if signal? {
            os::eventfd_signal(self.wake.as_raw_fd())?;
        }
        Ok(())
    }

    /// The wake eventfd was reported readable: so it is, whatever `woken` said (a late write,
    /// see `sync`). Recorded, the `sync` before the lock is released drains it if nothing is
    /// queued any more, so that it does not keep the kqueue's fd readable for nothing, and
    /// reports a failed drain.
    fn wake_report(&self, state: &mut State) {
        state.woken = true;
    }
}

impl State {
    #[inline]
    fn next_gen(&mut self) -> u32 {
        self.next_gen = (self.next_gen + 1) & GEN_MASK;
        if self.next_gen == 0 {
            self.next_gen = 1;
        }
        self.next_gen
    }

    /// Whether a ready-queue entry still stands for a queued knote.
    #[inline]
    fn is_live(&self, idx: usize, gen: u32) -> bool {
        self.knotes
            .get(idx)
            .is_some_and(|kn| kn.gen == gen && kn.queued)
    }

    /// Marks knote `idx` as fired and queues it unless it is disabled or already queued
    /// (FreeBSD's `KNOTE_ACTIVATE`).
    #[inline]
    fn activate(&mut self, idx: usize) {
        activate_knote(&mut self.ready, idx, &mut self.knotes[idx]);
    }

    /// Removes a knote and everything that points at it (queue entries die by generation).
    #[inline]
    fn remove_knote(&mut self, idx: usize) {
        let kn = self.knotes.remove(idx);
        dispatch::detach(self, idx, &kn);
    }

    /// Makes knote `idx` findable by `(filter, ident)`.
    #[inline]
    fn link_ident(&mut self, idx: usize) {
        let kn = &self.knotes[idx];
        self.idents.insert((kn.filter, kn.ident), idx);
    }

    /// Forgets the ident-table entry of `kn`.
    #[inline]
    fn unlink_ident(&mut self, kn: &Knote) {
        self.idents.remove(&(kn.filter, kn.ident));
    }
}

/// `State::activate` for a knote the caller has already looked up (`kn` is knote `idx`): a
/// filter's report path that updates the knote's own state first activates it without a second
/// slab lookup.
#[inline]
fn activate_knote(ready: &mut VecDeque<KnoteRef>, idx: usize, kn: &mut Knote) {
    kn.active = true;
    if !kn.disabled && !kn.queued {
        kn.queued = true;
        ready.push_back((idx, kn.gen));
    }
}

#[cfg(test)]
mod tests;

/// The hasher of the non-fd knote table (timers, user events, signals, processes), keyed by
/// `(filter, ident)`.
///
/// kqueue hashes these idents too (FreeBSD's `kq_knhash`), with a plain multiplicative hash.
/// The keys are chosen by the program that owns the kqueue, so there is no adversary to
/// defend against with SipHash, whose cost showed up as the largest item in a 100,000-timer
/// profile. This is the Fx hash (rustc's): a rotate, an xor and a multiply per word.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }

    fn write_i32(&mut self, word: i32) {
        self.write_u64(word as u32 as u64);
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

type IdentHasher = BuildHasherDefault<FxHasher>;
