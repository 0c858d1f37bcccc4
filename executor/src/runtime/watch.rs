//! The multi-thread runtime's watch on stuck workers: which sleeping worker keeps an eye on
//! the awake ones.
//!
//! Every registration is in the home kqueue, which one sleeping worker waits in. A worker that
//! leaves the home to run tasks may get stuck in a long poll, and the home is then unattended
//! while the others sleep in their own kqueues. So while some worker is awake (and the home
//! has had I/O or timers: before that no event can wait), at least one sleeping worker sleeps
//! in spells of [`STUCK_CHECK`] (it *watches*); after each spell it goes back to sleep, in the
//! home if that is free by then. A sleeping worker that is not needed as a watcher sleeps
//! without a timeout (*untimed*), so an idle runtime makes no wake-ups at all.
//!
//! Who watches: a worker going to sleep marks itself untimed, then looks at the other workers'
//! sleep flags (and whether the home has had I/O); if one is awake it watches instead
//! ([`Watch::going_to_sleep`]). A worker about to run its first task after a sleep, or one
//! making the home's first registration (after recording it), looks at the others' marks: if
//! every other worker sleeps untimed, it wakes one of them, which then watches for at least
//! one spell ([`needs_watcher`]). (Not at every wake-up: a watcher whose spell ended with
//! nothing to do would wake the other sleeper, which would watch, and wake it in turn,
//! forever.) Those two are a Dekker pair (SeqCst fences on both sides): either the sleeper
//! sees the waker awake, or the waker sees the sleeper untimed. So no worker runs a task while
//! every other sleeps untimed, whether it woke before or after they went to sleep, and whether
//! the first registration came before or after they looked. `loom_tests` checks this with the
//! real `SleepFlag`.

use std::time::Duration;

use crate::loom::sync::atomic::{fence, AtomicBool, Ordering};

/// The longest a watcher sleeps before it goes back to sleep, in the home if that is free: an
/// event left in the home by a worker stuck in a poll waits about two spells (a watcher
/// called to watch sleeps its first spell in its own kqueue, unless it was called out of the
/// home).
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

    /// Whether it was called to watch and has not started that spell yet.
    pub(crate) fn is_called(&self) -> bool {
        self.called.load(Ordering::SeqCst)
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

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
