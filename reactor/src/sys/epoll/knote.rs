//! The shim's knote: what kqueue keeps per `(ident, filter)`, in user space.

use std::os::fd::OwnedFd;

use super::abi::{RawKevent, EV_CLEAR, EV_DISABLE, EV_DISPATCH, EV_ENABLE, EV_ONESHOT, EV_RECEIPT};

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
    /// An fd knote whose readiness must be re-checked (`poll`) before it is delivered: a level
    /// knote requeued after delivery, or one a change asked to re-evaluate.
    pub(super) stale: bool,
    /// Filter input: `fflags` and `data` of the registering change.
    pub(super) sfflags: u32,
    pub(super) sdata: i64,
    /// Timers and signals: the expirations or deliveries not yet reported; PROC: the exit
    /// status; fd knotes: the `data` last delivered (an `EV_CLEAR` regular file fires again
    /// only when it changes).
    pub(super) data: i64,
    /// The condition is final (peer closed, process exited).
    pub(super) eof: bool,
    pub(super) kind: Kind,
}

/// Filter-specific state.
pub(super) enum Kind {
    /// READ or WRITE on fd `ident`.
    Fd,
    /// A timer: `period_ns` 0 fires once; `seq` is the live heap entry (0 when none).
    Timer { period_ns: u64, seq: u64 },
    /// A user event.
    User { triggered: bool },
    /// A signal: the process-wide count already reported.
    Signal { seen: u64 },
    /// A process, watched through its pidfd.
    Proc { pidfd: OwnedFd, exited: bool },
    /// VNODE on fd `ident`, through its inode's inotify watch.
    Vnode(Box<super::vnode::Watched>),
}

impl Knote {
    pub(super) fn new(
        ident: usize,
        filter: i32,
        flags: u16,
        udata: usize,
        gen: u32,
        kind: Kind,
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
            stale: false,
            sfflags: 0,
            sdata: 0,
            data: 0,
            eof: false,
            kind,
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
