//! The multi-thread runtime's watch on stuck workers: which sleeping worker keeps an eye on
//! the awake ones, and when an awake one counts as stuck.
//!
//! Each worker has its own kqueue, so a worker stuck in a long task poll leaves its kqueue's
//! events uncollected. While some worker that has had I/O or timers on its kqueue is awake
//! (one that never had any cannot hold events hostage), at least one sleeping worker sleeps in
//! spells of [`STUCK_CHECK`] (it *watches*) and, after each spell, looks at the awake workers:
//! one that has not polled its kqueue for a whole `STUCK_CHECK` ([`LastSeen`]) is stuck, and
//! the watcher polls that kqueue for it. A sleeping worker that is not needed as a watcher
//! sleeps without a timeout (*untimed*), so an idle runtime makes no wake-ups at all.
//!
//! Who watches: a worker going to sleep marks itself untimed, then looks at the other workers'
//! sleep flags (and whether they have had I/O); if one is awake it watches instead
//! ([`Watch::going_to_sleep`]). A worker with I/O that is about to run its first task after a
//! sleep, or a worker getting its first registration (after recording it), looks at the
//! others' marks: if every other worker sleeps untimed, it wakes one of them, which then
//! watches for at least one spell ([`needs_watcher`]). (Not at every wake-up: a watcher whose
//! spell ends with nothing to do would wake the other sleeper, which would watch, and wake it
//! in turn, forever.) Those two are a Dekker pair (SeqCst fences on both sides): either the
//! sleeper sees the waker awake, or the waker sees the sleeper untimed. So no worker with I/O
//! runs a task while every other sleeps untimed, whether it woke before or after they went to
//! sleep, and whether its first registration came before or after they looked.
//! `loom_tests` checks this with the real `SleepFlag`.

use std::time::{Duration, Instant};

use crate::loom::sync::atomic::{fence, AtomicBool, Ordering};

/// The longest a watcher sleeps between two looks at the awake workers, and how long a
/// worker must go without polling its kqueue to count as stuck: a socket whose worker is stuck
/// waits about two spells for another worker to collect its event.
pub(crate) const STUCK_CHECK: Duration = Duration::from_millis(2);

/// One worker's marks.
pub(crate) struct Watch {
    /// Asleep without a timeout (not watching).
    untimed: AtomicBool,
    /// Woken by [`needs_watcher`] to watch: it watches for its next sleep whatever it sees.
    called: AtomicBool,
}

impl Watch {
    pub(crate) fn new() -> Watch {
        Watch {
            untimed: AtomicBool::new(false),
            called: AtomicBool::new(false),
        }
    }

    /// The worker goes to sleep (its sleep flag raised): whether it must watch, that is sleep
    /// in spells of `STUCK_CHECK`, because it was called to, or because `someone_awake` says
    /// another worker is awake. If not, it stays marked untimed until [`woke`](Watch::woke).
    /// (A called worker watches one spell even if the worker that called it has gone back to
    /// sleep by now: so a worker that wakes, runs a short task and sleeps, over and over,
    /// calls a watcher about once a spell, not once a task.)
    pub(crate) fn going_to_sleep(&self, someone_awake: impl FnOnce() -> bool) -> bool {
        if self.called.swap(false, Ordering::SeqCst) {
            return true;
        }
        self.untimed.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if someone_awake() {
            self.untimed.store(false, Ordering::SeqCst);
            return true;
        }
        false
    }

    /// The worker's sleep is over.
    pub(crate) fn woke(&self) {
        self.untimed.store(false, Ordering::SeqCst);
    }

    pub(crate) fn is_untimed(&self) -> bool {
        self.untimed.load(Ordering::SeqCst)
    }
}

/// For a worker that has just woken up (its sleep flag lowered), given the other workers'
/// marks: if every one of them sleeps untimed, the one to wake so that it watches (its mark
/// already taken: of two wakers racing for it, one wakes it). The caller triggers its kqueue
/// if it still sleeps (its sleep flag up).
pub(crate) fn needs_watcher<'a>(
    others: impl IntoIterator<Item = (usize, &'a Watch)>,
) -> Option<usize> {
    fence(Ordering::SeqCst);
    let mut first = None;
    for (index, watch) in others {
        if !watch.is_untimed() {
            // Awake, or watching already.
            return None;
        }
        first.get_or_insert((index, watch));
    }
    let (index, watch) = first?;
    if !watch.untimed.swap(false, Ordering::SeqCst) {
        return None;
    }
    watch.called.store(true, Ordering::SeqCst);
    Some(index)
}

