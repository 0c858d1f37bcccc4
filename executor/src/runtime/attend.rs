//! The multi-thread runtime's guard against a stuck worker leaving the home kqueue
//! unattended: *alarms*.
//!
//! Every registration is in the home kqueue, which one sleeping worker waits in ([`HomeSeat`]);
//! the other sleepers wait in their own kqueues, which hold nothing but their wake-up triggers.
//! A worker that leaves the home to run tasks may get stuck in a long poll, and the home's
//! events would then wait for it. So a worker about to run tasks after a sleep (and the thread
//! making the home's first registration) makes sure that, if nobody waits in the home, some
//! sleeping worker has an alarm armed: a one-shot EVFILT_TIMER of [`STUCK_CHECK`] in that
//! sleeper's own kqueue ([`needs_alarm`]). When it fires the sleeper wakes, finds no work, and
//! goes back to sleep in the home if it is still free. So no event waits for a stuck worker
//! much longer than `STUCK_CHECK`.
//!
//! Why an alarm rather than waking a sleeper to watch: a wake-up costs a trigger, usually an
//! inter-processor interrupt, and two context switches, for every worker that leaves the home,
//! thousands a second under load; an alarm is armed at most once per `STUCK_CHECK` per sleeper
//! (while it is armed nobody arms it again), costs one timer change, and wakes the sleeper only
//! when it fires. An idle runtime's last alarm fires once, finds the home taken, and nothing
//! arms another: idle workers make no wake-ups.
//!
//! No alarm is missed: a worker going to sleep in its own kqueue (the home was taken) raises
//! its sleep flag, then looks at the home once more ([`HomeSeat::settle`]); a worker leaving
//! the home frees its seat ([`HomeSeat::leave`]) before it looks at the sleepers' flags. That
//! is a Dekker pair (SeqCst on both sides): either the sleeper sees the home free and goes back
//! for it, or the other sees the sleeper asleep and arms its alarm. `loom_tests` checks it.

use std::time::Duration;

use crate::loom::sync::atomic::{fence, AtomicBool, Ordering};

/// How long an alarm waits: about the longest a home event waits for a worker stuck in a poll.
pub(crate) const STUCK_CHECK: Duration = Duration::from_millis(2);

/// One worker's alarm: armed from when a waker claims it until the worker's wait sees its
/// timer fire (or the arming fails).
pub(crate) struct Alarm {
    armed: AtomicBool,
}

impl Alarm {
    pub(crate) fn new() -> Alarm {
        Alarm {
            armed: AtomicBool::new(false),
        }
    }

    /// Whether its timer is pending (or about to be armed).
    pub(crate) fn is_armed(&self) -> bool {
        self.armed.load(Ordering::SeqCst)
    }

    /// Its timer fired (the worker's wait saw it), or could not be set: it may be armed again.
    pub(crate) fn clear(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }
}

/// Whether a worker waits in the home (or is about to): at most one does.
pub(crate) struct HomeSeat {
    taken: AtomicBool,
}

impl HomeSeat {
    pub(crate) fn new() -> HomeSeat {
        HomeSeat {
            taken: AtomicBool::new(false),
        }
    }

    pub(crate) fn is_taken(&self) -> bool {
        self.taken.load(Ordering::SeqCst)
    }

    /// The worker that waited in the home is awake: the next one to sleep may take it.
    pub(crate) fn leave(&self) {
        self.taken.store(false, Ordering::SeqCst);
    }

    /// A worker going to sleep: takes the home if it is free; if another has it, raises its
    /// flag for its own kqueue (`raise(false)`) and looks again. Returns whether it sleeps in
    /// the home; `false` means it sleeps in its own kqueue with its flag up, and whoever leaves
    /// the home next sees it (see the module docs). `raise(in_home)` raises the worker's flag,
    /// `lower` lowers it.
    pub(crate) fn settle(&self, raise: impl Fn(bool), lower: impl Fn()) -> bool {
        loop {
            let on_home = self
                .taken
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
            raise(on_home);
            if on_home {
                return true;
            }
            fence(Ordering::SeqCst);
            if self.is_taken() {
                return false;
            }
            // Left since the first look: try for it again.
            lower();
        }
    }
}

