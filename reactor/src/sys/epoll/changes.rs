//! Applying one change, following FreeBSD's `kqueue_register` step by step: find the filter and
//! the knote; create it on `EV_ADD` (the filter's `attach`, then `link`); delete it on
//! `EV_DELETE`; otherwise enable/disable it, take the new `udata`, and let the filter `touch` it.
//! Nothing here knows any filter: each step calls through the filter table.

use super::abi::*;
use super::filter::Outcome;
use super::knote::Knote;
use super::{dispatch, FilterId, Selector, State};

impl State {
    pub(super) fn apply(&mut self, sel: &Selector, change: &RawKevent) -> Outcome {
        let flags = change.flags();
        if flags & (EV_ENABLE | EV_DISABLE) == EV_ENABLE | EV_DISABLE {
            return Err(libc::EINVAL);
        }
        // A filter the shim does not have (EVFILT_AIO, EVFILT_FS, anything unmodelled).
        let id = FilterId::of(change.filter()).ok_or(libc::EINVAL)?;
        let Some(idx) = dispatch::lookup(id, self, sel, change)? else {
            if flags & EV_ADD == 0 {
                return Err(libc::ENOENT);
            }
            return self.create(id, sel, change);
        };
        if flags & EV_DELETE != 0 {
            return dispatch::delete(id, self, sel, idx);
        }
        self.knotes[idx].take_change(change);
        dispatch::touch(id, self, sel, idx, change)
    }

    /// `EV_ADD` of a knote that does not exist yet.
    fn create(&mut self, id: FilterId, sel: &Selector, change: &RawKevent) -> Outcome {
        let attached = dispatch::attach(id, self, sel, change)?;
        let gen = self.next_gen();
        let mut kn = Knote::new(
            change.ident(),
            change.filter(),
            attached.flags,
            change.udata(),
            gen,
            attached.ext,
        );
        kn.disabled = change.flags() & EV_DISABLE != 0;
        kn.sfflags = attached.sfflags;
        kn.sdata = change.data();
        let idx = self.knotes.insert(kn);
        if let Err(e) = dispatch::link(id, self, sel, idx) {
            self.remove_knote(idx);
            return Err(e);
        }
        Ok(())
    }
}

/// A system call's error as the errno of an `EV_ERROR` entry.
pub(super) fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}
