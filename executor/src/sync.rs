//! Synchronization for tasks: channels, a notifier, a semaphore, locks, shutdown and fan-out.
//!
//! knote writes none of these itself. Each is a well-kept, runtime-agnostic implementation that
//! only needs [`Waker`](std::task::Waker)s, so it works on every knote runtime (current-thread,
//! multi-thread, [`LocalRuntime`](crate::LocalRuntime)) with no other runtime present:
//!
//! - [`mpsc`] and [`oneshot`]: from `futures-channel`. Kept from before: the benchmark
//!   (`benches/sync_primitives.rs`) compares them with tokio's and `async-channel`'s on knote's
//!   runtimes.
//! - [`Notify`], [`Semaphore`], [`Mutex`], [`RwLock`], [`Barrier`], [`OnceCell`], [`watch`]
//!   and [`broadcast`]: from tokio's `sync` module, compiled without tokio's runtime (the crate
//!   with only its `sync` feature). One crate covers all of them, with fair (FIFO) wake-up
//!   order for the semaphore and the locks; the smol-side crates (`async-lock`,
//!   `event-listener`, `async-broadcast`) have no `watch`. `benches/sync_primitives.rs`
//!   compares both sides on knote's runtimes.
//!
//! A [`watch`] channel is the usual graceful-shutdown signal (every task holds a receiver and
//! stops at `changed()`), a [`Semaphore`] a connection limit, [`broadcast`] a chat room's
//! fan-out.

pub use futures_channel::{mpsc, oneshot};

pub use tokio::sync::{broadcast, watch};
pub use tokio::sync::{
    AcquireError, Barrier, BarrierWaitResult, MappedMutexGuard, Mutex, MutexGuard, Notify,
    OnceCell, OwnedMutexGuard, OwnedRwLockReadGuard, OwnedRwLockWriteGuard, OwnedSemaphorePermit,
    RwLock, RwLockReadGuard, RwLockWriteGuard, Semaphore, SemaphorePermit, SetError,
    TryAcquireError, TryLockError,
};

/// Futures returned by [`Notify`]'s methods.
pub mod futures {
    pub use tokio::sync::futures::{Notified, OwnedNotified};
}
