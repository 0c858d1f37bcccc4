//! Applying one change, following FreeBSD's `kqueue_register` step by step: find the knote;
//! create it on `EV_ADD`; delete it on `EV_DELETE`; otherwise enable/disable it, take the new
//! `udata`, let the filter "touch" its inputs, and re-evaluate its condition.

use std::os::fd::{AsRawFd, RawFd};

use super::abi::*;
use super::fdinfo::{self, FdClass};
use super::knote::{Kind, Knote};
use super::{fd_token, internal_token, proc_token, Selector, State};
use super::{os, signals};
use super::{
    FdEntry, INTERNAL_INNER, INTERNAL_SIGNAL, MAIN_INTEREST, READ_INTEREST, TOKEN_INNER_BIT,
    WRITE_INTEREST,
};

/// A change's outcome: `Err(errno)` becomes an `EV_ERROR` entry.
type Outcome = Result<(), i32>;

fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

impl State {
    pub(super) fn apply(&mut self, sel: &Selector, change: &RawKevent) -> Outcome {
        let flags = change.flags();
        if flags & (EV_ENABLE | EV_DISABLE) == EV_ENABLE | EV_DISABLE {
            return Err(libc::EINVAL);
        }
        match change.filter() {
            EVFILT_READ | EVFILT_WRITE => self.apply_fd(sel, change),
            EVFILT_TIMER | EVFILT_USER | EVFILT_SIGNAL | EVFILT_PROC => {
                self.apply_ident(sel, change)
            }
            EVFILT_VNODE => self.apply_vnode(sel, change),
            // Anything unmodelled: the shim has no such filter.
            _ => Err(libc::EINVAL),
        }
    }

    fn apply_fd(&mut self, sel: &Selector, change: &RawKevent) -> Outcome {
        let filter = change.filter();
        let flags = change.flags();
        let fd = match RawFd::try_from(change.ident()) {
            Ok(fd) if fd >= 0 => fd,
            _ => return Err(libc::EBADF),
        };
        let mut fresh = false;
        if flags & EV_ADD != 0 {
            fresh = self.ensure_registered(sel, fd)?;
        } else if sel.exact {
            self.check_identity(fd)?;
        }
        let existing = self.entry(fd).get(filter);
        let idx = match existing {
            Some(idx) => idx,
            None => {
                if flags & EV_ADD == 0 {
                    // kqueue validates the fd before looking the knote up.
                    return Err(if fd_is_open(fd) {
                        libc::ENOENT
                    } else {
                        libc::EBADF
                    });
                }
                let gen = self.next_gen();
                let mut kn = Knote::new(fd as usize, filter, flags, change.udata(), gen, Kind::Fd);
                kn.disabled = flags & EV_DISABLE != 0;
                kn.sfflags = change.fflags();
                kn.sdata = change.data();
                let idx = self.knotes.insert(kn);
                *self.fd_entry(fd).slot(filter) = Some(idx);
                if self.fd_entry(fd).class == FdClass::Regular {
                    // Evaluated at every collect; nothing to register.
                    self.regular.push(idx);
                    return Ok(());
                }
                if let Err(e) = self.split_if_modes_differ(sel, fd) {
                    self.remove_knote(idx);
                    return Err(e);
                }
                // A fresh registration makes the kernel report current readiness itself;
                // joining an existing one needs a look of our own.
                if !fresh && !self.knotes[idx].disabled {
                    self.recheck_later(idx);
                }
                return Ok(());
            }
        };
        if flags & EV_DELETE != 0 {
            self.remove_knote(idx);
            let entry = self.entry(fd);
            if entry.is_empty() && entry.gen != 0 {
                // The last knote of the fd: stop the kernel reporting it. A closed fd (EBADF)
                // or a number now naming another file (ENOENT) means kqueue would have dropped
                // the knote at close already, and says so the same way.
                *self.fd_entry(fd) = FdEntry::EMPTY;
                // A later change in this list must register it again.
                self.verified = None;
                if let (true, Some(inner)) = (entry.split, &self.inner) {
                    // Best effort: a stale inner registration only ever yields dropped reports.
                    let _ = os::epoll_ctl(inner.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, 0, 0);
                }
                os::epoll_ctl(sel.epfd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, 0, 0)
                    .map_err(errno)?;
            }
            return Ok(());
        }
        let kn = &mut self.knotes[idx];
        kn.take_change(change);
        kn.sfflags = change.fflags();
        kn.sdata = change.data();
        if !kn.disabled {
            if kn.active && kn.is_clear() {
                // An edge arrived while it was disabled: report it as is.
                self.activate(idx);
            } else if !fresh {
                self.recheck_later(idx);
            }
        }
        Ok(())
    }

