//! Tasks: one allocation each (via `async-task`), a guard around the future that turns panics
//! and aborts into [`JoinError`]s, and the [`JoinHandle`] that awaits the result.
//!
//! Why `async-task`: it is the task cell of smol and async-std, small and well reviewed; it does
//! exactly the part that is easy to get subtly wrong (one allocation holding future, output,
//! waker vtable and a state word, with the wake/run/cancel races solved), and leaves queues,
//! sleeping and shutdown to us. Our own state rides in its per-task metadata (`TaskMeta`).
//!
//! Abort and shutdown never close an `async-task` task from outside (which would make its
//! handle panic): they set the task's `aborted` flag and let it run once more; the guard then
//! drops the future without polling it and completes with a cancelled [`JoinError`]. So a
//! [`JoinHandle`] always has an output to read.
//!
//! Around that: every task has an [`Id`] (in its metadata, and in a thread-local while it is
//! polled: [`id()`]); an [`AbortHandle`] cancels a task without owning its result, through a
//! link made only when the first is asked for and cut when the future finishes (see
//! `abort_handle.rs`); a [`JoinSet`] takes
//! many tasks' results as they finish, one poll per completion (see `join_set.rs`); and
//! [`task_local!`] values follow a future across polls and threads (see `local_key.rs`).

mod abort;
mod abort_handle;
pub(crate) mod coop;
mod id;
mod join;
mod join_set;
mod local_key;
pub(crate) mod registry;

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::ThreadId;

pub use crate::task_local;
pub use abort_handle::AbortHandle;
pub use id::{id, try_id, Id};
pub use join::{JoinError, JoinHandle};
pub use join_set::JoinSet;
pub use local_key::{AccessError, LocalKey, TaskLocalFuture};

use crate::runtime::{current_thread, Handle};
use abort::AbortState;
use registry::EntryKey;

use crate::runtime::Scheduler;

/// A task ready to be polled, as the run queues hold it.
pub(crate) type Runnable = async_task::Runnable<TaskMeta>;

/// What knote keeps in each task besides the future.
pub(crate) struct TaskMeta {
    /// The task's id ([`id()`], [`JoinHandle::id`]).
    pub(crate) id: Id,
    /// The link of this task's [`AbortHandle`]s, made when the first is asked for.
    link: abort_handle::LinkSlot,
    /// Set by `JoinHandle::abort` and by shutdown (the next run drops the future), and the
    /// task's entry in its runtime's registry of live tasks, none until the task first goes
    /// idle (see `Guarded::poll`); also whether the task belongs in the registry and whether
    /// its future has finished (kept there, in the atomics' padding, so that the id costs the
    /// allocation no size class).
    state: AbortState,
    /// The runtime (or blocking pool) whose queues take this task when it is woken.
    pub(crate) sched: Scheduler,
    /// For `spawn_local` tasks: the only thread that may poll or drop the future.
    local_to: Option<ThreadId>,
}

impl TaskMeta {
    /// Whether the task's future has finished (returned, panicked or been cancelled).
    pub(crate) fn is_finished(&self) -> bool {
        self.state.is_finished()
    }

    fn set_finished(&self) {
        self.state.set_finished();
        self.link.finish();
    }

    /// Marks the task aborted: its next run drops the future.
    pub(crate) fn abort(&self) {
        self.state.abort();
    }

    /// `JoinHandle::abort`: marks the task aborted and, if it is idle, wakes it so that it
    /// runs once more (see `abort.rs` for why one of this and `register_idle` always wakes it).
    pub(crate) fn abort_and_wake(&self) {
        if let (Some(entry), Some(registry)) = (self.state.abort(), self.sched.registry()) {
            registry.wake(entry);
        }
    }

    fn entry(&self) -> Option<EntryKey> {
        self.state.entry()
    }

    /// Puts a task that has just gone idle (its poll returned `Pending`) in the registry, so
    /// that shutdown can find it. Tasks that finish in their first poll never pay for the
    /// registry; tasks that are queued or running are found by shutdown in the queues.
    #[inline]
    fn register_idle(&self, waker: &std::task::Waker) {
        // Inline: after its first idle poll a task has its entry, and every later pending
        // poll (each echoed message's) stops at this test without a call.
        if self.state.tracked() && self.state.has_no_entry() {
            self.enter_registry(waker);
        }
    }

    /// [`register_idle`](TaskMeta::register_idle) for a task that has no entry yet.
    #[inline(never)]
    fn enter_registry(&self, waker: &std::task::Waker) {
        let Some(registry) = self.sched.registry() else {
            return;
        };
        if self.sched.is_closed() {
            // Shutdown has looked (or is looking) at the registry already: cancel ourselves
            // instead; the wake-up queues the task, and a closing runtime cancels what it
            // queues.
            self.abort();
            waker.wake_by_ref();
            return;
        }
        let entry = registry.insert(registry::next_shard(), waker.clone());
        if self.state.publish(entry) {
            waker.wake_by_ref();
        }
    }
}

