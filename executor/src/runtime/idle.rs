//! The multi-thread runtime's idle protocol (after tokio's): which sleeping worker, if any, a
//! new task wakes.
//!
//! At most one worker is woken per burst of work. A worker that finds no task is *searching*;
//! a wake-up is sent only when no worker is searching and one sleeps (the woken one counts as
//! searching from then on), and a searching worker that finds work lets the next sleeper look
//! for more, so wake-ups cascade only as far as there is work. A worker woken by the
//! home kqueue's events is not searching (its work is in its hands: it wakes a sleeper only if it
//! has more than it can run next). No wake-up is lost: a pusher
//! queues, then (after a SeqCst fence) looks at the counts; a worker going to sleep updates the
//! counts (under the sleepers' lock), then looks at the queues; one of the two sees the other.
//! `loom_tests` checks this with the real `Idle` and `SleepFlag`.

use crate::loom::sync::atomic::{fence, AtomicUsize, Ordering};
use crate::loom::sync::{Mutex, MutexGuard};
use crate::loom::Locked;

/// See the module docs.
pub(crate) struct Idle {
    sleepers: Mutex<Vec<usize>>,
    num_sleeping: AtomicUsize,
    num_searching: AtomicUsize,
}

impl Idle {
    pub(crate) fn new(workers: usize) -> Idle {
        Idle {
            sleepers: Mutex::new(Vec::with_capacity(workers)),
            num_sleeping: AtomicUsize::new(0),
            num_searching: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<usize>> {
        self.sleepers.locked()
    }

    /// After queueing work: the sleeper to wake (now counted as searching), if one must be;
    /// the one that slept last among those `prefer` picks, else the one that slept last.
    pub(crate) fn to_notify(&self, prefer: impl Fn(usize) -> bool) -> Option<usize> {
        // Orders the caller's push before the looks at the counts (the sleeper's side is the
        // lock and its RMWs, then its look at the queues).
        fence(Ordering::SeqCst);
        if self.num_searching.load(Ordering::SeqCst) != 0
            || self.num_sleeping.load(Ordering::SeqCst) == 0
        {
            return None;
        }
        let mut sleepers = self.lock();
        if self.num_searching.load(Ordering::SeqCst) != 0 {
            return None;
        }
        let index = match sleepers.iter().rposition(|&i| prefer(i)) {
            Some(pos) => sleepers.remove(pos),
            None => sleepers.pop()?,
        };
        self.num_sleeping.fetch_sub(1, Ordering::SeqCst);
        self.num_searching.fetch_add(1, Ordering::SeqCst);
        Some(index)
    }

    /// Worker `index` goes to sleep (its sleep flag already raised); it looks at the queues
    /// after this, and sleeps only if they are empty.
    pub(crate) fn sleep(&self, index: usize, searching: bool) {
        let mut sleepers = self.lock();
        sleepers.push(index);
        self.num_sleeping.fetch_add(1, Ordering::SeqCst);
        if searching {
            self.num_searching.fetch_sub(1, Ordering::SeqCst);
        }
        drop(sleepers);
        fence(Ordering::SeqCst);
    }

    /// Worker `index` is awake: off the sleeper list, if a notifier has not taken it off
    /// already. Returns whether it is searching: only if a notifier woke it (and counted it
    /// searching). A worker woken by events (or its alarm) has its work in hand; counted
    /// searching, it would wake another sleeper as soon as it found that work
    /// (`stop_searching`), for nothing to do.
    pub(crate) fn wake_up(&self, index: usize) -> bool {
        let mut sleepers = self.lock();
        let Some(pos) = sleepers.iter().position(|&i| i == index) else {
            return true;
        };
        sleepers.swap_remove(pos);
        self.num_sleeping.fetch_sub(1, Ordering::SeqCst);
        false
    }

    /// A searching worker found work (or stops): whether it was the last one searching (then
    /// another sleeper should get a chance to look for more).
    pub(crate) fn stop_searching(&self) -> bool {
        self.num_searching.fetch_sub(1, Ordering::SeqCst) == 1
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::atomic::AtomicBool;
    use crate::loom::sync::Arc;
    use crate::loom::thread;
    use crate::runtime::gate::loom_tests::Queue;
    use crate::runtime::gate::TaskQueue;
    use crate::runtime::sleep_flag::SleepFlag;

    struct Model {
        idle: Idle,
        queue: Queue,
        flags: [SleepFlag; 2],
        triggered: [AtomicBool; 2],
    }

    /// `MultiThread::sleep_in_kqueue`'s first half: raise the flag, join the sleepers, look at
    /// the queue; whether the worker sleeps.
    fn goes_to_sleep(m: &Model, index: usize, searching: bool) -> bool {
        m.flags[index].raise();
        m.idle.sleep(index, searching);
        if m.queue.is_empty() {
            return true;
        }
        m.flags[index].lower();
        m.idle.wake_up(index);
        false
    }

    /// Work pushed while two workers (one searching) go to sleep: if it is still queued at
    /// the end, some worker is awake or has been triggered.
    #[test]
    fn no_lost_wake_up() {
        loom::model(|| {
            let m = Arc::new(Model {
                idle: Idle::new(2),
                queue: Queue::default(),
                flags: [SleepFlag::new(false), SleepFlag::new(false)],
                triggered: [AtomicBool::new(false), AtomicBool::new(false)],
            });
            // Worker 0 was searching; worker 1 was not (it had just run a task).
            m.idle.num_searching.store(1, Ordering::SeqCst);
            let workers: Vec<_> = [(0, true), (1, false)]
                .into_iter()
                .map(|(i, searching)| {
                    let m = Arc::clone(&m);
                    thread::spawn(move || goes_to_sleep(&m, i, searching))
                })
                .collect();
            // The pusher (`push_local` / `push_remote`): queue, then notify.
            m.queue.push(1);
            if let Some(i) = m.idle.to_notify(|i| i == 1) {
                if m.flags[i].take() {
                    m.triggered[i].store(true, Ordering::SeqCst);
                }
            }
            let slept: Vec<bool> = workers.into_iter().map(|w| w.join().unwrap()).collect();
            let someone_on_it = (0..2).any(|i| !slept[i] || m.triggered[i].load(Ordering::SeqCst));
            assert!(
                someone_on_it,
                "work queued while every worker sleeps untriggered"
            );
        });
    }
}