    /// Makes sure the file `fd` names now is in the epoll set; `Ok(true)` when it was just
    /// registered (the kernel then reports its current readiness by itself).
    ///
    /// `EPOLL_CTL_ADD` doubles as the check that the fd still names the registered file: epoll
    /// keys on (file, fd), so `EEXIST` means "same file, already registered" and success means
    /// the old file is gone — its knotes are dropped, as kqueue drops knotes on close.
    fn ensure_registered(&mut self, sel: &Selector, fd: RawFd) -> Result<bool, i32> {
        if let Some((verified, fresh)) = self.verified {
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
                if self.entry(fd).gen != 0 {
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
                let entry = self.entry(fd);
                if entry.gen != 0 || entry.class != FdClass::Regular {
                    self.drop_fd(fd);
                }
                let entry = self.fd_entry(fd);
                entry.class = FdClass::Regular;
                if sel.exact {
                    entry.id = fdinfo::identify(fd).map(|(id, _)| id);
                }
                self.verified = Some((fd, false));
                return Ok(false);
            }
            Err(e) => return Err(errno(e)),
        };
        if fresh {
            if !self.entry(fd).is_empty() {
                // Knotes of the file that had this number before: it is gone.
                self.drop_fd(fd);
            }
            let entry = self.fd_entry(fd);
            entry.gen = gen;
            if sel.exact {
                if let Some((id, class)) = fdinfo::identify(fd) {
                    entry.id = Some(id);
                    entry.class = class;
                }
            }
        }
        self.verified = Some((fd, fresh));
        Ok(fresh)
    }

    /// Exact mode, for a change without `EV_ADD`: if `fd` no longer names the file its knotes
    /// were registered on (closed, or closed and reused), drop them as kqueue did at close and
    /// say so as kqueue would (`EBADF` for a closed fd, `ENOENT` for a reused number).
    fn check_identity(&mut self, fd: RawFd) -> Outcome {
        let entry = self.entry(fd);
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
        let entry = self.entry(fd);
        let (Some(r), Some(w)) = (entry.read, entry.write) else {
            return Ok(());
        };
        if entry.split || self.knotes[r].is_clear() == self.knotes[w].is_clear() {
            return Ok(());
        }
        let inner = match &self.inner {
            Some(inner) => inner.as_raw_fd(),
            None => {
                let inner = os::epoll_create().map_err(errno)?;
                os::epoll_ctl(
                    sel.epfd.as_raw_fd(),
                    libc::EPOLL_CTL_ADD,
                    inner.as_raw_fd(),
                    libc::EPOLLIN as u32,
                    internal_token(INTERNAL_INNER),
                )
                .map_err(errno)?;
                let raw = inner.as_raw_fd();
                self.inner = Some(inner);
                raw
            }
        };
        let token = fd_token(fd, entry.gen) | TOKEN_INNER_BIT;
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
        self.fd_entry(fd).split = true;
        Ok(())
    }

