//! Thread-local runtime context: which runtime `spawn`/`sleep`/`AsyncFd::new` talk to, and
//! which driver (kqueue) this thread is the one to wait on.

use std::cell::{Cell, RefCell};

use crate::driver::Driver;
use crate::runtime::Handle;

thread_local! {
    static CURRENT: RefCell<Option<Handle>> = const { RefCell::new(None) };
    static DRIVING: Cell<*const Driver> = const { Cell::new(std::ptr::null()) };
    static BATCHING: Cell<bool> = const { Cell::new(false) };
}

/// While the guard lives, timer changes queued from this thread are left for the caller to
/// flush (`Driver::flush`) instead of being applied one `kevent` each: a multi-thread runtime's
/// shutdown drops every task's sleeps from one thread, for kqueues it does not drive.
pub(crate) fn batch_changes() -> BatchGuard {
    BatchGuard(BATCHING.with(|b| b.replace(true)))
}

pub(crate) struct BatchGuard(bool);

impl Drop for BatchGuard {
    fn drop(&mut self) {
        let prev = self.0;
        let _ = BATCHING.try_with(|b| b.set(prev));
    }
}

/// Whether changes queued from this thread wait for an explicit flush.
pub(crate) fn batching() -> bool {
    BATCHING.try_with(Cell::get).unwrap_or(false)
}

/// Runs `f` with the current runtime's handle, if there is one.
pub(crate) fn with_current<R>(f: impl FnOnce(&Handle) -> R) -> Option<R> {
    CURRENT
        .try_with(|c| c.borrow().as_ref().map(f))
        .ok()
        .flatten()
}

/// The current handle, cloned.
pub(crate) fn current() -> Option<Handle> {
    with_current(Handle::clone)
}

/// Makes `handle` current until the guard drops (nesting restores the previous one).
pub(crate) fn enter(handle: Handle) -> EnterGuard {
    let prev = CURRENT.with(|c| c.replace(Some(handle)));
    EnterGuard {
        prev,
        _not_send: std::marker::PhantomData,
    }
}

/// Restores the previous runtime context on drop. Not `Send`: it must drop on the thread that
/// entered.
#[must_use = "the runtime context is left when the guard drops"]
pub struct EnterGuard {
    prev: Option<Handle>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        let old = CURRENT.try_with(|c| c.replace(prev));
        drop(old);
    }
}

impl std::fmt::Debug for EnterGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnterGuard")
    }
}

/// Whether this thread drives `driver` (is the one that waits on its kqueue), so that changes
/// for it can ride along with this thread's next wait.
pub(crate) fn drives(driver: &Driver) -> bool {
    DRIVING
        .try_with(|d| std::ptr::eq(d.get(), driver))
        .unwrap_or(false)
}

/// Marks this thread as the one that drives `driver` until the guard drops.
pub(crate) fn set_driving(driver: &Driver) -> DrivingGuard {
    let prev = DRIVING.with(|d| d.replace(driver));
    DrivingGuard { prev }
}

pub(crate) struct DrivingGuard {
    prev: *const Driver,
}

impl Drop for DrivingGuard {
    fn drop(&mut self) {
        let prev = self.prev;
        let _ = DRIVING.try_with(|d| d.set(prev));
    }
}

/// Refuses to block a thread that drives a runtime: its tasks (and everything waiting on its
/// kqueue) would stop, and a nested `block_on` on the same runtime could never finish.
#[track_caller]
pub(crate) fn assert_not_driving(what: &str) {
    let driving = DRIVING.try_with(|d| !d.get().is_null()).unwrap_or(false);
    if driving {
        panic!(
            "knote: {what} was called on a thread that is running a runtime's tasks; \
             blocking it would stall that runtime (use .await, or spawn_blocking)"
        );
    }
}
