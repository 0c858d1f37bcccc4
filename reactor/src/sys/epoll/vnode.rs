//! `EVFILT_VNODE` for the shim, over inotify(7): FreeBSD's `filt_vfsvnode` fed by inotify
//! events instead of the VFS's `VFS_KNOTE` calls.
//!
//! ```text
//!   kqueue's epoll ── inotify fd (one per kqueue, created with its first VNODE knote, level)
//!                        └─ one watch per inode, shared by every knote on it (inotify gives
//!                           the same wd for the same inode), added through /proc/self/fd/N
//!                           so it follows the open file, not a path
//!   wd → knotes; each knote keeps its file's identity, a stat snapshot, and the notes
//!   accumulated since its last delivery (FreeBSD's kn_fflags)
//! ```
//!
//! Each inotify event becomes the *hint* FreeBSD's VFS would have passed for the same
//! operation, and is applied as `filt_vfsvnode` does: if the hint shares a bit with the
//! requested notes (`kn_sfflags`), the whole hint is OR-ed into the knote's notes, and the knote
//! fires while it has any. The hints:
//!
//! | operation | inotify | hint |
//! | --- | --- | --- |
//! | write | `IN_MODIFY` | `NOTE_WRITE`, with `NOTE_EXTEND` if the size grew (kept in the snapshot) |
//! | truncate to a smaller size | `IN_MODIFY`, size shrank | `NOTE_ATTRIB` (FreeBSD: `VOP_SETATTR`) |
//! | chmod, chown, utimes, xattrs | `IN_ATTRIB` | `NOTE_ATTRIB` |
//! | unlink (any of its links) | `IN_ATTRIB`, link count fell | `NOTE_DELETE` |
//! | link | `IN_ATTRIB`, link count rose | `NOTE_LINK` |
//! | rename of the file | `IN_MOVE_SELF` | `NOTE_RENAME` |
//! | unmount | `IN_UNMOUNT` | `NOTE_REVOKE`, and `EV_EOF` whatever was asked |
//! | open, close, close after writing, read | `IN_OPEN`, `IN_CLOSE_NOWRITE`, `IN_CLOSE_WRITE`, `IN_ACCESS` | `NOTE_OPEN`, `NOTE_CLOSE`, `NOTE_CLOSE_WRITE`, `NOTE_READ` |
//! | directory: entry created or removed | `IN_CREATE`, `IN_DELETE` | `NOTE_WRITE`, with `NOTE_LINK` for a subdirectory |
//! | directory: entry renamed within it | `IN_MOVED_FROM` + `IN_MOVED_TO` (one cookie) | `NOTE_WRITE` |
//! | directory: entry moved in or out | `IN_MOVED_TO` or `IN_MOVED_FROM` alone | `NOTE_WRITE \| NOTE_EXTEND`, with `NOTE_LINK` for a subdirectory |
//!
//! `IN_DELETE_SELF` (sent only once the last reference to an unlinked inode is gone) also
//! means `NOTE_DELETE`. Events about a directory's entries' *contents* are ignored, as FreeBSD
//! does not report them to the directory.
//!
//! The knote follows its file through renames and unlinks (the watch is on the inode). It is
//! dropped, as kqueue drops knotes at `close`, as soon as the shim sees that its fd no longer
//! names the file it was registered on (`fstat` identity, checked on every event that needs a
//! `stat` and on every delivery), so a closed-and-reused fd number never reports the old file.
//!
//! When the inotify queue overflows (`IN_Q_OVERFLOW`), events are lost: every VNODE knote of
//! the kqueue is then re-examined — a fresh `fstat` compared with its snapshot (link count,
//! size, times, mode and owner) and a fresh look at its path (rename) give what can be
//! derived, and the notes nothing records (`NOTE_OPEN`, `NOTE_CLOSE`, `NOTE_CLOSE_WRITE`,
//! `NOTE_READ`) are reported, where asked for, as possibly having happened.

mod inotify;

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use self::inotify::*;
use super::abi::*;
use super::fdinfo::{fstat, FileId};
use super::knote::{Kind, Knote};
use super::{internal_token, os, Selector, State, INTERNAL_VNODE};

/// A change's outcome: `Err(errno)` becomes an `EV_ERROR` entry.
type Outcome = Result<(), i32>;

