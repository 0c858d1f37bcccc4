//! `Kevent`, the one record that travels in both directions, and its typed parts.
//!
//! A `Kevent` is a change when it goes in (`EV_SET` and pass it in the change list) and an event
//! when it comes out. On native backends it *is* the platform's `struct kevent` (a transparent
//! wrapper), so change and event slices go to the kernel without copying; on the epoll shim it is
//! a `#[repr(C)]` struct with the same fields.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::sys;

/// A kqueue filter: what a knote watches (`EVFILT_*`).
///
/// The associated constants are the filters knote models; [`Filter::from_raw`] passes any other
/// platform value through untouched (the native backend hands it to the kernel, the shim answers
/// `EINVAL`). Values are the platform's own numbering (NetBSD numbers filters from 0, FreeBSD and
/// macOS from -1 downwards), so a `Filter` compares equal across backends by name, not by number.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Filter(i32);

impl Filter {
    /// `EVFILT_READ`: an fd has data to read (or connections to accept, or EOF).
    pub const READ: Filter = Filter(sys::EVFILT_READ);
    /// `EVFILT_WRITE`: an fd has room to write.
    pub const WRITE: Filter = Filter(sys::EVFILT_WRITE);
    /// `EVFILT_TIMER`: a periodic or one-shot timer, `ident` chosen by the caller.
    pub const TIMER: Filter = Filter(sys::EVFILT_TIMER);
    /// `EVFILT_USER`: a user event, triggered with `NOTE_TRIGGER` from any thread.
    pub const USER: Filter = Filter(sys::EVFILT_USER);
    /// `EVFILT_SIGNAL`: deliveries of a signal to the process (observed, not consumed).
    pub const SIGNAL: Filter = Filter(sys::EVFILT_SIGNAL);
    /// `EVFILT_PROC`: process events (`NOTE_EXIT` with the wait status).
    pub const PROC: Filter = Filter(sys::EVFILT_PROC);
    /// `EVFILT_VNODE`: file changes (`note::DELETE`, `WRITE`, …): native on the BSDs and macOS,
    /// over inotify on the Linux shim.
    pub const VNODE: Filter = Filter(sys::EVFILT_VNODE);

    /// A filter from the platform's raw number, for filters knote does not name.
    pub const fn from_raw(raw: i32) -> Filter {
        Filter(raw)
    }

    /// The platform's raw number for this filter.
    pub const fn raw(self) -> i32 {
        self.0
    }

    fn name(self) -> Option<&'static str> {
        Some(match self {
            Filter::READ => "READ",
            Filter::WRITE => "WRITE",
            Filter::TIMER => "TIMER",
            Filter::USER => "USER",
            Filter::SIGNAL => "SIGNAL",
            Filter::PROC => "PROC",
            Filter::VNODE => "VNODE",
            _ => return None,
        })
    }
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "EVFILT_{name}"),
            None => write!(f, "Filter({})", self.0),
        }
    }
}

bitflags::bitflags! {
    /// The `EV_*` flags of a change or an event.
    ///
    /// Unknown platform bits are retained (`Flags::from_bits_retain`), so raw values pass through.
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
    pub struct Flags: u16 {
        /// Create the knote, or modify it if it exists.
        const ADD = sys::EV_ADD;
        /// Remove the knote; its pending events are dropped.
        const DELETE = sys::EV_DELETE;
        /// Resume reporting.
        const ENABLE = sys::EV_ENABLE;
        /// Suspend reporting without removing the knote.
        const DISABLE = sys::EV_DISABLE;
        /// Delete the knote after its first delivery.
        const ONESHOT = sys::EV_ONESHOT;
        /// Reset the knote's state after delivery (edge-triggered).
        const CLEAR = sys::EV_CLEAR;
        /// Report the outcome of the change as an `EV_ERROR` entry (`data` 0 on success).
        const RECEIPT = sys::EV_RECEIPT;
        /// Disable (not delete) the knote after each delivery; `ENABLE` re-arms it.
        const DISPATCH = sys::EV_DISPATCH;
        /// Returned: end of file, or the filter's condition is final.
        const EOF = sys::EV_EOF;
        /// Returned: the change failed (`data` holds the errno), or a receipt.
        const ERROR = sys::EV_ERROR;
    }
}

