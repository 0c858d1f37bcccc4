//! `EVFILT_PROC` (FreeBSD's `proc_filtops`): a process's exit, watched through a pidfd
//! (readable once the process has exited) registered one-shot in the kqueue's epoll set.
//!
//! The exit status is read with `waitid(P_PIDFD, WNOWAIT)`, which does not reap the child; a
//! process that is not our child has no status on Linux (`data` = 0, a documented difference).
//! Only `NOTE_EXIT` is ever reported. The filter sets `EV_CLEAR` (as FreeBSD's does), and an
//! exit is returned with `EV_EOF | EV_ONESHOT | EV_CLEAR`; a knote whose `fflags` lack
//! `NOTE_EXIT` when the process exits (re-added with `fflags` = 0, say) is dropped silently, as
//! FreeBSD's `EV_DROP` does.

use std::os::fd::{AsRawFd, OwnedFd};

use super::abi::*;
use super::changes::errno;
use super::filter::{token, Attached, Delivery, FilterOps, Member, Outcome};
use super::os;
use super::{FilterId, Selector, State, GEN_MASK};

/// The filter table's entry for PROC.
pub(super) struct Proc;

/// What a process knote keeps of its own.
pub(super) struct ProcKnote {
    pidfd: OwnedFd,
    /// The pidfd reported the exit.
    exited: bool,
    /// The notes that fired (`kn_fflags`): `NOTE_EXIT` if it was asked for when the process
    /// exited.
    fired: u32,
    /// The wait status (0 when Linux has none for us, or `NOTE_EXIT` was not asked for).
    status: i64,
}

/// Token payloads: the knote index in the low 32 bits, its generation above.
const GEN_SHIFT: u32 = 32;

impl FilterOps for Proc {
    const FILTERS: &'static [i32] = &[EVFILT_PROC];
    type Knote = ProcKnote;
    type Shared = ();

    #[inline]
    fn attach(_: &mut State, _: &Selector, change: &RawKevent) -> Result<Attached<ProcKnote>, i32> {
        let pid = match libc::pid_t::try_from(change.ident()) {
            Ok(pid) if pid > 0 => pid,
            _ => return Err(libc::ESRCH),
        };
        let pidfd = os::pidfd_open(pid).map_err(errno)?;
        Ok(Attached {
            ext: ProcKnote {
                pidfd,
                exited: false,
                fired: 0,
                status: 0,
            },
            // As FreeBSD's `filt_procattach`: the filter sets EV_CLEAR itself.
            flags: change.flags() | EV_CLEAR,
            sfflags: change.fflags(),
        })
    }

    #[inline]
    fn link(st: &mut State, sel: &Selector, idx: usize) -> Outcome {
        st.link_ident(idx);
        let kn = &st.knotes[idx];
        let Some(p) = Proc::ext(&kn.ext) else {
            return Ok(());
        };
        // One-shot: an exited process stays readable forever; one report is all we need.
        let events = (libc::EPOLLIN | libc::EPOLLET | libc::EPOLLONESHOT) as u32;
        let payload = (u64::from(kn.gen & GEN_MASK) << GEN_SHIFT) | (idx as u64 & 0xffff_ffff);
        os::epoll_ctl(
            sel.epfd.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            p.pidfd.as_raw_fd(),
            events,
            token(FilterId::Proc, payload),
        )
        .map_err(errno)
    }

    // The default `detach`: closing the pidfd (dropping the knote) also removes it from the
    // epoll set.

    #[inline]
    fn touch(st: &mut State, _: &Selector, idx: usize, change: &RawKevent) -> Outcome {
        let kn = &mut st.knotes[idx];
        if change.flags() & EV_ADD != 0 {
            kn.sfflags = change.fflags();
            kn.sdata = change.data();
        }
        if Proc::ext(&kn.ext).is_some_and(|p| p.exited) {
            st.activate(idx);
        }
        Ok(())
    }

    #[inline]
    fn deliver(st: &mut State, _: bool, idx: usize) -> Option<Delivery> {
        let kn = &mut st.knotes[idx];
        let p = Proc::ext(&kn.ext)?;
        if !p.exited {
            return None;
        }
        Some(Delivery {
            flags: EV_EOF | EV_ONESHOT,
            fflags: p.fired,
            data: p.status,
            requeue: false,
        })
    }

    /// The pidfd of knote (index, generation) in `payload` became readable: the process exited.
    #[inline]
    fn report(st: &mut State, _: &Selector, payload: u64, _: u32) {
        let idx = (payload & 0xffff_ffff) as usize;
        let gen = (payload >> GEN_SHIFT) as u32 & GEN_MASK;
        let Some(kn) = st.knotes.get_mut(idx) else {
            return;
        };
        if kn.gen & GEN_MASK != gen {
            return;
        }
        let wanted = kn.sfflags & NOTE_EXIT;
        let Some(p) = Proc::ext_mut(&mut kn.ext) else {
            return;
        };
        // FreeBSD's `filt_proc(NOTE_EXIT)`: record the note if it was asked for (with the wait
        // status); if no note fired at all the knote is dropped without an event (`EV_DROP`),
        // e.g. after a re-add with `fflags` = 0 disarmed it.
        p.exited = true;
        p.fired = wanted;
        if wanted == 0 {
            st.remove_knote(idx);
            return;
        }
        p.status = os::exit_status(&p.pidfd).unwrap_or(0);
        st.activate(idx);
    }
}
