//! `EVFILT_SIGNAL` (FreeBSD's `sig_filtops`): deliveries of a signal, counted by the
//! process-wide handler of `sigcount.rs`, which wakes every kqueue through one shared eventfd.
//!
//! Each knote remembers the process-wide count it last took, so any number of kqueues can watch
//! the same signal; its `data` is the deliveries since the last retrieval. The filter sets
//! `EV_CLEAR`, as kqueue does.

use std::os::fd::AsRawFd;

use super::abi::*;
use super::changes::errno;
use super::filter::{token, Attached, Delivery, FilterOps, Member, Outcome};
use super::knote::Knote;
use super::{os, sigcount};
use super::{FilterId, Selector, State};

/// The filter table's entry for SIGNAL.
pub(super) struct Signal;

/// What a signal knote keeps of its own.
pub(super) struct SignalKnote {
    /// The process-wide count already taken.
    seen: u64,
    /// Deliveries not yet reported.
    pending: i64,
}

/// The per-kqueue state of signals.
#[derive(Default)]
pub(super) struct Signals {
    /// SIGNAL knotes, checked when the shared signal eventfd fires.
    knotes: Vec<usize>,
    /// The shared eventfd is in this kqueue's epoll set.
    registered: bool,
}

impl FilterOps for Signal {
    const FILTERS: &'static [i32] = &[EVFILT_SIGNAL];
    type Knote = SignalKnote;
    type Shared = Signals;

    #[inline]
    fn attach(st: &mut State, sel: &Selector, change: &RawKevent) -> Result<Attached<SignalKnote>, i32> {
        let signo = i32::try_from(change.ident()).map_err(|_| libc::EINVAL)?;
        // Installs the counting handler, or puts it back if the program replaced it.
        sigcount::watch(signo)?;
        st.watch_signals(sel)?;
        Ok(Attached {
            // Only deliveries from now on count.
            ext: SignalKnote {
                seen: sigcount::count(signo),
                pending: 0,
            },
            flags: change.flags() | EV_CLEAR,
            sfflags: change.fflags(),
        })
    }

    #[inline]
    fn link(st: &mut State, _: &Selector, idx: usize) -> Outcome {
        st.link_ident(idx);
        st.filters.signal.knotes.push(idx);
        Ok(())
    }

    #[inline]
    fn detach(st: &mut State, idx: usize, kn: &Knote) {
        st.unlink_ident(kn);
        st.filters.signal.knotes.retain(|&i| i != idx);
    }

    #[inline]
    fn touch(st: &mut State, _: &Selector, idx: usize, change: &RawKevent) -> Outcome {
        if change.flags() & EV_ADD != 0 {
            // Every EV_ADD puts the counting handler back if the program replaced it.
            sigcount::watch(change.ident() as i32)?;
        }
        let kn = &mut st.knotes[idx];
        if change.flags() & EV_ADD != 0 {
            kn.sfflags = change.fflags();
            kn.sdata = change.data();
        }
        if Signal::ext(&kn.ext).is_some_and(|s| s.pending > 0) {
            st.activate(idx);
        }
        Ok(())
    }

    #[inline]
    fn deliver(st: &mut State, _: bool, idx: usize) -> Option<Delivery> {
        let s = Signal::ext_mut(&mut st.knotes[idx].ext)?;
        if s.pending == 0 {
            return None;
        }
        Some(Delivery {
            flags: 0,
            fflags: 0,
            data: std::mem::take(&mut s.pending),
            requeue: false,
        })
    }

    /// The shared eventfd fired: take the new counts of every watched signal.
    #[inline]
    fn report(st: &mut State, _: &Selector, _: u64, _: u32) {
        for i in 0..st.filters.signal.knotes.len() {
            let idx = st.filters.signal.knotes[i];
            let kn = &mut st.knotes[idx];
            let count = sigcount::count(kn.ident as i32);
            let Some(s) = Signal::ext_mut(&mut kn.ext) else {
                continue;
            };
            if count > s.seen {
                s.pending += (count - s.seen) as i64;
                s.seen = count;
                st.activate(idx);
            }
        }
    }
}

impl State {
    /// Puts the shared signal eventfd in this kqueue's epoll set, once.
    fn watch_signals(&mut self, sel: &Selector) -> Outcome {
        if self.filters.signal.registered {
            return Ok(());
        }
        let wake = sigcount::wake_fd().map_err(errno)?;
        // Edge-triggered: every kqueue gets an edge per delivery and nobody has to drain it.
        let edge = (libc::EPOLLIN | libc::EPOLLET) as u32;
        os::epoll_ctl(
            sel.epfd.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            wake,
            edge,
            token(FilterId::Signal, 0),
        )
        .map_err(errno)?;
        self.filters.signal.registered = true;
        Ok(())
    }
}
