//! Thin, safe wrappers over the Linux system calls the shim is built from.
//!
//! Each wrapper turns `-1`/`errno` into `io::Error` and keeps its `unsafe` in one place, so the
//! shim's logic above reads as plain Rust.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

macro_rules! counted {
    ($counter:ident) => {
        #[cfg(test)]
        counts::bump(&counts::$counter);
    };
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Takes ownership of a freshly created fd.
fn owned(fd: libc::c_int) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful creating system call, so it is open and
    // nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `epoll_create1(EPOLL_CLOEXEC)`.
pub(super) fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: no pointers are involved.
    let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    Ok(owned(fd))
}

/// `epoll_ctl(epfd, op, fd, {events, token})`.
pub(super) fn epoll_ctl(
    epfd: RawFd,
    op: libc::c_int,
    fd: RawFd,
    events: u32,
    token: u64,
) -> io::Result<()> {
    counted!(EPOLL_CTL);
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: `ev` is a valid epoll_event for the duration of the call (ignored for DEL).
    cvt(unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) }).map(drop)
}

/// Whether this process may use `epoll_pwait2` (5.11+), as [`Pwait2`] values; probed by the
/// first wait of the process.
static PWAIT2: AtomicU8 = AtomicU8::new(Pwait2::Unknown as u8);

/// What is known of `epoll_pwait2` in this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Pwait2 {
    /// Not tried yet.
    Unknown = 0,
    /// It worked once: every later failure is a real one.
    Available = 1,
    /// Refused: waits use `epoll_wait` (milliseconds, rounded up).
    Unavailable = 2,
}

/// What to do after an `epoll_pwait2` call that failed with `errno`, knowing `state`:
/// `Some(new state)` falls back to `epoll_wait` from now on, `None` reports the error.
///
/// The probe's answer is only trusted while nothing is known: a kernel before 5.11 answers
/// `ENOSYS`, and seccomp profiles (containers, sandboxes) that do not list the call answer
/// `EPERM` (or `ENOSYS`). Any other error, or any error once the call has worked, is a real
/// failure of this wait and is reported with its errno (`EINTR`, `EBADF`, `EINVAL`, …).
pub(super) fn pwait2_fallback(state: Pwait2, errno: i32) -> Option<Pwait2> {
    match (state, errno) {
        (Pwait2::Unknown, libc::ENOSYS | libc::EPERM) => Some(Pwait2::Unavailable),
        _ => None,
    }
}

fn pwait2_state() -> Pwait2 {
    match PWAIT2.load(Ordering::Relaxed) {
        1 => Pwait2::Available,
        2 => Pwait2::Unavailable,
        _ => Pwait2::Unknown,
    }
}

/// Waits for events, with nanosecond precision where the kernel has `epoll_pwait2` (5.11+) and
/// lets us use it, and milliseconds rounded up otherwise (so a wait never ends early).
pub(super) fn epoll_wait(
    epfd: RawFd,
    buf: &mut [MaybeUninit<libc::epoll_event>],
    timeout: Option<Duration>,
) -> io::Result<usize> {
    counted!(EPOLL_WAIT);
    let max = buf.len().min(libc::c_int::MAX as usize) as libc::c_int;
    let state = pwait2_state();
    if state != Pwait2::Unavailable {
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
            tv_nsec: t.subsec_nanos() as libc::c_long,
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |ts| ts as *const libc::timespec);
        // SAFETY: `buf` has room for `max` events; `ts_ptr` is null or points to a live timespec;
        // a null sigmask leaves the signal mask alone.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_epoll_pwait2,
                epfd,
                buf.as_mut_ptr(),
                max,
                ts_ptr,
                std::ptr::null::<libc::sigset_t>(),
                0usize,
            )
        };
        match cvt_long(ret) {
            Ok(n) => {
                if state == Pwait2::Unknown {
                    PWAIT2.store(Pwait2::Available as u8, Ordering::Relaxed);
                }
                return Ok(n as usize);
            }
            Err(e) => {
                let errno = e.raw_os_error().unwrap_or(0);
                match pwait2_fallback(state, errno) {
                    Some(next) => PWAIT2.store(next as u8, Ordering::Relaxed),
                    None => return Err(e),
                }
            }
        }
    }
    let ms = match timeout {
        None => -1,
        Some(t) => {
            let ms = t.as_nanos().div_ceil(1_000_000);
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        }
    };
    // SAFETY: `buf` has room for `max` events.
    let n = cvt(unsafe { libc::epoll_wait(epfd, buf.as_mut_ptr().cast(), max, ms) })?;
    Ok(n as usize)
}

