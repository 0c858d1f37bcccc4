//! knote's executor: runtimes that poll futures woken by triggered kevents.
//!
//! ```text
//!   task ──poll──▶ AsyncFd ──(EAGAIN)─────────────────▶ waker parked in a Slot
//!                        │                                        ▲
//!                        │ knote registered with udata = Token    │ O(1): udata → index →
//!                        ▼   (slot index | generation)            │ page → slot; generation
//!                    kqueue ──kevent(changes, events)──▶ event ───┘ checked in the same CAS
//!                                                                 that sets readiness
//!   woken task ──▶ run queue of the thread that saw the event (no atomics on the
//!                  current-thread runtime) or, from another thread, a lock-free queue plus
//!                  one EVFILT_USER trigger if the runtime's thread is asleep in its kqueue
//! ```
//!
//! - **Wake path** (`driver`): every registration (fd readiness, signals,
//!   processes) owns a slot in an arena that never moves or frees a slot while the kqueue
//!   lives; an event's `udata` is the slot's index and generation. See `driver::slots` for why
//!   this and not a pointer.
//! - **Tasks** (`task`): one `async-task` allocation each; a guard turns panics and aborts into
//!   [`task::JoinError`]s, and a task that goes idle enters a registry so that shutdown can
//!   drop every future, even unreachable ones (tasks that finish in their first poll never
//!   touch it).
//! - **Runtimes** (`runtime`): current-thread (one thread, plain `VecDeque` run queue),
//!   multi-thread (one home kqueue for every registration, waited in by an idle worker; a
//!   bounded run queue, a LIFO slot and a kqueue to sleep in per worker, so a wake-up is aimed
//!   at one worker: `bench/benches/wake_paths.rs`; stealing, coalesced wake-ups),
//!   [`runtime::LocalRuntime`] for hosts that own their loop, and a blocking pool.
//! - **Time** ([`time`]): a user-space timer heap per driver, lock-free to arm, reset and cancel
//!   from any thread; waits are shortened to the earliest deadline (nanosecond precision), and
//!   one EVFILT_TIMER knote per driver keeps its kqueue's fd readable when a timer is due. A
//!   current-thread runtime's clock can be paused for tests ([`time::pause`]).
//! - **I/O** ([`io`]): [`io::Registration`] is the readiness protocol (edge-triggered, cleared
//!   only by the wait that saw it) and [`io::AsyncFd`] wraps any fd with it.
//! - **File watching** ([`fs`]): [`fs::watch`] streams an open file's `EVFILT_VNODE` notes.
//! - **Signals** ([`signal`]): [`signal::ctrl_c`] and [`signal::signal`] on `EVFILT_SIGNAL`,
//!   one knote per signal per kqueue fanned out to every listener.
//! - **Processes** ([`process`]): an async [`process::Command`]; each child is waited for with
//!   its own `EVFILT_PROC` knote, and children dropped unwaited are reaped by a detached reaper.
//! - A cooperative budget (128 ready results per poll) and a kqueue poll every 61 tasks keep an
//!   always-ready task from starving I/O, timers or other tasks.

#![deny(missing_docs)]
#![warn(unsafe_op_in_unsafe_fn)]

mod driver;
pub mod fs;
pub mod io;
mod loom;
pub mod process;
pub mod runtime;
pub mod signal;
pub mod sync;
pub mod task;
pub mod time;

pub use runtime::{Builder, Handle, LocalRuntime, Runtime};
pub use task::{spawn, spawn_blocking, spawn_local, JoinError, JoinHandle};