    fn apply_ident(&mut self, sel: &Selector, change: &RawKevent) -> Outcome {
        let filter = change.filter();
        let flags = change.flags();
        let ident = change.ident();
        let Some(&idx) = self.idents.get(&(filter, ident)) else {
            if flags & EV_ADD == 0 {
                return Err(libc::ENOENT);
            }
            return self.create_ident(sel, change);
        };
        if flags & EV_DELETE != 0 {
            self.remove_knote(idx);
            return Ok(());
        }
        let kn = &mut self.knotes[idx];
        kn.take_change(change);
        match kn.kind {
            Kind::User { .. } => self.touch_user(idx, change),
            Kind::Timer { .. } if flags & EV_ADD != 0 => {
                // Re-adding a timer restarts it with the new period; its count starts over.
                let (period_ns, first_ns) = timer_spec(change)?;
                self.knotes[idx].data = 0;
                self.knotes[idx].active = false;
                self.arm_timer(idx, period_ns, first_ns);
            }
            _ => {
                let kn = &mut self.knotes[idx];
                if flags & EV_ADD != 0 {
                    kn.sfflags = change.fflags();
                    kn.sdata = change.data();
                }
            }
        }
        if self.condition_holds(idx) {
            self.activate(idx);
        }
        Ok(())
    }

    fn create_ident(&mut self, sel: &Selector, change: &RawKevent) -> Outcome {
        let filter = change.filter();
        let (flags, fflags) = (change.flags(), change.fflags());
        let ident = change.ident();
        let mut timer = None;
        // The filter's own attach step: validate, and pick the state the knote starts in.
        let (kind, kept_flags, sfflags) = match filter {
            EVFILT_TIMER => {
                timer = Some(timer_spec(change)?);
                let kind = Kind::Timer {
                    period_ns: 0,
                    seq: 0,
                };
                // Timers are edge-triggered by nature: kqueue sets EV_CLEAR on them.
                (kind, flags | EV_CLEAR, fflags)
            }
            EVFILT_USER => {
                let kind = Kind::User {
                    triggered: fflags & NOTE_TRIGGER != 0,
                };
                (kind, flags, fflags & NOTE_FFLAGSMASK)
            }
            EVFILT_SIGNAL => {
                let signo = i32::try_from(ident).map_err(|_| libc::EINVAL)?;
                signals::watch(signo)?;
                self.watch_signals(sel)?;
                // Only deliveries from now on count.
                let kind = Kind::Signal {
                    seen: signals::count(signo),
                };
                (kind, flags | EV_CLEAR, fflags)
            }
            EVFILT_PROC => {
                let pid = match libc::pid_t::try_from(ident) {
                    Ok(pid) if pid > 0 => pid,
                    _ => return Err(libc::ESRCH),
                };
                let pidfd = os::pidfd_open(pid).map_err(errno)?;
                (
                    Kind::Proc {
                        pidfd,
                        exited: false,
                    },
                    flags,
                    fflags,
                )
            }
            _ => return Err(libc::EINVAL),
        };
        let gen = self.next_gen();
        let mut kn = Knote::new(ident, filter, kept_flags, change.udata(), gen, kind);
        kn.disabled = flags & EV_DISABLE != 0;
        kn.sfflags = sfflags;
        kn.sdata = change.data();
        let idx = self.knotes.insert(kn);
        self.idents.insert((filter, ident), idx);
        if let Some((period_ns, first_ns)) = timer {
            self.arm_timer(idx, period_ns, first_ns);
        }
        match &self.knotes[idx].kind {
            Kind::Signal { .. } => self.signal_knotes.push(idx),
            Kind::Proc { pidfd, .. } => {
                // One-shot: an exited process stays readable forever; one report is all we need.
                let events = (libc::EPOLLIN | libc::EPOLLET | libc::EPOLLONESHOT) as u32;
                let raw = pidfd.as_raw_fd();
                let epfd = sel.epfd.as_raw_fd();
                if let Err(e) =
                    os::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, raw, events, proc_token(idx, gen))
                {
                    self.remove_knote(idx);
                    return Err(errno(e));
                }
            }
            Kind::Timer { .. } | Kind::User { .. } | Kind::Fd | Kind::Vnode(_) => {}
        }
        if self.condition_holds(idx) {
            self.activate(idx);
        }
        Ok(())
    }

    /// Puts the shared signal eventfd in this kqueue's epoll set, once.
    fn watch_signals(&mut self, sel: &Selector) -> Outcome {
        if self.signal_fd_registered {
            return Ok(());
        }
        let wake = signals::wake_fd().map_err(errno)?;
        // Edge-triggered: every kqueue gets an edge per delivery and nobody has to drain it.
        let edge = (libc::EPOLLIN | libc::EPOLLET) as u32;
        let token = internal_token(INTERNAL_SIGNAL);
        os::epoll_ctl(sel.epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, wake, edge, token)
            .map_err(errno)?;
        self.signal_fd_registered = true;
        Ok(())
    }

    /// FreeBSD's `filt_usertouch(EVENT_REGISTER)`.
    fn touch_user(&mut self, idx: usize, change: &RawKevent) {
        let kn = &mut self.knotes[idx];
        let fflags = change.fflags();
        let value = fflags & NOTE_FFLAGSMASK;
        match fflags & NOTE_FFCTRLMASK {
            NOTE_FFAND => kn.sfflags &= value,
            NOTE_FFOR => kn.sfflags |= value,
            NOTE_FFCOPY => kn.sfflags = value,
            _ => {} // NOTE_FFNOP
        }
        kn.sdata = change.data();
        if let Kind::User { triggered } = &mut kn.kind {
            if fflags & NOTE_TRIGGER != 0 {
                *triggered = true;
            }
            if change.flags() & EV_CLEAR != 0 {
                *triggered = false;
                kn.active = false;
            }
        }
    }

    /// Arms (or re-arms) timer knote `idx`, superseding any earlier arming.
    pub(super) fn arm_timer(&mut self, idx: usize, period_ns: u64, first_ns: u64) {
        let had = matches!(self.knotes[idx].kind, Kind::Timer { seq, .. } if seq != 0);
        let deadline = os::now_ns().saturating_add(first_ns);
        let seq = self.timers.arm(deadline, idx);
        self.knotes[idx].kind = Kind::Timer { period_ns, seq };
        if had {
            let knotes = &self.knotes;
            self.timers
                .cancelled(|seq, idx| super::timer_is_current(knotes, seq, idx));
        }
    }

    /// Whether a non-fd knote has something to report right now.
    fn condition_holds(&self, idx: usize) -> bool {
        let kn = &self.knotes[idx];
        match kn.kind {
            Kind::User { triggered } => triggered,
            Kind::Timer { .. } | Kind::Signal { .. } => kn.data > 0,
            Kind::Proc { exited, .. } => exited,
            Kind::Fd | Kind::Vnode(_) => false,
        }
    }
}

