//! The `NOTE_*` values each filter uses in `fflags`, with the platform's own numbers.
//!
//! Values a platform does not define are 0 there, so OR-ing them in is harmless; the timer units
//! are better chosen through [`TimerUnit`](crate::TimerUnit) and [`Kevent::timer`](crate::Kevent::timer),
//! which convert where a platform numbers them differently.

use crate::sys;

/// `EVFILT_USER`: fire the event.
pub const TRIGGER: u32 = sys::NOTE_TRIGGER;
/// `EVFILT_USER`: leave the stored flags as they are.
pub const FFNOP: u32 = sys::NOTE_FFNOP;
/// `EVFILT_USER`: AND the low 24 bits of `fflags` into the stored flags.
pub const FFAND: u32 = sys::NOTE_FFAND;
/// `EVFILT_USER`: OR the low 24 bits of `fflags` into the stored flags.
pub const FFOR: u32 = sys::NOTE_FFOR;
/// `EVFILT_USER`: copy the low 24 bits of `fflags` into the stored flags.
pub const FFCOPY: u32 = sys::NOTE_FFCOPY;
/// `EVFILT_USER`: the control bits (`FFAND`, `FFOR`, `FFCOPY`).
pub const FFCTRLMASK: u32 = sys::NOTE_FFCTRLMASK;
/// `EVFILT_USER`: the 24 bits of user value.
pub const FFLAGSMASK: u32 = sys::NOTE_FFLAGSMASK;

/// `EVFILT_READ`/`WRITE`: `data` of the change is the low-water mark.
pub const LOWAT: u32 = sys::NOTE_LOWAT;

/// `EVFILT_PROC`: the process exited; `data` is its wait status.
pub const EXIT: u32 = sys::NOTE_EXIT;
/// `EVFILT_PROC`: with `EXIT`, asks macOS to put the exit status in `data`, which it does only
/// for the caller's children (it refuses the bit for others). 0 on every other platform, where
/// `EXIT` alone carries the status: so `EXIT | EXITSTATUS` on a child is portable.
pub const EXITSTATUS: u32 = sys::NOTE_EXITSTATUS;
/// `EVFILT_PROC`: the process forked (native backends only).
pub const FORK: u32 = sys::NOTE_FORK;
/// `EVFILT_PROC`: the process called exec (native backends only).
pub const EXEC: u32 = sys::NOTE_EXEC;

/// `EVFILT_TIMER`: the period is in seconds.
pub const SECONDS: u32 = sys::NOTE_SECONDS;
/// `EVFILT_TIMER`: the period is in milliseconds (the default; 0 where the platform has no flag).
pub const MSECONDS: u32 = sys::NOTE_MSECONDS;
/// `EVFILT_TIMER`: the period is in microseconds.
pub const USECONDS: u32 = sys::NOTE_USECONDS;
/// `EVFILT_TIMER`: the period is in nanoseconds.
pub const NSECONDS: u32 = sys::NOTE_NSECONDS;
/// `EVFILT_TIMER`: `data` is an absolute deadline, not a period.
pub const ABSTIME: u32 = sys::NOTE_ABSTIME;

/// `EVFILT_VNODE`: the file was deleted (one of its links removed, or a rename replaced it).
pub const DELETE: u32 = sys::NOTE_DELETE;
/// `EVFILT_VNODE`: the file was written; for a directory, its entries changed.
pub const WRITE: u32 = sys::NOTE_WRITE;
/// `EVFILT_VNODE`: the file grew; for a directory, an entry was moved in or out.
pub const EXTEND: u32 = sys::NOTE_EXTEND;
/// `EVFILT_VNODE`: the file's attributes changed.
pub const ATTRIB: u32 = sys::NOTE_ATTRIB;
/// `EVFILT_VNODE`: the link count changed (a link added; for a directory, a subdirectory
/// created or removed).
pub const LINK: u32 = sys::NOTE_LINK;
/// `EVFILT_VNODE`: the file was renamed.
pub const RENAME: u32 = sys::NOTE_RENAME;
/// `EVFILT_VNODE`: access to the file was revoked (its file system unmounted); comes with
/// `EV_EOF`.
pub const REVOKE: u32 = sys::NOTE_REVOKE;
/// `EVFILT_VNODE`: the file was opened (FreeBSD and the Linux shim; 0 elsewhere).
pub const OPEN: u32 = sys::NOTE_OPEN;
/// `EVFILT_VNODE`: a descriptor of the file that could not write was closed (FreeBSD and the
/// Linux shim; 0 elsewhere).
pub const CLOSE: u32 = sys::NOTE_CLOSE;
/// `EVFILT_VNODE`: a descriptor of the file that could write was closed (FreeBSD and the Linux
/// shim; 0 elsewhere).
pub const CLOSE_WRITE: u32 = sys::NOTE_CLOSE_WRITE;
/// `EVFILT_VNODE`: the file was read (FreeBSD and the Linux shim; 0 elsewhere).
pub const READ: u32 = sys::NOTE_READ;
