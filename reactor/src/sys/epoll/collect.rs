//! Collecting events: turning epoll reports, timer expiries and signal counts into activated
//! knotes, then delivering from the ready queue the way `kqueue_scan` does — re-check, copy out,
//! and apply `EV_ONESHOT` / `EV_DISPATCH` / `EV_CLEAR` / level requeueing.

use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use super::abi::*;
use super::fdinfo::{self, FdClass};
use super::knote::Kind;
use super::{os, signals};
use super::{FdEntry, KnoteRef, Selector, State};
use super::{
    GEN_MASK, HARVEST, INTERNAL_INNER, INTERNAL_SIGNAL, INTERNAL_TIMER, INTERNAL_VNODE, TOKEN_FD,
    TOKEN_INNER_BIT, TOKEN_INTERNAL, TOKEN_KIND_SHIFT, TOKEN_PROC,
};
use crate::Kevent;

const READ_BITS: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
const READ_EOF_BITS: u32 = (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
const WRITE_BITS: u32 = (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32;
const WRITE_EOF_BITS: u32 = (libc::EPOLLHUP | libc::EPOLLERR) as u32;

impl Selector {
    /// Applies what one `epoll_wait` returned.
    pub(super) fn process_reports(
        &self,
        state: &mut State,
        reports: &[MaybeUninit<libc::epoll_event>],
    ) {
        for report in reports {
            // SAFETY: the caller passes only the prefix epoll_wait reported as filled.
            let report = unsafe { report.assume_init_read() };
            let (token, bits) = (report.u64, report.events);
            match token >> TOKEN_KIND_SHIFT {
                TOKEN_FD => state.fd_report(self, token, bits),
                TOKEN_PROC => state.proc_report(token),
                TOKEN_INTERNAL => match token & 0xffff_ffff {
                    // Expired: the timerfd is disarmed now (as far as `sync` is concerned).
                    INTERNAL_TIMER => state.armed = None,
                    INTERNAL_SIGNAL => state.signal_report(),
                    INTERNAL_INNER => self.harvest_inner(state),
                    INTERNAL_VNODE => state.vnode_report(),
                    // The wake eventfd only wakes; the ready queue holds the news.
                    _ => self.wake_report(state),
                },
                _ => {}
            }
        }
    }

    /// Reads the inner epoll (WRITE sides of split fds) without blocking.
    fn harvest_inner(&self, state: &mut State) {
        let Some(inner) = state.inner.as_ref().map(|fd| fd.as_raw_fd()) else {
            return;
        };
        let mut buf = [MaybeUninit::<libc::epoll_event>::uninit(); HARVEST];
        if let Ok(got) = os::epoll_wait(inner, &mut buf, Some(Duration::ZERO)) {
            for report in &buf[..got] {
                // SAFETY: epoll_wait filled the first `got` entries.
                let report = unsafe { report.assume_init_read() };
                state.fd_report(self, report.u64, report.events);
            }
        }
    }

    /// One pass over the ready queue: returns how many events were written to `events`.
    pub(super) fn scan(&self, state: &mut State, events: &mut [Kevent]) -> usize {
        state.identity_checked = None;
        state.expire_timers();
        if !state.regular.is_empty() {
            state.eval_regular();
        }
        state.recheck_stale();
        // Entries requeued during this pass (level knotes) wait for the next call, so one call
        // never returns the same knote twice.
        let budget = state.ready.len();
        let mut n = 0;
        for _ in 0..budget {
            if n == events.len() {
                break;
            }
            let Some(entry) = state.ready.pop_front() else {
                break;
            };
            if let Some(event) = state.deliver(self.exact, entry) {
                events[n] = Kevent(event);
                n += 1;
            }
        }
        n
    }
}

impl State {
    fn fd_report(&mut self, sel: &Selector, token: u64, bits: u32) {
        let fd = token as u32 as RawFd;
        let gen = (token >> 32) as u32 & GEN_MASK;
        let inner = token & TOKEN_INNER_BIT != 0;
        let Some(entry) = self.fds.get(fd as usize).copied() else {
            return;
        };
        if entry.gen != gen {
            return; // a registration of an earlier file at this number
        }
        if entry.is_empty() {
            // Its knotes are gone (oneshot, deleted lazily): stop the reports.
            if !inner {
                let _ = os::epoll_ctl(sel.epfd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, 0, 0);
                self.fds[fd as usize] = FdEntry::EMPTY;
            }
            return;
        }
        if !inner {
            if let Some(r) = entry.read.filter(|_| bits & READ_BITS != 0) {
                self.knotes[r].eof = bits & READ_EOF_BITS != 0;
                self.knotes[r].stale = false;
                self.activate(r);
            }
        }
        if inner || !entry.split {
            if let Some(w) = entry.write.filter(|_| bits & WRITE_BITS != 0) {
                self.knotes[w].eof = bits & WRITE_EOF_BITS != 0;
                self.knotes[w].stale = false;
                self.activate(w);
            }
        }
    }

    fn proc_report(&mut self, token: u64) {
        let idx = (token & 0xffff_ffff) as usize;
        let gen = (token >> 32) as u32 & GEN_MASK;
        let Some(kn) = self.knotes.get_mut(idx) else {
            return;
        };
        if kn.gen & GEN_MASK != gen {
            return;
        }
        if let Kind::Proc { pidfd, exited } = &mut kn.kind {
            *exited = true;
            kn.data = os::exit_status(pidfd).unwrap_or(0);
            kn.eof = true;
            self.activate(idx);
        }
    }

    fn signal_report(&mut self) {
        for i in 0..self.signal_knotes.len() {
            let idx = self.signal_knotes[i];
            let kn = &mut self.knotes[idx];
            let count = signals::count(kn.ident as i32);
            if let Kind::Signal { seen } = &mut kn.kind {
                if count > *seen {
                    kn.data += (count - *seen) as i64;
                    *seen = count;
                    self.activate(idx);
                }
            }
        }
    }

    /// Moves due timers to the ready queue, counting missed periods as expirations.
    fn expire_timers(&mut self) {
        if self.timers.is_empty() {
            return;
        }
        let now = os::now_ns();
        loop {
            let knotes = &self.knotes;
            let Some((deadline, idx)) = self
                .timers
                .pop_due(now, |seq, idx| super::timer_is_current(knotes, seq, idx))
            else {
                break;
            };
            let Kind::Timer { period_ns, .. } = self.knotes[idx].kind else {
                continue;
            };
            if let Some(missed) = (now - deadline).checked_div(period_ns) {
                let count = 1 + missed;
                self.knotes[idx].data += count as i64;
                let next = deadline.saturating_add(count.saturating_mul(period_ns));
                let seq = self.timers.arm(next, idx);
                self.knotes[idx].kind = Kind::Timer { period_ns, seq };
            } else {
                // Period 0: a timer that fires once.
                self.knotes[idx].data += 1;
                self.knotes[idx].kind = Kind::Timer { period_ns, seq: 0 };
            }
            self.activate(idx);
        }
    }

    /// Regular files have no readiness events: every enabled knote on one goes on the queue at
    /// each collect, and delivery measures it once (`fd_event_data`) and drops it if the file
    /// has nothing to report.
    fn eval_regular(&mut self) {
        for i in 0..self.regular.len() {
            let idx = self.regular[i];
            if !self.knotes[idx].queued {
                self.activate(idx);
            }
        }
    }

    /// One `poll(2)` over every stale fd knote on the queue; those no longer ready leave it.
    fn recheck_stale(&mut self) {
        if !std::mem::take(&mut self.maybe_stale) {
            return;
        }
        self.pollfds.clear();
        self.rechecks.clear();
        for &(idx, gen) in &self.ready {
            let Some(kn) = self.knotes.get(idx) else {
                continue;
            };
            if kn.gen != gen || !kn.queued || !kn.stale || !matches!(kn.kind, Kind::Fd) {
                continue;
            }
            let fd = kn.ident as RawFd;
            if self.fds[fd as usize].class == FdClass::Regular {
                continue; // evaluated on delivery
            }
            let events = if kn.filter == EVFILT_READ {
                libc::POLLIN | libc::POLLRDHUP
            } else {
                libc::POLLOUT
            };
            self.pollfds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
            self.rechecks.push((idx, gen));
        }
        if self.pollfds.is_empty() || os::poll_now(&mut self.pollfds).is_err() {
            return;
        }
        for i in 0..self.rechecks.len() {
            let (idx, gen) = self.rechecks[i];
            let revents = self.pollfds[i].revents;
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
            kn.stale = false;
            if ready {
                kn.eof = eof;
            } else {
                kn.queued = false;
                kn.active = false;
            }
        }
    }

    /// Pops one queue entry into an event, or `None` if there is nothing to report after all.
    fn deliver(&mut self, exact: bool, (idx, gen): KnoteRef) -> Option<RawKevent> {
        let kn = self.knotes.get_mut(idx)?;
        if kn.gen != gen || !kn.queued {
            return None;
        }
        kn.queued = false;
        if kn.disabled {
            return None;
        }
        let mut flags = kn.flags;
        let mut fflags = 0;
        let data;
        let mut requeue = false;
        match &mut kn.kind {
            Kind::Fd => {
                let (fd, filter) = (kn.ident as RawFd, kn.filter);
                let (d, ff) = self.fd_event_data(exact, idx, fd, filter)?;
                data = d;
                fflags = ff;
                let kn = &mut self.knotes[idx];
                if kn.eof {
                    flags |= EV_EOF;
                }
                requeue = !kn.is_clear();
                kn.data = data;
            }
            Kind::Timer { .. } | Kind::Signal { .. } => {
                if kn.data == 0 {
                    return None;
                }
                data = std::mem::take(&mut kn.data);
            }
            Kind::User { triggered } => {
                if !*triggered {
                    return None;
                }
                fflags = kn.sfflags;
                data = kn.sdata;
                if kn.flags & EV_CLEAR != 0 {
                    *triggered = false;
                } else {
                    requeue = true;
                }
            }
            Kind::Vnode(_) => {
                let (ff, eof) = self.vnode_event_data(idx)?;
                fflags = ff;
                data = 0;
                if eof {
                    flags |= EV_EOF;
                }
                requeue = flags & EV_CLEAR == 0;
            }
            Kind::Proc { exited, .. } => {
                if !*exited {
                    return None;
                }
                fflags = kn.sfflags & NOTE_EXIT;
                data = kn.data;
                flags |= EV_EOF | EV_ONESHOT;
            }
        }
        let kn = &mut self.knotes[idx];
        let event = RawKevent::new(kn.ident, kn.filter, flags, fflags, data, kn.udata);
        if flags & EV_ONESHOT != 0 {
            self.remove_knote(idx);
        } else if flags & EV_DISPATCH != 0 {
            kn.disabled = true;
            kn.active = false;
        } else if requeue {
            // Level-triggered: back on the queue, to be re-checked before it is reported again.
            kn.stale = matches!(kn.kind, Kind::Fd);
            self.maybe_stale |= kn.stale;
            kn.queued = true;
            self.ready.push_back((idx, kn.gen));
        } else {
            kn.active = false;
        }
        Some(event)
    }

    /// `data` and `fflags` of an fd event, and whether it is still one: `None` drops it (the
    /// fd now names another file, or exact data shows the condition no longer holds).
    fn fd_event_data(
        &mut self,
        exact: bool,
        idx: usize,
        fd: RawFd,
        filter: i32,
    ) -> Option<(i64, u32)> {
        let entry = self.fds[fd as usize];
        let (sfflags, sdata, eof, last) = {
            let kn = &self.knotes[idx];
            (kn.sfflags, kn.sdata, kn.eof, kn.data)
        };
        let lowat = sfflags & NOTE_LOWAT != 0;
        let mut class = entry.class;
        if exact && entry.id.is_some() && self.identity_checked != Some(fd) {
            // The fd number may have been closed and reused without EV_DELETE while the old
            // file lives on through a dup: epoll still reports the old file, kqueue would not.
            match fdinfo::identify(fd) {
                Some((id, c)) if Some(id) == entry.id => {
                    class = c;
                    self.identity_checked = Some(fd);
                }
                _ => {
                    self.drop_fd(fd);
                    return None;
                }
            }
        }
        if !(exact || lowat || class == FdClass::Regular) {
            return Some((0, 0));
        }
        if class == FdClass::Unknown {
            class = fdinfo::identify(fd).map_or(FdClass::Other, |(_, c)| c);
            self.fds[fd as usize].class = class;
        }
        let measured = matches!(class, FdClass::Socket | FdClass::Fifo | FdClass::Regular);
        if filter == EVFILT_READ {
            let data = fdinfo::read_data(fd, class);
            let threshold = if lowat { sdata.max(1) } else { 1 };
            let edge_repeat =
                class == FdClass::Regular && self.knotes[idx].is_clear() && data == last;
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
