//! The process-wide side of `EVFILT_SIGNAL` on the shim: count deliveries without consuming
//! them.
//!
//! kqueue only *observes* signals: the process's own disposition still applies. signalfd(2)
//! cannot do that (it needs the signal blocked in every thread and then consumes it), so the
//! shim installs a process-wide handler that counts the delivery, wakes every kqueue through one
//! shared eventfd, and then does what the disposition it replaced would have done: call the
//! program's handler, do nothing for `SIG_IGN`, or carry out the default action. Each kqueue's
//! SIGNAL knote remembers the count it last took, so any number of kqueues can watch the same
//! signal.
//!
//! Every `EV_ADD` of a SIGNAL knote (creating it or not) looks at the current disposition: if the
//! program replaced the counting handler since (`signal()`, `sigaction()`), the handler is put
//! back, chaining to what the program set. Between the program's change and that `EV_ADD` the
//! signal is not counted. The handler keeps the program's `sa_flags` (`SA_RESTART`,
//! `SA_NODEFER`, `SA_RESETHAND`, `SA_NOCLDSTOP`, `SA_NOCLDWAIT`, `SA_ONSTACK`) and `sa_mask`, so
//! the program's handler runs as it asked; with `SA_RESETHAND` the kernel resets the signal to
//! `SIG_DFL` at the first delivery, which also ends counting until the next `EV_ADD`.
//!
//! An ignored `SIGCHLD` is left alone: replacing its `SIG_IGN` would turn auto-reaped children
//! into zombies, and FreeBSD does not record an ignored `SIGCHLD` either.
//!
//! Observing any other ignored (or ignored-by-default) signal changes the program in these
//! ways, which nothing in user space can avoid: the signal is no longer discarded when it is
//! generated but delivered, so it interrupts whatever system call the receiving thread is in.
//! The handler is installed with `SA_RESTART`, which restarts `read`, `write`, `wait`, … but
//! not `epoll_wait`, `poll`, `select`, `nanosleep`, `sigsuspend`, or socket calls with a
//! timeout (signal(7)): those fail with `EINTR` in other threads (the shim's own `kevent` waits
//! on); a blocked ignored signal stays pending and is delivered when unblocked; `sigaction()`
//! reports the handler instead of `SIG_IGN`; and programs started with `execve` inherit
//! `SIG_DFL` for it rather than `SIG_IGN` (exec resets caught signals, keeps ignored ones).
//!
//! The handler stays installed once placed (counting is harmless, and removing it would race
//! with other kqueues). Signals are counted when *delivered*: one generated while blocked is
//! counted when the program unblocks it (and not at all if the program takes it with
//! `sigwait`/signalfd), and generations of a standard signal merged while pending count once.

use std::cell::Cell;
use std::io;
use std::os::fd::{IntoRawFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU64, Ordering};
use std::sync::Mutex;

use super::os;

/// Signal numbers 1..=64 (Linux's `_NSIG` is 65).
const NSIG: usize = 65;

static COUNTS: [AtomicU64; NSIG] = [const { AtomicU64::new(0) }; NSIG];
/// The disposition the installed handler chains to; null until first installed. A replaced
/// record is never freed (a handler on another thread may still be reading it): one leaked
/// `sigaction` per re-installation, which needs the program to change the disposition first.
static PREVIOUS: [AtomicPtr<libc::sigaction>; NSIG] =
    [const { AtomicPtr::new(ptr::null_mut()) }; NSIG];
/// The eventfd every kqueue watching a signal polls (edge-triggered, never drained).
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
static SETUP: Mutex<()> = Mutex::new(());
thread_local! {
    /// Deliveries to this thread whose replaced disposition was `SIG_IGN` or an ignoring
    /// default: the program would never have been interrupted by them. Per thread, because an
    /// `EINTR` is caused by a signal delivered to the interrupted thread: a global count would
    /// mistake another thread's handled signal for this one's. (Const-initialised and without a
    /// destructor, so the handler's access is a plain thread-local load and store.)
    static SILENT: Cell<u64> = const { Cell::new(0) };
    /// Deliveries to this thread that ran a handler of the program's (or a fatal default).
    static HANDLED: Cell<u64> = const { Cell::new(0) };
}

fn bump(counter: &'static std::thread::LocalKey<Cell<u64>>) {
    counter.with(|c| c.set(c.get().wrapping_add(1)));
}

/// A snapshot of the delivery counters, to tell a wait's `EINTR` apart.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Deliveries {
    silent: u64,
    handled: u64,
}

/// This thread's counters now.
pub(super) fn deliveries() -> Deliveries {
    Deliveries {
        silent: SILENT.with(Cell::get),
        handled: HANDLED.with(Cell::get),
    }
}

/// Whether an `EINTR` that ended this thread's wait begun at `before` came only from signals the
/// program ignores: kqueue only observes those, so the wait must go on as if nothing happened. (An
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

