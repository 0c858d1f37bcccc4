//! `EVFILT_SIGNAL` for the shim: count deliveries without consuming them.
//!
//! kqueue only *observes* signals: the process's own disposition still applies. signalfd(2)
//! cannot do that (it needs the signal blocked in every thread and then consumes it), so the
//! shim installs, on first use of each signal, a process-wide handler that counts the delivery,
//! wakes every kqueue through one shared eventfd, and then does what the disposition it replaced
//! would have done: call the program's handler, do nothing for `SIG_IGN`, or carry out the
//! default action. Each kqueue's SIGNAL knote remembers the count it last reported, so any
//! number of kqueues can watch the same signal.
//!
//! The handler stays installed once placed (counting is harmless, and removing it would race
//! with other kqueues); a later `sigaction()` by the program replaces it and ends the counting.

use std::io;
use std::os::fd::{IntoRawFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU64, Ordering};
use std::sync::Mutex;

use super::os;

/// Signal numbers 1..=64 (Linux's `_NSIG` is 65).
const NSIG: usize = 65;

static COUNTS: [AtomicU64; NSIG] = [const { AtomicU64::new(0) }; NSIG];
/// The disposition each installed handler replaced; null until installed.
static PREVIOUS: [AtomicPtr<libc::sigaction>; NSIG] =
    [const { AtomicPtr::new(ptr::null_mut()) }; NSIG];
static INSTALLED: [AtomicBool; NSIG] = [const { AtomicBool::new(false) }; NSIG];
/// The eventfd every kqueue watching a signal polls (edge-triggered, never drained).
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
static SETUP: Mutex<()> = Mutex::new(());
/// Deliveries whose replaced disposition was `SIG_IGN` or an ignoring default: the program
/// would never have been interrupted by them.
static SILENT: AtomicU64 = AtomicU64::new(0);
/// Deliveries that ran a handler of the program's (or a fatal default).
static HANDLED: AtomicU64 = AtomicU64::new(0);

/// A snapshot of the delivery counters, to tell a wait's `EINTR` apart.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Deliveries {
    silent: u64,
    handled: u64,
}

/// The counters now.
pub(super) fn deliveries() -> Deliveries {
    Deliveries {
        silent: SILENT.load(Ordering::Acquire),
        handled: HANDLED.load(Ordering::Acquire),
    }
}

/// Whether an `EINTR` that ended a wait begun at `before` came only from signals the program
/// ignores: kqueue only observes those, so the wait must go on as if nothing happened. (An
/// interrupting handler of the program's own, installed without us, moves neither counter and
/// is reported.)
pub(super) fn interruption_was_silent(before: Deliveries) -> bool {
    let now = deliveries();
    now.silent != before.silent && now.handled == before.handled
}

/// The shared eventfd written on every counted delivery, created on first use.
pub(super) fn wake_fd() -> io::Result<RawFd> {
    let _guard = SETUP.lock().unwrap_or_else(|e| e.into_inner());
    let fd = WAKE_FD.load(Ordering::Acquire);
    if fd >= 0 {
        return Ok(fd);
    }
    // Lives for the rest of the process: handlers installed below may write to it at any time.
    let fd = os::eventfd()?.into_raw_fd();
    WAKE_FD.store(fd, Ordering::Release);
    Ok(fd)
}

/// Deliveries of `signo` counted so far (since the handler was installed).
pub(super) fn count(signo: i32) -> u64 {
    COUNTS[signo as usize].load(Ordering::Acquire)
}

