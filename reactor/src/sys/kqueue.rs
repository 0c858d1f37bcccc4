//! The native backend: kqueue(2) itself, on FreeBSD, macOS, NetBSD, OpenBSD and DragonFly.
//!
//! The kernel already implements the model, so this file is mostly types: [`RawKevent`] *is* the
//! platform's `struct kevent` (a transparent wrapper), and [`Selector::kevent`] hands the caller's
//! change and event slices to kevent(2) as they are, one system call for registration and wait.
//!
//! What is left is normalising the platforms to FreeBSD, the reference (see
//! `reactor/SEMANTICS.md` (the crate docs)):
//!
//! - field types: NetBSD's `filter` and `flags` are `u32`, macOS's and DragonFly's `data` is
//!   `intptr_t`, `udata` is a pointer; the accessors convert to the interface's
//!   `i32`/`u16`/`i64`/`usize`;
//! - returned flags: macOS echoes `EV_ADD` (and the rest of the change's flags) in events and in
//!   error entries; [`Selector::kevent`] strips the action flags from events and leaves error and
//!   receipt entries with exactly `EV_ERROR`, as FreeBSD writes them;
//! - `EV_CLEAR` on `EVFILT_PROC` events, which FreeBSD's filter sets on the knote itself; the
//!   normalisation never strips it, and adds it should a kernel leave it out;
//! - timer units, which every platform numbers its own way: see [`timer_fflags`];
//! - constants: the platform's own numbers (NetBSD numbers filters from 0), 0 for a `NOTE_*` the
//!   platform lacks.
//!
//! macOS's `struct kevent` is `repr(packed(4))`, so no reference to one of its fields is ever
//! taken: every field is read and written by value.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::time::Duration;

use super::Options;
use crate::{Kevent, TimerUnit};

// Filters, in the platform's numbering. libc types them `i16`, or `u32` on NetBSD (whose filters
// count up from 0); the interface carries them as `i32`, which holds either without loss.

/// `EVFILT_READ`.
pub(crate) const EVFILT_READ: i32 = libc::EVFILT_READ as i32;
/// `EVFILT_WRITE`.
pub(crate) const EVFILT_WRITE: i32 = libc::EVFILT_WRITE as i32;
/// `EVFILT_VNODE`.
pub(crate) const EVFILT_VNODE: i32 = libc::EVFILT_VNODE as i32;
/// `EVFILT_PROC`.
pub(crate) const EVFILT_PROC: i32 = libc::EVFILT_PROC as i32;
/// `EVFILT_SIGNAL`.
pub(crate) const EVFILT_SIGNAL: i32 = libc::EVFILT_SIGNAL as i32;
/// `EVFILT_TIMER`.
pub(crate) const EVFILT_TIMER: i32 = libc::EVFILT_TIMER as i32;
/// `EVFILT_USER`.
pub(crate) const EVFILT_USER: i32 = libc::EVFILT_USER as i32;

// Flags. libc types them `u16`, or `u32` on NetBSD, where every defined flag still fits in 16
// bits. `as _` converts from either without naming the platform's type (and without clippy
// flagging an identity cast on the platforms where it is one).

/// `EV_ADD`.
pub(crate) const EV_ADD: u16 = libc::EV_ADD as _;
/// `EV_DELETE`.
pub(crate) const EV_DELETE: u16 = libc::EV_DELETE as _;
/// `EV_ENABLE`.
pub(crate) const EV_ENABLE: u16 = libc::EV_ENABLE as _;
/// `EV_DISABLE`.
pub(crate) const EV_DISABLE: u16 = libc::EV_DISABLE as _;
/// `EV_ONESHOT`.
pub(crate) const EV_ONESHOT: u16 = libc::EV_ONESHOT as _;
/// `EV_CLEAR`.
pub(crate) const EV_CLEAR: u16 = libc::EV_CLEAR as _;
/// `EV_RECEIPT`.
pub(crate) const EV_RECEIPT: u16 = libc::EV_RECEIPT as _;
/// `EV_DISPATCH`.
pub(crate) const EV_DISPATCH: u16 = libc::EV_DISPATCH as _;
/// `EV_ERROR`.
pub(crate) const EV_ERROR: u16 = libc::EV_ERROR as _;
/// `EV_EOF`.
pub(crate) const EV_EOF: u16 = libc::EV_EOF as _;

/// The flags that act on a change; FreeBSD never returns them in an event.
const EV_ACTIONS: u16 = EV_ADD | EV_DELETE | EV_ENABLE | EV_DISABLE;

