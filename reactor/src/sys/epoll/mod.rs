//! The epoll shim: kqueue's semantics on Linux.
//!
//! One kqueue is one epoll instance plus user-space knotes:
//!
//! ```text
//!   epfd (the kqueue's fd) ── user fds ......... EPOLLET, one registration per fd
//!        │                 ── inner epoll ....... WRITE of fds whose READ/WRITE modes differ
//!        │                 ── timerfd ........... armed at the earliest timer deadline
//!        │                 ── wake eventfd ...... readable iff the ready queue is non-empty
//!        │                 ── signal eventfd .... shared, written by the counting handler
//!        │                 ── inotify fd ........ VNODE knotes' watches, one per inode (vnode.rs)
//!        └──────────────── ── pidfds ............ one per PROC knote (EPOLLONESHOT)
//!   State (one mutex): knotes (slab), fd table (Vec by fd), ident map for the rest,
//!   ready queue (FIFO of knote refs), timer heap.
//! ```
//!
//! kqueue's model carries over directly: sources *activate* knotes, which go on a FIFO ready
//! queue (at most once each); `kevent` pops from it, re-checks, and delivers. Level-triggered
//! behaviour is done in user space — a delivered level knote goes back on the queue marked
//! *stale*, and one `poll(2)` over all stale knotes re-checks them at the next collect — so the
//! kernel registration can always be edge-triggered. That keeps one registration per fd, READ
//! and WRITE modes independent, and a registration that outlived its fd number (a closed fd
//! whose file is still open through a dup) firing at most once per edge instead of forever.
//!
//! Each registration's epoll token carries the fd and a generation; a report whose generation
//! is not the fd's current one belongs to an earlier file and is dropped.

mod abi;
mod changes;
mod collect;
mod fdinfo;
mod knote;
mod os;
mod signals;
mod timers;
mod vnode;

pub(crate) use abi::*;

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use slab::Slab;

use self::fdinfo::{FdClass, FileId};
use self::knote::Knote;
use self::timers::TimerHeap;
use super::Options;
use crate::Kevent;

/// How many epoll events one wait harvests at most (on the stack).
const HARVEST: usize = 256;

/// Token kinds, in the top two bits of an epoll token.
const TOKEN_KIND_SHIFT: u32 = 62;
const TOKEN_FD: u64 = 0;
const TOKEN_INTERNAL: u64 = 1;
const TOKEN_PROC: u64 = 2;
/// Marks a registration in the inner epoll (the WRITE side of a split fd).
const TOKEN_INNER_BIT: u64 = 1 << 61;
const GEN_MASK: u32 = (1 << 29) - 1;

const INTERNAL_WAKE: u64 = 0;
const INTERNAL_TIMER: u64 = 1;
const INTERNAL_SIGNAL: u64 = 2;
const INTERNAL_INNER: u64 = 3;
const INTERNAL_VNODE: u64 = 4;

fn fd_token(fd: RawFd, gen: u32) -> u64 {
    (TOKEN_FD << TOKEN_KIND_SHIFT) | (u64::from(gen & GEN_MASK) << 32) | u64::from(fd as u32)
}

fn internal_token(id: u64) -> u64 {
    (TOKEN_INTERNAL << TOKEN_KIND_SHIFT) | id
}

fn proc_token(idx: usize, gen: u32) -> u64 {
    (TOKEN_PROC << TOKEN_KIND_SHIFT)
        | (u64::from(gen & GEN_MASK) << 32)
        | (idx as u64 & 0xffff_ffff)
}

