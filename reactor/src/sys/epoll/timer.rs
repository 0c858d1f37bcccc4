//! `EVFILT_TIMER` (FreeBSD's `timer_filtops`): deadlines in a per-kqueue heap
//! (`timer_heap.rs`), and one timerfd, armed at the earliest of them, to wake the wait and make
//! the kqueue's fd readable when a timer expires (trap 6).
//!
//! A knote's `data` is its count of expirations since the last delivery; a periodic timer that
//! missed periods counts them all. Timers are edge-triggered by nature: the filter sets
//! `EV_CLEAR`, as kqueue does.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use slab::Slab;

use super::abi::*;
use super::filter::{token, Attached, Delivery, FilterOps, Member, Outcome};
use super::knote::Knote;
use super::os;
use super::timer_heap::TimerHeap;
use super::{FilterId, Selector, State};

/// The filter table's entry for TIMER.
pub(super) struct Timer;

/// What a timer knote keeps of its own.
pub(super) struct TimerKnote {
    /// 0: fires once.
    period_ns: u64,
    /// The live heap entry (0 when none).
    seq: u64,
    /// Expirations not yet reported.
    expired: i64,
}

/// The per-kqueue state of timers.
#[derive(Default)]
pub(super) struct Timers {
    heap: TimerHeap,
    /// Created (and put in the epoll set) with the kqueue.
    timerfd: Option<OwnedFd>,
    /// The deadline the timerfd is armed for.
    armed: Option<u64>,
}

impl FilterOps for Timer {
    const FILTERS: &'static [i32] = &[EVFILT_TIMER];
    type Knote = TimerKnote;
    type Shared = Timers;

    /// The timerfd, created with the kqueue (so a timer costs no fd of its own, ever).
    fn init(timers: &mut Timers, epfd: RawFd) -> io::Result<()> {
        let timerfd = os::timerfd()?;
        // Edge-triggered: each expiry is reported once (and makes the kqueue's fd readable),
        // and an expired timerfd needs no disarming call.
        let edge_in = (libc::EPOLLIN | libc::EPOLLET) as u32;
        os::epoll_ctl(
            epfd,
            libc::EPOLL_CTL_ADD,
            timerfd.as_raw_fd(),
            edge_in,
            token(FilterId::Timer, 0),
        )?;
        timers.timerfd = Some(timerfd);
        Ok(())
    }

    #[inline]
    fn attach(_: &mut State, _: &Selector, change: &RawKevent) -> Result<Attached<TimerKnote>, i32> {
        timer_spec(change)?;
        Ok(Attached {
            ext: TimerKnote {
                period_ns: 0,
                seq: 0,
                expired: 0,
            },
            // Timers are edge-triggered by nature: kqueue sets EV_CLEAR on them.
            flags: change.flags() | EV_CLEAR,
            sfflags: change.fflags(),
        })
    }

    #[inline]
    fn link(st: &mut State, _: &Selector, idx: usize) -> Outcome {
        st.link_ident(idx);
        // The knote holds the change's inputs (`sfflags`, `sdata`, the kept flags); `attach`
        // validated them already.
        let change = {
            let kn = &st.knotes[idx];
            RawKevent::new(kn.ident, kn.filter, kn.flags, kn.sfflags, kn.sdata, 0)
        };
        let (period_ns, first_ns) = timer_spec(&change)?;
        st.arm_timer(idx, period_ns, first_ns);
        Ok(())
    }

    #[inline]
    fn detach(st: &mut State, _: usize, kn: &Knote) {
        st.unlink_ident(kn);
        if Timer::ext(&kn.ext).is_some_and(|t| t.seq != 0) {
            let knotes = &st.knotes;
            st.filters
                .timer
                .heap
                .cancelled(|seq, idx| is_current(knotes, seq, idx));
        }
    }

    #[inline]
    fn touch(st: &mut State, _: &Selector, idx: usize, change: &RawKevent) -> Outcome {
        if change.flags() & EV_ADD != 0 {
            // Re-adding a timer restarts it with the new period; its count starts over.
            let (period_ns, first_ns) = timer_spec(change)?;
            let kn = &mut st.knotes[idx];
            kn.active = false;
            if let Some(t) = Timer::ext_mut(&mut kn.ext) {
                t.expired = 0;
            }
            st.arm_timer(idx, period_ns, first_ns);
        }
        // Nothing expired yet after a restart; a plain enable reports what did.
        if Timer::ext(&st.knotes[idx].ext).is_some_and(|t| t.expired > 0) {
            st.activate(idx);
        }
        Ok(())
    }

