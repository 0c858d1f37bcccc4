//! knote-capi: `kqueue()` and `kevent()` for C programs on Linux, with FreeBSD's ABI.
//!
//! A C program written for FreeBSD includes `<sys/event.h>` (this crate's `include/`), links
//! `libknote_capi` (`.a` or `.so`), and runs on Linux unchanged: the functions exported here take
//! FreeBSD 12+'s `struct kevent` ([`CKevent`]) and constants, and do the work with
//! [`knote_reactor::Kqueue`], whose epoll shim implements FreeBSD's semantics. The shim's
//! differences from FreeBSD (the table in knote-reactor's crate docs) apply; `capi/README.md`
//! lists the few this layer adds.
//!
//! On the BSDs and macOS the C library has kqueue already, and this crate is empty.
//!
//! # The program's fd, and `close()`
//!
//! C programs end a kqueue with plain `close(kq)`, which this library never sees. What it must
//! never do is take a later file that reuses the number for the old kqueue, leak the old
//! kqueue's resources forever, or — worst — close a number the program has since reused, which
//! dropping the reactor's [`Kqueue`](knote_reactor::Kqueue) (it owns its epoll fd) would do if
//! the program's number *were* the reactor's fd. So:
//!
//! - **The program gets a `dup` of the reactor's epoll fd.** The `Kqueue` keeps its own fd, a
//!   number the program never sees; the program's `close()` closes only its dup, and dropping
//!   the `Kqueue` closes only the library's own fds. The dup is the same open file, so the
//!   program can `poll(2)` it exactly as the reactor's fd (readable when events are pending).
//! - **A table maps the program's number to the `Kqueue`**, and every `kevent()` checks that the
//!   number still names *that epoll instance*. `fstat` cannot tell (every epoll shares one
//!   anonymous inode), so each kqueue's epoll holds a **marker**: an eventfd of the library's,
//!   registered with no events (an eventfd never reports `EPOLLERR`/`EPOLLHUP`, so the reactor
//!   never sees it). `epoll_ctl(fd, EPOLL_CTL_MOD, marker)` succeeds only on the epoll that holds
//!   the registration: one cheap system call per `kevent()`, exact, and allowed everywhere epoll
//!   is. (`kcmp(KCMP_FILE)` would be exact too, but costs about twice as much here and is missing
//!   without `CONFIG_KCMP` or under seccomp; it, and then `fstat`, serve only if a marker cannot
//!   be registered.) A number that fails the check is `EBADF`, and its entry is removed and the
//!   `Kqueue` dropped, freeing its fds.
//! - **`kqueue()` first reaps every stale entry** (one check each), so a program that closes its
//!   kqueues and makes new ones holds a bounded number of fds even if it never calls `kevent` on
//!   a closed number; and a new kqueue handed out at a number replaces any entry left there.
//!   Until then a closed kqueue's knotes linger harmlessly: the epoll instance stays alive only
//!   through the library's fd, and nothing collects from it.
//! - **Forks are counted** (a `pthread_atfork` child handler): in a `fork`ed child an inherited
//!   number is `EBADF` (FreeBSD does not pass kqueues to children), and the child's copy is
//!   dropped — closing the child's fds only, which leaves the parent's epoll and its
//!   registrations alone.
//!
//! The table's lock is held only to look up, insert or remove — never across a wait — so any
//! number of threads may call `kevent()` on one kqueue at once (the reactor's `Kqueue` is
//! `Send + Sync`, and a thread waiting on a kqueue keeps it alive even if another reaps it).
//!
//! # Safety at the boundary
//!
//! Pointers from C are used only as kevent(2) documents them (see [`kevent`]); null lists with
//! positive counts are `EFAULT`, negative counts and malformed timeouts `EINVAL`. The changes are
//! copied in before any event is written, so the two lists may alias. No panic crosses into C:
//! each entry point runs under `catch_unwind` and a panic (a bug) becomes `EIO`.

#![warn(missing_docs)]

#[cfg(target_os = "linux")]
mod abi;
#[cfg(target_os = "linux")]
mod ffi;
#[cfg(target_os = "linux")]
mod registry;

#[cfg(target_os = "linux")]
pub use abi::{from_c, to_c, CKevent};
#[cfg(target_os = "linux")]
pub use ffi::{kevent, kqueue, kqueue1, kqueuex, KQUEUE_CLOEXEC};
