//! The current-thread scheduler: one thread polls every task and waits on one kqueue.
//!
//! Tasks woken on the driving thread go to a plain `VecDeque` (no atomics); tasks woken
//! elsewhere go to a lock-free `SegQueue` and, if the driving thread is asleep in the kqueue,
//! one EVFILT_USER trigger wakes it (the `sleeping` flag makes that one trigger per sleep, however
//! many wake-ups arrive).
//!
//! The same core serves [`Runtime::block_on`](super::Runtime::block_on) and the embedding
//! [`LocalRuntime`](super::LocalRuntime), whose host loop calls `turn` instead.

use crate::loom::Locked;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{Thread, ThreadId};
use std::time::Duration;

use crossbeam_queue::SegQueue;
use knote_reactor::Kevent;

use super::blocking;
use super::context;
use super::gate::{self, Gate};
use super::sleep_flag::SleepFlag;
use super::thread_parker::ThreadWaker;
use super::{polls_before_look, Handle, Scheduler, EVENT_INTERVAL, REMOTE_INTERVAL};
use crate::driver::Driver;
use crate::task::{self, coop, registry::Registry, Runnable};

/// A current-thread runtime's shared state: everything the driving thread, handles and wakers
/// share.
pub(crate) struct CurrentThread {
    pub(crate) driver: Arc<Driver>,
    remote: SegQueue<Runnable>,
    /// The driving thread is (about to be) asleep in the kqueue, or — for an embedded runtime —
    /// outside `turn`: a remote wake-up must trigger the kqueue.
    sleeping: SleepFlag,
    /// The core, while no thread drives it.
    core: Mutex<Option<Box<Core>>>,
    /// Threads in `block_on` waiting for the core.
    core_waiters: Mutex<Vec<Thread>>,
    pub(crate) registry: Registry,
    pub(crate) blocking: Arc<blocking::BlockingPool>,
    gate: Gate,
    /// The thread that spawned `spawn_local` tasks, if any did.
    local_owner: Mutex<Option<ThreadId>>,
}

/// What only the driving thread touches.
pub(crate) struct Core {
    shared: *const CurrentThread,
    queue: RefCell<VecDeque<Runnable>>,
    events: RefCell<Vec<Kevent>>,
    tick: Cell<u32>,
    /// Polls since the kqueue was last looked at (by a wait or by `count_poll`'s look).
    unpolled: Cell<u32>,
    /// Polls after which `count_poll` looks (`polls_before_look` of the last look's events).
    look_after: Cell<u32>,
}

// SAFETY: a `Core` is used by one thread at a time: the one that took it out of
// `CurrentThread::core` (or the `LocalRuntime` that owns it, which is `!Send`). The raw `shared`
// pointer is only compared, never dereferenced; the runnables it queues are `Send` except for
// local tasks, which are only ever run on their own thread (see `task::cancel`).
unsafe impl Send for Core {}

thread_local! {
    /// The core this thread is driving right now.
    static CORE: Cell<*const Core> = const { Cell::new(std::ptr::null()) };
}

struct CoreGuard {
    prev: *const Core,
}

impl Drop for CoreGuard {
    fn drop(&mut self) {
        let prev = self.prev;
        let _ = CORE.try_with(|c| c.set(prev));
    }
}

fn set_core(core: &Core) -> CoreGuard {
    CoreGuard {
        prev: CORE.with(|c| c.replace(core)),
    }
}

/// The schedule function of current-thread tasks.
pub(crate) fn schedule(runnable: Runnable) {
    let Scheduler::Current(shared) = &runnable.metadata().sched else {
        unreachable!("a current-thread task")
    };
    let target = Arc::as_ptr(shared);
    let runnable = match CORE.try_with(|c| c.get()) {
        Ok(core) if !core.is_null() => {
            // SAFETY: `CORE` points at a live core while its guard (on this thread's stack,
            // in the frame that drives it) lives; we are inside that frame.
            let core = unsafe { &*core };
            if core.shared == target {
                core.queue.borrow_mut().push_back(runnable);
                return;
            }
            runnable
        }
        _ => runnable,
    };
    let Scheduler::Current(shared) = &runnable.metadata().sched else {
        unreachable!()
    };
    let shared = Arc::clone(shared);
    shared.push_remote(runnable);
}

