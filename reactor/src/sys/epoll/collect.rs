//! Collecting events: routing epoll reports to the filters that registered them (which activate
//! their knotes), then delivering from the ready queue the way `kqueue_scan` does — ask the
//! filter what the knote reports now, copy it out, and apply `EV_ONESHOT` / `EV_DISPATCH` /
//! level requeueing. Nothing here knows any filter: each step calls through the filter table.

use std::mem::MaybeUninit;

use super::abi::*;
use super::{dispatch, KnoteRef, Selector, State};
use crate::Kevent;

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
            if !dispatch::report(state, self, token, bits) {
                // The kqueue's own token, the wake eventfd: it only wakes, the ready queue
                // holds the news.
                self.wake_report(state);
            }
        }
    }

    /// One pass over the ready queue: returns how many events were written to `events`.
    pub(super) fn scan(&self, state: &mut State, events: &mut [Kevent]) -> usize {
        dispatch::prepare_scan(state);
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
        let id = kn.ext.id();
        let delivery = dispatch::deliver(id, self, exact, idx)?;
        let kn = &mut self.knotes[idx];
        let flags = kn.flags | delivery.flags;
        let event = RawKevent::new(
            kn.ident,
            kn.filter,
            flags,
            delivery.fflags,
            delivery.data,
            kn.udata,
        );
        if flags & EV_ONESHOT != 0 {
            self.remove_knote(idx);
        } else if flags & EV_DISPATCH != 0 {
            kn.disabled = true;
            kn.active = false;
        } else if delivery.requeue {
            // Level-triggered: back on the queue, to be re-checked before it is reported again.
            kn.queued = true;
            self.ready.push_back((idx, kn.gen));
        } else {
            kn.active = false;
        }
        Some(event)
    }
}