/// The notes no `stat` records: after an overflow they are reported as possibly lost.
const UNRECORDED: u32 = NOTE_OPEN | NOTE_CLOSE | NOTE_CLOSE_WRITE | NOTE_READ;

/// What every watch asks for: enough to keep the snapshot current and to see the file's
/// deletion and renaming.
const BASE_MASK: u32 = IN_MODIFY | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF;
/// What a directory's watch adds: its entries changing.
const ENTRY_MASK: u32 = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO;

/// Read buffer size: room for hundreds of events per `read`.
const READ_BUF: usize = 16 * 1024;
/// Reads per harvest at most: a file written without pause cannot keep one `kevent` call
/// reading forever (the inotify fd is level-triggered, so the rest is reported next time).
const MAX_READS: usize = 64;

fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// The inotify mask a knote asking for `sfflags` needs (watch masks only grow: inotify ORs
/// them in, until the inode's last knote goes).
fn watch_mask(sfflags: u32, dir: bool) -> u32 {
    let mut mask = BASE_MASK;
    if dir {
        mask |= ENTRY_MASK;
    }
    for (note, bit) in [
        (NOTE_OPEN, IN_OPEN),
        (NOTE_CLOSE, IN_CLOSE_NOWRITE),
        (NOTE_CLOSE_WRITE, IN_CLOSE_WRITE),
        (NOTE_READ, IN_ACCESS),
    ] {
        if sfflags & note != 0 {
            mask |= bit;
        }
    }
    mask
}

/// The kqueue's inotify instance and its watches.
#[derive(Default)]
pub(super) struct Vnodes {
    inotify: Option<OwnedFd>,
    /// Watch descriptor → the knotes on that inode.
    watches: HashMap<i32, Vec<usize>>,
    buf: Vec<u8>,
    events: Vec<Event>,
    /// Scratch: the knotes one event is applied to.
    targets: Vec<usize>,
}

impl Vnodes {
    /// The inotify fd, created and put in the kqueue's epoll set on first use.
    fn inotify(&mut self, epfd: RawFd) -> Result<&OwnedFd, i32> {
        if self.inotify.is_none() {
            let fd = inotify::init().map_err(errno)?;
            // Level-triggered: a harvest that stops early (`MAX_READS`) is reported again.
            os::epoll_ctl(
                epfd,
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                libc::EPOLLIN as u32,
                internal_token(INTERNAL_VNODE),
            )
            .map_err(errno)?;
            self.inotify = Some(fd);
        }
        Ok(self.inotify.as_ref().expect("created above"))
    }

    /// Knote `idx` is gone: forget it, and the watch with its inode's last knote.
    pub(super) fn detach(&mut self, idx: usize, wd: i32) {
        let Some(knotes) = self.watches.get_mut(&wd) else {
            return;
        };
        knotes.retain(|&i| i != idx);
        if knotes.is_empty() {
            self.watches.remove(&wd);
            if let Some(inotify) = &self.inotify {
                // Its one failure (EINVAL) means the kernel removed the watch itself already.
                let _ = inotify::rm_watch(inotify, wd);
            }
        }
    }
}

/// What a `stat` says that inotify events are compared against.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Snapshot {
    nlink: u64,
    size: i64,
    owner: (u32, u32, u32),
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Snapshot {
    fn of(st: &libc::stat) -> Snapshot {
        Snapshot {
            nlink: st.st_nlink,
            size: st.st_size,
            owner: (st.st_mode, st.st_uid, st.st_gid),
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
        }
    }
}

/// A VNODE knote's own state.
pub(super) struct Watched {
    /// Its inode's watch; -1 once the kernel removed it (`IN_IGNORED`).
    pub(super) wd: i32,
    id: FileId,
    dir: bool,
    snap: Snapshot,
    /// Where its fd pointed last (`/proc/self/fd/N`), to tell a rename after an overflow.
    target: Option<Vec<u8>>,
    /// The notes fired since the last delivery (FreeBSD's `kn_fflags`).
    fflags: u32,
}

impl Watched {
    /// `filt_vfsvnode`: a hint sharing a bit with the requested notes is kept whole.
    fn note(&mut self, sfflags: u32, hint: u32) {
        if sfflags & hint != 0 {
            self.fflags |= hint;
        }
    }