/// Validates `signo` and makes sure its counting handler is installed.
pub(super) fn watch(signo: i32) -> Result<(), i32> {
    if signo <= 0 || signo as usize >= NSIG || signo == libc::SIGKILL || signo == libc::SIGSTOP {
        return Err(libc::EINVAL);
    }
    wake_fd().map_err(|e| e.raw_os_error().unwrap_or(libc::ENOMEM))?;
    let _guard = SETUP.lock().unwrap_or_else(|e| e.into_inner());
    if INSTALLED[signo as usize].load(Ordering::Acquire) {
        return Ok(());
    }
    // SAFETY: a zeroed sigaction is a valid value to pass as the output of sigaction().
    let mut previous: Box<libc::sigaction> = Box::new(unsafe { std::mem::zeroed() });
    // SAFETY: a null `act` only reads the current disposition into `previous`.
    if unsafe { libc::sigaction(signo, ptr::null(), &mut *previous) } == -1 {
        return Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL));
    }
    let replaced_handler =
        previous.sa_sigaction != libc::SIG_DFL && previous.sa_sigaction != libc::SIG_IGN;
    // SAFETY: zeroed is a valid starting point for a sigaction we fill in.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    let handler_fn: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = handler;
    action.sa_sigaction = handler_fn as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    if replaced_handler {
        // Keep the program's choices (restart or not, its mask) so it sees no difference.
        action.sa_flags |= previous.sa_flags & (libc::SA_RESTART | libc::SA_NODEFER);
        action.sa_mask = previous.sa_mask;
    } else {
        // An ignored or default-handled signal never interrupted system calls; keep it so.
        action.sa_flags |= libc::SA_RESTART;
        // SAFETY: sa_mask is a valid sigset_t to initialise.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
    }
    // Publish the previous disposition before the handler can run and read it.
    PREVIOUS[signo as usize].store(Box::into_raw(previous), Ordering::Release);
    // SAFETY: `action` is fully initialised and `handler` has the SA_SIGINFO signature.
    if unsafe { libc::sigaction(signo, &action, ptr::null_mut()) } == -1 {
        let err = io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL);
        let leaked = PREVIOUS[signo as usize].swap(ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: `leaked` came from Box::into_raw just above and no handler was installed to
        // read it.
        drop(unsafe { Box::from_raw(leaked) });
        return Err(err);
    }
    INSTALLED[signo as usize].store(true, Ordering::Release);
    Ok(())
}

/// The counting handler. Only async-signal-safe work: atomics, write(2), and the chained call.
extern "C" fn handler(signo: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: __errno_location returns this thread's errno slot, always valid.
    let errno = unsafe { *libc::__errno_location() };
    if let Some(count) = COUNTS.get(signo as usize) {
        count.fetch_add(1, Ordering::AcqRel);
        let fd = WAKE_FD.load(Ordering::Acquire);
        if fd >= 0 {
            os::eventfd_signal(fd);
        }
        let previous = PREVIOUS[signo as usize].load(Ordering::Acquire);
        if !previous.is_null() {
            // SAFETY: `previous` was published before this handler was installed and is never
            // freed once the handler is in place.
            chain(signo, info, context, unsafe { &*previous });
        }
    }
    // SAFETY: as above; restoring errno keeps the interrupted code's view intact.
    unsafe { *libc::__errno_location() = errno };
}

/// Does what the replaced disposition would have done.
fn chain(
    signo: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
    previous: &libc::sigaction,
) {
    let target = previous.sa_sigaction;
    if target == libc::SIG_IGN {
        SILENT.fetch_add(1, Ordering::AcqRel);
        return;
    }
    if target == libc::SIG_DFL {
        default_action(signo);
        return;
    }
    HANDLED.fetch_add(1, Ordering::AcqRel);
    if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: with SA_SIGINFO the program registered a three-argument handler at `target`.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(target) };
        f(signo, info, context);
    } else {
        // SAFETY: without SA_SIGINFO the program registered a one-argument handler at `target`.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(target) };
        f(signo);
    }
}

/// The default action of `signo`, as the kernel would have taken it without our handler.
fn default_action(signo: libc::c_int) {
    match signo {
        libc::SIGCHLD | libc::SIGURG | libc::SIGWINCH | libc::SIGCONT => {
            SILENT.fetch_add(1, Ordering::AcqRel);
        }
        libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => {
            // SAFETY: kill(2) is async-signal-safe; SIGSTOP cannot be caught and stops us here.
            unsafe { libc::kill(libc::getpid(), libc::SIGSTOP) };
        }
        _ => {
            HANDLED.fetch_add(1, Ordering::AcqRel);
            // Terminate (or dump core) for real: restore the default and re-raise. The signal is
            // blocked while this handler runs, so it is delivered, fatally, when we return.
            // SAFETY: a zeroed sigaction with SIG_DFL is valid; sigaction and raise are
            // async-signal-safe.
            unsafe {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signo, &dfl, ptr::null_mut());
                libc::raise(signo);
            }
        }
    }
}
