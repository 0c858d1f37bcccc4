//! Blocking a thread that is not a runtime thread until a future completes: the one place
//! where the executor parks a thread (`std::thread::park`). Runtime threads never park: they
//! sleep in their kqueue (`sleep_in_kqueue` in the schedulers, woken by `wake_sleeper`).

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use crate::task::coop;

/// Wakes a parked thread; coalesced (one unpark per sleep).
pub(crate) struct ThreadWaker {
    thread: Thread,
    woken: AtomicBool,
}

impl ThreadWaker {
    pub(crate) fn new() -> Arc<ThreadWaker> {
        Arc::new(ThreadWaker {
            thread: thread::current(),
            woken: AtomicBool::new(true),
        })
    }

    /// Whether a wake-up came since the last call (and consumes it).
    pub(crate) fn take(&self) -> bool {
        self.woken.swap(false, Ordering::AcqRel)
    }
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, Ordering::AcqRel) {
            self.thread.unpark();
        }
    }
}

/// Polls `fut` on this thread, parking between wake-ups.
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let parker = ThreadWaker::new();
    let waker = Waker::from(parker.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        if parker.take() {
            if let Poll::Ready(v) = coop::budgeted(|| fut.as_mut().poll(&mut cx)) {
                return v;
            }
        } else {
            thread::park();
        }
    }
}