/// The interest of a main registration: both directions, edge-triggered.
const MAIN_INTEREST: u32 =
    (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
/// The main registration of a split fd: READ only.
const READ_INTEREST: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
/// The inner registration of a split fd: WRITE only.
const WRITE_INTEREST: u32 = (libc::EPOLLOUT | libc::EPOLLET) as u32;

/// What the shim knows about one fd number.
#[derive(Clone, Copy)]
struct FdEntry {
    read: Option<usize>,
    write: Option<usize>,
    /// Generation of the current epoll registration; 0 when not registered.
    gen: u32,
    /// READ and WRITE have different modes: WRITE is watched through the inner epoll.
    split: bool,
    /// The registered file's identity (exact mode), checked on delivery.
    id: Option<FileId>,
    class: FdClass,
}

impl FdEntry {
    const EMPTY: FdEntry = FdEntry {
        read: None,
        write: None,
        gen: 0,
        split: false,
        id: None,
        class: FdClass::Unknown,
    };

    fn slot(&mut self, filter: i32) -> &mut Option<usize> {
        if filter == EVFILT_READ {
            &mut self.read
        } else {
            &mut self.write
        }
    }

    fn get(&self, filter: i32) -> Option<usize> {
        if filter == EVFILT_READ {
            self.read
        } else {
            self.write
        }
    }

    fn is_empty(&self) -> bool {
        self.read.is_none() && self.write.is_none()
    }
}

/// A ready-queue entry: knote index and generation.
type KnoteRef = (usize, u32);

/// Everything behind the kqueue's one lock.
struct State {
    knotes: Slab<Knote>,
    fds: Vec<FdEntry>,
    /// Non-fd knotes by `(filter, ident)`; fd knotes are found through `fds`.
    idents: HashMap<(i32, usize), usize, IdentHasher>,
    ready: VecDeque<KnoteRef>,
    timers: TimerHeap,
    /// The deadline the timerfd is armed for.
    armed: Option<u64>,
    /// SIGNAL knotes, checked when the shared signal eventfd fires.
    signal_knotes: Vec<usize>,
    signal_fd_registered: bool,
    /// Knotes on files epoll refuses (regular files, directories), evaluated at each collect.
    regular: Vec<usize>,
    /// The inner epoll for split fds, created on first need.
    inner: Option<OwnedFd>,
    /// The wake eventfd is signalled (mirrors `!ready.is_empty()` between calls).
    woken: bool,
    next_gen: u32,
    /// The fd the current change list already verified as registered (one `epoll_ctl` for a
    /// READ+WRITE pair).
    verified: Option<(RawFd, bool)>,
    /// Scratch for `recheck_stale`: the pollfds and the knotes they stand for.
    pollfds: Vec<libc::pollfd>,
    rechecks: Vec<KnoteRef>,
    /// Some queued knote may be stale, so `recheck_stale` has work (saves a queue walk).
    maybe_stale: bool,
    /// The fd whose identity this scan already checked (exact mode): READ and WRITE of one fd
    /// are queued together, so their deliveries share one `fstat`.
    identity_checked: Option<RawFd>,
    /// VNODE knotes: the inotify instance and its watches.
    vnodes: vnode::Vnodes,
}

/// The kqueue of the Linux backend.
pub(crate) struct Selector {
    epfd: OwnedFd,
    wake: OwnedFd,
    timerfd: OwnedFd,
    exact: bool,
    state: Mutex<State>,
}

impl Selector {
    pub(crate) fn new(options: &Options) -> io::Result<Selector> {
        let epfd = os::epoll_create()?;
        let wake = os::eventfd()?;
        let timerfd = os::timerfd()?;
        // The wake eventfd is level-triggered: it keeps the kqueue's fd readable for as long as
        // events are queued. The timerfd is edge-triggered: each expiry is reported once (and
        // makes the kqueue's fd readable), and an expired timerfd needs no disarming call.
        let level_in = libc::EPOLLIN as u32;
        let edge_in = (libc::EPOLLIN | libc::EPOLLET) as u32;
        os::epoll_ctl(
            epfd.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            wake.as_raw_fd(),
            level_in,
            internal_token(INTERNAL_WAKE),
        )?;
        os::epoll_ctl(
            epfd.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            timerfd.as_raw_fd(),
            edge_in,
            internal_token(INTERNAL_TIMER),
        )?;
        Ok(Selector {
            epfd,
            wake,
            timerfd,
            exact: options.exact_data,
            state: Mutex::new(State {
                knotes: Slab::new(),
                fds: Vec::new(),
                idents: HashMap::default(),
                ready: VecDeque::new(),
                timers: TimerHeap::default(),
                armed: None,
                signal_knotes: Vec::new(),
                signal_fd_registered: false,
                regular: Vec::new(),
                inner: None,
                woken: false,
                next_gen: 0,
                verified: None,
                pollfds: Vec::new(),
                rechecks: Vec::new(),
                maybe_stale: false,
                identity_checked: None,
                vnodes: vnode::Vnodes::default(),
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
        state.verified = None;
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
                self.sync_and_unlock(state);
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
        state.verified = None;
        if receipts || events.is_empty() {
            // kqueue returns error and receipt entries at once, without collecting events.
            self.sync_and_unlock(state);
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
                self.sync_and_unlock(state);
                return Ok(n);
            }
            let remaining = match deadline {
                None => None,
                Some(d) => {
                    let now = os::now_ns();
                    if looked && now >= d {
                        self.sync_and_unlock(state);
                        return Ok(0);
                    }
                    Some(Duration::from_nanos(d.saturating_sub(now)))
                }
            };
            // Any kqueue's observed-and-ignored signal can interrupt this wait: snapshot always.
            let signals_before = signals::deliveries();
            self.sync_and_unlock(state);
            let got = os::epoll_wait(self.epfd.as_raw_fd(), &mut buf[..max], remaining);
            state = self.lock();
            looked = true;
            match got {
                Ok(mut got) => {
                    self.process_reports(&mut state, &buf[..got]);
                    // The stack buffer holds HARVEST reports; a longer event list is filled
                    // from further non-blocking looks, as kqueue fills it in one call.
                    while got == max && state.ready.len() < events.len() {
                        got = os::epoll_wait(
                            self.epfd.as_raw_fd(),
                            &mut buf[..max],
                            Some(Duration::ZERO),
                        )
                        .unwrap_or(0);
                        self.process_reports(&mut state, &buf[..got]);
                    }
                }
                Err(e)
                    if e.kind() == io::ErrorKind::Interrupted
                        && signals::interruption_was_silent(signals_before) =>
                {
                    // Only an ignored signal we observe for a SIGNAL knote interrupted the
                    // wait; kqueue would not have been interrupted, so wait on.
                }
                Err(e) => {
                    self.sync_and_unlock(state);
                    return Err(e);
                }
            }
        }
    }

    /// Brings the kernel side in line with the state before the lock is released: the wake
    /// eventfd readable iff events are queued, the timerfd armed at the earliest deadline.
    #[must_use = "the wake eventfd must be signalled after unlocking when this says so"]
    fn sync(&self, state: &mut State) -> bool {
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
        if pending != state.woken {
            if pending {
                // Written by the caller once the lock is released: a waiter woken by the write
                // goes straight for this lock, and would find it held (a futex round trip per
                // cross-thread wake-up, measured). Writing late can leave the eventfd
                // readable with nothing queued (a consumer drained in between); `wake_report`
                // drains such a stale signal.
                signal = true;
            } else {
                os::eventfd_drain(self.wake.as_raw_fd());
            }
            state.woken = pending;
        }
        let earliest = state.earliest_timer();
        // Re-arm only for an earlier deadline. When the earliest timer is deleted the timerfd
        // keeps its earlier expiry: that one spurious wake-up (after which the next `sync` arms
        // the real earliest) is cheaper than a `timerfd_settime` per change of the earliest
        // timer, which cost a fifth of the CPU time of a 100,000-sleep workload.
        let rearm = match (earliest, state.armed) {
            (Some(new), Some(armed)) => new < armed,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if rearm {
            // Arming cannot fail for a valid absolute time; should it, the next collect still
            // expires due timers when it runs, so nothing is lost but promptness.
            if os::timerfd_arm(&self.timerfd, earliest).is_ok() {
                state.armed = earliest;
            }
        }
        signal
    }

    /// `sync`, unlock, then the eventfd write `sync` asked for.
    fn sync_and_unlock(&self, mut state: MutexGuard<'_, State>) {
        let signal = self.sync(&mut state);
        drop(state);
        if signal {
            os::eventfd_signal(self.wake.as_raw_fd());
        }
    }

    /// The wake eventfd was reported readable: if nothing is queued any more (a late write,
    /// see `sync`), drain it so that it does not keep the kqueue's fd readable for nothing.
    fn wake_report(&self, state: &mut State) {
        if !state.woken {
            os::eventfd_drain(self.wake.as_raw_fd());
        }
    }
}

impl State {
    fn next_gen(&mut self) -> u32 {
        self.next_gen = (self.next_gen + 1) & GEN_MASK;
        if self.next_gen == 0 {
            self.next_gen = 1;
        }
        self.next_gen
    }

    /// Whether a ready-queue entry still stands for a queued knote.
    fn is_live(&self, idx: usize, gen: u32) -> bool {
        self.knotes
            .get(idx)
            .is_some_and(|kn| kn.gen == gen && kn.queued)
    }

    /// What is known of `fd` (nothing, for a number never registered). Never grows the table,
    /// so a bogus fd in a change costs nothing.
    fn entry(&self, fd: RawFd) -> FdEntry {
        self.fds.get(fd as usize).copied().unwrap_or(FdEntry::EMPTY)
    }

    /// The table slot of `fd`, grown to hold it. Only for fds the kernel just accepted (so the
    /// table is bounded by the fd limit), or that already have knotes.
    fn fd_entry(&mut self, fd: RawFd) -> &mut FdEntry {
        let i = fd as usize;
        if i >= self.fds.len() {
            self.fds.resize(i + 1, FdEntry::EMPTY);
        }
        &mut self.fds[i]
    }

    /// Marks knote `idx` as fired and queues it unless it is disabled or already queued.
    fn activate(&mut self, idx: usize) {
        let kn = &mut self.knotes[idx];
        kn.active = true;
        if !kn.disabled && !kn.queued {
            kn.queued = true;
            self.ready.push_back((idx, kn.gen));
        }
    }

    /// Queues an fd knote for a readiness re-check at the next collect.
    fn recheck_later(&mut self, idx: usize) {
        self.knotes[idx].stale = true;
        self.maybe_stale = true;
        self.activate(idx);
    }

    fn earliest_timer(&mut self) -> Option<u64> {
        let knotes = &self.knotes;
        self.timers
            .earliest(|seq, idx| timer_is_current(knotes, seq, idx))
    }

    /// Removes a knote and everything that points at it (queue entries die by generation).
    fn remove_knote(&mut self, idx: usize) {
        let kn = self.knotes.remove(idx);
        if !matches!(kn.kind, knote::Kind::Fd) {
            self.idents.remove(&(kn.filter, kn.ident));
        }
        match kn.kind {
            knote::Kind::Fd => {
                let fd = kn.ident as RawFd;
                let entry = self.fd_entry(fd);
                *entry.slot(kn.filter) = None;
                if entry.class == FdClass::Regular {
                    self.regular.retain(|&i| i != idx);
                }
            }
            knote::Kind::Timer { seq, .. } if seq != 0 => {
                let knotes = &self.knotes;
                self.timers
                    .cancelled(|seq, idx| timer_is_current(knotes, seq, idx));
            }
            knote::Kind::Signal { .. } => self.signal_knotes.retain(|&i| i != idx),
            knote::Kind::Vnode(watched) => self.vnodes.detach(idx, watched.wd),
            // Closing the pidfd (dropping `kn`) also removes it from the epoll set.
            knote::Kind::Timer { .. } | knote::Kind::User { .. } | knote::Kind::Proc { .. } => {}
        }
    }

    /// Forgets every knote of `fd`: its file was closed (kqueue drops knotes on close).
    fn drop_fd(&mut self, fd: RawFd) {
        let entry = self.entry(fd);
        for idx in [entry.read, entry.write].into_iter().flatten() {
            self.remove_knote(idx);
        }
        if let Some(slot) = self.fds.get_mut(fd as usize) {
            *slot = FdEntry::EMPTY;
        }
        if self.verified.is_some_and(|(verified, _)| verified == fd) {
            self.verified = None;
        }
    }
}

/// Whether heap entry `(seq, idx)` is the live arming of a timer knote.
fn timer_is_current(knotes: &Slab<Knote>, seq: u64, idx: usize) -> bool {
    matches!(knotes.get(idx), Some(Knote { kind: knote::Kind::Timer { seq: s, .. }, .. }) if *s == seq)
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
