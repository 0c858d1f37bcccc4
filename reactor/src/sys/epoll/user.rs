//! `EVFILT_USER` (FreeBSD's `user_filtops`): an event fired by `NOTE_TRIGGER` from any thread.
//!
//! The stored value is the knote's `sfflags` (the low 24 bits, combined by `NOTE_FFNOP`,
//! `NOTE_FFAND`, `NOTE_FFOR` and `NOTE_FFCOPY`), its `data` the `sdata` last given; both are
//! returned on delivery. Without `EV_CLEAR` a triggered knote stays triggered.

use super::abi::*;
use super::filter::{Attached, Delivery, FilterOps, Member, Outcome};
use super::{Selector, State};

/// The filter table's entry for USER.
pub(super) struct User;

/// What a user knote keeps of its own.
pub(super) struct UserKnote {
    /// `NOTE_TRIGGER` was given and not yet cleared.
    triggered: bool,
}

impl FilterOps for User {
    const FILTERS: &'static [i32] = &[EVFILT_USER];
    type Knote = UserKnote;
    type Shared = ();

    #[inline]
    fn attach(_: &mut State, _: &Selector, change: &RawKevent) -> Result<Attached<UserKnote>, i32> {
        // FreeBSD's `kqueue_register` zeroes the change's `fflags` before `filt_userattach`
        // looks for `NOTE_TRIGGER`: a creating `EV_ADD` never fires the knote (macOS's does).
        Ok(Attached {
            ext: UserKnote { triggered: false },
            flags: change.flags(),
            sfflags: change.fflags() & NOTE_FFLAGSMASK,
        })
    }

    #[inline]
    fn link(st: &mut State, _: &Selector, idx: usize) -> Outcome {
        st.link_ident(idx);
        if User::ext(&st.knotes[idx].ext).is_some_and(|u| u.triggered) {
            st.activate(idx);
        }
        Ok(())
    }

    /// FreeBSD's `filt_usertouch(EVENT_REGISTER)`.
    #[inline]
    fn touch(st: &mut State, _: &Selector, idx: usize, change: &RawKevent) -> Outcome {
        let kn = &mut st.knotes[idx];
        let fflags = change.fflags();
        let value = fflags & NOTE_FFLAGSMASK;
        match fflags & NOTE_FFCTRLMASK {
            NOTE_FFAND => kn.sfflags &= value,
            NOTE_FFOR => kn.sfflags |= value,
            NOTE_FFCOPY => kn.sfflags = value,
            _ => {} // NOTE_FFNOP
        }
        kn.sdata = change.data();
        let clear = change.flags() & EV_CLEAR != 0;
        let Some(u) = User::ext_mut(&mut kn.ext) else {
            return Ok(());
        };
        if fflags & NOTE_TRIGGER != 0 {
            u.triggered = true;
        }
        if clear {
            u.triggered = false;
            kn.active = false;
        }
        if u.triggered {
            st.activate(idx);
        }
        Ok(())
    }

    #[inline]
    fn deliver(st: &mut State, _: bool, idx: usize) -> Option<Delivery> {
        let kn = &mut st.knotes[idx];
        let clear = kn.is_clear();
        let u = User::ext_mut(&mut kn.ext)?;
        if !u.triggered {
            return None;
        }
        // `EV_CLEAR` resets the trigger (`filt_usertouch(EVENT_PROCESS)`); a level knote stays
        // triggered and goes back on the queue.
        if clear {
            u.triggered = false;
        }
        Some(Delivery {
            flags: 0,
            fflags: kn.sfflags,
            data: kn.sdata,
            requeue: !clear,
        })
    }
}
