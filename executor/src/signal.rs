//! Signals as futures and streams: [`ctrl_c`] resolves on the next `SIGINT`, [`signal`] streams
//! the deliveries of any signal, on the reactor's `EVFILT_SIGNAL`.
//!
//! # One knote per signal per kqueue, fanned out
//!
//! A kqueue holds at most one knote per `(signal, EVFILT_SIGNAL)`, so two listeners on one
//! runtime thread cannot each have a knote of their own (the second `EV_ADD` would take over
//! the first's, and the first's drop would delete both). Listeners of one signal on one kqueue
//! therefore share a *hub*: one knote, a running count of deliveries, and the wakers of every
//! listener. Whichever listener polls takes the knote's count into the hub and wakes the others;
//! each listener remembers how much of the count it has seen, so every listener sees every
//! delivery, whenever it next polls. The knote is woken with a waker that wakes all listeners,
//! so no listener's waker is lost to another's. The hub (and its knote) goes with its last
//! listener. A runtime registers every knote in one kqueue (a multi-thread runtime's home), so
//! there is a hub per runtime that has listeners; each kqueue counts every delivery.
//!
//! # The signal's disposition
//!
//! `EVFILT_SIGNAL` observes a signal; it does not change what the signal does. On native
//! kqueue a `SIGINT` with its default disposition would still kill the process. So, as in
//! tokio, **creating the first listener of a signal whose disposition is `SIG_DFL` installs a
//! handler that does nothing** (with `SA_RESTART`), on every backend: from then on the signal
//! no longer terminates (or stops) the process, for the rest of its life, even after the
//! listeners are gone. A handler the program installed itself is left alone (it runs as before),
//! and so is `SIG_IGN` (kqueue still records ignored signals). Programs the process `exec`s
//! start with the default disposition again (a handler does not survive `execve`).
//!
//! Signals that cannot or must not be observed this way are refused with `InvalidInput`:
//! `SIGKILL`, `SIGSTOP` (no handler can see them) and `SIGILL`, `SIGFPE`, `SIGSEGV`, `SIGBUS`
//! (a no-op handler would return into the faulting instruction forever).
//!
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! use knote_executor::signal::{self, SignalKind};
//!
//! let mut hangups = signal::signal(SignalKind::hangup())?;
//! let interrupted = signal::ctrl_c();
//! # let _ = interrupted;
//! loop {
//!     let n = hangups.recv().await;
//!     // reload the configuration (n SIGHUPs arrived since the last time)
//!     # let _ = n;
//! }
//! # }
//! ```

use std::future::Future;
use std::io;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::stream::Stream;
use knote_reactor::{Flags, Kevent};
use slab::Slab;

use crate::io::KnoteRegistration;
use crate::loom::Locked;
use crate::runtime::Handle;

/// A signal number, with constructors for the common ones (as tokio's `SignalKind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SignalKind(i32);

impl SignalKind {
    /// Any signal by number (checked when a listener is created).
    pub const fn from_raw(signo: i32) -> SignalKind {
        SignalKind(signo)
    }

    /// The signal number.
    pub const fn as_raw_value(&self) -> i32 {
        self.0
    }

    /// `SIGALRM`.
    pub const fn alarm() -> SignalKind {
        SignalKind(libc::SIGALRM)
    }

    /// `SIGCHLD`.
    pub const fn child() -> SignalKind {
        SignalKind(libc::SIGCHLD)
    }

    /// `SIGHUP`.
    pub const fn hangup() -> SignalKind {
        SignalKind(libc::SIGHUP)
    }

    /// `SIGINT` (Ctrl-C at a terminal).
    pub const fn interrupt() -> SignalKind {
        SignalKind(libc::SIGINT)
    }

    /// `SIGIO`.
    pub const fn io() -> SignalKind {
        SignalKind(libc::SIGIO)
    }

    /// `SIGPIPE`.
    pub const fn pipe() -> SignalKind {
        SignalKind(libc::SIGPIPE)
    }

    /// `SIGQUIT`.
    pub const fn quit() -> SignalKind {
        SignalKind(libc::SIGQUIT)
    }

    /// `SIGTERM`.
    pub const fn terminate() -> SignalKind {
        SignalKind(libc::SIGTERM)
    }

    /// `SIGUSR1`.
    pub const fn user_defined1() -> SignalKind {
        SignalKind(libc::SIGUSR1)
    }

    /// `SIGUSR2`.
    pub const fn user_defined2() -> SignalKind {
        SignalKind(libc::SIGUSR2)
    }

    /// `SIGWINCH`.
    pub const fn window_change() -> SignalKind {
        SignalKind(libc::SIGWINCH)
    }
}

impl From<i32> for SignalKind {
    fn from(signo: i32) -> SignalKind {
        SignalKind(signo)
    }
}