impl CurrentThread {
    pub(crate) fn new(
        blocking: Arc<blocking::BlockingPool>,
        event_capacity: usize,
    ) -> io::Result<Arc<CurrentThread>> {
        let driver = Arc::new(Driver::new()?);
        Ok(Arc::new_cyclic(|weak: &std::sync::Weak<CurrentThread>| {
            let core = Box::new(Core {
                shared: weak.as_ptr(),
                queue: RefCell::new(VecDeque::with_capacity(256)),
                events: RefCell::new(vec![Kevent::zeroed(); event_capacity.max(1)]),
                tick: Cell::new(0),
                unpolled: Cell::new(0),
                look_after: Cell::new(EVENT_INTERVAL),
            });
            CurrentThread {
                driver,
                remote: SegQueue::new(),
                sleeping: SleepFlag::new(false),
                core: Mutex::new(Some(core)),
                core_waiters: Mutex::new(Vec::new()),
                registry: Registry::new(1),
                blocking,
                gate: Gate::new(),
                local_owner: Mutex::new(None),
            }
        }))
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.gate.is_closed()
    }

    fn push_remote(&self, runnable: Runnable) {
        super::push_remote(&self.gate, &self.remote, runnable, || self.wake_sleeper());
    }

    /// Wakes the driving thread if it sleeps (one trigger per sleep).
    fn wake_sleeper(&self) {
        if self.sleeping.take() {
            self.driver.wake();
        }
    }

    pub(crate) fn take_core(&self) -> Option<Box<Core>> {
        self.core.locked().take()
    }

    pub(crate) fn put_core(&self, core: Box<Core>) {
        *self.core.locked() = Some(core);
        let waiters = std::mem::take(&mut *self.core_waiters.locked());
        for t in waiters {
            t.unpark();
        }
    }

    /// From now on the host's loop, not this crate, waits on the kqueue: every remote wake-up
    /// outside `turn` must trigger it.
    pub(crate) fn set_embedded(&self) {
        self.sleeping.raise();
    }

    /// Records that this thread spawns local tasks; refuses if another thread already did.
    pub(crate) fn claim_local(&self) {
        let me = std::thread::current().id();
        let mut owner = self.local_owner.locked();
        match *owner {
            None => *owner = Some(me),
            Some(t) if t == me => {}
            Some(_) => {
                panic!("knote: spawn_local tasks of a runtime must all come from one thread")
            }
        }
    }

    fn check_local_owner(&self) {
        let owner = *self.local_owner.locked();
        if let Some(t) = owner {
            assert!(
                t == std::thread::current().id(),
                "knote: this runtime has spawn_local tasks; drive it from the thread that spawned them"
            );
        }
    }

    /// The next task to run: the local queue first, except every `REMOTE_INTERVAL` ticks, when
    /// the remote queue goes first so that wake-ups from other threads cannot be starved.
    fn next_task(&self, core: &Core) -> Option<Runnable> {
        let tick = core.tick.get();
        if tick % REMOTE_INTERVAL == 0 {
            if let Some(r) = self.remote.pop() {
                return Some(r);
            }
        }
        let local = core.queue.borrow_mut().pop_front();
        local.or_else(|| self.remote.pop())
    }

    /// Runs one task if one is ready. After `EVENT_INTERVAL` polls without a look at the kqueue
    /// it is polled without waiting, so that I/O and timers are never starved by a full run
    /// queue.
    fn run_one(&self, core: &Core) -> bool {
        let Some(runnable) = self.next_task(core) else {
            return false;
        };
        runnable.run();
        self.count_poll(core);
        true
    }