    /// `IN_MODIFY`/`IN_ATTRIB` on the inode itself: what the new `stat` says happened.
    fn restat(&mut self, sfflags: u32, mask: u32, st: &libc::stat) {
        let new = Snapshot::of(st);
        let old = std::mem::replace(&mut self.snap, new);
        if mask & IN_MODIFY != 0 {
            if new.size > old.size {
                self.note(sfflags, NOTE_WRITE | NOTE_EXTEND);
            } else if new.size < old.size {
                self.note(sfflags, NOTE_ATTRIB);
            } else {
                self.note(sfflags, NOTE_WRITE);
            }
        }
        if mask & IN_ATTRIB != 0 {
            let linked = new.nlink != old.nlink;
            if new.nlink < old.nlink {
                self.note(sfflags, NOTE_DELETE);
            } else if linked {
                self.note(sfflags, NOTE_LINK);
            }
            if !linked || new.owner != old.owner {
                self.note(sfflags, NOTE_ATTRIB);
            }
        }
    }

    /// After an overflow: everything a fresh look can tell, and the unrecorded notes.
    fn reexamine(&mut self, sfflags: u32, st: &libc::stat, target: Option<Vec<u8>>) {
        let new = Snapshot::of(st);
        let old = std::mem::replace(&mut self.snap, new);
        if new.nlink < old.nlink {
            self.note(sfflags, NOTE_DELETE);
        } else if new.nlink > old.nlink {
            self.note(sfflags, NOTE_LINK);
        }
        if self.dir {
            if new.nlink != old.nlink {
                self.note(sfflags, NOTE_LINK | NOTE_WRITE);
            }
            if new.mtime != old.mtime {
                self.note(sfflags, NOTE_WRITE);
            }
        } else if new.size > old.size {
            self.note(sfflags, NOTE_WRITE | NOTE_EXTEND);
        } else if new.size < old.size {
            self.note(sfflags, NOTE_ATTRIB);
        } else if new.mtime != old.mtime {
            self.note(sfflags, NOTE_WRITE);
        }
        let explained = new.mtime != old.mtime || new.nlink != old.nlink;
        if new.owner != old.owner || (new.ctime != old.ctime && !explained) {
            self.note(sfflags, NOTE_ATTRIB);
        }
        if let (Some(old), Some(new)) = (&self.target, &target) {
            // Unlinking only appends " (deleted)": that is NOTE_DELETE's, not a rename.
            if !new.starts_with(old) {
                self.note(sfflags, NOTE_RENAME);
            }
        }
        self.target = target;
        self.fflags |= sfflags & UNRECORDED;
    }
}

fn watched(kn: &Knote) -> Option<&Watched> {
    match &kn.kind {
        Kind::Vnode(w) => Some(w),
        _ => None,
    }
}

fn watched_mut(kn: &mut Knote) -> Option<&mut Watched> {
    match &mut kn.kind {
        Kind::Vnode(w) => Some(w),
        _ => None,
    }
}

/// The hint of an event about one of a directory's entries.
fn entry_hint(mask: u32, moved_within: bool) -> u32 {
    let subdir = if mask & IN_ISDIR != 0 { NOTE_LINK } else { 0 };
    match mask & !IN_ISDIR {
        IN_CREATE | IN_DELETE => NOTE_WRITE | subdir,
        IN_MOVED_FROM | IN_MOVED_TO if moved_within => NOTE_WRITE,
        IN_MOVED_FROM | IN_MOVED_TO => NOTE_WRITE | NOTE_EXTEND | subdir,
        _ => 0,
    }
}

/// The hint of an event about the watched inode itself that needs no `stat`.
fn self_hint(mask: u32) -> u32 {
    let mut hint = 0;
    for (bit, note) in [
        (IN_MOVE_SELF, NOTE_RENAME),
        (IN_DELETE_SELF, NOTE_DELETE),
        (IN_UNMOUNT, NOTE_REVOKE),
        (IN_OPEN, NOTE_OPEN),
        (IN_CLOSE_NOWRITE, NOTE_CLOSE),
        (IN_CLOSE_WRITE, NOTE_CLOSE_WRITE),
        (IN_ACCESS, NOTE_READ),
    ] {
        if mask & bit != 0 {
            hint |= note;
        }
    }
    hint
}