// `NOTE_*` values every supported platform defines with the same meaning.

/// `EVFILT_USER`: fire the event.
pub(crate) const NOTE_TRIGGER: u32 = libc::NOTE_TRIGGER;
/// `EVFILT_USER`: keep the stored flags.
pub(crate) const NOTE_FFNOP: u32 = libc::NOTE_FFNOP;
/// `EVFILT_USER`: AND into the stored flags.
pub(crate) const NOTE_FFAND: u32 = libc::NOTE_FFAND;
/// `EVFILT_USER`: OR into the stored flags.
pub(crate) const NOTE_FFOR: u32 = libc::NOTE_FFOR;
/// `EVFILT_USER`: copy into the stored flags.
pub(crate) const NOTE_FFCOPY: u32 = libc::NOTE_FFCOPY;
/// `EVFILT_USER`: the control bits.
pub(crate) const NOTE_FFCTRLMASK: u32 = libc::NOTE_FFCTRLMASK;
/// `EVFILT_USER`: the 24 bits of user value.
pub(crate) const NOTE_FFLAGSMASK: u32 = libc::NOTE_FFLAGSMASK;
/// `EVFILT_READ`/`WRITE`: `data` is the low-water mark.
pub(crate) const NOTE_LOWAT: u32 = libc::NOTE_LOWAT;
/// `EVFILT_PROC`: the process exited.
///
/// On macOS the exit status is only put in `data` when `NOTE_EXITSTATUS` is also given, and the
/// kernel refuses that bit (`EACCES`) for a process that is not the caller's child; so it is not
/// folded in here, which would make watching any other process fail.
pub(crate) const NOTE_EXIT: u32 = libc::NOTE_EXIT;
/// `EVFILT_PROC`, macOS: put the exit status in `data` (children only); 0 elsewhere, where
/// `NOTE_EXIT` always carries it.
#[cfg(target_vendor = "apple")]
pub(crate) const NOTE_EXITSTATUS: u32 = libc::NOTE_EXITSTATUS;
/// `EVFILT_PROC`, macOS: put the exit status in `data` (children only); 0 elsewhere, where
/// `NOTE_EXIT` always carries it.
#[cfg(not(target_vendor = "apple"))]
pub(crate) const NOTE_EXITSTATUS: u32 = 0;
/// `EVFILT_PROC`: the process forked.
pub(crate) const NOTE_FORK: u32 = libc::NOTE_FORK;
/// `EVFILT_PROC`: the process called exec.
pub(crate) const NOTE_EXEC: u32 = libc::NOTE_EXEC;
/// `EVFILT_VNODE`: the file was deleted.
pub(crate) const NOTE_DELETE: u32 = libc::NOTE_DELETE;
/// `EVFILT_VNODE`: the file was written.
pub(crate) const NOTE_WRITE: u32 = libc::NOTE_WRITE;
/// `EVFILT_VNODE`: the file grew.
pub(crate) const NOTE_EXTEND: u32 = libc::NOTE_EXTEND;
/// `EVFILT_VNODE`: the attributes changed.
pub(crate) const NOTE_ATTRIB: u32 = libc::NOTE_ATTRIB;
/// `EVFILT_VNODE`: the link count changed.
pub(crate) const NOTE_LINK: u32 = libc::NOTE_LINK;
/// `EVFILT_VNODE`: the file was renamed.
pub(crate) const NOTE_RENAME: u32 = libc::NOTE_RENAME;
/// `EVFILT_VNODE`: access was revoked.
pub(crate) const NOTE_REVOKE: u32 = libc::NOTE_REVOKE;
// FreeBSD's open/close/read notes; elsewhere 0 (NetBSD 10 has them too, but libc does not
// export them, and older NetBSD kernels refuse unknown bits).
/// `EVFILT_VNODE`: the file was opened.
#[cfg(target_os = "freebsd")]
pub(crate) const NOTE_OPEN: u32 = libc::NOTE_OPEN;
/// `EVFILT_VNODE`: the file was opened (FreeBSD only: 0 here).
#[cfg(not(target_os = "freebsd"))]
pub(crate) const NOTE_OPEN: u32 = 0;
/// `EVFILT_VNODE`: a descriptor that could not write was closed.
#[cfg(target_os = "freebsd")]
pub(crate) const NOTE_CLOSE: u32 = libc::NOTE_CLOSE;
/// `EVFILT_VNODE`: a descriptor that could not write was closed (FreeBSD only: 0 here).
#[cfg(not(target_os = "freebsd"))]
pub(crate) const NOTE_CLOSE: u32 = 0;
/// `EVFILT_VNODE`: a descriptor that could write was closed.
#[cfg(target_os = "freebsd")]
pub(crate) const NOTE_CLOSE_WRITE: u32 = libc::NOTE_CLOSE_WRITE;
/// `EVFILT_VNODE`: a descriptor that could write was closed (FreeBSD only: 0 here).
#[cfg(not(target_os = "freebsd"))]
pub(crate) const NOTE_CLOSE_WRITE: u32 = 0;
/// `EVFILT_VNODE`: the file was read.
#[cfg(target_os = "freebsd")]
pub(crate) const NOTE_READ: u32 = libc::NOTE_READ;
/// `EVFILT_VNODE`: the file was read (FreeBSD only: 0 here).
#[cfg(not(target_os = "freebsd"))]
pub(crate) const NOTE_READ: u32 = 0;