impl Flags {
    /// The flags that act on a change and are never returned in an event.
    pub const ACTIONS: Flags = Flags::ADD
        .union(Flags::DELETE)
        .union(Flags::ENABLE)
        .union(Flags::DISABLE);
}

/// The unit of an `EVFILT_TIMER` period, put into `fflags` by [`Kevent::timer`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TimerUnit {
    /// `NOTE_SECONDS`.
    Seconds,
    /// `NOTE_MSECONDS`, the default when no unit is given.
    Millis,
    /// `NOTE_USECONDS`.
    Micros,
    /// `NOTE_NSECONDS`.
    Nanos,
}

/// One kevent: a change going in, or an event coming out.
///
/// `Copy`, and laid out as the platform's `struct kevent` on native backends. `udata` is an
/// opaque word: knote never interprets it and hands it back untouched in every event of the knote.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Kevent(pub(crate) sys::RawKevent);

// SAFETY: the only non-`Send`/`Sync` part of the platform struct is `udata`, a `void *` that knote
// treats as an opaque integer and never dereferences; moving or sharing the value between threads
// cannot create a data race through it.
unsafe impl Send for Kevent {}
// SAFETY: see the `Send` impl above; `Kevent` has no interior mutability.
unsafe impl Sync for Kevent {}

impl Default for Kevent {
    fn default() -> Kevent {
        Kevent::zeroed()
    }
}

impl Kevent {
    /// `EV_SET(ident, filter, flags, fflags, data, udata)`.
    pub fn new(
        ident: usize,
        filter: Filter,
        flags: Flags,
        fflags: u32,
        data: i64,
        udata: usize,
    ) -> Kevent {
        Kevent(sys::RawKevent::new(
            ident,
            filter.raw(),
            flags.bits(),
            fflags,
            data,
            udata,
        ))
    }

    /// An all-zero record, for sizing event lists.
    pub fn zeroed() -> Kevent {
        Kevent::new(0, Filter(0), Flags::empty(), 0, 0, 0)
    }

    /// `EVFILT_READ` on `fd`.
    pub fn read(fd: impl Into<RawIdent>, flags: Flags, udata: usize) -> Kevent {
        Kevent::new(fd.into().0, Filter::READ, flags, 0, 0, udata)
    }

    /// `EVFILT_WRITE` on `fd`.
    pub fn write(fd: impl Into<RawIdent>, flags: Flags, udata: usize) -> Kevent {
        Kevent::new(fd.into().0, Filter::WRITE, flags, 0, 0, udata)
    }

    /// `EVFILT_TIMER` firing every `amount` `unit`s (once with `EV_ONESHOT`).
    ///
    /// Units a platform lacks are converted to the finest one it has, rounding up.
    pub fn timer(ident: usize, flags: Flags, unit: TimerUnit, amount: i64, udata: usize) -> Kevent {
        let (fflags, data) = sys::timer_fflags(unit, amount, false);
        Kevent::new(ident, Filter::TIMER, flags, fflags, data, udata)
    }

    /// `EVFILT_TIMER` with `NOTE_ABSTIME`: fires once when the realtime clock reaches `deadline`
    /// (measured from the Unix epoch in `unit`s).
    pub fn timer_at(
        ident: usize,
        flags: Flags,
        unit: TimerUnit,
        deadline: i64,
        udata: usize,
    ) -> Kevent {
        let (fflags, data) = sys::timer_fflags(unit, deadline, true);
        Kevent::new(ident, Filter::TIMER, flags, fflags, data, udata)
    }

    /// `EVFILT_TIMER` with a period given as a `Duration` (nanosecond unit).
    pub fn timer_every(ident: usize, flags: Flags, period: Duration, udata: usize) -> Kevent {
        let nanos = i64::try_from(period.as_nanos()).unwrap_or(i64::MAX);
        Kevent::timer(ident, flags, TimerUnit::Nanos, nanos, udata)
    }

