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
//! The reference is FreeBSD: see `shared/kqueue-semantics.md` and kqueue(2). The filters are
//! [`Filter::READ`], `WRITE`, `TIMER`, `USER`, `SIGNAL`, `PROC` and `VNODE` (over inotify on
//! the Linux shim); the flags are [`Flags`]; the `NOTE_*` values are in [`note`].
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
//! # Where the epoll shim differs from FreeBSD
//!
//! Everything else in the semantics table holds on the shim, and the conformance suite in
//! `reactor/tests/` runs unchanged on every backend; each row below is pinned by a test that
//! checks the shim's documented behaviour on Linux.
//!
//! | behaviour | FreeBSD kqueue | epoll shim |
//! | --- | --- | --- |
//! | `data` of READ/WRITE with [`KqueueBuilder::exact_data`]`(false)` | always exact | 0 (readiness only), except knotes with `NOTE_LOWAT`: no `ioctl` per event on the hot path |
//! | an fd closed without `EV_DELETE` while a `dup` keeps its file open | knotes dropped at `close` | exact mode: never reported (identity checked on delivery); fast mode: the old file's readiness may be reported under the old `udata` once per new edge, until the number is re-registered or deleted |
//! | a change without `EV_ADD` (`EV_DELETE` of one of two knotes, `EV_ENABLE`, `EV_DISABLE`) on an fd closed without `EV_DELETE` | `EBADF` (closed) or `ENOENT` (number reused) | exact mode: the same (the file's identity is checked); fast mode: succeeds on the old knote (no system call notices the close) |
//! | the fd closed and the *same* open file put back at the same number (`dup2` of a dup onto it) | knotes dropped at the close | invisible to epoll and to any check: the knotes carry on as if the fd had never been closed |
//! | READ and WRITE on one fd, both `EV_CLEAR` | independent edges | one registration: an edge on one side may report the other side's standing readiness once more (with different modes they get separate registrations and stay independent; the split itself re-reports READ once) |
//! | level-triggered fd knotes | re-queued by the kernel | re-queued in user space and re-checked with one `poll(2)` per call; the kqueue fd may read as readable until that re-check drops a knote no longer ready |
//! | PROC on a process that is not our child | `data` = wait status | `data` = 0 (Linux keeps no status for non-children) |
//! | PROC `NOTE_FORK`, `NOTE_EXEC`, `NOTE_TRACK` | reported | accepted, never reported (only `NOTE_EXIT`) |
//! | READ `data` on a UDP socket | all bytes queued | size of the next datagram (`FIONREAD`) |
//! | READ `data` on a listening Unix-domain socket | accept-queue length | 1 (Linux does not expose it) |
//! | WRITE `data` on a socket | `sbspace` of the send buffer | `SO_SNDBUF` − `SIOCOUTQ` (Linux counts buffer overhead in `SO_SNDBUF`) |
//! | READ/WRITE on regular files and directories | vnode filter, woken by writes | evaluated at each `kevent` call (READ: offset ≠ EOF, `data` = size − offset; WRITE: always): growth during a blocking wait does not end it |
//! | `VNODE` notes | from the VFS operation itself | from inotify events (a `stat` tells unlink from link from attribute change, and growth from overwrite): each becomes FreeBSD's hint for the same operation; truncation is `NOTE_ATTRIB` only when the size shrank (growing truncation reads as `NOTE_WRITE \| NOTE_EXTEND`) (`vnode.rs`: `attrib_on_chmod_and_on_truncation`, `append_reports_write_and_extend_overwrite_only_write`) |
//! | `VNODE` on a directory removed (`rmdir`) while the knote's fd keeps it open | `NOTE_DELETE` | nothing: Linux tells only the parent (`vnode.rs`: `rmdir_of_a_watched_directory`) |
//! | `VNODE` `NOTE_REVOKE` | on forced unmount or `revoke(2)`, with `EV_EOF` | never while the knote's fd is open: Linux cannot unmount a file system with an open file, and a lazy unmount waits for the last close (`vnode.rs`: `unmount_under_an_open_file`) |
//! | `VNODE` when the inotify queue overflows (`max_queued_events`) | no queue, nothing lost | every VNODE knote of the kqueue is re-examined: link count, size, times, owner and path give `DELETE`/`LINK`/`WRITE`/`EXTEND`/`ATTRIB`/`RENAME`, and the requested notes nothing records (`OPEN`, `CLOSE`, `CLOSE_WRITE`, `READ`) are reported as possibly lost (`vnode.rs`: `overflow_reports_what_could_have_happened`) |
//! | `VNODE` resources | none beyond the knote | one inotify instance per kqueue (the per-user `max_user_instances` limit applies: `EMFILE` on the first VNODE knote past it) and one watch per inode (`max_user_watches`: `ENOSPC`) |
//! | SIGNAL | kernel counts every delivery | a process-wide handler, installed at the first SIGNAL knote of each signal, counts and then chains to the disposition it replaced (handler, `SIG_IGN`, or the default action); a later `sigaction()` by the program replaces it and ends counting; `SIGKILL`/`SIGSTOP` → `EINVAL` |

#![warn(missing_docs)]

mod changelist;
mod event;
mod kqueue;
pub mod note;
mod sys;

pub use changelist::ChangeList;
pub use event::{Filter, Flags, Kevent, RawIdent, TimerUnit};
pub use kqueue::{Kqueue, KqueueBuilder};
