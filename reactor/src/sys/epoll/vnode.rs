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
use super::changes::errno;
use super::fdinfo::{fstat, FileId};
use super::filter::{token, Attached, Delivery, FilterOps, Member, Outcome};
use super::knote::Knote;
use super::os;
use super::{FilterId, Selector, State};

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
                token(FilterId::Vnode, 0),
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
    // `st_nlink` is u64 on glibc and musl, u32 on Android.
    #[allow(clippy::useless_conversion)]
    fn of(st: &libc::stat) -> Snapshot {
        Snapshot {
            nlink: u64::from(st.st_nlink),
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
    wd: i32,
    id: FileId,
    dir: bool,
    snap: Snapshot,
    /// Where its fd pointed last (`/proc/self/fd/N`), to tell a rename after an overflow.
    target: Option<Vec<u8>>,
    /// The notes fired since the last delivery (FreeBSD's `kn_fflags`).
    fflags: u32,
    /// Revoked (`IN_UNMOUNT`): reported with `EV_EOF` from now on.
    eof: bool,
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
    Vnode::ext(&kn.ext).map(|w| &**w)
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

/// The filter table's entry for VNODE.
pub(super) struct Vnode;

impl FilterOps for Vnode {
    const FILTERS: &'static [i32] = &[EVFILT_VNODE];
    /// Boxed: a `Watched` is 120 bytes, and `Ext` (in every knote) is as big as its largest
    /// variant, so inline it would make every READ/WRITE knote pay for it too.
    type Knote = Box<Watched>;
    type Shared = Vnodes;

    /// kqueue looks the fd up before the knote; a knote whose fd number now names another file
    /// was dropped at the close (kqueue's `knote_fdclose`), so it is dropped here.
    #[inline]
    fn lookup(st: &mut State, _: &Selector, change: &RawKevent) -> Result<Option<usize>, i32> {
        let fd = vnode_fd(change)?;
        let st_now = fstat(fd).ok_or(libc::EBADF)?;
        let Some(&idx) = st.idents.get(&(EVFILT_VNODE, fd as usize)) else {
            return Ok(None);
        };
        if !watched(&st.knotes[idx]).is_some_and(|w| w.id == FileId::of(&st_now)) {
            st.remove_knote(idx);
            return Ok(None);
        }
        Ok(Some(idx))
    }

    /// `vfs_kqfilter`: regular files, directories and named FIFOs are vnodes; sockets, pipes,
    /// devices and the rest are `EINVAL`.
    fn attach(
        st: &mut State,
        sel: &Selector,
        change: &RawKevent,
    ) -> Result<Attached<Box<Watched>>, i32> {
        let fd = vnode_fd(change)?;
        let stat = fstat(fd).ok_or(libc::EBADF)?;
        let target = inotify::fd_target(fd);
        let dir = match stat.st_mode & libc::S_IFMT {
            libc::S_IFREG => false,
            libc::S_IFDIR => true,
            // A FIFO with a name in the file system is a vnode on FreeBSD; pipe(2) is not.
            libc::S_IFIFO if target.as_deref().is_some_and(|t| t.starts_with(b"/")) => false,
            _ => return Err(libc::EINVAL),
        };
        if !st.filters.vnode.watches.is_empty() {
            // Events already queued happened before this knote: apply them to the knotes they
            // belong to first (its inode may be watched already, and share their wd).
            st.vnode_harvest();
        }
        let inotify = st.filters.vnode.inotify(sel.epfd.as_raw_fd())?;
        let wd = inotify::add_watch(inotify, fd, watch_mask(change.fflags(), dir)).map_err(errno)?;
        Ok(Attached {
            ext: Box::new(Watched {
                wd,
                id: FileId::of(&stat),
                dir,
                snap: Snapshot::of(&stat),
                target,
                fflags: 0,
                eof: false,
            }),
            // FreeBSD's VNODE does not imply EV_CLEAR: without it, the notes stay and the knote
            // keeps firing with them.
            flags: change.flags(),
            sfflags: change.fflags(),
        })
    }

    fn link(st: &mut State, _: &Selector, idx: usize) -> Outcome {
        st.link_ident(idx);
        if let Some(w) = watched(&st.knotes[idx]) {
            let wd = w.wd;
            st.filters.vnode.watches.entry(wd).or_default().push(idx);
        }
        Ok(())
    }

    fn detach(st: &mut State, idx: usize, kn: &Knote) {
        st.unlink_ident(kn);
        if let Some(w) = Vnode::ext(&kn.ext) {
            st.filters.vnode.detach(idx, w.wd);
        }
    }

    /// As for every filter without a touch step of its own, a change replaces the requested
    /// notes; the notes already fired stay, and fire again if there are any.
    fn touch(st: &mut State, sel: &Selector, idx: usize, change: &RawKevent) -> Outcome {
        let kn = &mut st.knotes[idx];
        kn.sfflags = change.fflags();
        kn.sdata = change.data();
        let (fd, sfflags) = (kn.ident as RawFd, kn.sfflags);
        let (wd, dir) = watched(kn).map_or((-1, false), |w| (w.wd, w.dir));
        if wd >= 0 {
            // Notes newly asked for may need more of the watch.
            let inotify = st.filters.vnode.inotify(sel.epfd.as_raw_fd())?;
            inotify::add_watch(inotify, fd, watch_mask(sfflags, dir)).map_err(errno)?;
        }
        st.vnode_reevaluate(idx);
        Ok(())
    }

    /// `fflags` and `EV_EOF` of a VNODE event being delivered; `None` when there is nothing
    /// to report, or the fd no longer names the knote's file (the knote is then dropped).
    fn deliver(st: &mut State, _: bool, idx: usize) -> Option<Delivery> {
        let kn = &st.knotes[idx];
        let same = fstat(kn.ident as RawFd)
            .is_some_and(|stat| watched(kn).is_some_and(|w| w.id == FileId::of(&stat)));
        if !same {
            st.remove_knote(idx);
            return None;
        }
        let kn = &mut st.knotes[idx];
        let clear = kn.is_clear();
        let w = Vnode::ext_mut(&mut kn.ext)?;
        if w.fflags == 0 && !w.eof {
            kn.active = false;
            return None;
        }
        // EV_CLEAR resets the notes on delivery (kqueue_scan); otherwise they stay.
        let fflags = if clear {
            std::mem::take(&mut w.fflags)
        } else {
            w.fflags
        };
        Some(Delivery {
            flags: if w.eof { EV_EOF } else { 0 },
            fflags,
            data: 0,
            requeue: !clear,
        })
    }

    /// The inotify fd (the filter's one token) is readable.
    fn report(st: &mut State, _: &Selector, _: u64, _: u32) {
        st.vnode_harvest();
    }
}

/// The fd a VNODE change names.
fn vnode_fd(change: &RawKevent) -> Result<RawFd, i32> {
    match RawFd::try_from(change.ident()) {
        Ok(fd) if fd >= 0 => Ok(fd),
        _ => Err(libc::EBADF),
    }
}

impl State {
    /// `filt_vfsvnode(kn, 0)`: fires while it holds notes (or after a revoke).
    fn vnode_reevaluate(&mut self, idx: usize) {
        if watched(&self.knotes[idx]).is_some_and(|w| w.eof || w.fflags != 0) {
            self.activate(idx);
        }
    }

    /// Reads and applies whatever inotify has queued.
    fn vnode_harvest(&mut self) {
        let vnodes = &mut self.filters.vnode;
        let Some(inotify) = vnodes.inotify.as_ref().map(|fd| fd.as_raw_fd()) else {
            return;
        };
        let mut buf = std::mem::take(&mut vnodes.buf);
        buf.resize(READ_BUF, 0);
        let mut events = std::mem::take(&mut vnodes.events);
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
        self.filters.vnode.buf = buf;
        self.filters.vnode.events = events;
    }

    /// Applies one inotify event to the knotes of its watch.
    fn vnode_event(&mut self, ev: Event, moved_within: bool) {
        if ev.mask & IN_Q_OVERFLOW != 0 {
            self.vnode_overflow();
            return;
        }
        let vnodes = &mut self.filters.vnode;
        let Some(knotes) = vnodes.watches.get(&ev.wd) else {
            return; // a watch removed since (its last knote was deleted)
        };
        let mut targets = std::mem::take(&mut vnodes.targets);
        targets.clear();
        targets.extend_from_slice(knotes);
        if ev.mask & IN_IGNORED != 0 {
            // The kernel dropped the watch (inode freed or unmounted): nothing more will come.
            vnodes.watches.remove(&ev.wd);
            for &idx in &targets {
                if let Some(w) = self.knotes.get_mut(idx).and_then(|kn| Vnode::ext_mut(&mut kn.ext)) {
                    w.wd = -1;
                }
            }
        } else {
            for &idx in &targets {
                self.vnode_knote_event(idx, ev, moved_within);
            }
        }
        self.filters.vnode.targets = targets;
    }

    fn vnode_knote_event(&mut self, idx: usize, ev: Event, moved_within: bool) {
        let Some(kn) = self.knotes.get(idx) else {
            return; // dropped by an earlier event of this batch
        };
        let fd = kn.ident as RawFd;
        let restat = !ev.named && ev.mask & (IN_MODIFY | IN_ATTRIB) != 0;
        let stat = if restat {
            match fstat(fd) {
                Some(stat) if watched(kn).is_some_and(|w| w.id == FileId::of(&stat)) => Some(stat),
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
        let Some(w) = Vnode::ext_mut(&mut kn.ext) else {
            return;
        };
        if ev.mask & IN_UNMOUNT != 0 {
            w.eof = true;
        }
        if ev.named {
            if w.dir {
                w.note(sfflags, entry_hint(ev.mask, moved_within));
            }
        } else {
            if let Some(stat) = &stat {
                w.restat(sfflags, ev.mask, stat);
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
        let vnodes = &mut self.filters.vnode;
        let mut targets = std::mem::take(&mut vnodes.targets);
        targets.clear();
        targets.extend(vnodes.watches.values().flatten().copied());
        for &idx in &targets {
            let Some(kn) = self.knotes.get(idx) else {
                continue;
            };
            let fd = kn.ident as RawFd;
            let same = |stat: &libc::stat| watched(kn).is_some_and(|w| w.id == FileId::of(stat));
            let Some(stat) = fstat(fd).filter(same) else {
                self.remove_knote(idx);
                continue;
            };
            let target = inotify::fd_target(fd);
            let kn = &mut self.knotes[idx];
            let sfflags = kn.sfflags;
            if let Some(w) = Vnode::ext_mut(&mut kn.ext) {
                w.reexamine(sfflags, &stat, target);
            }
            self.vnode_reevaluate(idx);
        }
        self.filters.vnode.targets = targets;
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
            eof: false,
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
