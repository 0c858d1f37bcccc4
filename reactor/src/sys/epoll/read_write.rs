//! `EVFILT_READ` and `EVFILT_WRITE`: fd knotes (FreeBSD's `soread`/`sowrite`/`pipe`/`vfsread`
//! filterops), over one edge-triggered epoll registration per fd.
//!
//! Level-triggered behaviour is done in user space — a delivered level knote goes back on the
//! queue marked *stale*, and one `poll(2)` over all stale knotes re-checks them before the next
//! scan — so the kernel registration can always be edge-triggered. That keeps one registration
//! per fd, READ and WRITE modes independent (when their modes differ, WRITE gets a registration
//! of its own in an inner epoll: trap 1), and a registration that outlived its fd number (a
//! closed fd whose file is still open through a dup) firing at most once per edge instead of
//! forever.
//!
//! Each registration's epoll token carries the fd and a generation; a report whose generation is
//! not the fd's current one belongs to an earlier file and is dropped. Regular files and
//! directories, which epoll refuses, are evaluated at every scan instead.

use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::abi::*;
use super::changes::errno;
use super::fdinfo::{self, FdClass, FileId};
use super::filter::{token, Attached, Delivery, FilterOps, Member, Outcome};
use super::knote::Knote;
use super::os;
use super::{FilterId, KnoteRef, Selector, State, GEN_MASK, HARVEST};

/// The filter table's entry for READ and WRITE.
pub(super) struct ReadWrite;

/// What an fd knote keeps of its own.
#[derive(Default)]
pub(super) struct FdKnote {
    /// The condition is final (peer closed, error).
    eof: bool,
    /// Readiness must be re-checked (`poll`) before delivery: a level knote requeued after
    /// delivery, or one a change asked to re-evaluate.
    stale: bool,
    /// The `data` last delivered (an `EV_CLEAR` regular file fires again only when it changes).
    last: i64,
}

/// What the shim knows about one fd number.
#[derive(Clone, Copy)]
struct FdEntry {
    read: Option<usize>,
    write: Option<usize>,
    /// Generation of the current epoll registration; 0 when not registered.
    gen: u32,
    /// READ and WRITE have different modes: WRITE is watched through the inner epoll.
    split: bool,
    /// The registered file's identity (exact mode), checked on delivery.
    id: Option<FileId>,
    class: FdClass,
}

impl FdEntry {
    const EMPTY: FdEntry = FdEntry {
        read: None,
        write: None,
        gen: 0,
        split: false,
        id: None,
        class: FdClass::Unknown,
    };

    fn slot(&mut self, filter: i32) -> &mut Option<usize> {
        if filter == EVFILT_READ {
            &mut self.read
        } else {
            &mut self.write
        }
    }

    fn get(&self, filter: i32) -> Option<usize> {
        if filter == EVFILT_READ {
            self.read
        } else {
            self.write
        }
    }

    fn is_empty(&self) -> bool {
        self.read.is_none() && self.write.is_none()
    }
}

/// The per-kqueue state of the fd filters.
#[derive(Default)]
pub(super) struct Fds {
    /// By fd number.
    table: Vec<FdEntry>,
    /// Knotes on files epoll refuses (regular files, directories), evaluated at each scan.
    regular: Vec<usize>,
    /// The inner epoll for split fds, created on first need.
    inner: Option<OwnedFd>,
    /// The fd the current change list already verified as registered, and whether that
    /// registration was fresh (one `epoll_ctl` for a READ+WRITE pair).
    verified: Option<(RawFd, bool)>,
    /// Whether the change being applied registered its fd afresh (the kernel then reports the
    /// current readiness by itself).
    fresh: bool,
    /// Scratch for `recheck_stale`: the pollfds and the knotes they stand for.
    pollfds: Vec<libc::pollfd>,
    rechecks: Vec<KnoteRef>,
    /// Some queued knote may be stale, so `recheck_stale` has work (saves a queue walk).
    maybe_stale: bool,
    /// The fd whose identity this scan already checked (exact mode): READ and WRITE of one fd
    /// are queued together, so their deliveries share one `fstat`.
    identity_checked: Option<RawFd>,
}