    #[inline]
    fn deliver(st: &mut State, _: bool, idx: usize) -> Option<Delivery> {
        let t = Timer::ext_mut(&mut st.knotes[idx].ext)?;
        if t.expired == 0 {
            return None;
        }
        Some(Delivery {
            flags: 0,
            fflags: 0,
            data: std::mem::take(&mut t.expired),
            requeue: false,
        })
    }

    #[inline]
    fn report(st: &mut State, _: &Selector, _: u64, _: u32) {
        // Expired: the timerfd is disarmed now (as far as `sync` is concerned).
        st.filters.timer.armed = None;
    }

    /// Moves due timers to the ready queue, counting missed periods as expirations.
    #[inline]
    fn prepare_scan(st: &mut State) {
        if st.filters.timer.heap.is_empty() {
            return;
        }
        let now = os::now_ns();
        loop {
            let knotes = &st.knotes;
            let Some((deadline, idx)) = st
                .filters
                .timer
                .heap
                .pop_due(now, |seq, idx| is_current(knotes, seq, idx))
            else {
                break;
            };
            let Some(period_ns) = Timer::ext(&st.knotes[idx].ext).map(|t| t.period_ns) else {
                continue;
            };
            let (count, seq) = if let Some(missed) = (now - deadline).checked_div(period_ns) {
                let count = 1 + missed;
                let next = deadline.saturating_add(count.saturating_mul(period_ns));
                (count, st.filters.timer.heap.arm(next, idx))
            } else {
                // Period 0: a timer that fires once.
                (1, 0)
            };
            if let Some(t) = Timer::ext_mut(&mut st.knotes[idx].ext) {
                t.expired += count as i64;
                t.seq = seq;
            }
            st.activate(idx);
        }
    }

    /// Arms the timerfd for an earlier deadline.
    ///
    /// Re-arming only for an earlier deadline: when the earliest timer is deleted the timerfd
    /// keeps its earlier expiry. That one spurious wake-up (after which the next `sync` arms the
    /// real earliest) is cheaper than a `timerfd_settime` per change of the earliest timer,
    /// which cost a fifth of the CPU time of a 100,000-sleep workload.
    #[inline]
    fn sync(st: &mut State) {
        let knotes = &st.knotes;
        let timers = &mut st.filters.timer;
        let earliest = timers.heap.earliest(|seq, idx| is_current(knotes, seq, idx));
        let rearm = match (earliest, timers.armed) {
            (Some(new), Some(armed)) => new < armed,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if let (true, Some(timerfd)) = (rearm, &timers.timerfd) {
            // Arming cannot fail for a valid absolute time; should it, the next collect still
            // expires due timers when it runs, so nothing is lost but promptness.
            if os::timerfd_arm(timerfd, earliest).is_ok() {
                timers.armed = earliest;
            }
        }
    }
}

impl State {
    /// Arms (or re-arms) timer knote `idx`, superseding any earlier arming.
    fn arm_timer(&mut self, idx: usize, period_ns: u64, first_ns: u64) {
        let deadline = os::now_ns().saturating_add(first_ns);
        let seq = self.filters.timer.heap.arm(deadline, idx);
        let Some(t) = Timer::ext_mut(&mut self.knotes[idx].ext) else {
            return;
        };
        let had = t.seq != 0;
        t.period_ns = period_ns;
        t.seq = seq;
        if had {
            let knotes = &self.knotes;
            self.filters
                .timer
                .heap
                .cancelled(|seq, idx| is_current(knotes, seq, idx));
        }
    }
}

/// Whether heap entry `(seq, idx)` is the live arming of a timer knote.
fn is_current(knotes: &Slab<Knote>, seq: u64, idx: usize) -> bool {
    knotes
        .get(idx)
        .and_then(|kn| Timer::ext(&kn.ext))
        .is_some_and(|t| t.seq == seq)
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
