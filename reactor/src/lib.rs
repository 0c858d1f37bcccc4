//! knote-reactor: kqueue(2)'s change-list / event-list model, on every platform.
//!
//! # Design
//!
//! ```text
//!   changes ──▶ Kqueue::kevent(changes, events, timeout) ──▶ events
//!                 │  apply each change in order (errors and receipts become EV_ERROR entries)
//!                 │  then collect triggered knotes, waiting up to `timeout`
//!                 ▼
//!           sys::Selector ── kqueue.rs: FreeBSD, macOS, NetBSD, OpenBSD, DragonFly
//!                         │   the slices go to kevent(2) as they are (`Kevent` *is* the
//!                         │   platform's `struct kevent`); results normalised to FreeBSD's
//!                         └─ epoll/: Linux, Android — a shim that keeps kqueue's knotes and
//!                             ready queue in user space over epoll, eventfd, timerfd, pidfd
//!                             inotify and a counting signal handler
//! ```
//!
//! A knote is identified by `(ident, filter)`; `udata` is an opaque word handed back untouched
//! (Dillon's proposal: the kernel returns the user's pointer, so the user's record can carry
//! its own dispatch). [`ChangeList`] queues changes to ride along with the next wait, so
//! registering costs no system call of its own on native kqueue. [`Kqueue`] is `Send + Sync`,
//! and its fd is readable whenever `kevent` would return an event, so a host loop can poll it.
//!
//! The reference is FreeBSD: kqueue(2) and `kern_event.c`, as written down in the
//! [semantics](#the-semantics-knote-reactor-implements) below. The filters are
//! [`Filter::READ`], `WRITE`, `TIMER`, `USER`, `SIGNAL`, `PROC` and `VNODE` (over inotify
//! on the Linux shim); the flags are [`Flags`]; the `NOTE_*` values are in [`note`].
//!
//! ```no_run
//! use knote_reactor::{Flags, Kevent, Kqueue, TimerUnit};
//! use std::time::Duration;
//!
//! let kq = Kqueue::new()?;
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let changes = [
//!     Kevent::read(&listener, Flags::ADD, 1),
//!     Kevent::timer(7, Flags::ADD | Flags::ONESHOT, TimerUnit::Millis, 50, 2),
//! ];
//! let mut events = [Kevent::zeroed(); 16];
//! let n = kq.kevent(&changes, &mut events, Some(Duration::from_secs(1)))?;
//! for ev in &events[..n] {
//!     match ev.udata() {
//!         1 => println!("{} connections waiting", ev.data()),
//!         2 => println!("timer fired"),
//!         _ => unreachable!(),
//!     }
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The semantics every backend implements — flags, errors and receipts, each filter's `data`
//! and `fflags`, the traps on the way to epoll, and the table of where a backend differs from
//! FreeBSD, each row pinned by a test — follow below; they live in `reactor/SEMANTICS.md`.
//!
#![doc = include_str!("../SEMANTICS.md")]
#![warn(missing_docs)]

mod changelist;
mod event;
mod kqueue;
pub mod note;
mod sys;

pub use changelist::ChangeList;
pub use event::{Filter, Flags, Kevent, RawIdent, TimerUnit};
pub use kqueue::{Kqueue, KqueueBuilder};