/// The interest of a main registration: both directions, edge-triggered.
const MAIN_INTEREST: u32 =
    (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
/// The main registration of a split fd: READ only.
const READ_INTEREST: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
/// The inner registration of a split fd: WRITE only.
const WRITE_INTEREST: u32 = (libc::EPOLLOUT | libc::EPOLLET) as u32;

const READ_BITS: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
const READ_EOF_BITS: u32 = (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
const WRITE_BITS: u32 = (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32;
const WRITE_EOF_BITS: u32 = (libc::EPOLLHUP | libc::EPOLLERR) as u32;

/// Token payloads: the fd in the low 32 bits, the registration's generation above it, and a bit
/// for registrations in the inner epoll. Generations are never 0, so payload 0 is free for the
/// inner epoll's own registration in the main one.
const GEN_SHIFT: u32 = 32;
const INNER_BIT: u64 = 1 << 59;
const INNER_EPOLL_PAYLOAD: u64 = 0;

#[inline]
fn fd_token(fd: RawFd, gen: u32) -> u64 {
    token(
        FilterId::ReadWrite,
        (u64::from(gen & GEN_MASK) << GEN_SHIFT) | u64::from(fd as u32),
    )
}

impl Fds {
    /// What is known of `fd` (nothing, for a number never registered). Never grows the table,
    /// so a bogus fd in a change costs nothing.
    #[inline]
    fn entry(&self, fd: RawFd) -> FdEntry {
        self.table.get(fd as usize).copied().unwrap_or(FdEntry::EMPTY)
    }

    /// The table slot of `fd`, grown to hold it. Only for fds the kernel just accepted (so the
    /// table is bounded by the fd limit), or that already have knotes.
    #[inline]
    fn entry_mut(&mut self, fd: RawFd) -> &mut FdEntry {
        let i = fd as usize;
        if i >= self.table.len() {
            self.table.resize(i + 1, FdEntry::EMPTY);
        }
        &mut self.table[i]
    }
}

/// The fd state of knote `kn` (every knote this filter handles has one).
#[inline]
fn fdk(kn: &mut Knote) -> Option<&mut FdKnote> {
    ReadWrite::ext_mut(&mut kn.ext)
}

impl FilterOps for ReadWrite {
    const FILTERS: &'static [i32] = &[EVFILT_READ, EVFILT_WRITE];
    type Knote = FdKnote;
    type Shared = Fds;

    #[inline]
    fn lookup(st: &mut State, sel: &Selector, change: &RawKevent) -> Result<Option<usize>, i32> {
        let flags = change.flags();
        let fd = match RawFd::try_from(change.ident()) {
            Ok(fd) if fd >= 0 => fd,
            _ => return Err(libc::EBADF),
        };
        let mut fresh = false;
        if flags & EV_ADD != 0 {
            fresh = st.ensure_registered(sel, fd)?;
        } else if sel.exact {
            st.check_identity(fd)?;
        }
        st.filters.read_write.fresh = fresh;
        match st.filters.read_write.entry(fd).get(change.filter()) {
            Some(idx) => Ok(Some(idx)),
            // kqueue validates the fd before looking the knote up.
            None if flags & EV_ADD == 0 && !fd_is_open(fd) => Err(libc::EBADF),
            None => Ok(None),
        }
    }

    #[inline]
    fn attach(_: &mut State, _: &Selector, change: &RawKevent) -> Result<Attached<FdKnote>, i32> {
        Ok(Attached {
            ext: FdKnote::default(),
            flags: change.flags(),
            sfflags: change.fflags(),
        })
    }

    #[inline]
    fn link(st: &mut State, sel: &Selector, idx: usize) -> Outcome {
        let kn = &st.knotes[idx];
        let (fd, filter, disabled) = (kn.ident as RawFd, kn.filter, kn.disabled);
        let entry = st.filters.read_write.entry_mut(fd);
        *entry.slot(filter) = Some(idx);
        if entry.class == FdClass::Regular {
            // Evaluated at every scan; nothing to register.
            st.filters.read_write.regular.push(idx);
            return Ok(());
        }
        let entry = st.filters.read_write.entry(fd);
        if entry.read.is_some() && entry.write.is_some() && !entry.split {
            st.split_if_modes_differ(sel, fd)?;
        }
        // A fresh registration makes the kernel report current readiness itself; joining an
        // existing one needs a look of our own.
        if !st.filters.read_write.fresh && !disabled {
            st.recheck_later(idx);
        }
        Ok(())
    }

    #[inline]
    fn detach(st: &mut State, idx: usize, kn: &Knote) {
        let fds = &mut st.filters.read_write;
        let entry = fds.entry_mut(kn.ident as RawFd);
        if *entry.slot(kn.filter) == Some(idx) {
            *entry.slot(kn.filter) = None;
        }
        if entry.class == FdClass::Regular {
            fds.regular.retain(|&i| i != idx);
        }
    }

    #[inline]
    fn delete(st: &mut State, sel: &Selector, idx: usize) -> Outcome {
        let fd = st.knotes[idx].ident as RawFd;
        st.remove_knote(idx);
        let fds = &mut st.filters.read_write;
        let entry = fds.entry(fd);
        if entry.is_empty() && entry.gen != 0 {
            // The last knote of the fd: stop the kernel reporting it. A closed fd (EBADF) or a
            // number now naming another file (ENOENT) means kqueue would have dropped the knote
            // at close already, and says so the same way.
            *fds.entry_mut(fd) = FdEntry::EMPTY;
            // A later change in this list must register it again.
            fds.verified = None;
            if let (true, Some(inner)) = (entry.split, &fds.inner) {
                // Best effort: a stale inner registration only ever yields dropped reports.
                let _ = os::epoll_ctl(inner.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, 0, 0);
            }
            os::epoll_ctl(sel.epfd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, 0, 0).map_err(errno)?;
        }
        Ok(())
    }

    #[inline]
    fn touch(st: &mut State, _: &Selector, idx: usize, change: &RawKevent) -> Outcome {
        let fresh = st.filters.read_write.fresh;
        let kn = &mut st.knotes[idx];
        kn.sfflags = change.fflags();
        kn.sdata = change.data();
        if !kn.disabled {
            if kn.active && kn.is_clear() {
                // An edge arrived while it was disabled: report it as is.
                st.activate(idx);
            } else if !fresh {
                st.recheck_later(idx);
            }
        }
        Ok(())
    }

    #[inline]
    fn deliver(st: &mut State, exact: bool, idx: usize) -> Option<Delivery> {
        let kn = &st.knotes[idx];
        let (fd, filter) = (kn.ident as RawFd, kn.filter);
        // Readiness alone (what an executor asks for) needs no measurement: `data` is 0.
        let measured = exact
            || kn.sfflags & NOTE_LOWAT != 0
            || st.filters.read_write.table[fd as usize].class == FdClass::Regular;
        let (data, fflags) = if measured {
            st.fd_event_data(exact, idx, fd, filter)?
        } else {
            (0, 0)
        };
        let kn = &mut st.knotes[idx];
        let requeue = !kn.is_clear();
        let restale = requeue && kn.flags & (EV_ONESHOT | EV_DISPATCH) == 0;
        let f = fdk(kn)?;
        f.last = data;
        let flags = if f.eof { EV_EOF } else { 0 };
        if restale {
            // Level-triggered: re-checked before it is reported again.
            f.stale = true;
            st.filters.read_write.maybe_stale = true;
        }
        Some(Delivery {
            flags,
            fflags,
            data,
            requeue,
        })
    }

    #[inline]
    fn report(st: &mut State, sel: &Selector, payload: u64, bits: u32) {
        if payload == INNER_EPOLL_PAYLOAD {
            st.harvest_inner(sel);
        } else {
            st.fd_report(sel, payload, bits);
        }
    }

    #[inline]
    fn prepare_scan(st: &mut State) {
        st.filters.read_write.identity_checked = None;
        if !st.filters.read_write.regular.is_empty() {
            st.eval_regular();
        }
        // Most scans have nothing stale (EV_CLEAR knotes never are): the flag is tested here, so
        // that the walk itself stays out of line.
        if std::mem::take(&mut st.filters.read_write.maybe_stale) {
            st.recheck_stale();
        }
    }

    #[inline]
    fn sync(st: &mut State) {
        // What one change list verified is not known to hold for the next.
        st.filters.read_write.verified = None;
    }
}

impl State {
    /// Queues an fd knote for a readiness re-check at the next scan.
    #[inline]
    fn recheck_later(&mut self, idx: usize) {
        if let Some(f) = fdk(&mut self.knotes[idx]) {
            f.stale = true;
        }
        self.filters.read_write.maybe_stale = true;
        self.activate(idx);
    }

    /// Makes sure the file `fd` names now is in the epoll set; `Ok(true)` when it was just
    /// registered (the kernel then reports its current readiness by itself).
    ///
    /// `EPOLL_CTL_ADD` doubles as the check that the fd still names the registered file: epoll
    /// keys on (file, fd), so `EEXIST` means "same file, already registered" and success means
    /// the old file is gone — its knotes are dropped, as kqueue drops knotes on close.
    #[inline]
    fn ensure_registered(&mut self, sel: &Selector, fd: RawFd) -> Result<bool, i32> {
        if let Some((verified, fresh)) = self.filters.read_write.verified {
            if verified == fd {
                // Checked earlier in this change list; a registration made then reports both
                // directions itself.
                return Ok(fresh);
            }
        }
        let gen = self.next_gen();
        let epfd = sel.epfd.as_raw_fd();
        let fresh = match os::epoll_ctl(
            epfd,
            libc::EPOLL_CTL_ADD,
            fd,
            MAIN_INTEREST,
            fd_token(fd, gen),
        ) {
            Ok(()) => true,
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                if self.filters.read_write.entry(fd).gen != 0 {
                    false
                } else {
                    // Registered, but under a token we no longer honour (the file came back to
                    // this number): take it over with a new one.
                    os::epoll_ctl(
                        epfd,
                        libc::EPOLL_CTL_MOD,
                        fd,
                        MAIN_INTEREST,
                        fd_token(fd, gen),
                    )
                    .map_err(errno)?;
                    true
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                // Regular files and directories: epoll refuses them, kqueue treats them as
                // always evaluable. Knotes of an earlier, pollable file at this number are gone.
                let entry = self.filters.read_write.entry(fd);
                if entry.gen != 0 || entry.class != FdClass::Regular {
                    self.drop_fd(fd);
                }
                let fds = &mut self.filters.read_write;
                let entry = fds.entry_mut(fd);
                entry.class = FdClass::Regular;
                if sel.exact {
                    entry.id = fdinfo::identify(fd).map(|(id, _)| id);
                }
                fds.verified = Some((fd, false));
                return Ok(false);
            }
            Err(e) => return Err(errno(e)),
        };
        if fresh {
            if !self.filters.read_write.entry(fd).is_empty() {
                // Knotes of the file that had this number before: it is gone.
                self.drop_fd(fd);
            }
            let entry = self.filters.read_write.entry_mut(fd);
            entry.gen = gen;
            if sel.exact {
                if let Some((id, class)) = fdinfo::identify(fd) {
                    entry.id = Some(id);
                    entry.class = class;
                }
            }
        }
        self.filters.read_write.verified = Some((fd, fresh));
        Ok(fresh)
    }

    /// Exact mode, for a change without `EV_ADD`: if `fd` no longer names the file its knotes
    /// were registered on (closed, or closed and reused), drop them as kqueue did at close and
    /// say so as kqueue would (`EBADF` for a closed fd, `ENOENT` for a reused number).
    #[inline]
    fn check_identity(&mut self, fd: RawFd) -> Outcome {
        let entry = self.filters.read_write.entry(fd);
        let Some(registered) = entry.id else {
            return Ok(());
        };
        match fdinfo::identify(fd) {
            Some((id, _)) if id == registered => Ok(()),
            now => {
                self.drop_fd(fd);
                Err(if now.is_some() {
                    libc::ENOENT
                } else {
                    libc::EBADF
                })
            }
        }
    }

    /// Gives WRITE a registration of its own (in the inner epoll) when the fd's READ and WRITE
    /// knotes differ in mode, so an edge on one side never reports the other (trap 1).
    fn split_if_modes_differ(&mut self, sel: &Selector, fd: RawFd) -> Outcome {
        let entry = self.filters.read_write.entry(fd);
        let (Some(r), Some(w)) = (entry.read, entry.write) else {
            return Ok(());
        };
        if entry.split || self.knotes[r].is_clear() == self.knotes[w].is_clear() {
            return Ok(());
        }
        let fds = &mut self.filters.read_write;
        let inner = match &fds.inner {
            Some(inner) => inner.as_raw_fd(),
            None => {
                let inner = os::epoll_create().map_err(errno)?;
                os::epoll_ctl(
                    sel.epfd.as_raw_fd(),
                    libc::EPOLL_CTL_ADD,
                    inner.as_raw_fd(),
                    libc::EPOLLIN as u32,
                    token(FilterId::ReadWrite, INNER_EPOLL_PAYLOAD),
                )
                .map_err(errno)?;
                let raw = inner.as_raw_fd();
                fds.inner = Some(inner);
                raw
            }
        };
        let token = fd_token(fd, entry.gen) | INNER_BIT;
        match os::epoll_ctl(inner, libc::EPOLL_CTL_ADD, fd, WRITE_INTEREST, token) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                os::epoll_ctl(inner, libc::EPOLL_CTL_MOD, fd, WRITE_INTEREST, token)
                    .map_err(errno)?
            }
            other => other.map_err(errno)?,
        }
        os::epoll_ctl(
            sel.epfd.as_raw_fd(),
            libc::EPOLL_CTL_MOD,
            fd,
            READ_INTEREST,
            fd_token(fd, entry.gen),
        )
        .map_err(errno)?;
        fds.entry_mut(fd).split = true;
        Ok(())
    }

    /// Forgets every knote of `fd`: its file was closed (kqueue drops knotes on close).
    fn drop_fd(&mut self, fd: RawFd) {
        let entry = self.filters.read_write.entry(fd);
        for idx in [entry.read, entry.write].into_iter().flatten() {
            self.remove_knote(idx);
        }
        let fds = &mut self.filters.read_write;
        if let Some(slot) = fds.table.get_mut(fd as usize) {
            *slot = FdEntry::EMPTY;
        }
        if fds.verified.is_some_and(|(verified, _)| verified == fd) {
            fds.verified = None;
        }
    }

    /// Reads the inner epoll (WRITE sides of split fds) without blocking.
    fn harvest_inner(&mut self, sel: &Selector) {
        let Some(inner) = self.filters.read_write.inner.as_ref().map(|fd| fd.as_raw_fd()) else {
            return;
        };
        let mut buf = [MaybeUninit::<libc::epoll_event>::uninit(); HARVEST];
        if let Ok(got) = os::epoll_wait(inner, &mut buf, Some(Duration::ZERO)) {
            for report in &buf[..got] {
                // SAFETY: epoll_wait filled the first `got` entries.
                let report = unsafe { report.assume_init_read() };
                self.fd_report(sel, report.u64 & super::TOKEN_PAYLOAD_MASK, report.events);
            }
        }
    }

    #[inline]
    fn fd_report(&mut self, sel: &Selector, payload: u64, bits: u32) {
        let fd = payload as u32 as RawFd;
        let gen = (payload >> GEN_SHIFT) as u32 & GEN_MASK;
        let inner = payload & INNER_BIT != 0;
        let Some(entry) = self.filters.read_write.table.get(fd as usize) else {
            return;
        };
        if entry.gen != gen {
            return; // a registration of an earlier file at this number
        }
        let (read, write, split) = (entry.read, entry.write, entry.split);
        if read.is_none() && write.is_none() {
            // Its knotes are gone (oneshot, deleted lazily): stop the reports.
            if !inner {
                let _ = os::epoll_ctl(sel.epfd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, 0, 0);
                self.filters.read_write.table[fd as usize] = FdEntry::EMPTY;
            }
            return;
        }
        if !inner && bits & READ_BITS != 0 {
            if let Some(r) = read {
                self.fd_activate(r, bits & READ_EOF_BITS != 0);
            }
        }
        if (inner || !split) && bits & WRITE_BITS != 0 {
            if let Some(w) = write {
                self.fd_activate(w, bits & WRITE_EOF_BITS != 0);
            }
        }
    }

    /// A report for fd knote `idx`: the kernel says it is ready (and whether finally, `eof`),
    /// so no re-check is due; the knote is activated.
    #[inline]
    fn fd_activate(&mut self, idx: usize, eof: bool) {
        let kn = &mut self.knotes[idx];
        if let Some(f) = fdk(kn) {
            f.eof = eof;
            f.stale = false;
        }
        super::activate_knote(&mut self.ready, idx, kn);
    }

    /// Regular files have no readiness events: every enabled knote on one goes on the queue at
    /// each scan, and delivery measures it once (`fd_event_data`) and drops it if the file has
    /// nothing to report.
    fn eval_regular(&mut self) {
        for i in 0..self.filters.read_write.regular.len() {
            let idx = self.filters.read_write.regular[i];
            if !self.knotes[idx].queued {
                self.activate(idx);
            }
        }
    }

    /// One `poll(2)` over every stale fd knote on the queue; those no longer ready leave it.
    /// Called when `maybe_stale` was set (the caller clears it).
    #[inline(never)]
    fn recheck_stale(&mut self) {
        let fds = &mut self.filters.read_write;
        fds.pollfds.clear();
        fds.rechecks.clear();
        for &(idx, gen) in &self.ready {
            let Some(kn) = self.knotes.get(idx) else {
                continue;
            };
            if kn.gen != gen || !kn.queued || !ReadWrite::ext(&kn.ext).is_some_and(|f| f.stale) {
                continue;
            }
            let fd = kn.ident as RawFd;
            if fds.table[fd as usize].class == FdClass::Regular {
                continue; // evaluated on delivery
            }
            let events = if kn.filter == EVFILT_READ {
                libc::POLLIN | libc::POLLRDHUP
            } else {
                libc::POLLOUT
            };
            fds.pollfds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
            fds.rechecks.push((idx, gen));
        }
        if fds.pollfds.is_empty() || os::poll_now(&mut fds.pollfds).is_err() {
            return;
        }
        for i in 0..self.filters.read_write.rechecks.len() {
            let (idx, gen) = self.filters.read_write.rechecks[i];
            let revents = self.filters.read_write.pollfds[i].revents;
            let Some(kn) = self.knotes.get_mut(idx) else {
                continue;
            };
            if kn.gen != gen {
                continue;
            }
            if revents & libc::POLLNVAL != 0 {
                // The fd was closed: kqueue drops its knotes at close.
                let fd = kn.ident as RawFd;
                self.drop_fd(fd);
                continue;
            }
            let (ready, eof) = if kn.filter == EVFILT_READ {
                let eof = revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0;
                (eof || revents & libc::POLLIN != 0, eof)
            } else {
                let eof = revents & (libc::POLLHUP | libc::POLLERR) != 0;
                (eof || revents & libc::POLLOUT != 0, eof)
            };
            if !ready {
                kn.queued = false;
                kn.active = false;
            }
            if let Some(f) = fdk(kn) {
                f.stale = false;
                if ready {
                    f.eof = eof;
                }
            }
        }
    }

    /// `data` and `fflags` of an fd event that is measured (exact mode, `NOTE_LOWAT`, a regular
    /// file), and whether it is still one: `None` drops it (the fd now names another file, or the
    /// measurement shows the condition no longer holds).
    #[inline]
    fn fd_event_data(
        &mut self,
        exact: bool,
        idx: usize,
        fd: RawFd,
        filter: i32,
    ) -> Option<(i64, u32)> {
        let entry = self.filters.read_write.table[fd as usize];
        let (sfflags, sdata, clear) = {
            let kn = &self.knotes[idx];
            (kn.sfflags, kn.sdata, kn.is_clear())
        };
        let (eof, last) = {
            let f = ReadWrite::ext(&self.knotes[idx].ext)?;
            (f.eof, f.last)
        };
        let lowat = sfflags & NOTE_LOWAT != 0;
        let mut class = entry.class;
        if exact && entry.id.is_some() && self.filters.read_write.identity_checked != Some(fd) {
            // The fd number may have been closed and reused without EV_DELETE while the old
            // file lives on through a dup: epoll still reports the old file, kqueue would not.
            match fdinfo::identify(fd) {
                Some((id, c)) if Some(id) == entry.id => {
                    class = c;
                    self.filters.read_write.identity_checked = Some(fd);
                }
                _ => {
                    self.drop_fd(fd);
                    return None;
                }
            }
        }
        if class == FdClass::Unknown {
            class = fdinfo::identify(fd).map_or(FdClass::Other, |(_, c)| c);
            self.filters.read_write.table[fd as usize].class = class;
        }
        let measured = matches!(class, FdClass::Socket | FdClass::Fifo | FdClass::Regular);
        if filter == EVFILT_READ {
            let data = fdinfo::read_data(fd, class);
            let threshold = if lowat { sdata.max(1) } else { 1 };
            let edge_repeat = class == FdClass::Regular && clear && data == last;
            if !eof && ((measured || lowat) && data < threshold || edge_repeat) {
                self.knotes[idx].active = false;
                return None;
            }
            let error = if eof && class == FdClass::Socket {
                fdinfo::socket_error(fd)
            } else {
                0
            };
            Some((data, error))
        } else {
            let data = fdinfo::write_data(fd, class);
            if !eof && lowat && data < sdata {
                self.knotes[idx].active = false;
                return None;
            }
            Some((data, 0))
        }
    }
}

/// Whether `fd` is an open descriptor (only asked on the error path).
fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor flags; any integer is a valid argument.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}