// Timer units: FreeBSD uses one bit per unit, NetBSD an enumeration in the low bits (with
// milliseconds = 0), macOS bits with milliseconds as the flagless default and `NOTE_ABSOLUTE`
// for deadlines. OpenBSD and DragonFly (as libc describes them) take milliseconds only, so they
// get 0 for every unit and `timer_fflags` converts the amount instead.

/// `EVFILT_TIMER`: the period is in seconds.
#[cfg(any(target_os = "freebsd", target_os = "netbsd", target_vendor = "apple"))]
pub(crate) const NOTE_SECONDS: u32 = libc::NOTE_SECONDS;
/// `EVFILT_TIMER`: the period is in microseconds.
#[cfg(any(target_os = "freebsd", target_os = "netbsd", target_vendor = "apple"))]
pub(crate) const NOTE_USECONDS: u32 = libc::NOTE_USECONDS;
/// `EVFILT_TIMER`: the period is in nanoseconds.
#[cfg(any(target_os = "freebsd", target_os = "netbsd", target_vendor = "apple"))]
pub(crate) const NOTE_NSECONDS: u32 = libc::NOTE_NSECONDS;
/// `EVFILT_TIMER`: the period is in milliseconds (FreeBSD's bit; 0 on NetBSD, where it is the
/// first value of the enumeration).
#[cfg(any(target_os = "freebsd", target_os = "netbsd"))]
pub(crate) const NOTE_MSECONDS: u32 = libc::NOTE_MSECONDS;
/// `EVFILT_TIMER`: milliseconds are macOS's default and have no flag.
#[cfg(target_vendor = "apple")]
pub(crate) const NOTE_MSECONDS: u32 = 0;
/// `EVFILT_TIMER`: `data` is an absolute deadline.
#[cfg(any(target_os = "freebsd", target_os = "netbsd"))]
pub(crate) const NOTE_ABSTIME: u32 = libc::NOTE_ABSTIME;
/// `EVFILT_TIMER`: `data` is an absolute deadline: macOS calls it `NOTE_ABSOLUTE`, and measures
/// it from the Unix epoch in the timer's unit, as FreeBSD does.
#[cfg(target_vendor = "apple")]
pub(crate) const NOTE_ABSTIME: u32 = libc::NOTE_ABSOLUTE;
/// `EVFILT_TIMER`: no unit flag on this platform.
#[cfg(any(target_os = "openbsd", target_os = "dragonfly"))]
pub(crate) const NOTE_SECONDS: u32 = 0;
/// `EVFILT_TIMER`: no unit flag on this platform.
#[cfg(any(target_os = "openbsd", target_os = "dragonfly"))]
pub(crate) const NOTE_MSECONDS: u32 = 0;
/// `EVFILT_TIMER`: no unit flag on this platform.
#[cfg(any(target_os = "openbsd", target_os = "dragonfly"))]
pub(crate) const NOTE_USECONDS: u32 = 0;
/// `EVFILT_TIMER`: no unit flag on this platform.
#[cfg(any(target_os = "openbsd", target_os = "dragonfly"))]
pub(crate) const NOTE_NSECONDS: u32 = 0;
/// `EVFILT_TIMER`: no absolute deadlines on this platform (see [`timer_fflags`]).
#[cfg(any(target_os = "openbsd", target_os = "dragonfly"))]
pub(crate) const NOTE_ABSTIME: u32 = 0;