/// The highest signal number the platform has (realtime signals included where it has them).
fn max_signal() -> i32 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        libc::SIGRTMAX()
    }
    // The values of each system's <sys/signal.h> (the libc crate has no NSIG for them).
    #[cfg(any(target_os = "freebsd", target_os = "dragonfly"))]
    {
        126 // SIGRTMAX
    }
    #[cfg(target_os = "netbsd")]
    {
        63 // NSIG - 1: SIGRTMAX
    }
    #[cfg(target_os = "openbsd")]
    {
        32 // NSIG - 1: SIGTHR
    }
    #[cfg(target_vendor = "apple")]
    {
        31 // NSIG - 1: SIGUSR2
    }
}

/// Refuses what cannot be listened to: out of range, or one of the signals no handler may
/// take (see the module docs).
fn check(signo: i32) -> io::Result<()> {
    let forbidden = [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGSEGV,
        libc::SIGBUS,
    ];
    if signo < 1 || signo > max_signal() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal: {signo} is not a signal number on this platform"),
        ));
    }
    if forbidden.contains(&signo) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal: signal {signo} cannot be listened to"),
        ));
    }
    Ok(())
}

extern "C" fn ignore_delivery(_signo: libc::c_int) {}

/// The signals whose disposition this module already looked at (index = number).
static DISPOSITIONS_SET: Mutex<Vec<bool>> = Mutex::new(Vec::new());

