//! Task-local values ([`task_local!`](crate::task_local)): a value that belongs to one future
//! (and what it awaits), not to a thread, so it follows a task from worker to worker.
//!
//! Each key is a thread-local slot. [`LocalKey::scope`] wraps a future in a
//! [`TaskLocalFuture`] that owns the value and, around each poll of the inner future, swaps it
//! into the slot of the thread doing the poll and back out afterwards (also when the poll
//! panics). Between polls the value lives in the wrapper, wherever the task goes, and the
//! thread's slot holds whatever it held before, so nested scopes and other tasks on the same
//! thread see their own values.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Declares task-local keys: `static NAME: Type;`, each a [`LocalKey`].
///
/// ```
/// knote_executor::task_local! {
///     /// The request being served.
///     pub static REQUEST_ID: u64;
/// }
///
/// let rt = knote_executor::Runtime::new().unwrap();
/// rt.block_on(REQUEST_ID.scope(7, async {
///     assert_eq!(REQUEST_ID.get(), 7);
/// }));
/// ```
#[macro_export]
macro_rules! task_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty; $($rest:tt)*) => {
        $crate::__task_local_key!($(#[$attr])* $vis $name, $t);
        $crate::task_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty) => {
        $crate::__task_local_key!($(#[$attr])* $vis $name, $t);
    };
}

/// One key of [`task_local!`]; not for direct use.
#[doc(hidden)]
#[macro_export]
macro_rules! __task_local_key {
    ($(#[$attr:meta])* $vis:vis $name:ident, $t:ty) => {
        $(#[$attr])*
        $vis static $name: $crate::task::LocalKey<$t> = {
            ::std::thread_local! {
                static __KNOTE_TASK_LOCAL: ::std::cell::RefCell<::std::option::Option<$t>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }
            $crate::task::LocalKey::__new(&__KNOTE_TASK_LOCAL)
        };
    };
}

/// A task-local key, declared with [`task_local!`](crate::task_local).
///
/// A value is set for the duration of a future with [`scope`](LocalKey::scope) (or of a
/// closure with [`sync_scope`](LocalKey::sync_scope)) and read inside it with
/// [`with`](LocalKey::with), [`try_with`](LocalKey::try_with) or [`get`](LocalKey::get).
pub struct LocalKey<T: 'static> {
    slot: &'static std::thread::LocalKey<RefCell<Option<T>>>,
}

impl<T: 'static> LocalKey<T> {
    /// Used by [`task_local!`](crate::task_local); not for direct use.
    #[doc(hidden)]
    pub const fn __new(slot: &'static std::thread::LocalKey<RefCell<Option<T>>>) -> LocalKey<T> {
        LocalKey { slot }
    }

    /// Runs `future` with this key set to `value`: inside it (and what it awaits), the key
    /// reads `value`, on whichever thread polls it.
    pub fn scope<F: Future>(&'static self, value: T, future: F) -> TaskLocalFuture<T, F> {
        TaskLocalFuture {
            key: self,
            value: Some(value),
            future: Some(future),
        }
    }

    /// Runs `f` with this key set to `value`.
    ///
    /// # Panics
    /// If called inside [`with`](LocalKey::with) of the same key (the value is borrowed).
    pub fn sync_scope<F, R>(&'static self, value: T, f: F) -> R
    where
        F: FnOnce() -> R,
    {
        let mut value = Some(value);
        self.enter(&mut value, f)
    }

    /// Swaps `value` into this thread's slot for the duration of `f`, and back out after it
    /// (also when it panics).
    fn enter<R>(&'static self, value: &mut Option<T>, f: impl FnOnce() -> R) -> R {
        struct Restore<'a, T: 'static> {
            key: &'static LocalKey<T>,
            value: &'a mut Option<T>,
        }
        impl<T: 'static> Drop for Restore<'_, T> {
            fn drop(&mut self) {
                // The swap in `enter` succeeded, so the slot is reachable and not borrowed
                // (every borrow of it ends inside `f`).
                let _ = self
                    .key
                    .slot
                    .try_with(|slot| std::mem::swap(&mut *slot.borrow_mut(), self.value));
            }
        }
        self.slot.with(|slot| {
            let mut slot = slot.try_borrow_mut().unwrap_or_else(|_| {
                panic!("knote: a task-local scope was entered inside `with` of the same key")
            });
            std::mem::swap(&mut *slot, value);
        });
        let _restore = Restore { key: self, value };
        f()
    }

    /// Runs `f` on the value this key has in the current scope.
    ///
    /// # Panics
    /// Outside a [`scope`](LocalKey::scope) of this key; see [`try_with`](LocalKey::try_with).
    #[track_caller]
    pub fn with<F, R>(&'static self, f: F) -> R
    where
        F: FnOnce(&T) -> R,
    {
        match self.try_with(f) {
            Ok(r) => r,
            Err(e) => panic!("knote: {e} (task_local `with` outside its key's scope)"),
        }
    }

    /// Runs `f` on the value this key has in the current scope, or says it has none.
    pub fn try_with<F, R>(&'static self, f: F) -> Result<R, AccessError>
    where
        F: FnOnce(&T) -> R,
    {
        let f = self
            .slot
            .try_with(|slot| {
                let slot = slot.borrow();
                slot.as_ref().map(f)
            })
            .map_err(|_| AccessError { _private: () })?;
        f.ok_or(AccessError { _private: () })
    }

    /// A copy of the value this key has in the current scope.
    ///
    /// # Panics
    /// Outside a [`scope`](LocalKey::scope) of this key.
    #[track_caller]
    pub fn get(&'static self) -> T
    where
        T: Clone,
    {
        self.with(T::clone)
    }
}

impl<T: 'static> fmt::Debug for LocalKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("LocalKey { .. }")
    }
}

pin_project_lite::pin_project! {
    /// A future run with a task-local value set; from [`LocalKey::scope`].
    ///
    /// Its inner future is also dropped inside the scope, so destructors can read the value.
    pub struct TaskLocalFuture<T: 'static, F> {
        key: &'static LocalKey<T>,
        value: Option<T>,
        #[pin]
        future: Option<F>,
    }

    impl<T: 'static, F> PinnedDrop for TaskLocalFuture<T, F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.future.is_some() {
                let key = *this.key;
                let reachable = key.slot.try_with(|_| ()).is_ok();
                if reachable {
                    key.enter(this.value, || this.future.set(None));
                }
            }
        }
    }
}

impl<T: 'static, F: Future> Future for TaskLocalFuture<T, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        let key = *this.key;
        let out = key.enter(this.value, || {
            let fut = this
                .future
                .as_mut()
                .as_pin_mut()
                .expect("TaskLocalFuture polled after it returned");
            fut.poll(cx)
        });
        if out.is_ready() {
            // Dropped inside the scope, as on an early drop.
            key.enter(this.value, || this.future.set(None));
        }
        out
    }
}

impl<T: 'static + fmt::Debug, F> fmt::Debug for TaskLocalFuture<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskLocalFuture")
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}

/// A task-local key was read outside any scope of it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AccessError {
    _private: (),
}

impl fmt::Debug for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessError")
    }
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task-local value not set")
    }
}

impl std::error::Error for AccessError {}