    /// `EVFILT_USER` with the given `fflags` (`NOTE_TRIGGER`, `NOTE_FF*` and a 24-bit value).
    pub fn user(ident: usize, flags: Flags, fflags: u32, udata: usize) -> Kevent {
        Kevent::new(ident, Filter::USER, flags, fflags, 0, udata)
    }

    /// The change that fires user event `ident`: `EVFILT_USER` with `NOTE_TRIGGER`.
    ///
    /// As in kqueue(2), every change to an existing knote also replaces its `udata`, so pass the
    /// value the knote was registered with.
    pub fn trigger(ident: usize, udata: usize) -> Kevent {
        Kevent::new(
            ident,
            Filter::USER,
            Flags::empty(),
            crate::note::TRIGGER,
            0,
            udata,
        )
    }

    /// `EVFILT_SIGNAL` for signal number `signo`.
    pub fn signal(signo: i32, flags: Flags, udata: usize) -> Kevent {
        Kevent::new(signo as usize, Filter::SIGNAL, flags, 0, 0, udata)
    }

    /// `EVFILT_PROC` for process `pid` with the notes in `fflags` (e.g. `note::EXIT`).
    pub fn proc(pid: i32, flags: Flags, fflags: u32, udata: usize) -> Kevent {
        Kevent::new(pid as usize, Filter::PROC, flags, fflags, 0, udata)
    }

    /// `EVFILT_VNODE` on `fd` (a regular file, directory or named FIFO) with the notes in
    /// `fflags` (e.g. `note::WRITE | note::DELETE`).
    pub fn vnode(fd: impl Into<RawIdent>, flags: Flags, fflags: u32, udata: usize) -> Kevent {
        Kevent::new(fd.into().0, Filter::VNODE, flags, fflags, 0, udata)
    }

    /// This record with `data` replaced.
    pub fn with_data(mut self, data: i64) -> Kevent {
        self.0.set_data(data);
        self
    }

    /// This record with `fflags` replaced.
    pub fn with_fflags(mut self, fflags: u32) -> Kevent {
        self.0.set_fflags(fflags);
        self
    }

    /// This record with `flags` replaced.
    pub fn with_flags(mut self, flags: Flags) -> Kevent {
        self.0.set_flags(flags.bits());
        self
    }

    /// This record with `udata` replaced.
    pub fn with_udata(mut self, udata: usize) -> Kevent {
        self.0.set_udata(udata);
        self
    }

    /// The identifier: an fd, a signal number, a pid, or a caller-chosen number.
    pub fn ident(&self) -> usize {
        self.0.ident()
    }

    /// The filter.
    pub fn filter(&self) -> Filter {
        Filter(self.0.filter())
    }

    /// The `EV_*` flags.
    pub fn flags(&self) -> Flags {
        Flags::from_bits_retain(self.0.flags())
    }

    /// The filter-specific flags (`NOTE_*`).
    pub fn fflags(&self) -> u32 {
        self.0.fflags()
    }

    /// The filter-specific data (see the filter table in the crate docs).
    pub fn data(&self) -> i64 {
        self.0.data()
    }

    /// The opaque word given at registration.
    pub fn udata(&self) -> usize {
        self.0.udata()
    }

    /// `EV_EOF` is set.
    pub fn is_eof(&self) -> bool {
        self.flags().contains(Flags::EOF)
    }

    /// `EV_ERROR` is set: an error or receipt entry for a change.
    pub fn is_error(&self) -> bool {
        self.flags().contains(Flags::ERROR)
    }

    /// For an `EV_ERROR` entry, the errno as an `io::Error`; `None` for a successful receipt
    /// (`data == 0`) or an ordinary event.
    pub fn error(&self) -> Option<io::Error> {
        if self.is_error() && self.data() != 0 {
            Some(io::Error::from_raw_os_error(self.data() as i32))
        } else {
            None
        }
    }
}