/// A timer's `(fflags, data)` for `amount` `unit`s, written the platform's way.
///
/// FreeBSD, macOS and NetBSD express every unit and absolute deadlines natively; only the flag
/// values differ, and the constants above already carry them (macOS's milliseconds flag is 0).
#[cfg(any(target_os = "freebsd", target_os = "netbsd", target_vendor = "apple"))]
pub(crate) fn timer_fflags(unit: TimerUnit, amount: i64, absolute: bool) -> (u32, i64) {
    let unit_flag = match unit {
        TimerUnit::Seconds => NOTE_SECONDS,
        TimerUnit::Millis => NOTE_MSECONDS,
        TimerUnit::Micros => NOTE_USECONDS,
        TimerUnit::Nanos => NOTE_NSECONDS,
    };
    let abs = if absolute { NOTE_ABSTIME } else { 0 };
    (unit_flag | abs, amount)
}

/// A timer's `(fflags, data)` where the kernel only takes a period in milliseconds.
///
/// Finer units are rounded up, so a timer never fires before the period asked for; negative
/// amounts stay negative so the kernel still refuses them. There is no absolute deadline: it is
/// turned into the time left until it, measured on the realtime clock now, at least 1 ms. Unlike
/// FreeBSD's `NOTE_ABSTIME` timer, which fires once, the result repeats with that period unless
/// the change also carries `EV_ONESHOT`, and it does not follow later steps of the realtime clock.
#[cfg(any(target_os = "openbsd", target_os = "dragonfly"))]
pub(crate) fn timer_fflags(unit: TimerUnit, amount: i64, absolute: bool) -> (u32, i64) {
    if absolute {
        (0, millis_until(unit, amount))
    } else {
        (0, millis_rounding_up(unit, amount))
    }
}

#[cfg(any(target_os = "openbsd", target_os = "dragonfly"))]
use super::millis::{millis_rounding_up, nanos_per};

/// The milliseconds from now until `deadline` `unit`s after the Unix epoch, rounded up and at
/// least 1 (a deadline already passed fires at once, as on FreeBSD). A negative deadline stays
/// negative, as FreeBSD refuses it with `EINVAL`.
#[cfg(any(target_os = "openbsd", target_os = "dragonfly"))]
fn millis_until(unit: TimerUnit, deadline: i64) -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};

    if deadline < 0 {
        return -1;
    }
    // i128 holds any i64 deadline in nanoseconds, and any realtime clock reading, exactly.
    let deadline_ns = i128::from(deadline) * i128::from(nanos_per(unit));
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i128::try_from(since.as_nanos()).unwrap_or(i128::MAX)
        });
    let left_ns = deadline_ns.saturating_sub(now_ns);
    if left_ns <= 0 {
        return 1;
    }
    let left_ms = (left_ns - 1) / 1_000_000 + 1;
    i64::try_from(left_ms).unwrap_or(i64::MAX)
}

/// The platform's `struct kevent`, behind the interface every backend exports.
///
/// `repr(transparent)`, so a slice of these (or of [`Kevent`], itself transparent over this) is a
/// slice of `struct kevent` and goes to the kernel as is.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(crate) struct RawKevent(libc::kevent);

// The accessors convert between the interface's types and the platform's field types with
// `as _`: each field's type differs between platforms (`filter` is `i16` or `u32`, `flags` `u16`
// or `u32`, `data` `i64` or `intptr_t`, `udata` a pointer), and the inferred cast is exact where
// the types agree and the C conversion where they do not. Fields are read and written by value
// only, which macOS's packed layout requires.
impl RawKevent {
    /// `EV_SET(ident, filter, flags, fflags, data, udata)`.
    pub(crate) fn new(
        ident: usize,
        filter: i32,
        flags: u16,
        fflags: u32,
        data: i64,
        udata: usize,
    ) -> RawKevent {
        // SAFETY: `struct kevent` is plain old data on every platform: integers, an integer array
        // (`ext`, on FreeBSD 12 and later) and `udata`, a raw pointer for which all-zero (null) is
        // a valid value. Starting from zero fills whatever fields this platform's layout has
        // beyond the six set below, so this builds for every libc layout.
        let mut raw: libc::kevent = unsafe { mem::zeroed() };
        raw.ident = ident;
        // A filter outside the platform's type range wraps, and the kernel answers `EINVAL`
        // for the wrapped number, as it would for the C caller's truncated value.
        raw.filter = filter as _;
        raw.flags = flags as _;
        raw.fflags = fflags;
        raw.data = data as _;
        // `udata` is an opaque word: the pointer is never dereferenced, only handed back.
        raw.udata = udata as _;
        RawKevent(raw)
    }

