//! The exported C functions: `kqueue`, `kqueue1`, `kqueuex` and `kevent`.
//!
//! Each one runs its body under `catch_unwind` and turns the outcome into the C convention: a
//! result, or -1 with `errno`. Nothing in the bodies is expected to panic (bad input is checked
//! and answered with an errno); the guard makes sure that even a bug cannot unwind into C.

use std::ffi::{c_int, c_uint};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use knote_reactor::Kevent;

use crate::abi::{from_c, to_c, CKevent};
use crate::registry;

/// FreeBSD's `KQUEUE_CLOEXEC`, the one flag of `kqueuex(2)`.
pub const KQUEUE_CLOEXEC: c_uint = 0x0000_0001;

/// The most events one call collects: a longer event list is filled only this far (kevent may
/// always return fewer events than there is room for), so an oversized `nevents` costs no
/// oversized buffer. Error and receipt entries are never cut short by it (see `room`).
const MAX_EVENTS: usize = 4096;

/// Lists up to this long are converted on the stack.
const SHORT: usize = 16;

fn set_errno(errno: c_int) {
    // SAFETY: __errno_location returns the calling thread's errno slot, always valid to write.
    unsafe { *libc::__errno_location() = errno };
}

/// Runs `body` and maps its result to C: the value, or -1 with `errno` set.
fn c_result(body: impl FnOnce() -> Result<c_int, c_int>) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => value,
        Ok(Err(errno)) => {
            set_errno(errno);
            -1
        }
        // A bug, not an input: report it as an I/O error rather than unwinding into C.
        Err(_) => {
            set_errno(libc::EIO);
            -1
        }
    }
}

fn errno_of(e: &std::io::Error) -> c_int {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn create(cloexec: bool) -> c_int {
    c_result(|| registry::create(cloexec).map_err(|e| errno_of(&e)))
}

/// `int kqueue(void)`: a new kqueue; its fd is not close-on-exec, as on FreeBSD.
///
/// Fails with the errno of the system call that failed (`EMFILE`, `ENFILE`, `ENOMEM`).
#[no_mangle]
pub extern "C" fn kqueue() -> c_int {
    create(false)
}

/// `int kqueue1(int flags)`: `kqueue()` with `O_CLOEXEC` allowed in `flags`; any other bit is
/// `EINVAL`.
#[no_mangle]
pub extern "C" fn kqueue1(flags: c_int) -> c_int {
    if flags & !libc::O_CLOEXEC != 0 {
        set_errno(libc::EINVAL);
        return -1;
    }
    create(flags & libc::O_CLOEXEC != 0)
}

/// `int kqueuex(u_int flags)`: `kqueue()` with [`KQUEUE_CLOEXEC`] allowed in `flags`; any other
/// bit is `EINVAL`.
#[no_mangle]
pub extern "C" fn kqueuex(flags: c_uint) -> c_int {
    if flags & !KQUEUE_CLOEXEC != 0 {
        set_errno(libc::EINVAL);
        return -1;
    }
    create(flags & KQUEUE_CLOEXEC != 0)
}

/// `int kevent(int kq, const struct kevent *changelist, int nchanges, struct kevent *eventlist,
/// int nevents, const struct timespec *timeout)`, as kevent(2) documents it.
///
/// Errors (-1 and `errno`): `EBADF` if `kq` is not a kqueue made by this library that is still
/// open at that number; `EINVAL` for a negative count or a timeout with `tv_sec < 0` or `tv_nsec`
/// outside `[0, 1e9)`; `EFAULT` for a null list with a positive count; `EINTR` when a signal
/// interrupts the wait (after the changes were applied); and a change's own errno when it fails
/// and `eventlist` has no room for its `EV_ERROR` entry. A null `timeout` waits forever, a zero one
/// polls.
///
/// # Safety
///
/// As for the system call: `changelist` must point to `nchanges` readable records and
/// `eventlist` to `nevents` writable ones (each may be null when its count is 0), `timeout` must
/// be null or point to a readable `struct timespec`, all suitably aligned. The two lists may be
/// the same memory or overlap: every change is copied in before any event is written out.
#[no_mangle]
pub unsafe extern "C" fn kevent(
    kq: c_int,
    changelist: *const CKevent,
    nchanges: c_int,
    eventlist: *mut CKevent,
    nevents: c_int,
    timeout: *const libc::timespec,
) -> c_int {
    c_result(|| {
        // SAFETY: the caller's contract above is this function's.
        unsafe { kevent_body(kq, changelist, nchanges, eventlist, nevents, timeout) }
    })
}

/// The checked timeout: `None` waits forever.
fn timeout_of(ts: Option<libc::timespec>) -> Result<Option<Duration>, c_int> {
    let Some(ts) = ts else { return Ok(None) };
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(libc::EINVAL);
    }
    // Both are in range now: tv_sec is non-negative and tv_nsec below one second.
    Ok(Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)))
}

/// The size of the internal event list: what the caller has room for, up to [`MAX_EVENTS`], but
/// never less than the changes (each may need an error or receipt entry).
fn room(nchanges: usize, nevents: usize) -> usize {
    nevents.min(MAX_EVENTS.max(nchanges))
}

