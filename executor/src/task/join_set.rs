//! [`JoinSet`]: many tasks, their results taken as they finish.
//!
//! Finding "which finished" must not poll every handle on each wake-up (a set of 10,000 idle
//! connections would cost 10,000 polls per completion). So each member is polled with a waker
//! of its own, which knows the member's slab key: the task's completion wakes it, and it puts
//! that key on a shared ready queue and wakes the set's owner. `join_next` polls only the keys
//! on the queue — O(1) per completion, plus one spurious poll per wake-up that is not a
//! completion (a budget yield).
//!
//! The handoff between the wakers (any thread) and the owner (one task) is `ReadyQueue`: a
//! mutex-guarded queue, a per-member `queued` flag so that a member is queued at most once
//! (swapped on both sides: the owner's swap to `false` reads the waker's `true`, so the poll
//! that follows sees what the waker's task published), and an `AtomicWaker` for the owner,
//! registered before the queue is looked at a second time. `loom_tests` checks it.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Wake, Waker};

use slab::Slab;

use super::{AbortHandle, Id, JoinError, JoinHandle};
use crate::loom::future::AtomicWaker;
use crate::loom::sync::atomic::{AtomicBool, Ordering};
use crate::loom::sync::{Arc, Mutex};
use crate::loom::Locked;
use crate::runtime::Handle;

/// The keys of members woken since the owner last looked, and the owner's waker.
struct ReadyQueue {
    keys: Mutex<VecDeque<usize>>,
    owner: AtomicWaker,
}

impl ReadyQueue {
    fn new() -> ReadyQueue {
        ReadyQueue {
            keys: Mutex::new(VecDeque::new()),
            owner: AtomicWaker::new(),
        }
    }

    /// A member's waker fired: queue its key (once until the owner takes it) and wake the
    /// owner.
    fn notify(&self, key: usize, queued: &AtomicBool) {
        if !queued.swap(true, Ordering::AcqRel) {
            self.keys.locked().push_back(key);
            self.owner.wake();
        }
    }

    /// Moves every queued key to the back of `into` (one lock for the lot).
    fn take_all(&self, into: &mut VecDeque<usize>) {
        let mut keys = self.keys.locked();
        if into.is_empty() {
            std::mem::swap(&mut *keys, into);
        } else {
            into.extend(keys.drain(..));
        }
    }
}

/// A member's own waker: its key and whether it is on the queue already.
struct MemberWaker {
    key: usize,
    queued: AtomicBool,
    ready: Arc<ReadyQueue>,
}

impl MemberWaker {
    fn notify(&self) {
        self.ready.notify(self.key, &self.queued);
    }
}

impl Wake for MemberWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.notify();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.notify();
    }
}

struct Member<T> {
    handle: JoinHandle<T>,
    waker: Waker,
    flag: std::sync::Arc<MemberWaker>,
}

/// A set of tasks whose results are taken in the order they finish.
///
/// [`spawn`](JoinSet::spawn) adds tasks (or [`spawn_on`](JoinSet::spawn_on),
/// [`spawn_local`](JoinSet::spawn_local), [`spawn_blocking`](JoinSet::spawn_blocking));
/// [`join_next`](JoinSet::join_next) waits for the next one to finish and removes it. A task
/// that panics or is aborted gives its [`JoinError`]. Dropping the set aborts every task still
/// in it (use [`detach_all`](JoinSet::detach_all) to let them run on).
///
/// Each finished task costs `join_next` one poll of its own handle, whatever the number of
/// tasks in the set.
pub struct JoinSet<T> {
    members: Slab<Member<T>>,
    ready: Arc<ReadyQueue>,
    /// Keys taken from the queue and not yet looked at (a result was found first).
    pending: VecDeque<usize>,
}

impl<T> JoinSet<T> {
    /// An empty set.
    pub fn new() -> JoinSet<T> {
        JoinSet {
            members: Slab::new(),
            ready: Arc::new(ReadyQueue::new()),
            pending: VecDeque::new(),
        }
    }