/// What a watcher last saw of another worker's kqueue polls: their count, and when the count
/// was first seen at that value (by the watcher's clock: a busy worker reads no clock for it).
#[derive(Clone, Copy)]
pub(crate) struct LastSeen {
    turns: u64,
    since: Instant,
}

impl LastSeen {
    pub(crate) fn new(now: Instant) -> LastSeen {
        LastSeen {
            turns: 0,
            since: now,
        }
    }

    /// The worker has polled its kqueue `turns` times so far: whether it is stuck (the count
    /// has not moved for `STUCK_CHECK`, as far as the looks at `now` and before can tell).
    pub(crate) fn is_stuck(&mut self, turns: u64, now: Instant) -> bool {
        if self.turns != turns {
            *self = LastSeen { turns, since: now };
            return false;
        }
        now.saturating_duration_since(self.since) >= STUCK_CHECK
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn stuck_only_after_a_whole_spell_without_a_poll() {
        let t0 = Instant::now();
        let mut seen = LastSeen::new(t0);
        assert!(!seen.is_stuck(5, t0), "a new count is progress");
        assert!(
            !seen.is_stuck(5, t0 + STUCK_CHECK / 2),
            "looked again soon after: not stuck yet"
        );
        assert!(
            seen.is_stuck(5, t0 + STUCK_CHECK),
            "no poll for a whole spell"
        );
        assert!(seen.is_stuck(5, t0 + 3 * STUCK_CHECK), "still stuck");
        assert!(!seen.is_stuck(6, t0 + 3 * STUCK_CHECK), "it polled");
        assert!(!seen.is_stuck(6, t0 + 3 * STUCK_CHECK + STUCK_CHECK / 2));
    }

    #[test]
    fn a_waker_wakes_one_untimed_sleeper_and_only_if_none_watches() {
        let marks = [Watch::new(), Watch::new(), Watch::new()];
        let others = || marks.iter().enumerate().skip(1);
        assert_eq!(needs_watcher(others()), None, "the others are awake");
        for m in &marks[1..] {
            assert!(!m.going_to_sleep(|| false));
        }
        assert_eq!(needs_watcher(others()), Some(1));
        assert_eq!(needs_watcher(others()), None, "worker 1 watches now");
        marks[1].woke();
        assert!(
            marks[1].going_to_sleep(|| false),
            "called to watch: it watches one spell, whoever is awake"
        );
        marks[1].woke();
        assert!(!marks[1].going_to_sleep(|| false), "not called again");
        marks[1].woke();
        assert!(
            marks[1].going_to_sleep(|| true),
            "someone is awake: it watches"
        );
        assert_eq!(needs_watcher(others()), None);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::Arc;
    use crate::loom::thread;
    use crate::runtime::sleep_flag::SleepFlag;

    /// Worker 1 goes to sleep while worker 0 (asleep) wakes up: afterwards worker 1 watches,
    /// or worker 0 has triggered its kqueue (so it wakes and decides again).
    #[test]
    fn no_worker_awake_while_all_others_sleep_untimed() {
        loom::model(|| {
            let flags = Arc::new([SleepFlag::new(true), SleepFlag::new(false)]);
            let marks = Arc::new([Watch::new(), Watch::new()]);
            let sleeper = {
                let (flags, marks) = (Arc::clone(&flags), Arc::clone(&marks));
                thread::spawn(move || {
                    flags[1].raise();
                    marks[1].going_to_sleep(|| !flags[0].is_up())
                })
            };
            // Worker 0 wakes (its own event) and looks for a watcher.
            flags[0].lower();
            let mut triggered = false;
            if let Some(i) = needs_watcher([(1, &marks[1])]) {
                assert_eq!(i, 1);
                triggered = flags[1].take();
            }
            let watches = sleeper.join().unwrap();
            assert!(
                watches || triggered,
                "worker 0 is awake while worker 1 sleeps untimed, untriggered"
            );
        });
    }
}