    /// Counts one poll (a task's, or the `block_on` future's) and looks at the kqueue without
    /// waiting once `EVENT_INTERVAL` of them ran beyond the batch the last look queued
    /// ([`polls_before_look`]), so that events and due timers are seen even when polls never
    /// run out (tasks, or a `block_on` future, that keep waking themselves). Counting from the
    /// last look, not in absolute ticks, is tokio's rule too: a run queue that empties before
    /// then goes to its wait, which looks anyway, and pays no extra look on the way.
    fn count_poll(&self, core: &Core) {
        core.tick.set(core.tick.get().wrapping_add(1));
        let unpolled = core.unpolled.get() + 1;
        if unpolled < core.look_after.get() {
            core.unpolled.set(unpolled);
            return;
        }
        core.unpolled.set(0);
        if self.driver.has_registrations() {
            if let Err(e) = self.poll_driver(core, Some(Duration::ZERO)) {
                panic!("knote: a runtime thread could not poll its kqueue: {e}");
            }
        }
    }

    fn poll_driver(&self, core: &Core, timeout: Option<Duration>) -> io::Result<usize> {
        self.turn_driver(core, timeout, &|| ())
    }

    /// Turns the driver, calling `returned` as soon as the wait returns (see
    /// [`Driver::turn_then`]).
    fn turn_driver(
        &self,
        core: &Core,
        timeout: Option<Duration>,
        returned: &dyn Fn(),
    ) -> io::Result<usize> {
        core.unpolled.set(0);
        // The event list is borrowed for the wait only; wakers push to `queue`, not here.
        let mut events = core.events.borrow_mut();
        let n = self
            .driver
            .turn_then(&mut events, timeout, returned)?
            .events;
        core.look_after.set(polls_before_look(n));
        Ok(n)
    }

    /// Sleeps in the kqueue until an event, a remote wake-up or `timeout`; `more` says whether
    /// something this thread can see is already waiting (then it does not sleep).
    fn sleep_in_kqueue(
        &self,
        core: &Core,
        timeout: Option<Duration>,
        more: impl Fn() -> bool,
    ) -> io::Result<usize> {
        self.sleeping.raise();
        if !self.remote.is_empty() || more() {
            self.sleeping.lower();
            return self.poll_driver(core, Some(Duration::ZERO));
        }
        // `sleeping` goes down as soon as the wait returns: the wake-ups its events cause run
        // on this thread, which is awake by then, and a `block_on` future's waker among them
        // must not trigger the kqueue (an EVFILT_USER trigger, and the wait and eventfd read
        // that collect it, per wake-up). A remote waker that finds the flag down from there
        // on is seen by the look at the queues (and at `woken`) before the next sleep.
        self.turn_driver(core, timeout, &|| self.sleeping.lower())
    }

    /// Drives `core` until `fut` completes.
    fn drive<F: Future>(self: &Arc<Self>, core: &Core, fut: Pin<&mut F>) -> F::Output {
        struct MainWaker {
            woken: AtomicBool,
            shared: Arc<CurrentThread>,
        }
        impl Wake for MainWaker {
            fn wake(self: Arc<Self>) {
                self.wake_by_ref();
            }
            fn wake_by_ref(self: &Arc<Self>) {
                // One read-modify-write on the common path (woken by a task on the driving
                // thread, which is not sleeping): the swap orders the flag before the load of
                // `sleeping` (the sleeper stores `sleeping`, then loads `woken`), and
                // `wake_sleeper`'s swap runs only when the thread really sleeps.
                if !self.woken.swap(true, Ordering::SeqCst) && self.shared.sleeping.is_up() {
                    self.shared.wake_sleeper();
                }
            }
        }
        let _core = set_core(core);
        let _driving = context::set_driving(&self.driver);
        let main = Arc::new(MainWaker {
            woken: AtomicBool::new(true),
            shared: Arc::clone(self),
        });
        let waker = Waker::from(Arc::clone(&main));
        let mut cx = Context::from_waker(&waker);
        let mut fut = fut;
        loop {
            if main.woken.load(Ordering::Relaxed) && main.woken.swap(false, Ordering::AcqRel) {
                if let Poll::Ready(v) = coop::budgeted(|| fut.as_mut().poll(&mut cx)) {
                    return v;
                }
                self.count_poll(core);
            }
            if self.run_one(core) {
                continue;
            }
            if main.woken.load(Ordering::SeqCst) {
                continue;
            }
            if let Err(e) = self.sleep_in_kqueue(core, None, || main.woken.load(Ordering::SeqCst)) {
                // Retrying would spin on the failure: report it.
                panic!("knote: a runtime thread could not wait on its kqueue: {e}");
            }
        }
    }

