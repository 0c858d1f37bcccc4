//! The blocking pool: threads for closures that block (file I/O, DNS, CPU work), spawned on
//! demand up to a bound, retired after a spell of idleness.
//!
//! A blocking closure is a task like any other (one `async-task` allocation, a `JoinHandle`
//! that is a future) whose single poll runs the closure; the pool's queue holds its runnable.
//! Queued closures that have not started when the runtime shuts down are cancelled; started ones
//! run to completion (a thread cannot be interrupted), and `shutdown_timeout` bounds the wait.

use crate::loom::Locked;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use super::{Handle, Scheduler, WeakHandle};
use crate::task::{self, JoinHandle, Runnable, Spawn};

struct State {
    queue: VecDeque<Runnable>,
    /// Threads alive.
    threads: usize,
    /// Threads waiting for work.
    idle: usize,
    /// Wake-ups sent to idle threads and not yet taken.
    notified: usize,
    shutdown: bool,
}

/// Configuration and state of one runtime's pool.
pub(crate) struct BlockingPool {
    state: Mutex<State>,
    work: Condvar,
    exited: Condvar,
    max_threads: usize,
    keep_alive: Duration,
    thread_name: Arc<dyn Fn() -> String + Send + Sync>,
    stack_size: Option<usize>,
    /// The runtime, for the context of blocking threads (weak: the runtime owns the pool).
    handle: Mutex<Option<WeakHandle>>,
}

impl BlockingPool {
    pub(crate) fn new(
        max_threads: usize,
        keep_alive: Duration,
        thread_name: Arc<dyn Fn() -> String + Send + Sync>,
        stack_size: Option<usize>,
    ) -> Arc<BlockingPool> {
        Arc::new(BlockingPool {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                threads: 0,
                idle: 0,
                notified: 0,
                shutdown: false,
            }),
            work: Condvar::new(),
            exited: Condvar::new(),
            max_threads: max_threads.max(1),
            keep_alive,
            thread_name,
            stack_size,
            handle: Mutex::new(None),
        })
    }

    pub(crate) fn set_handle(&self, handle: &Handle) {
        *self.handle.locked() = Some(handle.downgrade());
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.locked()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().shutdown
    }

    /// How many pool threads are alive.
    pub(crate) fn threads(&self) -> usize {
        self.lock().threads
    }

    fn push(self: &Arc<Self>, runnable: Runnable) {
        let mut state = self.lock();
        if state.shutdown {
            drop(state);
            task::cancel(runnable);
            return;
        }
        state.queue.push_back(runnable);
        if state.idle > state.notified {
            state.notified += 1;
            self.work.notify_one();
        } else if state.threads < self.max_threads {
            state.threads += 1;
            drop(state);
            if self.spawn_thread().is_err() {
                // No thread: the task waits in the queue for a running one (if any). With
                // none at all, nothing would ever run it: cancel what is queued (its
                // JoinHandle reports the cancellation).
                let mut state = self.lock();
                state.threads -= 1;
                if state.threads == 0 {
                    let orphans: Vec<Runnable> = state.queue.drain(..).collect();
                    drop(state);
                    orphans.into_iter().for_each(task::cancel);
                }
            }
        }
    }

    fn spawn_thread(self: &Arc<Self>) -> std::io::Result<()> {
        let shared = Arc::clone(self);
        let mut builder = thread::Builder::new().name((self.thread_name)());
        if let Some(size) = self.stack_size {
            builder = builder.stack_size(size);
        }
        builder.spawn(move || shared.run()).map(drop)
    }

    /// Whether this thread is one of this pool's.
    pub(crate) fn is_pool_thread(&self) -> bool {
        POOL.try_with(|p| std::ptr::eq(p.get(), self))
            .unwrap_or(false)
    }

    fn run(self: Arc<Self>) {
        POOL.with(|p| p.set(Arc::as_ptr(&self)));
        let handle = self.handle.locked().as_ref().and_then(WeakHandle::upgrade);
        let mut enter = handle.map(super::context::enter);
        let mut state = self.lock();
        loop {
            while let Some(runnable) = state.queue.pop_front() {
                drop(state);
                runnable.run();
                state = self.lock();
            }
            if state.shutdown {
                // The runtime's handle goes before the thread counts as exited: this thread may
                // hold the last reference to the runtime (its kqueues), and a shutdown that
                // returned must have closed them. Nothing is queued after a shutdown, so the
                // lock can be let go meanwhile.
                drop(state);
                drop(enter.take());
                state = self.lock();
                break;
            }
            state.idle += 1;
            let (next, timeout) = self
                .work
                .wait_timeout(state, self.keep_alive)
                .unwrap_or_else(|e| e.into_inner());
            state = next;
            state.idle -= 1;
            if state.notified > 0 {
                state.notified -= 1;
                continue;
            }
            if timeout.timed_out() && state.queue.is_empty() {
                // Idle for `keep_alive`: retire.
                break;
            }
        }
        state.threads -= 1;
        self.exited.notify_all();
    }

    /// Cancels queued closures and waits (up to `timeout`, forever if `None`) for running ones.
    pub(crate) fn shutdown(&self, timeout: Option<Duration>) {
        let mut state = self.lock();
        state.shutdown = true;
        let queued: Vec<Runnable> = state.queue.drain(..).collect();
        self.work.notify_all();
        drop(state);
        queued.into_iter().for_each(task::cancel);
        let deadline = timeout.map(|t| Instant::now() + t);
        let state = self.lock();
        drop(super::wait_while_until(
            &self.exited,
            state,
            deadline,
            |s| s.threads > 0,
        ));
    }
}

thread_local! {
    /// The pool this thread belongs to (set for the thread's whole life).
    static POOL: std::cell::Cell<*const BlockingPool> = const { std::cell::Cell::new(std::ptr::null()) };
}

/// The schedule function of blocking tasks.
pub(crate) fn schedule(runnable: Runnable) {
    let Scheduler::Blocking(shared) = &runnable.metadata().sched else {
        unreachable!("a blocking task")
    };
    let shared = Arc::clone(shared);
    shared.push(runnable);
}

/// A future whose one poll runs a closure.
struct BlockingTask<F>(Option<F>);

// The closure is never pinned: it is moved out and called.
impl<F> Unpin for BlockingTask<F> {}

impl<F: FnOnce() -> R, R> Future for BlockingTask<F> {
    type Output = R;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<R> {
        let f = self.0.take().expect("a blocking task runs once");
        Poll::Ready(f())
    }
}

/// Runs `f` on the pool.
pub(crate) fn spawn_blocking<F, R>(shared: &Arc<BlockingPool>, f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    task::spawn_task(
        Spawn {
            sched: Scheduler::Blocking(Arc::clone(shared)),
            tracked: false,
        },
        BlockingTask(Some(f)),
    )
}
