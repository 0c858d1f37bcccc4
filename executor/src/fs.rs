//! File watching: [`watch`] turns an open file or directory into a stream of what happens to it
//! ([`Notes`]), built on an `EVFILT_VNODE` knote.
//!
//! The knote is on the open file, not on a path: the watch follows the file through renames,
//! and keeps reporting after it is unlinked (for as long as the watch holds it open). That is
//! what a log follower wants — a rotated log shows up as [`Notes::RENAME`] or
//! [`Notes::DELETE`], after which the follower reopens the path itself.
//!
//! On the BSDs and macOS this is the kernel's `EVFILT_VNODE`; on Linux it is the reactor's shim
//! over inotify (see `knote_reactor`'s difference table for where that differs). The knote is
//! edge-triggered (`EV_CLEAR`): each item is the set of notes that fired since the previous one,
//! so a burst of writes may arrive as one [`Notes::WRITE`].
//!
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! use knote_executor::fs::{watch, Notes};
//!
//! let file = std::fs::File::open("/var/log/messages")?;
//! let mut changes = watch(file, Notes::WRITE | Notes::EXTEND | Notes::RENAME | Notes::DELETE)?;
//! while let Some(notes) = changes.next().await {
//!     if notes.intersects(Notes::RENAME | Notes::DELETE) {
//!         break; // rotated: reopen the path
//!     }
//!     // read what was appended
//! }
//! # Ok(())
//! # }
//! ```

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::Stream;
use knote_reactor::{note, Flags, Kevent};

use crate::io::KnoteRegistration;
use crate::runtime::Handle;

bitflags::bitflags! {
    /// What can happen to a watched file (kqueue's `NOTE_*` for `EVFILT_VNODE`).
    ///
    /// The bits are knote's own; [`watch`] converts them to the platform's. `OPEN`, `CLOSE`,
    /// `CLOSE_WRITE` and `READ` exist on FreeBSD and on Linux only ([`Notes::supported`]).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Notes: u32 {
        /// The file was deleted: one of its links was removed, or a rename replaced it.
        const DELETE = 1 << 0;
        /// The file was written; for a directory, its entries changed.
        const WRITE = 1 << 1;
        /// The file grew; for a directory, an entry was moved in or out.
        const EXTEND = 1 << 2;
        /// The file's attributes changed (mode, owner, times; a truncation).
        const ATTRIB = 1 << 3;
        /// A link to the file was added; for a directory, a subdirectory was created or removed.
        const LINK = 1 << 4;
        /// The file was renamed.
        const RENAME = 1 << 5;
        /// Access to the file was revoked (its file system unmounted): the stream ends after it.
        const REVOKE = 1 << 6;
        /// The file was opened.
        const OPEN = 1 << 7;
        /// A descriptor of the file that could not write was closed.
        const CLOSE = 1 << 8;
        /// A descriptor of the file that could write was closed.
        const CLOSE_WRITE = 1 << 9;
        /// The file was read.
        const READ = 1 << 10;
    }
}

/// Each note and the platform's `NOTE_*` value for it (0 where the platform lacks it).
const TABLE: [(Notes, u32); 11] = [
    (Notes::DELETE, note::DELETE),
    (Notes::WRITE, note::WRITE),
    (Notes::EXTEND, note::EXTEND),
    (Notes::ATTRIB, note::ATTRIB),
    (Notes::LINK, note::LINK),
    (Notes::RENAME, note::RENAME),
    (Notes::REVOKE, note::REVOKE),
    (Notes::OPEN, note::OPEN),
    (Notes::CLOSE, note::CLOSE),
    (Notes::CLOSE_WRITE, note::CLOSE_WRITE),
    (Notes::READ, note::READ),
];

impl Notes {
    /// The notes this platform can watch.
    pub fn supported() -> Notes {
        TABLE
            .iter()
            .filter(|(_, native)| *native != 0)
            .fold(Notes::empty(), |all, (n, _)| all | *n)
    }

    /// The platform's `fflags` for these notes (unsupported ones are dropped).
    pub fn to_fflags(self) -> u32 {
        TABLE
            .iter()
            .filter(|(n, _)| self.contains(*n))
            .fold(0, |fflags, (_, native)| fflags | native)
    }

    /// The notes in the platform's `fflags`.
    pub fn from_fflags(fflags: u32) -> Notes {
        TABLE
            .iter()
            .filter(|(_, native)| *native != 0 && fflags & native != 0)
            .fold(Notes::empty(), |all, (n, _)| all | *n)
    }
}