/// A non-blocking, close-on-exec eventfd.
pub(super) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: no pointers are involved.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
    Ok(owned(fd))
}

/// Adds one to an eventfd's counter (making it readable). Async-signal-safe (one write(2),
/// errno read, nothing allocated). A full counter (`EAGAIN`) already reads as readable, which
/// is all a caller wants, so that is `Ok`; any other error (`EBADF`: the fd is not open) is
/// returned.
pub(super) fn eventfd_signal(fd: RawFd) -> io::Result<()> {
    counted!(OTHER);
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64.
    let ret = unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
    eventfd_done(ret)
}

/// Resets an eventfd's counter to zero (no longer readable). `EAGAIN` means it was zero
/// already (`Ok`); any other error is returned.
pub(super) fn eventfd_drain(fd: RawFd) -> io::Result<()> {
    counted!(OTHER);
    let mut value: u64 = 0;
    // SAFETY: reads at most 8 bytes into a live u64.
    let ret = unsafe { libc::read(fd, (&mut value as *mut u64).cast(), 8) };
    eventfd_done(ret)
}

/// The result of an eventfd read or write: `EAGAIN` (the counter was already where the call
/// wanted it) is success. Async-signal-safe: an OS error is a code, not an allocation.
fn eventfd_done(ret: isize) -> io::Result<()> {
    if ret >= 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.kind() == io::ErrorKind::WouldBlock {
        Ok(())
    } else {
        Err(err)
    }
}

/// A non-blocking, close-on-exec timerfd on CLOCK_MONOTONIC.
pub(super) fn timerfd() -> io::Result<OwnedFd> {
    // SAFETY: no pointers are involved.
    let fd = cvt(unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    })?;
    Ok(owned(fd))
}

/// Arms `fd` to expire at the absolute monotonic time `deadline_ns`, or disarms it (`None`).
/// Re-arming also resets its expiration count, so it stops being readable.
pub(super) fn timerfd_arm(fd: &OwnedFd, deadline_ns: Option<u64>) -> io::Result<()> {
    counted!(OTHER);
    // A zero it_value disarms the timer; an already-passed deadline must still fire, so it is
    // clamped to 1 ns after the clock's origin.
    let ns = deadline_ns.map_or(0, |d| d.max(1));
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: (ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (ns % 1_000_000_000) as libc::c_long,
        },
    };
    // SAFETY: `spec` is a valid itimerspec; a null old_value is allowed.
    cvt(unsafe {
        libc::timerfd_settime(
            fd.as_raw_fd(),
            libc::TFD_TIMER_ABSTIME,
            &spec,
            std::ptr::null_mut(),
        )
    })
    .map(drop)
}

/// Reads a clock in nanoseconds.
pub(super) fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = MaybeUninit::<libc::timespec>::uninit();
    // SAFETY: `ts` is valid for writes; CLOCK_MONOTONIC and CLOCK_REALTIME always exist, so the
    // call cannot fail and initialises `ts`.
    let ts = unsafe {
        libc::clock_gettime(clock, ts.as_mut_ptr());
        ts.assume_init()
    };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Monotonic time in nanoseconds: the clock every shim deadline is kept in.
pub(super) fn now_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// `pidfd_open(pid, 0)`: a pollable handle that becomes readable when `pid` exits.
pub(super) fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: no pointers are involved.
    let fd = cvt_long(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    let fd = owned(fd as libc::c_int);
    // pidfd_open sets O_CLOEXEC itself (pidfds are always close-on-exec).
    Ok(fd)
}

