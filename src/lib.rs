//! knote: an async runtime whose reactor is a faithful kqueue(2) abstraction.
//!
//! # Design
//!
//! ```text
//!   your tasks               #[knote::main], knote::spawn, knote::time::sleep, AsyncFd
//!        │  futures woken by triggered kevents: udata → slot → waker, O(1), no hashing
//!   knote::runtime           current-thread, multi-thread (a home kqueue), embedding,
//!        │                   blocking pool                    (the `knote-executor` crate)
//!        │  change list in, event list out
//!   knote::reactor           kqueue's model, one system call per wait on native kqueue
//!        │
//!   ├── kevent(2)            FreeBSD, NetBSD, OpenBSD, DragonFly, macOS: straight through
//!   └── epoll shim           Linux, Android: the same semantics rebuilt on epoll(7)
//! ```
//!
//! - **The reactor is kqueue.** A [`Kqueue`](reactor::Kqueue) holds *knotes* keyed by
//!   `(ident, filter)`. You describe what to watch as [`Kevent`](reactor::Kevent) changes —
//!   `READ`/`WRITE` on fds, `TIMER`, `USER`, `SIGNAL`, `PROC` — and one `kevent` call applies the
//!   change list and collects ready events, each carrying back the opaque `udata` word you gave
//!   it. A [`ChangeList`](reactor::ChangeList) queues changes so registration rides along with
//!   the next wait instead of costing a system call of its own.
//! - **Native where kqueue exists, a shim where it does not.** On the BSDs and macOS the change
//!   and event slices go to the kernel as they are. On Linux an epoll-based shim reproduces
//!   FreeBSD's semantics (the reference), and documents the few places where it cannot.
//! - **The executor** ([`runtime`], [`task`], [`time`], [`io`]) polls futures woken by those
//!   events: every registration's `udata` names a slot holding its wakers, every timer is an
//!   EVFILT_TIMER knote, and a sleeping runtime thread is woken by one EVFILT_USER trigger.
//!   [`signal`] (`ctrl_c`, signal streams) and [`process`] (an async `Command`, each child
//!   waited for with its own EVFILT_PROC knote) sit on the SIGNAL and PROC filters.
//! - **HTTP** (the `hyper` feature): `knote::hyper` gives hyper 1.x its I/O, executor and
//!   timer on knote, so unmodified hyper servers and clients, hyper-util's auto builder and
//!   axum run on a knote runtime, with no tokio runtime in the process.
//!
//! ```
//! #[knote::main(flavor = "current_thread")]
//! async fn main() {
//!     let task = knote::spawn(async {
//!         knote::time::sleep(std::time::Duration::from_millis(1)).await;
//!         6 * 7
//!     });
//!     assert_eq!(task.await.unwrap(), 42);
//! }
//! ```
//!
//! # Example
//!
//! A one-shot timer, waited for with the registration riding along with the wait:
//!
//! ```
//! use std::time::Duration;
//! use knote::reactor::{ChangeList, Filter, Flags, Kevent, Kqueue, TimerUnit};
//!
//! # fn main() -> std::io::Result<()> {
//! let kq = Kqueue::new()?;
//! let mut changes = ChangeList::new();
//! changes.push(Kevent::timer(1, Flags::ADD | Flags::ONESHOT, TimerUnit::Millis, 5, 0xfeed));
//!
//! let mut events = [Kevent::zeroed(); 4];
//! let n = changes.submit(&kq, &mut events, Some(Duration::from_secs(5)))?;
//! assert_eq!(n, 1);
//! assert_eq!(events[0].filter(), Filter::TIMER);
//! assert_eq!(events[0].udata(), 0xfeed);
//! # Ok(())
//! # }
//! ```
//!
//! The README has a longer tour (a socket and a timer in one change list).

#![deny(missing_docs)]

/// The reactor: kqueue(2)'s change-list / event-list model (the `knote-reactor` crate).
///
/// Its main types are reachable here as `knote::reactor::{Kqueue, KqueueBuilder, ChangeList,
/// Kevent, Filter, Flags, TimerUnit, RawIdent}`, and the `NOTE_*` constants as
/// `knote::reactor::note`.
pub use knote_reactor as reactor;

/// Networking: TCP, UDP and Unix-domain sockets on the runtime's kqueue (the `knote-net`
/// crate): `knote::net::{TcpListener, TcpStream, TcpSocket, UdpSocket, UnixListener,
/// UnixStream, UnixDatagram, lookup_host}`, with futures-io `AsyncRead`/`AsyncWrite` on the
/// streams (and tokio's, with the `tokio-io` feature).
pub use knote_net as net;

#[cfg(feature = "hyper")]
pub mod hyper;

pub use knote_executor::{fs, io, process, runtime, signal, sync, task, time};
pub use knote_executor::{spawn, spawn_blocking, spawn_local, JoinError, JoinHandle, Runtime};

/// Runs an `async fn main` on a knote runtime (multi-thread unless `flavor = "current_thread"`;
/// `worker_threads = N` sets the worker count).
pub use knote_macros::main;

/// Runs an `async fn` test on a knote runtime (current-thread unless
/// `flavor = "multi_thread"`).
pub use knote_macros::test;

// The README's code blocks are compiled and run as doctests, so the tour it shows stays true.
// Its hyper server needs the `hyper` feature (the README's test command turns every feature on).
#[cfg(all(doctest, feature = "hyper"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
