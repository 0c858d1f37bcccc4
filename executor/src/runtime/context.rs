//! Thread-local runtime context: which runtime `spawn`/`sleep`/`AsyncFd::new` talk to, and
//! which driver (kqueue) this thread is the one to wait on.

use std::cell::{Cell, RefCell};

use crate::driver::Driver;
use crate::runtime::Handle;

thread_local! {
    static CURRENT: RefCell<Option<Handle>> = const { RefCell::new(None) };
    static DRIVING: Cell<*const Driver> = const { Cell::new(std::ptr::null()) };
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
