//! The shim's knote: what kqueue keeps per `(ident, filter)`, in user space. The fields here are
//! the generic ones (FreeBSD's `struct knote` without `kn_ptr`/`kn_hook`); what a filter keeps of
//! its own is its `Ext` variant (see `filter.rs`).

use super::abi::{RawKevent, EV_CLEAR, EV_DISABLE, EV_DISPATCH, EV_ENABLE, EV_ONESHOT, EV_RECEIPT};
use super::Ext;

/// The flags a knote keeps from its creating change and returns in its events.
pub(super) const KEPT_FLAGS: u16 = EV_ONESHOT | EV_CLEAR | EV_DISPATCH | EV_RECEIPT;

/// A registered knote.
pub(super) struct Knote {
    pub(super) ident: usize,
    pub(super) filter: i32,
    /// `KEPT_FLAGS` as registered (plus `EV_CLEAR` where the filter implies it).
    pub(super) flags: u16,
    pub(super) udata: usize,
    /// Distinguishes this knote from earlier ones in the same slab slot: ready-queue entries and
    /// epoll tokens carry it, so nothing aimed at a deleted knote reaches its successor.
    pub(super) gen: u32,
    /// On the ready queue (at most one live entry).
    pub(super) queued: bool,
    /// `EV_DISABLE`d: not reported until `EV_ENABLE`.
    pub(super) disabled: bool,
    /// The condition fired since the last delivery (kept while disabled, for `EV_ENABLE`).
    pub(super) active: bool,
    /// Filter input (`kn_sfflags`, `kn_sdata`): the `fflags` and `data` of the registering
    /// change, as the filter keeps them.
    pub(super) sfflags: u32,
    pub(super) sdata: i64,
    /// The filter's own state.
    pub(super) ext: Ext,
}

impl Knote {
    pub(super) fn new(
        ident: usize,
        filter: i32,
        flags: u16,
        udata: usize,
        gen: u32,
        ext: Ext,
    ) -> Knote {
        Knote {
            ident,
            filter,
            flags: flags & KEPT_FLAGS,
            udata,
            gen,
            queued: false,
            disabled: false,
            active: false,
            sfflags: 0,
            sdata: 0,
            ext,
        }
    }

    /// What every change to an existing knote does before its filter looks at it (FreeBSD's
    /// `kqueue_register`): `EV_ENABLE`/`EV_DISABLE`, and the new `udata` — always replaced.
    pub(super) fn take_change(&mut self, change: &RawKevent) {
        let flags = change.flags();
        if flags & EV_ENABLE != 0 {
            self.disabled = false;
        } else if flags & EV_DISABLE != 0 {
            self.disabled = true;
        }
        self.udata = change.udata();
    }

    /// Edge-triggered: `EV_CLEAR`.
    pub(super) fn is_clear(&self) -> bool {
        self.flags & EV_CLEAR != 0
    }
}