/// A timer change's `(period_ns, first_expiry_in_ns)`; period 0 means it fires once.
fn timer_spec(change: &RawKevent) -> Result<(u64, u64), i32> {
    let fflags = change.fflags();
    let amount = change.data();
    if amount < 0 {
        return Err(libc::EINVAL);
    }
    let unit_ns: u64 = match fflags & (NOTE_SECONDS | NOTE_MSECONDS | NOTE_USECONDS | NOTE_NSECONDS)
    {
        NOTE_SECONDS => 1_000_000_000,
        0 | NOTE_MSECONDS => 1_000_000,
        NOTE_USECONDS => 1_000,
        NOTE_NSECONDS => 1,
        _ => return Err(libc::EINVAL),
    };
    let amount_ns = (amount as u64).saturating_mul(unit_ns);
    if fflags & NOTE_ABSTIME != 0 {
        // An absolute deadline on the realtime clock, converted once to the monotonic clock
        // (a later clock step is not followed, as on FreeBSD). It fires once.
        let now_real = os::clock_ns(libc::CLOCK_REALTIME);
        return Ok((0, amount_ns.saturating_sub(now_real)));
    }
    if change.flags() & EV_ONESHOT != 0 {
        return Ok((0, amount_ns));
    }
    // A periodic timer of period 0 would fire continuously; kqueue treats it as the smallest
    // period of its unit.
    let period = amount_ns.max(unit_ns);
    Ok((period, period))
}

/// Whether `fd` is an open descriptor (only asked on the error path).
fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor flags; any integer is a valid argument.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}