impl fmt::Debug for Kevent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kevent")
            .field("ident", &self.ident())
            .field("filter", &self.filter())
            .field("flags", &self.flags())
            .field("fflags", &format_args!("{:#x}", self.fflags()))
            .field("data", &self.data())
            .field("udata", &format_args!("{:#x}", self.udata()))
            .finish()
    }
}

impl PartialEq for Kevent {
    fn eq(&self, other: &Kevent) -> bool {
        self.ident() == other.ident()
            && self.filter() == other.filter()
            && self.flags() == other.flags()
            && self.fflags() == other.fflags()
            && self.data() == other.data()
            && self.udata() == other.udata()
    }
}

impl Eq for Kevent {}

/// An identifier for an fd-based filter: anything that names a file descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawIdent(pub usize);

impl From<std::os::fd::RawFd> for RawIdent {
    fn from(fd: std::os::fd::RawFd) -> RawIdent {
        // A negative fd becomes a huge ident, which the kernel (or the shim) rejects with EBADF,
        // exactly as a C caller passing it through `uintptr_t` would see.
        RawIdent(fd as usize)
    }
}

impl From<usize> for RawIdent {
    fn from(ident: usize) -> RawIdent {
        RawIdent(ident)
    }
}

impl<T: std::os::fd::AsRawFd> From<&T> for RawIdent {
    fn from(file: &T) -> RawIdent {
        RawIdent(file.as_raw_fd() as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let ev = Kevent::new(
            42,
            Filter::USER,
            Flags::ADD | Flags::CLEAR,
            0x123,
            -5,
            usize::MAX,
        );
        assert_eq!(ev.ident(), 42);
        assert_eq!(ev.filter(), Filter::USER);
        assert_eq!(ev.flags(), Flags::ADD | Flags::CLEAR);
        assert_eq!(ev.fflags(), 0x123);
        assert_eq!(ev.data(), -5);
        assert_eq!(ev.udata(), usize::MAX, "udata is handed back untouched");
        let ev = ev
            .with_data(7)
            .with_fflags(1)
            .with_udata(3)
            .with_flags(Flags::DELETE);
        assert_eq!(
            (ev.data(), ev.fflags(), ev.udata(), ev.flags()),
            (7, 1, 3, Flags::DELETE)
        );
    }

    #[test]
    fn error_entries_carry_the_errno() {
        let receipt = Kevent::new(1, Filter::READ, Flags::ERROR, 0, 0, 0);
        assert!(receipt.is_error() && receipt.error().is_none());
        let failed = receipt.with_data(i64::from(libc::EBADF));
        assert_eq!(failed.error().unwrap().raw_os_error(), Some(libc::EBADF));
        assert!(Kevent::zeroed().error().is_none());
    }

    #[test]
    fn raw_filters_pass_through() {
        let raw = Filter::from_raw(-99);
        assert_eq!(raw.raw(), -99);
        assert_eq!(format!("{raw:?}"), "Filter(-99)");
        assert_eq!(format!("{:?}", Filter::READ), "EVFILT_READ");
        assert_eq!(Flags::from_bits_retain(0x0100).bits(), 0x0100);
    }

    #[test]
    fn constructors_fill_the_filter_fields() {
        let t = Kevent::timer_every(5, Flags::ADD, Duration::from_micros(250), 9);
        assert_eq!(t.filter(), Filter::TIMER);
        assert_eq!(t.fflags() & crate::note::NSECONDS, crate::note::NSECONDS);
        assert_eq!(t.data(), 250_000);
        let trig = Kevent::trigger(3, 4);
        assert_eq!((trig.fflags(), trig.udata()), (crate::note::TRIGGER, 4));
        assert_eq!(Kevent::signal(10, Flags::ADD, 0).ident(), 10);
        assert_eq!(
            Kevent::proc(77, Flags::ADD, crate::note::EXIT, 0).fflags(),
            crate::note::EXIT
        );
    }
}