    /// `Runtime::block_on` for a current-thread runtime.
    pub(crate) fn block_on<F: Future>(self: &Arc<Self>, fut: F) -> F::Output {
        self.check_local_owner();
        let mut fut = pin!(fut);
        let parker = ThreadWaker::new();
        let waker = Waker::from(Arc::clone(&parker));
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Some(core) = self.take_core() {
                struct PutBack<'a>(&'a CurrentThread, Option<Box<Core>>);
                impl Drop for PutBack<'_> {
                    fn drop(&mut self) {
                        if let Some(core) = self.1.take() {
                            self.0.put_core(core);
                        }
                    }
                }
                let guard = PutBack(self, Some(core));
                let core: &Core = guard.1.as_deref().expect("just put there");
                return self.drive(core, fut.as_mut());
            }
            // Another thread drives the runtime: poll our future here, and take over the core
            // when it is put back.
            if parker.take() {
                if let Poll::Ready(v) = coop::budgeted(|| fut.as_mut().poll(&mut cx)) {
                    return v;
                }
            }
            {
                let mut waiters = self.core_waiters.locked();
                let me = std::thread::current();
                if !waiters.iter().any(|t| t.id() == me.id()) {
                    waiters.push(me);
                }
            }
            if self.core.locked().is_none() {
                std::thread::park();
            }
        }
    }

    /// `LocalRuntime::block_on`: drives a core the caller owns.
    pub(crate) fn drive_owned<F: Future>(self: &Arc<Self>, core: &Core, fut: F) -> F::Output {
        let fut = pin!(fut);
        let out = self.drive(core, fut);
        // The host waits on the kqueue's fd next: the timer knote must be armed for the
        // earliest deadline.
        self.driver.flush();
        // Back to "outside turn": remote wake-ups must trigger the kqueue for the host.
        self.sleeping.raise();
        out
    }

    /// One turn for an embedding host: run what is ready (a bounded batch), or, if nothing is,
    /// wait up to `timeout` for the kqueue and run what that woke. Returns whether tasks are
    /// still ready (the host should turn again before blocking).
    pub(crate) fn turn(
        self: &Arc<Self>,
        core: &Core,
        timeout: Option<Duration>,
    ) -> io::Result<bool> {
        let _core = set_core(core);
        let _driving = context::set_driving(&self.driver);
        self.sleeping.lower();
        let mut ran = 0;
        while ran < EVENT_INTERVAL && self.run_one(core) {
            ran += 1;
        }
        let result = if ran == 0 {
            let r = self.sleep_in_kqueue(core, timeout, || false);
            while ran < EVENT_INTERVAL && self.run_one(core) {
                ran += 1;
            }
            r.map(|_| ())
        } else {
            self.poll_driver(core, Some(Duration::ZERO)).map(|_| ())
        };
        // The host is about to wait on the kqueue's fd: the timer knote must be armed for the
        // earliest deadline (a timer armed after our wait included), or nothing would wake it.
        self.driver.flush();
        // Outside `turn` the host waits on the kqueue's fd: remote wake-ups must trigger it.
        self.sleeping.raise();
        result?;
        Ok(!core.queue.borrow().is_empty() || !self.remote.is_empty())
    }

    /// Cancels every task: queued ones are run once with their abort flag set (which drops
    /// their futures), idle ones are woken first so that they get queued. Local tasks seen off
    /// their thread are leaked (see `task::cancel`).
    pub(crate) fn shutdown(self: &Arc<Self>, handle: &Handle, core: Option<&Core>) {
        self.gate.close();
        let _enter = context::enter(handle.clone());
        let taken = if core.is_none() {
            self.take_core()
        } else {
            None
        };
        let core = core.or(taken.as_deref());
        let _core = core.map(set_core);
        let _driving = context::set_driving(&self.driver);
        // Wake-ups from here (the registry's, and those of the destructors of the tasks
        // cancelled here) queue their tasks, which this loop cancels: iteratively, however
        // long a chain of tasks that wake each other on drop.
        self.registry.cancel_all(|| {
            let mut any = false;
            loop {
                let next = core.and_then(|core| core.queue.borrow_mut().pop_front());
                match next.or_else(|| self.remote.pop()) {
                    Some(r) => {
                        any = true;
                        task::cancel(r);
                    }
                    None => return any,
                }
            }
        });
        self.gate.finish();
        // A wake-up that saw the runtime closing may have queued its task after the last pass.
        gate::drain(&self.gate, &self.remote, task::cancel);
        drop(_core);
        if let Some(core) = taken {
            self.put_core(core);
        }
    }
}

