//! The shutdown gate of a run queue that other threads push to: what makes a runtime's close
//! race-free against wake-ups from anywhere, and its cancellations iterative.
//!
//! A runtime is *open*, *closing* (its shutdown is cancelling tasks) or *closed* (the shutdown
//! has finished its last pass). Wake-ups always queue the task; what happens next depends on
//! the state the pusher sees after its push:
//! - open: the runtime is notified and runs it;
//! - closing: nothing; the shutdown loop drains the queue and cancels what it finds (so a
//!   cancel whose destructor wakes another task, which wakes another, ..., is a loop in the
//!   shutdown, not a recursion inside wakers);
//! - closed: the pusher drains the queue itself, through [`drain`], which lets one thread drain
//!   at a time (a cancel that wakes a task of the same runtime queues it for the loop already
//!   running, instead of recursing).
//!
//! The push-then-look of a pusher and the close-then-drain of the shutdown are a Dekker pair
//! (SeqCst fences on both sides): either the pusher sees the runtime closed and drains, or the
//! shutdown's last drain finds the task. `loom_tests` below check both this and [`drain`]'s
//! election.

use crate::loom::sync::atomic::{fence, AtomicBool, AtomicU8, Ordering};

/// A queue of tasks (the injection queue, a current-thread runtime's remote queue).
pub(crate) trait TaskQueue<T> {
    fn push(&self, item: T);
    fn pop(&self) -> Option<T>;
    fn is_empty(&self) -> bool;
}

impl<T> TaskQueue<T> for crossbeam_queue::SegQueue<T> {
    fn push(&self, item: T) {
        crossbeam_queue::SegQueue::push(self, item);
    }
    fn pop(&self) -> Option<T> {
        crossbeam_queue::SegQueue::pop(self)
    }
    fn is_empty(&self) -> bool {
        crossbeam_queue::SegQueue::is_empty(self)
    }
}

const OPEN: u8 = 0;
const CLOSING: u8 = 1;
const CLOSED: u8 = 2;

/// See the module docs.
pub(crate) struct Gate {
    state: AtomicU8,
    /// A thread is draining the queue after close (see [`drain`]).
    draining: AtomicBool,
}

/// What a pusher must do after queueing a task.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AfterPush {
    /// Open: wake the runtime.
    Notify,
    /// Closing: the shutdown loop will find it.
    Nothing,
    /// Closed: drain (and cancel) the queue.
    Drain,
}

impl Gate {
    pub(crate) fn new() -> Gate {
        Gate {
            state: AtomicU8::new(OPEN),
            draining: AtomicBool::new(false),
        }
    }