    /// The identifier.
    pub(crate) fn ident(&self) -> usize {
        self.0.ident
    }

    /// The filter, in the platform's numbering.
    pub(crate) fn filter(&self) -> i32 {
        self.0.filter as _
    }

    /// The `EV_*` flags. NetBSD's field is 32 bits wide, but every flag it defines fits in 16.
    pub(crate) fn flags(&self) -> u16 {
        self.0.flags as _
    }

    /// The filter-specific flags.
    pub(crate) fn fflags(&self) -> u32 {
        self.0.fflags
    }

    /// The filter-specific data.
    pub(crate) fn data(&self) -> i64 {
        self.0.data as _
    }

    /// The opaque word given at registration.
    pub(crate) fn udata(&self) -> usize {
        self.0.udata as _
    }

    /// Replaces the `EV_*` flags.
    pub(crate) fn set_flags(&mut self, flags: u16) {
        self.0.flags = flags as _;
    }

    /// Replaces the filter-specific flags.
    pub(crate) fn set_fflags(&mut self, fflags: u32) {
        self.0.fflags = fflags;
    }

    /// Replaces the filter-specific data.
    pub(crate) fn set_data(&mut self, data: i64) {
        self.0.data = data as _;
    }

    /// Replaces the opaque word.
    pub(crate) fn set_udata(&mut self, udata: usize) {
        self.0.udata = udata as _;
    }

    /// Brings a record the kernel returned to FreeBSD's form.
    ///
    /// An error or receipt entry (`EV_ERROR`) carries exactly `EV_ERROR`: FreeBSD overwrites
    /// the change's flags, while macOS leaves them in (`EV_ADD`, `EV_RECEIPT`, …). Any other
    /// event loses the action flags, which macOS echoes. On FreeBSD itself this changes nothing.
    fn normalise(&mut self) {
        let flags = self.flags();
        if flags & EV_ERROR != 0 {
            self.set_flags(EV_ERROR);
        } else if flags & EV_ACTIONS != 0 {
            self.set_flags(flags & !EV_ACTIONS);
        }
        if self.filter() == EVFILT_PROC && flags & EV_ERROR == 0 {
            // FreeBSD's PROC filter sets EV_CLEAR on the knote itself, so every event of it
            // carries the flag; keep it so wherever a kernel leaves it out.
            self.set_flags(self.flags() | EV_CLEAR);
        }
        if self.filter() == EVFILT_USER {
            // FreeBSD returns the stored word unmasked, so a NOTE_TRIGGER or control bit given at
            // creation leaks into every event; the value proper is the low 24 bits.
            self.set_fflags(self.fflags() & NOTE_FFLAGSMASK);
        }
    }
}

/// The type kevent(2) takes its list lengths in: `size_t` on NetBSD, `int` elsewhere.
#[cfg(target_os = "netbsd")]
type ListLen = libc::size_t;
/// The type kevent(2) takes its list lengths in: `size_t` on NetBSD, `int` elsewhere.
#[cfg(not(target_os = "netbsd"))]
type ListLen = libc::c_int;

/// A kqueue: the fd from kqueue(2), closed when dropped.
///
/// `Send + Sync` because it is just an fd: the kernel itself makes concurrent kevent(2) calls
/// on one kqueue safe, and a change made from one thread (a `NOTE_TRIGGER`) wakes a waiter in
/// another.
pub(crate) struct Selector {
    /// Owning the fd closes it on drop, which also drops every knote of the queue.
    kq: OwnedFd,
}

// `Kqueue` promises `Send + Sync`; fail the build here, not in a user's crate, if that breaks.
const _: () = {
    fn assert_send_sync<T: Send + Sync>() {}
    let _ = assert_send_sync::<Selector>;
};

impl Selector {
    /// A new kqueue, close-on-exec.
    ///
    /// Native kqueue fills `data` exactly at no cost, so the options change nothing here.
    pub(crate) fn new(options: &Options) -> io::Result<Selector> {
        // Destructured field by field, so that an option added later fails to compile here until
        // this backend decides what it means for native kqueue. `exact_data` is bound (not `_`)
        // so that it counts as read: only the shim acts on it, and without this the field would
        // be dead code on every native target.
        let Options {
            exact_data: _always_exact,
        } = *options;
        Ok(Selector { kq: new_kqueue()? })
    }