    /// How many tasks are in the set (running, or finished and not yet joined).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the set has no tasks.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Adds a task that was spawned elsewhere; its result is taken by this set from now on.
    fn insert(&mut self, handle: JoinHandle<T>) -> AbortHandle {
        let abort = handle.abort_handle();
        let entry = self.members.vacant_entry();
        let flag = std::sync::Arc::new(MemberWaker {
            key: entry.key(),
            queued: AtomicBool::new(false),
            ready: Arc::clone(&self.ready),
        });
        let waker = Waker::from(std::sync::Arc::clone(&flag));
        // Queued at once: the first `join_next` polls it, which registers its waker.
        flag.notify();
        entry.insert(Member {
            handle,
            waker,
            flag,
        });
        abort
    }

    /// Spawns a task on the current runtime into the set.
    ///
    /// # Panics
    /// Outside a runtime's context (see [`spawn`](super::spawn)).
    #[track_caller]
    pub fn spawn<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.insert(super::spawn(future))
    }

    /// Spawns a task on the runtime of `handle` into the set.
    pub fn spawn_on<F>(&mut self, future: F, handle: &Handle) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.insert(handle.spawn(future))
    }

    /// Spawns a `!Send` task on this thread into the set.
    ///
    /// # Panics
    /// As [`spawn_local`](super::spawn_local): unless this thread drives a current-thread
    /// runtime right now.
    #[track_caller]
    pub fn spawn_local<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
        T: 'static,
    {
        self.insert(super::spawn_local(future))
    }

    /// Runs a blocking closure on the current runtime's blocking pool, its result joined
    /// through the set.
    ///
    /// # Panics
    /// Outside a runtime's context.
    #[track_caller]
    pub fn spawn_blocking<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.insert(super::spawn_blocking(f))
    }

    /// Waits for the next task to finish and removes it from the set: `None` when the set is
    /// empty. Cancel-safe: dropping the future before it is ready loses no result.
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        std::future::poll_fn(|cx| self.poll_join_next(cx)).await
    }

    /// [`join_next`](JoinSet::join_next), with the finished task's id beside its output.
    pub async fn join_next_with_id(&mut self) -> Option<Result<(Id, T), JoinError>> {
        std::future::poll_fn(|cx| self.poll_join_next_with_id(cx)).await
    }

    /// The polling form of [`join_next`](JoinSet::join_next): `Ready(None)` when the set is
    /// empty, `Pending` (with `cx` woken later) while no task has finished.
    pub fn poll_join_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, JoinError>>> {
        self.poll_join_next_with_id(cx)
            .map(|r| r.map(|r| r.map(|(_, v)| v)))
    }

    /// The polling form of [`join_next_with_id`](JoinSet::join_next_with_id).
    pub fn poll_join_next_with_id(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Id, T), JoinError>>> {
        if self.members.is_empty() {
            return Poll::Ready(None);
        }
        if let Some(out) = self.take_finished() {
            return Poll::Ready(Some(out));
        }
        // Nothing yet: register, then look again (a member woken between the first look and
        // the registration is on the queue now).
        self.ready.owner.register(cx.waker());
        match self.take_finished() {
            Some(out) => Poll::Ready(Some(out)),
            None => Poll::Pending,
        }
    }

    /// Removes a task that has finished, without waiting: `None` if none has (or the set is
    /// empty).
    pub fn try_join_next(&mut self) -> Option<Result<T, JoinError>> {
        self.try_join_next_with_id().map(|r| r.map(|(_, v)| v))
    }

    /// [`try_join_next`](JoinSet::try_join_next), with the task's id beside its output.
    pub fn try_join_next_with_id(&mut self) -> Option<Result<(Id, T), JoinError>> {
        if self.members.is_empty() {
            return None;
        }
        self.take_finished()
    }

    /// Polls the members woken since the last look, each with its own waker, until one has
    /// finished; removes and returns it.
    fn take_finished(&mut self) -> Option<Result<(Id, T), JoinError>> {
        self.ready.take_all(&mut self.pending);
        while let Some(key) = self.pending.pop_front() {
            // A key can outlive its member (woken, then removed by an earlier result): skip.
            let Some(member) = self.members.get_mut(key) else {
                continue;
            };
            // Before the poll: a wake-up during or after it queues the member again.
            member.flag.queued.swap(false, Ordering::AcqRel);
            let mut cx = Context::from_waker(&member.waker);
            if let Poll::Ready(result) = Pin::new(&mut member.handle).poll(&mut cx) {
                let member = self.members.remove(key);
                let id = member.handle.id();
                return Some(result.map(|v| (id, v)));
            }
        }
        None
    }

    /// Aborts every task in the set. They stay in it: `join_next` gives their results (a
    /// cancelled [`JoinError`] for those that had not finished).
    pub fn abort_all(&mut self) {
        for (_, member) in &self.members {
            member.handle.abort();
        }
    }

    /// Empties the set without aborting anything: the tasks run on, detached.
    pub fn detach_all(&mut self) {
        // Dropping a JoinHandle detaches its task.
        self.members.clear();
        self.pending.clear();
    }

    /// Aborts every task and waits until all have finished (their futures dropped); the set is
    /// empty afterwards.
    pub async fn shutdown(&mut self) {
        self.abort_all();
        while self.join_next().await.is_some() {}
    }
}