/// Whether `events[i]`, half of a rename, has its other half beside it on the same watch (a
/// rename within one directory; the kernel queues the two halves back to back).
fn moved_within(events: &[Event], i: usize) -> bool {
    const MOVES: u32 = IN_MOVED_FROM | IN_MOVED_TO;
    let ev = events[i];
    let pair = |j: usize| {
        events.get(j).is_some_and(|o| {
            o.wd == ev.wd && o.cookie == ev.cookie && o.mask & MOVES != ev.mask & MOVES
        })
    };
    pair(i + 1) || (i > 0 && pair(i - 1))
}

impl State {
    /// A change to a VNODE knote: FreeBSD's `kqueue_register` with `vfs_kqfilter` as attach.
    pub(super) fn apply_vnode(&mut self, sel: &Selector, change: &RawKevent) -> Outcome {
        let flags = change.flags();
        let fd = match RawFd::try_from(change.ident()) {
            Ok(fd) if fd >= 0 => fd,
            _ => return Err(libc::EBADF),
        };
        // kqueue looks the fd up before the knote.
        let Some(st) = fstat(fd) else {
            return Err(libc::EBADF);
        };
        let key = (EVFILT_VNODE, fd as usize);
        let mut existing = self.idents.get(&key).copied();
        if let Some(idx) = existing {
            if !watched(&self.knotes[idx]).is_some_and(|w| w.id == FileId::of(&st)) {
                // The number was closed and reused without EV_DELETE: kqueue dropped the knote
                // at the close.
                self.remove_knote(idx);
                existing = None;
            }
        }
        let Some(idx) = existing else {
            if flags & EV_ADD == 0 {
                return Err(libc::ENOENT);
            }
            return self.attach_vnode(sel, fd, &st, change);
        };
        if flags & EV_DELETE != 0 {
            self.remove_knote(idx);
            return Ok(());
        }
        let kn = &mut self.knotes[idx];
        kn.take_change(change);
        // As for every filter without a touch step, a change replaces the requested notes;
        // the notes already fired stay.
        kn.sfflags = change.fflags();
        kn.sdata = change.data();
        let sfflags = kn.sfflags;
        let (wd, dir) = watched(kn).map_or((-1, false), |w| (w.wd, w.dir));
        if wd >= 0 {
            // Notes newly asked for may need more of the watch.
            let inotify = self.vnodes.inotify(sel.epfd.as_raw_fd())?;
            inotify::add_watch(inotify, fd, watch_mask(sfflags, dir)).map_err(errno)?;
        }
        self.vnode_reevaluate(idx);
        Ok(())
    }