/// Installs the do-nothing handler for `signo` if its disposition is `SIG_DFL`, once per
/// process. Called before the knote is added: on the shim, a `sigaction` after the knote's
/// `EV_ADD` would pause the counting until the next add.
fn make_non_fatal(signo: i32) -> io::Result<()> {
    let mut done = DISPOSITIONS_SET.locked();
    let index = signo as usize;
    if done.len() <= index {
        done.resize(index + 1, false);
    }
    if done[index] {
        return Ok(());
    }
    // SAFETY: an all-zero `sigaction` is a valid value of the C struct.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads the current one into `old`, valid for writes.
    if unsafe { libc::sigaction(signo, std::ptr::null(), &mut old) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if old.sa_sigaction == libc::SIG_DFL {
        // SAFETY: as above, zeroed is valid; the mask is then set with sigemptyset.
        let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
        new.sa_sigaction = ignore_delivery as extern "C" fn(libc::c_int) as libc::sighandler_t;
        new.sa_flags = libc::SA_RESTART;
        // SAFETY: `new.sa_mask` is valid for writes.
        unsafe { libc::sigemptyset(&mut new.sa_mask) };
        // SAFETY: `new` is a fully initialised action whose handler is an async-signal-safe
        // function that does nothing; the old action is not wanted.
        if unsafe { libc::sigaction(signo, &new, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    done[index] = true;
    Ok(())
}

/// The wakers of a hub's listeners; as a waker itself it wakes them all (the knote's waker).
#[derive(Default)]
struct Fanout {
    wakers: Mutex<Slab<Option<Waker>>>,
}

impl Fanout {
    fn wake_all_but(&self, key: Option<usize>) {
        let wakers: Vec<Waker> = {
            let mut slab = self.wakers.locked();
            slab.iter_mut()
                .filter(|(k, _)| Some(*k) != key)
                .filter_map(|(_, w)| w.take())
                .collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }
}

impl Wake for Fanout {
    fn wake(self: Arc<Self>) {
        self.wake_all_but(None);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wake_all_but(None);
    }
}

/// One signal's knote on one kqueue and its listeners (see the module docs).
struct Hub {
    driver: usize,
    signo: i32,
    state: Mutex<HubState>,
    fanout: Arc<Fanout>,
    fanout_waker: Waker,
}

struct HubState {
    registration: KnoteRegistration,
    /// Deliveries taken from the knote since the hub was made.
    total: u64,
}

impl Hub {
    /// Takes what the knote counted into `total` (the knote's waker then wakes every
    /// listener); returns the new total.
    fn collect(&self, state: &mut HubState) -> u64 {
        let mut cx = Context::from_waker(&self.fanout_waker);
        while let Poll::Ready(fired) = state.registration.poll_event(&mut cx) {
            state.total += fired.data.max(0) as u64;
        }
        state.total
    }
}

/// The live hubs, by kqueue (its driver's address: a live hub keeps its driver alive, so the
/// address cannot be reused while the entry can be upgraded) and signal. Hubs are made and
/// dropped under this lock, so a hub's knote is deleted before another is added for the same
/// signal on the same kqueue.
static HUBS: Mutex<Vec<Weak<Hub>>> = Mutex::new(Vec::new());

fn hub(signo: i32, handle: &Handle) -> io::Result<Arc<Hub>> {
    let driver = handle.driver();
    let key = Arc::as_ptr(&driver) as usize;
    let mut hubs = HUBS.locked();
    hubs.retain(|h| h.strong_count() > 0);
    if let Some(hub) = hubs
        .iter()
        .filter_map(Weak::upgrade)
        .find(|h| h.driver == key && h.signo == signo)
    {
        return Ok(hub);
    }
    make_non_fatal(signo)?;
    // On this very driver: a multi-thread handle would pick another kqueue for a second call.
    let change = Kevent::signal(signo, Flags::ADD | Flags::CLEAR, 0);
    let registration = KnoteRegistration::with_driver(change, driver)?;
    let fanout = Arc::new(Fanout::default());
    let hub = Arc::new(Hub {
        driver: key,
        signo,
        state: Mutex::new(HubState {
            registration,
            total: 0,
        }),
        fanout_waker: Waker::from(Arc::clone(&fanout)),
        fanout,
    });
    hubs.push(Arc::downgrade(&hub));
    Ok(hub)
}

/// Listens for `kind` with the current runtime: a stream of its deliveries from now on.
///
/// Several listeners of one signal each see every delivery. Deliveries between two polls of
/// one listener are merged into one item carrying their count (as kqueue merges them).
///
/// Errors: no runtime; a signal number out of range or one that cannot be listened to
/// (`InvalidInput`, see the module docs); what `sigaction` or `kevent` says.
pub fn signal(kind: SignalKind) -> io::Result<Signal> {
    let handle = Handle::try_current().map_err(io::Error::other)?;
    signal_with_handle(kind, &handle)
}

/// [`signal`] with the runtime of `handle`.
pub fn signal_with_handle(kind: SignalKind, handle: &Handle) -> io::Result<Signal> {
    let signo = kind.as_raw_value();
    check(signo)?;
    let hub = hub(signo, handle)?;
    let seen = {
        let mut state = hub.state.locked();
        // Deliveries the knote counted before this listener existed are not its own.
        hub.collect(&mut state)
    };
    let key = hub.fanout.wakers.locked().insert(None);
    Ok(Signal {
        hub: ManuallyDrop::new(hub),
        key,
        seen,
    })
}

/// The deliveries of one signal, from [`signal`]: use [`recv`](Signal::recv) or the [`Stream`]
/// impl (it never ends).
pub struct Signal {
    /// Dropped only under the `HUBS` lock (see `Drop`).
    hub: ManuallyDrop<Arc<Hub>>,
    key: usize,
    seen: u64,
}

impl Signal {
    /// The signal listened to.
    pub fn kind(&self) -> SignalKind {
        SignalKind(self.hub.signo)
    }

    /// Waits for the next deliveries; returns how many arrived since the previous `recv`
    /// (at least 1).
    pub async fn recv(&mut self) -> u64 {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for deliveries since the previous `Ready` (what [`recv`](Signal::recv) and the
    /// [`Stream`] impl use).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<u64> {
        // The waker goes in first: a delivery after `collect` finds it.
        if let Some(slot) = self.hub.fanout.wakers.locked().get_mut(self.key) {
            match slot {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
        }
        let (before, total) = {
            let mut state = self.hub.state.locked();
            let before = state.total;
            (before, self.hub.collect(&mut state))
        };
        if total > before {
            // This poll took deliveries the others have not seen yet.
            self.hub.fanout.wake_all_but(Some(self.key));
        }
        if total > self.seen {
            let n = total - self.seen;
            self.seen = total;
            return Poll::Ready(n);
        }
        Poll::Pending
    }
}

impl Stream for Signal {
    type Item = u64;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u64>> {
        self.get_mut().poll_recv(cx).map(Some)
    }
}

impl Drop for Signal {
    fn drop(&mut self) {
        self.hub.fanout.wakers.locked().remove(self.key);
        // The last listener's drop deletes the knote, and that must not land after a new
        // hub's `EV_ADD` of the same (signal, SIGNAL) pair on the same kqueue (it would delete
        // the new knote): the lock `hub` creates hubs under orders the two.
        let _hubs = HUBS.locked();
        // SAFETY: `hub` is not used again: this is the listener's drop.
        drop(unsafe { ManuallyDrop::take(&mut self.hub) });
    }
}

impl std::fmt::Debug for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signal")
            .field("signo", &self.hub.signo)
            .field("seen", &self.seen)
            .finish()
    }
}

/// A future that resolves on the next `SIGINT`, from [`ctrl_c`].
#[derive(Debug)]
pub struct CtrlC {
    listener: Option<io::Result<Signal>>,
}

/// Resolves on the next `SIGINT` (Ctrl-C), with the current runtime.
///
/// The listener is made here, not at the first poll: a `SIGINT` that arrives after `ctrl_c()`
/// returned is seen even if the future was not polled yet. From the first call on, `SIGINT`
/// no longer ends the process (see the module docs). Errors (no runtime, `sigaction`,
/// `kevent`) come out of the future.
pub fn ctrl_c() -> CtrlC {
    CtrlC {
        listener: Some(signal(SignalKind::interrupt())),
    }
}

impl Future for CtrlC {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.listener.take() {
            Some(Ok(mut listener)) => match listener.poll_recv(cx) {
                Poll::Ready(_) => Poll::Ready(Ok(())),
                Poll::Pending => {
                    self.listener = Some(Ok(listener));
                    Poll::Pending
                }
            },
            Some(Err(e)) => Poll::Ready(Err(e)),
            None => Poll::Ready(Err(io::Error::other("ctrl_c: polled after completion"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlistenable_signals_are_refused() {
        for signo in [0, -1, libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, 100_000] {
            let err = check(signo).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{signo}");
        }
        check(libc::SIGINT).unwrap();
        check(libc::SIGUSR2).unwrap();
    }
}