/// Whether this thread is driving `shared` right now (inside its `block_on` or `turn`).
pub(crate) fn is_driving(shared: &Arc<CurrentThread>) -> bool {
    CORE.try_with(|c| {
        let core = c.get();
        // SAFETY: see `schedule`.
        !core.is_null() && unsafe { (*core).shared } == Arc::as_ptr(shared)
    })
    .unwrap_or(false)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::io::AsyncFd;
    use crate::runtime::Builder;
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::AtomicUsize;

    /// Polls since the kqueue was last looked at, on the core this thread drives.
    fn polls_since_look() -> u32 {
        let core = CORE.with(Cell::get);
        assert!(!core.is_null(), "called inside block_on");
        // SAFETY: `CORE` names the core this thread drives, for as long as it drives it.
        unsafe { (*core).unpolled.get() }
    }

    /// A batch of events more than `EVENT_INTERVAL` long runs whole before the kqueue is looked
    /// at again: the tasks a look in the middle would find go behind the batch's anyway.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_batch_runs_whole_before_the_next_look() {
        const TASKS: usize = 2 * EVENT_INTERVAL as usize;
        let rt = Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let waiting = Arc::new(AtomicUsize::new(0));
            let left = Arc::new(AtomicUsize::new(TASKS));
            let done = Arc::new(crate::sync::Notify::new());
            let mut peers = Vec::new();
            for _ in 0..TASKS {
                let (a, b) = UnixStream::pair().unwrap();
                a.set_nonblocking(true).unwrap();
                peers.push(b);
                let (waiting, left, done) =
                    (Arc::clone(&waiting), Arc::clone(&left), Arc::clone(&done));
                crate::spawn(async move {
                    let fd = AsyncFd::new(a).unwrap();
                    waiting.fetch_add(1, Ordering::SeqCst);
                    let _ready = fd.readable().await.unwrap();
                    if left.fetch_sub(1, Ordering::SeqCst) == 1 {
                        done.notify_one();
                    }
                });
            }
            // Every task registers and waits.
            while waiting.load(Ordering::SeqCst) < TASKS {
                crate::task::yield_now().await;
            }
            for peer in &mut peers {
                peer.write_all(b"x").unwrap();
            }
            // One wait harvests all the events; their tasks run, then this future.
            done.notified().await;
            assert_eq!(left.load(Ordering::SeqCst), 0);
            let polls = polls_since_look();
            assert!(
                polls >= TASKS as u32,
                "the kqueue was looked at {polls} polls ago, in the middle of the batch"
            );
        });
    }
}