pin_project_lite::pin_project! {
    /// The future inside every task: polls the user's future under `catch_unwind`, honours
    /// aborts, and removes the task from the registry when the future is dropped.
    struct Guarded<'a, F> {
        meta: &'a TaskMeta,
        #[pin]
        fut: Option<F>,
    }

    impl<'a, F> PinnedDrop for Guarded<'a, F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.fut.is_some() {
                check_thread(this.meta);
            }
            // A future whose destructor panics must not unwind into the scheduler.
            let _ = catch_unwind(AssertUnwindSafe(|| this.fut.set(None)));
            this.meta.set_finished();
            if let (Some(entry), Some(registry)) = (this.meta.entry(), this.meta.sched.registry()) {
                registry.remove(entry);
            }
        }
    }
}

/// A `spawn_local` future is touched only on its own thread. The runtimes route its runnable
/// there (and leak it rather than run it anywhere else); this is the last line of defence, and
/// like `async-task`'s own check it cannot unwind (unwinding would drop the future here).
#[inline]
fn check_thread(meta: &TaskMeta) {
    // Inline: most tasks are not `spawn_local` ones, and pay one test per poll.
    if let Some(owner) = meta.local_to {
        check_owner(owner);
    }
}

/// [`check_thread`] for a `spawn_local` task, owned by the thread `owner`.
#[inline(never)]
fn check_owner(owner: std::thread::ThreadId) {
    if owner != std::thread::current().id() {
        // A panic while this guard's drop panics: the process aborts, with the message.
        struct AbortOnDrop;
        impl Drop for AbortOnDrop {
            fn drop(&mut self) {
                panic!("knote: aborting the process");
            }
        }
        let _abort = AbortOnDrop;
        panic!("knote: a spawn_local task was polled or dropped off its thread");
    }
}

impl<F: Future> Future for Guarded<'_, F> {
    type Output = Result<F::Output, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        check_thread(this.meta);
        YIELDED.with(|y| y.set(false));
        let id = this.meta.id;
        let _current = id::enter(id);
        if this.meta.state.is_aborted() {
            let _ = catch_unwind(AssertUnwindSafe(|| this.fut.set(None)));
            this.meta.set_finished();
            return Poll::Ready(Err(JoinError::cancelled(id)));
        }
        let Some(fut) = this.fut.as_mut().as_pin_mut() else {
            // Unreachable: async-task never polls a completed future.
            return Poll::Ready(Err(JoinError::cancelled(id)));
        };
        let result = match catch_unwind(AssertUnwindSafe(|| coop::budgeted(|| fut.poll(cx)))) {
            Ok(Poll::Pending) => {
                this.meta.register_idle(cx.waker());
                return Poll::Pending;
            }
            Ok(Poll::Ready(value)) => Ok(value),
            Err(payload) => Err(JoinError::panicked(payload, id)),
        };
        // Drop the future now, inside the task's poll (and its runtime context), rather than
        // whenever async-task gets to it.
        let _ = catch_unwind(AssertUnwindSafe(|| this.fut.set(None)));
        this.meta.set_finished();
        Poll::Ready(result)
    }
}

/// How a task is spawned.
pub(crate) struct Spawn {
    pub(crate) sched: Scheduler,
    /// Whether the task goes in the registry of live tasks when idle (not blocking tasks,
    /// which cannot be cancelled once running).
    pub(crate) tracked: bool,
}

fn schedule(runnable: Runnable, info: async_task::ScheduleInfo) {
    // Woken while running is not the same as yielding: only `yield_now` (and a spent budget)
    // asks to go behind everything else; a task woken by an event while it ran queues as if
    // woken idle.
    let woken = if !info.woken_while_running {
        Woken::Idle
    } else if YIELDED.with(|y| y.replace(false)) {
        Woken::Yielded
    } else {
        Woken::WhileRunning
    };
    Scheduler::schedule(runnable, woken);
}

/// How a task came to be scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Woken {
    /// Spawned, or woken while idle.
    Idle,
    /// Woken while it ran (by an event, another thread, or itself), not a yield.
    WhileRunning,
    /// It yielded (`yield_now`, a spent budget).
    Yielded,
}