/// # Safety
///
/// See [`kevent`].
unsafe fn kevent_body(
    kq: c_int,
    changelist: *const CKevent,
    nchanges: c_int,
    eventlist: *mut CKevent,
    nevents: c_int,
    timeout: *const libc::timespec,
) -> Result<c_int, c_int> {
    let instance = registry::lookup(kq)?;
    let (Ok(nchanges), Ok(nevents)) = (usize::try_from(nchanges), usize::try_from(nevents)) else {
        return Err(libc::EINVAL);
    };
    if (changelist.is_null() && nchanges > 0) || (eventlist.is_null() && nevents > 0) {
        return Err(libc::EFAULT);
    }
    // SAFETY: a non-null `timeout` points to a readable timespec (the caller's contract).
    let timeout = timeout_of(unsafe { timeout.as_ref() }.copied())?;

    // The changes, converted, and their `ext` words for the error entries.
    let mut short_changes = [Kevent::zeroed(); SHORT];
    let mut short_ext = [[0u64; 4]; SHORT];
    let (mut long_changes, mut long_ext);
    let (changes, exts): (&mut [Kevent], &mut [[u64; 4]]) = if nchanges <= SHORT {
        (&mut short_changes[..nchanges], &mut short_ext[..nchanges])
    } else {
        long_changes = vec![Kevent::zeroed(); nchanges];
        long_ext = vec![[0u64; 4]; nchanges];
        (&mut long_changes, &mut long_ext)
    };
    for (i, (change, ext)) in changes.iter_mut().zip(exts.iter_mut()).enumerate() {
        // SAFETY: `i < nchanges`, and `changelist` points to `nchanges` readable records. Read
        // by value: no reference into the caller's memory, which `eventlist` may alias, is made.
        let c = unsafe { changelist.add(i).read() };
        *change = from_c(&c);
        *ext = c.ext;
    }

    let room = room(nchanges, nevents);
    let mut short_events = [Kevent::zeroed(); SHORT];
    let mut long_events;
    let events: &mut [Kevent] = if room <= SHORT {
        &mut short_events[..room]
    } else {
        long_events = vec![Kevent::zeroed(); room];
        &mut long_events
    };

    let n = instance
        .kqueue()
        .kevent(changes, events, timeout)
        .map_err(|e| errno_of(&e))?;

    // Error and receipt entries come first, in the order of their changes: match each to its
    // change (same ident and filter, further down the list) to copy that change's `ext` back.
    let mut next_change = 0;
    for (j, ev) in events[..n].iter().enumerate() {
        let mut ext = [0u64; 4];
        if ev.is_error() {
            let found = changes[next_change..]
                .iter()
                .position(|c| c.ident() == ev.ident() && c.filter() == ev.filter());
            if let Some(offset) = found {
                ext = exts[next_change + offset];
                next_change += offset + 1;
            }
        }
        let out = to_c(ev, ext);
        // SAFETY: `j < n <= room <= nevents`, and `eventlist` points to `nevents` writable
        // records; every change was copied out above, so overlapping lists are fine.
        unsafe { eventlist.add(j).write(out) };
    }
    // `n <= room <= nevents`, which is a c_int.
    Ok(n as c_int)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(sec: i64, nsec: i64) -> Option<libc::timespec> {
        Some(libc::timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        })
    }

    #[test]
    fn timeouts_are_checked_as_freebsd_does() {
        assert_eq!(timeout_of(None), Ok(None));
        assert_eq!(timeout_of(ts(0, 0)), Ok(Some(Duration::ZERO)));
        assert_eq!(
            timeout_of(ts(3, 999_999_999)),
            Ok(Some(Duration::new(3, 999_999_999)))
        );
        assert_eq!(
            timeout_of(ts(i64::MAX, 0)),
            Ok(Some(Duration::from_secs(i64::MAX as u64)))
        );
        assert_eq!(timeout_of(ts(0, 1_000_000_000)), Err(libc::EINVAL));
        assert_eq!(timeout_of(ts(0, -1)), Err(libc::EINVAL));
        assert_eq!(timeout_of(ts(-1, 0)), Err(libc::EINVAL));
    }

    #[test]
    fn room_fits_the_changes_and_caps_the_events() {
        assert_eq!(room(0, 0), 0);
        assert_eq!(room(0, 10), 10);
        assert_eq!(room(0, 1 << 20), MAX_EVENTS);
        assert_eq!(room(5000, 1 << 20), 5000);
        assert_eq!(room(5000, 100), 100);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // system calls
    fn a_panic_becomes_eio() {
        let r = c_result(|| panic!("a bug"));
        assert_eq!(r, -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EIO)
        );
        assert_eq!(c_result(|| Ok(7)), 7);
        assert_eq!(c_result(|| Err(libc::EBADF)), -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EBADF)
        );
    }

    #[test]
    #[cfg_attr(miri, ignore)] // system calls
    fn bad_flags_are_einval() {
        assert_eq!(kqueuex(2), -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EINVAL)
        );
        assert_eq!(kqueue1(libc::O_NONBLOCK), -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EINVAL)
        );
    }
}
