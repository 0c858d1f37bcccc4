//! Synchronization for tasks: channels, a notifier, a semaphore, locks, shutdown and fan-out.
//!
//! knote writes none of these itself. Each is a well-kept, runtime-agnostic implementation that
//! only needs [`Waker`](std::task::Waker)s, so it works on every knote runtime (current-thread,
//! multi-thread, [`LocalRuntime`](crate::LocalRuntime)) with no other runtime present:
//!
//! - [`Notify`], [`Semaphore`], [`Mutex`], [`RwLock`], [`Barrier`], [`OnceCell`], [`watch`],
//!   [`broadcast`] and [`oneshot`]: tokio's `sync` module, compiled without tokio's runtime
//!   (the crate with only its `sync` feature). One crate covers all of them with fair (FIFO)
//!   wake-up order for the semaphore and the locks, and the smol-side crates (`async-lock`,
//!   `event-listener`, `async-broadcast`) have no `watch`. Measured on knote's runtimes
//!   (`bench/benches/sync_primitives.rs`), tokio's is the faster where it matters: `Notify`'s wake
//!   round trip, broadcast fan-out, a Mutex held across awaits by contending tasks, and the
//!   oneshot (against futures-channel's too). async-lock's uncontended Mutex and its Semaphore
//!   on a current-thread runtime are faster; not enough to split the module across two crates
//!   and lose tokio's richer API (`acquire_many`, `add_permits`, `close`, owned guards).
//! - [`mpsc`]: futures-channel's (a `Stream` receiver, a `Sink` sender), kept: of the three
//!   measured (futures-channel, tokio, async-channel) it is the fastest on a current-thread
//!   runtime, and on a par with tokio's on a multi-thread one.
//!
//! A [`watch`] channel is the usual graceful-shutdown signal (every task holds a receiver and
//! stops at `changed()`), a [`Semaphore`] a connection limit, [`broadcast`] a chat room's
//! fan-out.

pub use futures_channel::mpsc;
pub use tokio::sync::oneshot;

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