/// The wait status of an exited child behind `pidfd`, without reaping it (`WNOWAIT`).
///
/// `None` when it is not our child (or was reaped already): Linux keeps no exit status for it.
pub(super) fn exit_status(pidfd: &OwnedFd) -> Option<i64> {
    const P_PIDFD: libc::idtype_t = 3;
    let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
    // SAFETY: `info` is valid for writes of a siginfo_t.
    let ret = unsafe {
        libc::waitid(
            P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            info.as_mut_ptr(),
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if ret == -1 {
        return None;
    }
    // SAFETY: waitid succeeded, and `info` was zeroed, so it is initialised either way.
    let info = unsafe { info.assume_init() };
    // SAFETY: for a WEXITED result the kernel filled the SIGCHLD fields read by si_pid/si_status.
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return None; // WNOHANG and not exited yet
    }
    // Rebuild the wait(2) status word, as kqueue reports it: exit code in bits 8..16, or the
    // signal number (with 0x80 for a core dump) in the low bits.
    let code = match info.si_code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_KILLED => status & 0x7f,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        _ => return None,
    };
    Some(i64::from(code))
}

/// `poll(fds, 0)`: which of `fds` are ready right now.
pub(super) fn poll_now(fds: &mut [libc::pollfd]) -> io::Result<()> {
    counted!(OTHER);
    // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfds.
    cvt(unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) }).map(drop)
}

#[cfg(test)]
mod pwait2_tests {
    use super::{pwait2_fallback, Pwait2};

    #[test]
    fn the_probe_falls_back_on_enosys_and_eperm_only() {
        // Seccomp (EPERM) and old kernels (ENOSYS): fall back, once and for all.
        for errno in [libc::ENOSYS, libc::EPERM] {
            assert_eq!(
                pwait2_fallback(Pwait2::Unknown, errno),
                Some(Pwait2::Unavailable),
                "errno {errno}"
            );
        }
        // A real failure of the wait is reported, whatever is known.
        for errno in [libc::EINTR, libc::EBADF, libc::EINVAL, libc::EFAULT] {
            assert_eq!(
                pwait2_fallback(Pwait2::Unknown, errno),
                None,
                "errno {errno}"
            );
            assert_eq!(
                pwait2_fallback(Pwait2::Available, errno),
                None,
                "errno {errno}"
            );
        }
        // Once it has worked, EPERM/ENOSYS are not a missing call but a real error.
        for errno in [libc::ENOSYS, libc::EPERM] {
            assert_eq!(
                pwait2_fallback(Pwait2::Available, errno),
                None,
                "errno {errno}"
            );
        }
    }
}

/// Per-thread system call counts, for the shim's fast-path tests.
#[cfg(test)]
pub(super) mod counts {
    use std::cell::Cell;

    thread_local! {
        pub(crate) static EPOLL_CTL: Cell<usize> = const { Cell::new(0) };
        pub(crate) static EPOLL_WAIT: Cell<usize> = const { Cell::new(0) };
        pub(crate) static OTHER: Cell<usize> = const { Cell::new(0) };
    }

    pub(crate) fn bump(counter: &'static std::thread::LocalKey<Cell<usize>>) {
        counter.with(|c| c.set(c.get() + 1));
    }

    /// `(epoll_ctl, epoll_wait, other)` since the last call, and resets them.
    pub(crate) fn take() -> (usize, usize, usize) {
        (EPOLL_CTL.take(), EPOLL_WAIT.take(), OTHER.take())
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn eventfd_signal_and_drain_report_a_bad_fd() {
        // -1 is never open (a closed number could be reused by another test's thread).
        let signal = eventfd_signal(-1).unwrap_err();
        assert_eq!(signal.raw_os_error(), Some(libc::EBADF), "{signal}");
        let drain = eventfd_drain(-1).unwrap_err();
        assert_eq!(drain.raw_os_error(), Some(libc::EBADF), "{drain}");
    }

    #[test]
    fn eventfd_eagain_is_success() {
        let fd = eventfd().unwrap();
        // Nothing to drain: read(2) says EAGAIN.
        eventfd_drain(fd.as_raw_fd()).unwrap();
        // A counter one short of full: the next add says EAGAIN, and it reads as readable.
        let almost: u64 = u64::MAX - 1;
        // SAFETY: writes 8 bytes from a live u64.
        let wrote = unsafe { libc::write(fd.as_raw_fd(), (&almost as *const u64).cast(), 8) };
        assert_eq!(wrote, 8);
        eventfd_signal(fd.as_raw_fd()).unwrap();
        eventfd_drain(fd.as_raw_fd()).unwrap();
        eventfd_drain(fd.as_raw_fd()).unwrap();
    }
}