impl<T> Drop for JoinSet<T> {
    fn drop(&mut self) {
        self.abort_all();
    }
}

impl<T> Default for JoinSet<T> {
    fn default() -> JoinSet<T> {
        JoinSet::new()
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSet").field("len", &self.len()).finish()
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::thread;

    /// A member completing on another thread (publish, then wake through its waker, maybe
    /// finding the member queued already) while the owner looks, registers and looks again:
    /// the owner always finds it, and sees what the member published.
    #[test]
    fn completion_against_owner_poll() {
        loom::model(|| {
            let ready = Arc::new(ReadyQueue::new());
            let member = Arc::new(MemberWaker {
                key: 3,
                queued: AtomicBool::new(false),
                ready: Arc::clone(&ready),
            });
            let done = Arc::new(AtomicBool::new(false));
            // The insert's queueing, taken by the first poll, which hands the member's waker to
            // the task (so the task can only wake it from here on).
            member.notify();
            let mut pending = VecDeque::new();
            ready.take_all(&mut pending);
            assert_eq!(pending.pop_front(), Some(3));
            member.queued.swap(false, Ordering::AcqRel);
            // A wake-up that is not the completion (a budget yield in the first poll) queues
            // the member again; the completion may then find it queued and not queue it.
            member.notify();
            let waker_thread = {
                let (member, done) = (Arc::clone(&member), Arc::clone(&done));
                thread::spawn(move || {
                    // The task's output, then the wake-up of its awaiter.
                    done.store(true, Ordering::Release);
                    member.notify();
                })
            };
            {
                // The owner's wait: look, register, look again, else park until woken.
                loom::future::block_on(std::future::poll_fn(|cx| {
                    ready.take_all(&mut pending);
                    if let Some(key) = pending.pop_front() {
                        member.queued.swap(false, Ordering::AcqRel);
                        if done.load(Ordering::Acquire) {
                            assert_eq!(key, 3);
                            return Poll::Ready(());
                        }
                    }
                    ready.owner.register(cx.waker());
                    ready.take_all(&mut pending);
                    if let Some(key) = pending.pop_front() {
                        member.queued.swap(false, Ordering::AcqRel);
                        if done.load(Ordering::Acquire) {
                            assert_eq!(key, 3);
                            return Poll::Ready(());
                        }
                    }
                    Poll::Pending
                }));
            }
            waker_thread.join().unwrap();
        });
    }
}
