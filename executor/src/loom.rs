//! The synchronisation primitives the cross-thread protocols are written against: `loom`'s
//! when the crate is built with `RUSTFLAGS="--cfg loom"` (model checking: every interleaving
//! of a model's threads, within a preemption bound, is explored), `std`'s otherwise.
//!
//! A protocol that is model-checked uses these and only these for its shared state, so the
//! code the model explores is the code the runtime runs. The models live beside the code they
//! check, in `#[cfg(all(test, loom))]` modules; `.ci/run` runs them with
//! `RUSTFLAGS="--cfg loom" cargo test -p knote-executor --release --lib loom`.

#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::{cell, sync, thread};

#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) use std::{sync, thread};

/// `UnsafeCell` with loom's access-tracking interface (`with`, `with_mut`), so that code
/// using it compiles unchanged under both.
#[cfg(not(loom))]
#[allow(dead_code)]
pub(crate) mod cell {
    /// See the module docs.
    #[derive(Debug, Default)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    #[allow(dead_code)]
    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> UnsafeCell<T> {
            UnsafeCell(std::cell::UnsafeCell::new(value))
        }

        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

/// `AtomicWaker` with one interface under both: `futures-util`'s (lock-free) normally, loom's
/// model of it under `--cfg loom`, so a model that parks and wakes tasks runs the real slot
/// code.
pub(crate) mod future {
    #[cfg(not(loom))]
    pub(crate) use futures_util::task::AtomicWaker;

    /// loom's `AtomicWaker`, with `futures-util`'s method names.
    #[cfg(loom)]
    #[derive(Debug, Default)]
    pub(crate) struct AtomicWaker(loom::future::AtomicWaker);

    #[cfg(loom)]
    impl AtomicWaker {
        pub(crate) fn new() -> AtomicWaker {
            AtomicWaker(loom::future::AtomicWaker::new())
        }

        pub(crate) fn register(&self, waker: &std::task::Waker) {
            self.0.register_by_ref(waker);
        }

        pub(crate) fn wake(&self) {
            self.0.wake();
        }

        pub(crate) fn take(&self) -> Option<std::task::Waker> {
            self.0.take_waker()
        }
    }
}

/// Locks a mutex whatever a panicking holder left behind.
///
/// The runtime's mutexes guard state that every operation leaves consistent between
/// statements (queues, counters, free lists), so a panic in a task that held one — the runtime
/// catches task panics and keeps running — must not turn every later lock into a second panic.
/// One trait for `std`'s mutex and loom's, so the same call compiles under both.
pub(crate) trait Locked {
    /// The guard [`locked`](Locked::locked) returns.
    type Guard<'a>
    where
        Self: 'a;

    /// `lock()`, taking the guard out of a poisoned lock instead of failing.
    fn locked(&self) -> Self::Guard<'_>;
}

impl<T: ?Sized> Locked for std::sync::Mutex<T> {
    type Guard<'a>
        = std::sync::MutexGuard<'a, T>
    where
        Self: 'a;

    fn locked(&self) -> Self::Guard<'_> {
        self.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(loom)]
impl<T: ?Sized> Locked for loom::sync::Mutex<T> {
    type Guard<'a>
        = loom::sync::MutexGuard<'a, T>
    where
        Self: 'a;

    fn locked(&self) -> Self::Guard<'_> {
        self.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