    /// Whether shutdown has begun.
    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) != OPEN
    }

    /// Shutdown begins: from now on wake-ups are left in the queue for the shutdown loop.
    pub(crate) fn close(&self) {
        self.state.store(CLOSING, Ordering::SeqCst);
    }

    /// The shutdown loop is done: from now on each pusher drains. The caller drains once more
    /// after this (a push that saw `closing` may have landed after its last pass).
    pub(crate) fn finish(&self) {
        self.state.store(CLOSED, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// To be called right after a push.
    pub(crate) fn after_push(&self) -> AfterPush {
        fence(Ordering::SeqCst);
        match self.state.load(Ordering::SeqCst) {
            OPEN => AfterPush::Notify,
            CLOSING => AfterPush::Nothing,
            _ => AfterPush::Drain,
        }
    }
}

/// Queues `item` and, depending on the gate (module docs), notifies the runtime or drains.
pub(crate) fn push<T>(
    gate: &Gate,
    queue: &impl TaskQueue<T>,
    item: T,
    notify: impl FnOnce(),
    cancel: impl FnMut(T),
) {
    queue.push(item);
    match gate.after_push() {
        AfterPush::Notify => notify(),
        AfterPush::Nothing => {}
        AfterPush::Drain => drain(gate, queue, cancel),
    }
}

/// Cancels everything in `queue`, one thread at a time: a thread that finds another draining
/// leaves its task to it (the drainer looks once more after it stops, so nothing is stranded);
/// a cancel that queues more (a destructor waking a task) is picked up by the same loop.
pub(crate) fn drain<T>(gate: &Gate, queue: &impl TaskQueue<T>, mut cancel: impl FnMut(T)) {
    loop {
        if gate.draining.swap(true, Ordering::SeqCst) {
            return;
        }
        while let Some(item) = queue.pop() {
            cancel(item);
        }
        // An RMW, like the winner's `swap`: a loser's `swap` that read `true` is ordered
        // before this, so the look below sees the loser's task.
        gate.draining.swap(false, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if queue.is_empty() {
            return;
        }
    }
}

#[cfg(all(test, loom))]
pub(crate) mod loom_tests {
    use super::*;
    use crate::loom::sync::atomic::AtomicUsize;
    use crate::loom::sync::{Arc, Mutex};
    use crate::loom::thread;
    use std::collections::VecDeque;

    /// A loom-visible queue standing in for the SegQueue (whose own atomics loom cannot
    /// see): like it, a push and a pop are SeqCst read-modify-writes of its indices (`len`
    /// here) and `is_empty` a SeqCst load of them. (Loom does not order a mutex's lock by SeqCst
    /// fences, so a queue made of a mutex alone would report interleavings the real one
    /// forbids.)
    #[derive(Default)]
    pub(crate) struct Queue(Mutex<VecDeque<u32>>, AtomicUsize);

    impl TaskQueue<u32> for Queue {
        fn push(&self, item: u32) {
            let mut q = self.0.lock().unwrap();
            q.push_back(item);
            self.1.fetch_add(1, Ordering::SeqCst);
        }
        fn pop(&self) -> Option<u32> {
            if self.1.load(Ordering::SeqCst) == 0 {
                return None;
            }
            let mut q = self.0.lock().unwrap();
            let item = q.pop_front();
            if item.is_some() {
                self.1.fetch_sub(1, Ordering::SeqCst);
            }
            item
        }
        fn is_empty(&self) -> bool {
            self.1.load(Ordering::SeqCst) == 0
        }
    }

    struct Rt {
        gate: Gate,
        queue: Queue,
        cancelled: Mutex<Vec<u32>>,
        ran: Mutex<Vec<u32>>,
    }

    fn cancel(rt: &Rt) -> impl FnMut(u32) + '_ {
        |item| rt.cancelled.lock().unwrap().push(item)
    }

    /// A wake-up racing a shutdown: every task queued is cancelled exactly once, and none is
    /// run by the runtime once it is closed.
    #[test]
    fn push_against_shutdown() {
        loom::model(|| {
            let rt = Arc::new(Rt {
                gate: Gate::new(),
                queue: Queue::default(),
                cancelled: Mutex::new(Vec::new()),
                ran: Mutex::new(Vec::new()),
            });
            let pushers: Vec<_> = (0..2)
                .map(|i| {
                    let rt = Arc::clone(&rt);
                    thread::spawn(move || {
                        let mut notified = false;
                        push(&rt.gate, &rt.queue, i, || notified = true, cancel(&rt));
                        if notified && !rt.gate.is_closed() {
                            // The runtime's worker: runs what it finds while open.
                            if let Some(item) = rt.queue.pop() {
                                rt.ran.lock().unwrap().push(item);
                            }
                        }
                    })
                })
                .collect();
            // The shutdown.
            rt.gate.close();
            drain(&rt.gate, &rt.queue, cancel(&rt));
            rt.gate.finish();
            drain(&rt.gate, &rt.queue, cancel(&rt));
            for p in pushers {
                p.join().unwrap();
            }
            let mut all: Vec<u32> = rt.cancelled.lock().unwrap().clone();
            all.extend(rt.ran.lock().unwrap().iter());
            all.sort();
            assert_eq!(all, vec![0, 1], "each task cancelled or run exactly once");
            assert!(rt.queue.is_empty());
        });
    }

    /// Two pushers after close: whichever drains, nothing is left in the queue.
    #[test]
    fn drain_election() {
        loom::model(|| {
            let rt = Arc::new(Rt {
                gate: Gate::new(),
                queue: Queue::default(),
                cancelled: Mutex::new(Vec::new()),
                ran: Mutex::new(Vec::new()),
            });
            rt.gate.close();
            rt.gate.finish();
            let pushers: Vec<_> = (0..2)
                .map(|i| {
                    let rt = Arc::clone(&rt);
                    thread::spawn(move || {
                        push(&rt.gate, &rt.queue, i, || unreachable!(), cancel(&rt));
                    })
                })
                .collect();
            for p in pushers {
                p.join().unwrap();
            }
            assert!(rt.queue.is_empty(), "a task was stranded in a closed queue");
            assert_eq!(rt.cancelled.lock().unwrap().len(), 2);
        });
    }
}
