//! Backends, one per file (or folder), behind one internal interface.
//!
//! Every backend module exports the same names, and nothing above `sys` knows which one is in use:
//!
//! - `RawKevent`: the `Copy` record behind [`Kevent`](crate::Kevent), with `new(ident, filter,
//!   flags, fflags, data, udata)`, getters `ident/filter/flags/fflags/data/udata` and setters
//!   `set_flags/set_fflags/set_data/set_udata`. Filters travel as `i32`, flags as `u16`, data as
//!   `i64`, udata as `usize`, whatever the platform's field types are.
//! - the `EVFILT_*`, `EV_*` and `NOTE_*` constants in the platform's own numbering;
//! - `timer_fflags(unit, amount, absolute) -> (fflags, data)`, which writes a timer's unit the
//!   way the platform wants it;
//! - `Selector`, the kqueue itself: `new(&Options)`, `kevent(&self, changes, events, timeout)`
//!   with the semantics of `reactor/SEMANTICS.md` (the crate docs), and `as_raw_fd()` (a pollable fd).
//!
//! `kqueue.rs` passes the lists straight to kevent(2); `epoll/` is the shim for Linux.

mod millis;

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use self::epoll::*;

#[cfg(any(
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd",
    target_vendor = "apple"
))]
mod kqueue;
#[cfg(any(
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd",
    target_vendor = "apple"
))]
pub(crate) use self::kqueue::*;

/// Options a backend is built with; see [`KqueueBuilder`](crate::KqueueBuilder).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    /// Fill `data` (and check fd identity) on every fd event, at a system call or two each on
    /// the shim. Native backends always have exact data for free and ignore this.
    pub exact_data: bool,
}