    /// `vfs_kqfilter`: regular files, directories and named FIFOs are vnodes; sockets, pipes,
    /// devices and the rest are `EINVAL`.
    fn attach_vnode(
        &mut self,
        sel: &Selector,
        fd: RawFd,
        st: &libc::stat,
        change: &RawKevent,
    ) -> Outcome {
        let target = inotify::fd_target(fd);
        let dir = match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => false,
            libc::S_IFDIR => true,
            // A FIFO with a name in the file system is a vnode on FreeBSD; pipe(2) is not.
            libc::S_IFIFO if target.as_deref().is_some_and(|t| t.starts_with(b"/")) => false,
            _ => return Err(libc::EINVAL),
        };
        if !self.vnodes.watches.is_empty() {
            // Events already queued happened before this knote: apply them to the knotes they
            // belong to first (its inode may be watched already, and share their wd).
            self.vnode_harvest();
        }
        let inotify = self.vnodes.inotify(sel.epfd.as_raw_fd())?;
        let wd =
            inotify::add_watch(inotify, fd, watch_mask(change.fflags(), dir)).map_err(errno)?;
        let watched = Watched {
            wd,
            id: FileId::of(st),
            dir,
            snap: Snapshot::of(st),
            target,
            fflags: 0,
        };
        let gen = self.next_gen();
        let flags = change.flags();
        let kind = Kind::Vnode(Box::new(watched));
        let mut kn = Knote::new(fd as usize, EVFILT_VNODE, flags, change.udata(), gen, kind);
        kn.disabled = flags & EV_DISABLE != 0;
        kn.sfflags = change.fflags();
        kn.sdata = change.data();
        let idx = self.knotes.insert(kn);
        self.idents.insert((EVFILT_VNODE, fd as usize), idx);
        self.vnodes.watches.entry(wd).or_default().push(idx);
        Ok(())
    }

    /// `filt_vfsvnode(kn, 0)`: fires while it holds notes (or after a revoke).
    fn vnode_reevaluate(&mut self, idx: usize) {
        let kn = &self.knotes[idx];
        if kn.eof || watched(kn).is_some_and(|w| w.fflags != 0) {
            self.activate(idx);
        }
    }

    /// The inotify fd was reported readable.
    pub(super) fn vnode_report(&mut self) {
        self.vnode_harvest();
    }

    /// Reads and applies whatever inotify has queued.
    fn vnode_harvest(&mut self) {
        let Some(inotify) = self.vnodes.inotify.as_ref().map(|fd| fd.as_raw_fd()) else {
            return;
        };
        let mut buf = std::mem::take(&mut self.vnodes.buf);
        buf.resize(READ_BUF, 0);
        let mut events = std::mem::take(&mut self.vnodes.events);
        for _ in 0..MAX_READS {
            events.clear();
            match inotify::read(inotify, &mut buf) {
                Ok(0) => break,
                Ok(n) => parse(&buf[..n], &mut events),
                Err(_) => {
                    // The kernel would not hand over what it queued: treat it as lost.
                    self.vnode_overflow();
                    break;
                }
            }
            for i in 0..events.len() {
                let moved_within = moved_within(&events, i);
                self.vnode_event(events[i], moved_within);
            }
        }
        self.vnodes.buf = buf;
        self.vnodes.events = events;
    }

    /// Applies one inotify event to the knotes of its watch.
    fn vnode_event(&mut self, ev: Event, moved_within: bool) {
        if ev.mask & IN_Q_OVERFLOW != 0 {
            self.vnode_overflow();
            return;
        }
        let Some(knotes) = self.vnodes.watches.get(&ev.wd) else {
            return; // a watch removed since (its last knote was deleted)
        };
        let mut targets = std::mem::take(&mut self.vnodes.targets);
        targets.clear();
        targets.extend_from_slice(knotes);
        if ev.mask & IN_IGNORED != 0 {
            // The kernel dropped the watch (inode freed or unmounted): nothing more will come.
            self.vnodes.watches.remove(&ev.wd);
            for &idx in &targets {
                if let Some(w) = self.knotes.get_mut(idx).and_then(watched_mut) {
                    w.wd = -1;
                }
            }
        } else {
            for &idx in &targets {
                self.vnode_knote_event(idx, ev, moved_within);
            }
        }
        self.vnodes.targets = targets;
    }

    fn vnode_knote_event(&mut self, idx: usize, ev: Event, moved_within: bool) {
        let Some(kn) = self.knotes.get(idx) else {
            return; // dropped by an earlier event of this batch
        };
        let fd = kn.ident as RawFd;
        let restat = !ev.named && ev.mask & (IN_MODIFY | IN_ATTRIB) != 0;
        let st = if restat {
            match fstat(fd) {
                Some(st) if watched(kn).is_some_and(|w| w.id == FileId::of(&st)) => Some(st),
                _ => {
                    // Its fd was closed (and maybe reused): kqueue dropped it at the close.
                    self.remove_knote(idx);
                    return;
                }
            }
        } else {
            None
        };
        let kn = &mut self.knotes[idx];
        let sfflags = kn.sfflags;
        if ev.mask & IN_UNMOUNT != 0 {
            kn.eof = true;
        }
        let Some(w) = watched_mut(kn) else { return };
        if ev.named {
            if w.dir {
                w.note(sfflags, entry_hint(ev.mask, moved_within));
            }
        } else {
            if let Some(st) = &st {
                w.restat(sfflags, ev.mask, st);
            }
            let hint = self_hint(ev.mask);
            w.note(sfflags, hint);
            if hint & NOTE_RENAME != 0 {
                w.target = inotify::fd_target(fd);
            }
        }
        self.vnode_reevaluate(idx);
    }

    /// Events were lost: re-examine every VNODE knote of the kqueue.
    fn vnode_overflow(&mut self) {
        let mut targets = std::mem::take(&mut self.vnodes.targets);
        targets.clear();
        targets.extend(self.vnodes.watches.values().flatten().copied());
        for &idx in &targets {
            let Some(kn) = self.knotes.get(idx) else {
                continue;
            };
            let fd = kn.ident as RawFd;
            let Some(st) =
                fstat(fd).filter(|st| watched(kn).is_some_and(|w| w.id == FileId::of(st)))
            else {
                self.remove_knote(idx);
                continue;
            };
            let target = inotify::fd_target(fd);
            let kn = &mut self.knotes[idx];
            let sfflags = kn.sfflags;
            if let Some(w) = watched_mut(kn) {
                w.reexamine(sfflags, &st, target);
            }
            self.vnode_reevaluate(idx);
        }
        self.vnodes.targets = targets;
    }

    /// `fflags` and `EV_EOF` of a VNODE event being delivered; `None` when there is nothing
    /// to report, or the fd no longer names the knote's file (the knote is then dropped).
    pub(super) fn vnode_event_data(&mut self, idx: usize) -> Option<(u32, bool)> {
        let kn = &self.knotes[idx];
        let same = fstat(kn.ident as RawFd)
            .is_some_and(|st| watched(kn).is_some_and(|w| w.id == FileId::of(&st)));
        if !same {
            self.remove_knote(idx);
            return None;
        }
        let kn = &mut self.knotes[idx];
        let (clear, eof) = (kn.is_clear(), kn.eof);
        let w = watched_mut(kn)?;
        if w.fflags == 0 && !eof {
            kn.active = false;
            return None;
        }
        // EV_CLEAR resets the notes on delivery (kqueue_scan); otherwise they stay and the
        // knote keeps firing with them.
        let fflags = if clear {
            std::mem::take(&mut w.fflags)
        } else {
            w.fflags
        };
        Some((fflags, eof))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(wd: i32, mask: u32, cookie: u32) -> Event {
        Event {
            wd,
            mask,
            cookie,
            named: true,
        }
    }

    #[test]
    fn renames_within_a_directory_pair_up() {
        let events = [
            ev(1, IN_MOVED_FROM, 9),
            ev(1, IN_MOVED_TO, 9),
            ev(1, IN_MOVED_FROM, 10),
            ev(2, IN_MOVED_TO, 10),
        ];
        assert!(moved_within(&events, 0));
        assert!(moved_within(&events, 1));
        assert!(!moved_within(&events, 2));
        assert!(!moved_within(&events, 3));
    }

    #[test]
    fn entry_hints_follow_freebsd() {
        assert_eq!(entry_hint(IN_CREATE, false), NOTE_WRITE);
        assert_eq!(
            entry_hint(IN_CREATE | IN_ISDIR, false),
            NOTE_WRITE | NOTE_LINK
        );
        assert_eq!(
            entry_hint(IN_DELETE | IN_ISDIR, false),
            NOTE_WRITE | NOTE_LINK
        );
        assert_eq!(entry_hint(IN_MOVED_TO | IN_ISDIR, true), NOTE_WRITE);
        assert_eq!(entry_hint(IN_MOVED_FROM, false), NOTE_WRITE | NOTE_EXTEND);
        assert_eq!(entry_hint(IN_MODIFY, false), 0);
    }

    #[test]
    fn a_hint_is_kept_whole_when_any_of_it_was_asked_for() {
        let st = {
            // SAFETY: an all-zero stat is a valid value.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            st.st_nlink = 1;
            st
        };
        let mut w = Watched {
            wd: 1,
            id: FileId::of(&st),
            dir: false,
            snap: Snapshot::of(&st),
            target: None,
            fflags: 0,
        };
        w.note(NOTE_ATTRIB, NOTE_WRITE | NOTE_EXTEND);
        assert_eq!(w.fflags, 0);
        w.note(NOTE_EXTEND, NOTE_WRITE | NOTE_EXTEND);
        assert_eq!(w.fflags, NOTE_WRITE | NOTE_EXTEND);
        let mut grown = st;
        grown.st_size = 10;
        w.fflags = 0;
        w.restat(NOTE_WRITE, IN_MODIFY, &grown);
        assert_eq!(w.fflags, NOTE_WRITE | NOTE_EXTEND);
        let mut unlinked = grown;
        unlinked.st_nlink = 0;
        w.fflags = 0;
        w.restat(NOTE_DELETE | NOTE_ATTRIB, IN_ATTRIB, &unlinked);
        assert_eq!(w.fflags, NOTE_DELETE, "unlink is not an attribute change");
    }
}