/// Watches `file` (an open regular file, directory or named FIFO) for `notes`, with the current
/// runtime. The watch owns `file` (pass a `&File` or a `BorrowedFd` to keep it); dropping it
/// deletes the knote before the file is closed.
///
/// Errors: no runtime; notes this platform cannot watch (`Unsupported`, see
/// [`Notes::supported`]); none at all (`InvalidInput`); and what `kevent` says — `EINVAL` for
/// a socket, pipe or device, `EBADF` for a closed fd.
pub fn watch<F: AsFd>(file: F, notes: Notes) -> io::Result<Watch<F>> {
    let handle = Handle::try_current().map_err(io::Error::other)?;
    watch_with_handle(file, notes, &handle)
}

/// [`watch`] with the runtime of `handle`.
pub fn watch_with_handle<F: AsFd>(file: F, notes: Notes, handle: &Handle) -> io::Result<Watch<F>> {
    if notes.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "fs::watch: no notes to watch for",
        ));
    }
    let missing = notes - Notes::supported();
    if !missing.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("fs::watch: {missing:?} cannot be watched on this platform"),
        ));
    }
    // REVOKE is always asked for: it ends the stream whether or not the caller wants it named.
    let fflags = (notes | Notes::REVOKE).to_fflags();
    let fd = file.as_fd().as_raw_fd();
    let change = Kevent::vnode(fd, Flags::ADD | Flags::CLEAR, fflags, 0);
    let registration = KnoteRegistration::with_handle(change, handle)?;
    Ok(Watch {
        registration,
        file,
        notes,
        done: false,
    })
}

/// A stream of the [`Notes`] that fired on a watched file, from [`watch`].
///
/// Use the inherent [`next`](Watch::next) or the [`Stream`] impl. The stream ends after
/// [`Notes::REVOKE`]; a deleted file that is still open keeps reporting (writes through other
/// descriptors), so ending on [`Notes::DELETE`] is the caller's choice.
pub struct Watch<F: AsFd> {
    // Declared before `file`: the knote is deleted before the fd closes.
    registration: KnoteRegistration,
    file: F,
    notes: Notes,
    done: bool,
}

impl<F: AsFd> Watch<F> {
    /// The notes being watched for.
    pub fn notes(&self) -> Notes {
        self.notes
    }

    /// The watched file.
    pub fn get_ref(&self) -> &F {
        &self.file
    }

    /// Stops watching and gives the file back.
    pub fn into_inner(self) -> F {
        let Watch {
            registration, file, ..
        } = self;
        drop(registration);
        file
    }

    /// Waits for the next notes; `None` once the file's access was revoked.
    pub async fn next(&mut self) -> Option<Notes> {
        std::future::poll_fn(|cx| self.poll_notes(cx)).await
    }

    /// Polls for the next notes (what [`next`](Watch::next) and the [`Stream`] impl use).
    pub fn poll_notes(&mut self, cx: &mut Context<'_>) -> Poll<Option<Notes>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let fired = std::task::ready!(self.registration.poll_event(cx));
            let got = Notes::from_fflags(fired.fflags);
            if got.contains(Notes::REVOKE) {
                self.done = true;
            }
            // kqueue reports a hint whole when any of it was asked for (an append asked for
            // as WRITE says WRITE | EXTEND): yield only what was asked for.
            let asked = got & self.notes;
            if !asked.is_empty() {
                return Poll::Ready(Some(asked));
            }
        }
    }
}

impl<F: AsFd + Unpin> Stream for Watch<F> {
    type Item = Notes;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Notes>> {
        self.get_mut().poll_notes(cx)
    }
}

impl<F: AsFd> std::fmt::Debug for Watch<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("fd", &self.file.as_fd().as_raw_fd())
            .field("notes", &self.notes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_round_trip_through_the_platform_values() {
        let all = Notes::supported();
        assert!(all.contains(Notes::DELETE | Notes::WRITE | Notes::EXTEND | Notes::RENAME));
        assert_eq!(Notes::from_fflags(all.to_fflags()), all);
        assert_eq!(Notes::from_fflags(note::WRITE), Notes::WRITE);
        assert_eq!(Notes::empty().to_fflags(), 0);
        #[cfg(any(target_os = "linux", target_os = "freebsd"))]
        assert_eq!(all, Notes::all());
    }
}