    /// `kevent(kq, changes, events, timeout)`, with the returned records normalised to FreeBSD.
    ///
    /// The kernel applies the changes and collects events itself, so every rule of the model
    /// (error entries, receipts returning at once, `EINTR` after the changes) is the kernel's.
    pub(crate) fn kevent(
        &self,
        changes: &[Kevent],
        events: &mut [Kevent],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        // A change list too long for the length type cannot be submitted whole; cutting it short
        // would silently drop changes, so refuse it as the kernel would a bad argument.
        let nchanges = ListLen::try_from(changes.len())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // An event list may be offered short: the kernel then simply fills fewer entries.
        let nevents = ListLen::try_from(events.len()).unwrap_or(ListLen::MAX);
        let ts = timeout.and_then(to_timespec);
        let ts_ptr = ts
            .as_ref()
            .map_or(ptr::null(), |ts| ts as *const libc::timespec);
        // SAFETY: `Kevent` is `repr(transparent)` over `RawKevent`, itself `repr(transparent)`
        // over `libc::kevent`, so both slices are arrays of `struct kevent` of the lengths given
        // (never longer than the slices). The kernel only reads `changes` (immutably borrowed for
        // the call) and writes at most `nevents` whole records into `events`, which we borrow
        // mutably, so nothing else observes the writes, and any bit pattern it writes is a valid
        // `struct kevent` (integers and a raw pointer it copies back from an earlier change).
        // `ts_ptr` is null or points to `ts`, which outlives the call. `self.kq` is an open
        // kqueue for as long as `self` is borrowed.
        let n = unsafe {
            libc::kevent(
                self.kq.as_raw_fd(),
                changes.as_ptr().cast::<libc::kevent>(),
                nchanges,
                events.as_mut_ptr().cast::<libc::kevent>(),
                nevents,
                ts_ptr,
            )
        };
        // -1 with errno set is the only failure; `EINTR` becomes `ErrorKind::Interrupted`.
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        for event in events.iter_mut().take(n) {
            event.0.normalise();
        }
        Ok(n)
    }

    /// The kqueue's fd: readable whenever kevent(2) would return an event.
    pub(crate) fn as_raw_fd(&self) -> RawFd {
        self.kq.as_raw_fd()
    }
}

/// `timeout` as a relative `timespec`, or `None` (wait forever) for one over `i32::MAX` seconds.
///
/// FreeBSD itself treats a `tv_sec` above `INT32_MAX` as no timeout at all; doing the same here
/// keeps every kernel (and a 32-bit `time_t`) away from overflowing a deadline of ~68 years.
fn to_timespec(timeout: Duration) -> Option<libc::timespec> {
    const MAX_SECS: u64 = i32::MAX as u64;
    if timeout.as_secs() > MAX_SECS {
        return None;
    }
    // SAFETY: `timespec` is plain integers (plus, on some layouts, integer padding), for which
    // all-zero is valid; zeroing first keeps this building whatever fields libc gives it.
    let mut ts: libc::timespec = unsafe { mem::zeroed() };
    // Both fit: the seconds are at most `i32::MAX`, the nanoseconds below 10^9.
    ts.tv_sec = timeout.as_secs() as libc::time_t;
    ts.tv_nsec = timeout.subsec_nanos() as libc::c_long;
    Some(ts)
}

/// NetBSD has kqueue1(2), which sets close-on-exec atomically.
#[cfg(target_os = "netbsd")]
fn new_kqueue() -> io::Result<OwnedFd> {
    // SAFETY: kqueue1 takes a flag word and no pointers.
    let fd = unsafe { libc::kqueue1(libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by kqueue1, is open, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// kqueue(2), then `FD_CLOEXEC` with fcntl(2).
///
/// The two steps are not atomic, but the gap is harmless: a kqueue is never inherited by a child
/// of fork(2), so another thread's fork-then-exec cannot leak it, and only an exec by this very
/// process inside the gap could. (FreeBSD 14's kqueuex(2) would close even that, but libc does
/// not bind it yet.)
#[cfg(not(target_os = "netbsd"))]
fn new_kqueue() -> io::Result<OwnedFd> {
    // SAFETY: kqueue takes no arguments.
    let fd = unsafe { libc::kqueue() };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by kqueue, is open, and nothing else owns it. Owning it
    // before the fcntl closes it if that fails.
    let kq = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: fcntl(F_SETFD) on an fd we own, with an integer argument; no pointers.
    if unsafe { libc::fcntl(kq.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        // Read errno before `kq` is dropped: the close could overwrite it.
        return Err(io::Error::last_os_error());
    }
    Ok(kq)
}
