//! The flag that tells a waker whether a runtime thread sleeps in its kqueue (and so needs the
//! one EVFILT_USER trigger that wakes it), shared by the current-thread runtime and each
//! multi-thread worker.
//!
//! The sleeper raises the flag, then looks at its queues one last time, then sleeps; a waker
//! pushes its task, then swaps the flag down and triggers the kqueue if it was up. That is a
//! Dekker pair (SeqCst fences on both sides: the waker's is the gate's, `Gate::after_push`):
//! either the sleeper's last look finds the task, or the waker finds the flag up and triggers.
//! The swap makes the trigger one per sleep, however many wakers race. `loom_tests` checks it.

use crate::loom::sync::atomic::{fence, AtomicBool, Ordering};

/// A multi-thread worker's [`SleepFlag`] together with where it sleeps: in the runtime's home
/// kqueue or in its own. The place is stored before the flag is raised and read by the waker
/// that takes the flag down, so the trigger goes to the kqueue the thread waits in.
pub(crate) struct SleepSpot {
    flag: SleepFlag,
    in_home: AtomicBool,
}

impl SleepSpot {
    pub(crate) fn new() -> SleepSpot {
        SleepSpot {
            flag: SleepFlag::new(false),
            in_home: AtomicBool::new(false),
        }
    }

    /// The thread is about to sleep, in the home or in its own kqueue: the caller then looks
    /// at its queues.
    pub(crate) fn raise(&self, in_home: bool) {
        self.in_home.store(in_home, Ordering::SeqCst);
        self.flag.raise();
    }

    /// See [`SleepFlag::lower`].
    pub(crate) fn lower(&self) {
        self.flag.lower();
    }

    /// See [`SleepFlag::is_up`].
    pub(crate) fn is_up(&self) -> bool {
        self.flag.is_up()
    }

    /// Whether its last sleep was (or is) in the home.
    pub(crate) fn in_home(&self) -> bool {
        self.in_home.load(Ordering::SeqCst)
    }

    /// A waker, after queueing: `Some(in_home)` if it is the one that must trigger, with the
    /// kqueue to trigger (the home's, or the thread's own).
    pub(crate) fn take(&self) -> Option<bool> {
        self.flag
            .take()
            .then(|| self.in_home.load(Ordering::SeqCst))
    }
}

/// See the module docs.
pub(crate) struct SleepFlag(AtomicBool);

impl SleepFlag {
    pub(crate) fn new(up: bool) -> SleepFlag {
        SleepFlag(AtomicBool::new(up))
    }

    /// The thread is about to sleep: raise the flag; the caller then looks at its queues.
    pub(crate) fn raise(&self) {
        self.0.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// The thread is awake (it will look at its queues before sleeping again).
    pub(crate) fn lower(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    /// Whether the flag is up (a cheap look before `take`).
    pub(crate) fn is_up(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// A waker, after queueing: whether it is the one that must trigger the kqueue.
    pub(crate) fn take(&self) -> bool {
        self.0.swap(false, Ordering::SeqCst)
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::Arc;
    use crate::loom::thread;
    use crate::runtime::gate::loom_tests::Queue;
    use crate::runtime::gate::{self, Gate, TaskQueue};

    /// A thread that pushes `item` through the open `gate` and runs `notify` as its wake-up.
    fn pusher(
        gate: &Arc<Gate>,
        queue: &Arc<Queue>,
        item: u32,
        notify: impl Fn() + Send + 'static,
    ) -> thread::JoinHandle<()> {
        let (gate, queue) = (Arc::clone(gate), Arc::clone(queue));
        thread::spawn(move || gate::push(&*gate, &*queue, item, notify, |_| unreachable!("open")))
    }

    /// A remote push against the thread going to sleep: if the thread sleeps (its last look
    /// found nothing), the push triggers its kqueue: exactly one trigger per sleep.
    #[test]
    fn remote_push_against_sleep() {
        loom::model(|| {
            let gate = Arc::new(Gate::new());
            let queue = Arc::new(Queue::default());
            let flag = Arc::new(SleepFlag::new(false));
            let triggers = Arc::new(crate::loom::sync::atomic::AtomicUsize::new(0));
            let pushers: Vec<_> = (0..2)
                .map(|i| {
                    let (flag, triggers) = (Arc::clone(&flag), Arc::clone(&triggers));
                    pusher(&gate, &queue, i, move || {
                        if flag.take() {
                            triggers.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            // The driving thread's `sleep_in_kqueue`.
            flag.raise();
            let slept = queue.is_empty();
            if !slept {
                flag.lower();
            }
            for p in pushers {
                p.join().unwrap();
            }
            let triggers = triggers.load(Ordering::SeqCst);
            if slept {
                assert_eq!(triggers, 1, "a sleep got {triggers} triggers");
            } else {
                assert!(triggers <= 1);
            }
        });
    }

    /// A worker that slept in its own kqueue last time goes to sleep in the home while a task
    /// is pushed for it: if it sleeps, the push triggers exactly once, and the home's kqueue.
    #[test]
    fn the_trigger_goes_where_the_thread_sleeps() {
        loom::model(|| {
            let gate = Arc::new(Gate::new());
            let queue = Arc::new(Queue::default());
            let spot = Arc::new(SleepSpot::new());
            let triggered = Arc::new(crate::loom::sync::Mutex::new(Vec::new()));
            let pusher = {
                let (spot, triggered) = (Arc::clone(&spot), Arc::clone(&triggered));
                pusher(&gate, &queue, 1, move || {
                    if let Some(in_home) = spot.take() {
                        triggered.lock().unwrap().push(in_home);
                    }
                })
            };
            spot.raise(true);
            let slept = queue.is_empty();
            if !slept {
                spot.lower();
            }
            pusher.join().unwrap();
            let triggered = triggered.lock().unwrap().clone();
            if slept {
                assert_eq!(
                    triggered,
                    vec![true],
                    "the home's sleeper was not triggered there"
                );
            } else {
                assert!(triggered.iter().all(|&home| home), "{triggered:?}");
            }
        });
    }
}