thread_local! {
    /// The task being polled on this thread asked to yield (`yield_now`, or a resource that
    /// refused it for a spent budget): the wake-up that reschedules it at the end of its poll
    /// defers it. Cleared at the start of every task poll.
    static YIELDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the running task's next self-wake-up as a yield (see `YIELDED`).
pub(crate) fn mark_yield() {
    let _ = YIELDED.try_with(|y| y.set(true));
}

/// Creates a task for a `Send` future and schedules its first poll.
pub(crate) fn spawn_task<F>(how: Spawn, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    // SAFETY: `spawn_unchecked`'s conditions: the future is `Send` and `'static` apart from its
    // borrow of the task's own metadata (which async-task keeps alive for as long as the
    // future); the schedule function is a plain `fn`, hence `Send + Sync + 'static`.
    unsafe { spawn_inner(how, future, None) }
}

/// Creates a task for a `!Send` future bound to this thread and schedules its first poll.
///
/// # Safety
/// The caller's scheduler must run (and drop) the task's runnables only on this thread.
pub(crate) unsafe fn spawn_local_inner<F>(how: Spawn, future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    // SAFETY: as in `spawn`, except for `Send`: the caller routes the runnable to this thread
    // only, and `check_thread` aborts rather than touch the future anywhere else.
    unsafe { spawn_inner(how, future, Some(std::thread::current().id())) }
}

/// # Safety
/// See `spawn` and `spawn_local`.
unsafe fn spawn_inner<F>(how: Spawn, future: F, local_to: Option<ThreadId>) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let Spawn { sched, tracked } = how;
    let meta = TaskMeta {
        id: Id::next(),
        link: abort_handle::LinkSlot::new(),
        state: AbortState::new(tracked),
        sched,
        local_to,
    };
    // SAFETY: forwarded from the caller (see `spawn` / `spawn_local`).
    let (runnable, task) = unsafe {
        async_task::Builder::new().metadata(meta).spawn_unchecked(
            move |meta: &TaskMeta| Guarded {
                meta,
                fut: Some(future),
            },
            async_task::WithInfo(schedule),
        )
    };
    if runnable.metadata().sched.is_closed() {
        // Spawned on a runtime that is shutting down: the task completes as cancelled.
        runnable.metadata().abort();
    }
    runnable.schedule();
    JoinHandle::new(task)
}

/// Runs a task one last time with its abort flag set, so it drops its future and completes as
/// cancelled; a local task off its own thread is leaked instead (its future may not be
/// touched here, and leaking never frees its memory, which keeps `Pin`'s promise).
pub(crate) fn cancel(runnable: Runnable) {
    let meta = runnable.metadata();
    if let Some(owner) = meta.local_to {
        if owner != std::thread::current().id() {
            std::mem::forget(runnable);
            return;
        }
    }
    meta.abort();
    runnable.run();
}

/// Yields to the scheduler once: the task is woken at once and goes to the back of its run
/// queue, behind the tasks (and the kqueue poll) already waiting.
pub async fn yield_now() {
    struct YieldNow {
        yielded: bool,
    }
    impl Future for YieldNow {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.yielded {
                return Poll::Ready(());
            }
            self.yielded = true;
            mark_yield();
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
    YieldNow { yielded: false }.await
}

/// A panic payload, as `std::panic::catch_unwind` returns it.
pub type Payload = Box<dyn Any + Send + 'static>;

/// Spawns a task onto the current runtime.
///
/// # Panics
/// Outside a runtime's context (use [`Handle::spawn`] there).
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match crate::runtime::context::with_current(|h| h.spawn(future)) {
        Some(handle) => handle,
        None => panic!("knote::spawn called outside a knote runtime"),
    }
}

/// Runs a blocking closure on the current runtime's blocking pool.
///
/// # Panics
/// Outside a runtime's context.
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match crate::runtime::context::with_current(|h| h.spawn_blocking(f)) {
        Some(handle) => handle,
        None => panic!("knote::spawn_blocking called outside a knote runtime"),
    }
}

/// Spawns a `!Send` task that runs on this thread.
///
/// # Panics
/// Unless this thread is driving a current-thread runtime right now (inside its `block_on`,
/// or a [`LocalRuntime`](crate::runtime::LocalRuntime)'s `turn`/`block_on`).
#[track_caller]
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let handle = Handle::try_current().ok();
    let shared = match handle.as_ref().map(|h| &h.inner) {
        Some(crate::runtime::handle::Inner::Current(s)) if current_thread::is_driving(s) => s,
        _ => panic!(
            "knote::spawn_local needs a current-thread runtime driven by this thread \
             (inside its block_on, or a LocalRuntime)"
        ),
    };
    shared.claim_local();
    let how = Spawn {
        sched: Scheduler::Current(std::sync::Arc::clone(shared)),
        tracked: true,
    };
    // SAFETY: the runtime is driven by this thread and has recorded it as the owner of its
    // local tasks: it refuses to be driven from any other thread, and its shutdown leaks
    // (never drops) local tasks off this thread.
    unsafe { spawn_local_inner(how, future) }
}