/// Validates `signo` and makes sure its counting handler is in place (again, if the program
/// replaced it since), chaining to the program's current disposition.
pub(super) fn watch(signo: i32) -> Result<(), i32> {
    if signo <= 0 || signo as usize >= NSIG || signo == libc::SIGKILL || signo == libc::SIGSTOP {
        return Err(libc::EINVAL);
    }
    wake_fd().map_err(|e| e.raw_os_error().unwrap_or(libc::ENOMEM))?;
    let _guard = SETUP.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: a zeroed sigaction is a valid value to pass as the output of sigaction().
    let mut current: Box<libc::sigaction> = Box::new(unsafe { std::mem::zeroed() });
    // SAFETY: a null `act` only reads the current disposition into `current`.
    if unsafe { libc::sigaction(signo, ptr::null(), &mut *current) } == -1 {
        return Err(last_errno());
    }
    let handler_fn: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = handler;
    if current.sa_sigaction == handler_fn as usize {
        return Ok(()); // still in place
    }
    if signo == libc::SIGCHLD && current.sa_sigaction == libc::SIG_IGN {
        // Not recorded by FreeBSD, and a handler would stop the kernel reaping children.
        return Ok(());
    }
    let action = counting_action(&current, handler_fn as usize);
    // Publish the disposition to chain to before the handler can run and read it.
    let replaced = PREVIOUS[signo as usize].swap(Box::into_raw(current), Ordering::AcqRel);
    // SAFETY: `action` is fully initialised and `handler` has the SA_SIGINFO signature.
    if unsafe { libc::sigaction(signo, &action, ptr::null_mut()) } == -1 {
        let err = last_errno();
        // Nothing was installed: the counting handler, if an earlier one is still in place
        // somewhere in flight, goes on chaining to what it chained to before.
        let ours = PREVIOUS[signo as usize].swap(replaced, Ordering::AcqRel);
        // SAFETY: `ours` came from Box::into_raw just above, and no handler installed by this
        // call can have read it.
        drop(unsafe { Box::from_raw(ours) });
        return Err(err);
    }
    // `replaced` (if any) stays allocated: see PREVIOUS.
    Ok(())
}

/// The counting handler's `sigaction`, keeping what the program asked of `current`: its flags
/// and mask, so its own handler runs the way it was installed; `SA_SIGINFO` for our three-
/// argument handler; and `SA_RESTART` for a signal that was ignored or default-handled, so that
/// restartable system calls it now interrupts are restarted.
fn counting_action(current: &libc::sigaction, handler: usize) -> libc::sigaction {
    // SAFETY: zeroed is a valid starting point for a sigaction we fill in.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler;
    action.sa_flags = current.sa_flags | libc::SA_SIGINFO;
    if current.sa_sigaction == libc::SIG_DFL || current.sa_sigaction == libc::SIG_IGN {
        action.sa_flags |= libc::SA_RESTART;
    }
    action.sa_mask = current.sa_mask;
    action
}

fn last_errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EINVAL)
}

/// The counting handler. Only async-signal-safe work: atomics, write(2), and the chained call.
extern "C" fn handler(signo: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: `errno_slot` returns this thread's errno slot, always valid.
    let errno = unsafe { *errno_slot() };
    if let Some(count) = COUNTS.get(signo as usize) {
        count.fetch_add(1, Ordering::AcqRel);
        let fd = WAKE_FD.load(Ordering::Acquire);
        if fd >= 0 {
            // Nothing can be reported from a signal handler (no allocation, no lock, no I/O
            // but this write). A failure would mean the shared eventfd, created once and never
            // closed, is not open: it cannot happen, and is dropped here, and only here.
            let _unreportable = os::eventfd_signal(fd);
        }
        let previous = PREVIOUS[signo as usize].load(Ordering::Acquire);
        if !previous.is_null() {
            // SAFETY: `previous` was published before this handler was installed and is never
            // freed once the handler is in place.
            chain(signo, info, context, unsafe { &*previous });
        }
    }
    // SAFETY: as above; restoring errno keeps the interrupted code's view intact.
    unsafe { *errno_slot() = errno };
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
        bump(&SILENT);
        return;
    }
    if target == libc::SIG_DFL {
        default_action(signo);
        return;
    }
    bump(&HANDLED);
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
            bump(&SILENT);
        }
        libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => {
            // SAFETY: kill(2) is async-signal-safe; SIGSTOP cannot be caught and stops us here.
            unsafe { libc::kill(libc::getpid(), libc::SIGSTOP) };
        }
        _ => {
            bump(&HANDLED);
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

/// This thread's `errno` (glibc and musl call the accessor `__errno_location`, bionic `__errno`).
#[cfg(not(target_os = "android"))]
fn errno_slot() -> *mut libc::c_int {
    // SAFETY: no preconditions; returns this thread's errno slot.
    unsafe { libc::__errno_location() }
}

/// This thread's `errno` (glibc and musl call the accessor `__errno_location`, bionic `__errno`).
#[cfg(target_os = "android")]
fn errno_slot() -> *mut libc::c_int {
    // SAFETY: no preconditions; returns this thread's errno slot.
    unsafe { libc::__errno() }
}