/// For a worker about to run tasks (its sleep flag lowered, the home left if it had it), or
/// the home's first registration: if nobody waits in the home and no sleeper's alarm is
/// armed, the sleeper whose alarm the caller must arm, claimed already (of two callers racing
/// for it, one gets it). `sleepers` gives each worker's index, alarm and whether its sleep flag
/// is up, looked at lazily, after the home.
pub(crate) fn needs_alarm<'a>(
    home: &HomeSeat,
    sleepers: impl IntoIterator<Item = (usize, &'a Alarm, bool)>,
) -> Option<usize> {
    fence(Ordering::SeqCst);
    if home.is_taken() {
        return None;
    }
    let mut first = None;
    for (index, alarm, asleep) in sleepers {
        if !asleep {
            continue;
        }
        if alarm.is_armed() {
            return None;
        }
        first.get_or_insert((index, alarm));
    }
    let (index, alarm) = first?;
    (!alarm.armed.swap(true, Ordering::SeqCst)).then_some(index)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn an_alarm_is_armed_only_when_the_home_is_free_and_no_sleeper_has_one() {
        let home = HomeSeat::new();
        let alarms = [Alarm::new(), Alarm::new(), Alarm::new()];
        let with = |asleep: [bool; 3]| {
            alarms
                .iter()
                .enumerate()
                .map(move |(i, a)| (i, a, asleep[i]))
        };
        assert_eq!(needs_alarm(&home, with([false; 3])), None, "nobody sleeps");
        assert!(home.settle(|_| (), || ()), "worker 0 takes the home");
        assert_eq!(
            needs_alarm(&home, with([true, true, true])),
            None,
            "someone waits in the home"
        );
        home.leave();
        assert_eq!(needs_alarm(&home, with([false, true, true])), Some(1));
        assert_eq!(
            needs_alarm(&home, with([false, true, true])),
            None,
            "worker 1's alarm is armed"
        );
        alarms[1].clear();
        assert_eq!(needs_alarm(&home, with([false, false, true])), Some(2));
    }

    #[test]
    fn a_sleeper_takes_a_free_home_and_otherwise_stays_in_its_own() {
        let home = HomeSeat::new();
        let raised = std::cell::Cell::new(None);
        let settle = || home.settle(|h| raised.set(Some(h)), || raised.set(None));
        assert!(settle());
        assert_eq!(raised.get(), Some(true));
        assert!(!settle());
        assert_eq!(raised.get(), Some(false), "the home was taken");
        home.leave();
        assert!(settle(), "left: the next sleeper takes it");
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::Arc;
    use crate::loom::thread;
    use crate::runtime::sleep_flag::SleepFlag;

    /// Worker 1 goes to sleep while worker 0 leaves the home to run a task: afterwards worker 1
    /// waits in the home, or its alarm is armed.
    #[test]
    fn a_worker_leaving_the_home_leaves_it_attended_or_a_sleeper_alarmed() {
        loom::model(|| {
            let home = Arc::new(HomeSeat::new());
            assert!(home.settle(|_| (), || ()), "worker 0 waits in the home");
            let flags = Arc::new([SleepFlag::new(true), SleepFlag::new(false)]);
            let alarms = Arc::new([Alarm::new(), Alarm::new()]);
            let sleeper = {
                let (home, flags) = (Arc::clone(&home), Arc::clone(&flags));
                thread::spawn(move || home.settle(|_| flags[1].raise(), || flags[1].lower()))
            };
            // Worker 0 wakes in the home, leaves it, and is about to run a task.
            flags[0].lower();
            home.leave();
            let sleepers = (0..2).map(|i| (i, &alarms[i], flags[i].is_up()));
            let armed = needs_alarm(&home, sleepers);
            let in_home = sleeper.join().unwrap();
            assert!(
                in_home || armed == Some(1),
                "worker 1 sleeps in its own kqueue with no alarm while the home is unattended"
            );
        });
    }
}
