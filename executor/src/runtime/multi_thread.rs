//! The multi-thread scheduler: N workers, each with its own run queue, stealing from each
//! other when idle, and one *home* kqueue that every registration of the runtime goes to.
//!
//! Why one home kqueue, waited on by whichever worker is idle: a busy server's events then
//! reach an idle worker straight from the kernel, as they arrive, while the others run tasks;
//! no worker has to collect a batch and then wake another to share it (each such wake-up is a
//! system call, and on most machines an inter-processor interrupt). At most one worker waits
//! in the home at a time (`home_seat`); the others sleep in their own kqueue, which holds
//! nothing but the EVFILT_USER trigger that wakes that worker. A worker going to sleep takes
//! the home if it is free. So while any worker sleeps, one of them collects the runtime's I/O
//! and timers; waking a particular sleeper is one trigger aimed at the kqueue it sleeps in
//! (its `SleepSpot` says which).
//!
//! Busy workers look at the home, without waiting, every `EVENT_INTERVAL` tasks (beyond the
//! batch their last look queued: `polls_before_look`): events that come while every worker is
//! busy wait no longer than that. A trigger such a look collects was meant for the home's
//! sleeper, and is passed on.
//!
//! A worker stuck in a long poll holds nothing hostage, as long as some other worker is
//! attending the home; the one that leaves the home to run tasks might get stuck, so it makes
//! sure a sleeping worker has an *alarm* armed, which brings it to the home within
//! `STUCK_CHECK` if the home is still unattended then (`attend.rs`).
//!
//! Run order inside a worker: the injection queue every `remote_interval` tasks (tuned to
//! about 200 µs of task time, so slow tasks cannot hold remote spawns back); the LIFO slot (a
//! task woken or spawned by the running task runs next, cache-warm, at most `MAX_LIFO_POLLS`
//! times in a row); the local queue; the injection
//! queue; tasks that yielded (deferred until nothing else is queued, as tokio does, so a
//! yielding loop cannot hold back remote spawns; before stealing, so that workers do not trade
//! each other's yielded tasks); other workers' queues; then sleep.
//!
//! Idle protocol: see `idle.rs` (at most one worker woken per burst of work). Wake-ups are
//! coalesced per sleep by each worker's `SleepFlag`.

use crate::loom::Locked;
use std::cell::{Cell, RefCell};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_queue::{ArrayQueue, SegQueue};
use knote_reactor::Kevent;

use super::attend::{self, Alarm, HomeSeat, STUCK_CHECK};
use super::blocking;
use super::context;
use super::gate::{self, Gate};
use super::idle::Idle;
use super::sleep_flag::SleepSpot;
use super::{Handle, Scheduler, EVENT_INTERVAL, REMOTE_INTERVAL};
use crate::driver::Driver;
use crate::task::{self, registry::Registry, Runnable, Woken};

/// Local run queue capacity (tokio's figure); overflow goes to the shared injection queue.
const LOCAL_QUEUE: usize = 256;

struct Worker {
    /// Its own kqueue: where it sleeps when another worker has the home, woken by its
    /// EVFILT_USER trigger (no registration goes there).
    driver: Arc<Driver>,
    queue: ArrayQueue<Runnable>,
    /// Asleep (or about to sleep), in the home or in its own kqueue: a wake-up must trigger
    /// that kqueue.
    sleeping: SleepSpot,
    /// How many times it has looked at a kqueue (waits included).
    turns: AtomicU64,
    /// Its alarm, armed in its own kqueue while it sleeps there and the home is unattended
    /// (`attend.rs`).
    alarm: Alarm,
}

/// A multi-thread runtime's shared state: everything the workers, handles and wakers share.
pub(crate) struct MultiThread {
    workers: Box<[Worker]>,
    /// The home kqueue: every registration (I/O, timers, signals, processes) of the runtime.
    home: Arc<Driver>,
    /// A worker sleeps in the home (or is about to): the others sleep in their own kqueue.
    home_seat: HomeSeat,
    /// Some I/O or timer has been registered in the home (set once, never cleared): until
    /// then no event can wait for a stuck worker, and no alarm is needed.
    has_had_io: AtomicBool,
    inject: SegQueue<Runnable>,
    idle: Idle,
    pub(crate) registry: Registry,
    pub(crate) blocking: Arc<blocking::BlockingPool>,
    gate: Gate,
    event_capacity: usize,
    /// Workers still running (for `shutdown_timeout`).
    running: Mutex<usize>,
    all_stopped: std::sync::Condvar,
    /// The worker threads, joined by a shutdown that saw them all stop: a worker drops its last
    /// references to the runtime (and with them, maybe, every kqueue's descriptors) after it
    /// says it stopped, and a shutdown that returned must have closed them.
    threads: Mutex<Vec<thread::JoinHandle<()>>>,
}

/// What only the worker's own thread touches: the LIFO slot and the yielded tasks.
struct Local {
    shared: *const MultiThread,
    index: usize,
    /// The task woken (or spawned) last by the running task: run next, on a warm cache, unless
    /// it keeps displacing the queue (see `MAX_LIFO_POLLS`). Not stealable.
    lifo: Cell<Option<Runnable>>,
    /// Tasks that yielded (`yield_now`, a spent budget): they wait until the queues
    /// hold nothing else, or the next kqueue poll, so that a yielding loop defers to every
    /// other task, remote spawns included (tokio defers them the same way).
    deferred: RefCell<Vec<Runnable>>,
    /// A task is being polled: its wake-ups go to the LIFO slot. Wake-ups from the kqueue's
    /// events go to the queue, in event order (timers due together run in deadline order).
    polling: Cell<bool>,
}

/// Consecutive polls from the LIFO slot before the queue gets a turn (tokio's figure): two
/// tasks waking each other would otherwise starve everything else on the worker.
const MAX_LIFO_POLLS: u32 = 3;

thread_local! {
    /// The worker this thread runs, while it runs it.
    static WORKER: Cell<*const Local> = const { Cell::new(std::ptr::null()) };
}

/// This thread's worker state, if it is a worker of `shared`.
fn current_local<'a>(shared: *const MultiThread) -> Option<&'a Local> {
    let local = WORKER.try_with(|w| w.get()).ok()?;
    if local.is_null() {
        return None;
    }
    // SAFETY: `WORKER` points at the `Local` on the stack frame of `run_worker`, set and reset
    // by that frame's guard; this thread is inside that frame whenever it is non-null.
    let local = unsafe { &*local };
    (local.shared == shared).then_some(local)
}

fn current_worker(shared: *const MultiThread) -> Option<usize> {
    current_local(shared).map(|l| l.index)
}

/// The schedule function of multi-thread tasks.
pub(crate) fn schedule(runnable: Runnable, woken: Woken) {
    let Scheduler::Multi(shared) = &runnable.metadata().sched else {
        unreachable!("a multi-thread task")
    };
    let target = Arc::as_ptr(shared);
    if let Some(local) = current_local(target) {
        // SAFETY: the worker's frame holds an `Arc<MultiThread>` for as long as `WORKER` names it.
        let shared = unsafe { &*target };
        match woken {
            Woken::Yielded => {
                local.deferred.borrow_mut().push(runnable);
                return;
            }
            // Woken while it ran: the back of the queue, where other workers can steal it
            // (the LIFO slot would let a task that keeps waking itself displace the queue).
            Woken::WhileRunning => {
                shared.push_local(local.index, runnable);
                return;
            }
            Woken::Idle => {}
        }
        if !local.polling.get() {
            // Woken by the events of this worker's turn of the home: queued without a
            // notification each; the worker notifies once after its turn if it has more than
            // it can run next (`notify_if_queued`), instead of one wake-up attempt per event.
            let queue = &shared.workers[local.index].queue;
            if let Err(r) = queue.push(runnable) {
                shared.inject.push(r);
            }
        } else if let Some(previous) = local.lifo.replace(Some(runnable)) {
            shared.push_local(local.index, previous);
        }
        return;
    }
    let shared = Arc::clone(shared);
    shared.push_remote(runnable);
}

impl MultiThread {
    pub(crate) fn new(
        workers: usize,
        blocking: Arc<blocking::BlockingPool>,
        event_capacity: usize,
    ) -> io::Result<Arc<MultiThread>> {
        let workers = (0..workers.max(1))
            .map(|_| {
                Ok(Worker {
                    driver: Arc::new(Driver::new()?),
                    queue: ArrayQueue::new(LOCAL_QUEUE),
                    sleeping: SleepSpot::new(),
                    turns: AtomicU64::new(0),
                    alarm: Alarm::new(),
                })
            })
            .collect::<io::Result<Box<[Worker]>>>()?;
        let n = workers.len();
        Ok(Arc::new(MultiThread {
            workers,
            home: Arc::new(Driver::new()?),
            home_seat: HomeSeat::new(),
            has_had_io: AtomicBool::new(false),
            inject: SegQueue::new(),
            idle: Idle::new(n),
            // Several shards per worker: completions on every worker and spawns from any
            // thread spread over them.
            registry: Registry::new(4 * n),
            blocking,
            gate: Gate::new(),
            event_capacity: event_capacity.max(1),
            running: Mutex::new(0),
            all_stopped: std::sync::Condvar::new(),
            threads: Mutex::new(Vec::with_capacity(n)),
        }))
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.gate.is_closed()
    }

    /// Whether this thread is one of the workers.
    pub(crate) fn is_worker_thread(&self) -> bool {
        current_worker(self).is_some()
    }

    pub(crate) fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// The driver new registrations go to: the home, from any thread.
    pub(crate) fn driver(self: &Arc<Self>) -> Arc<Driver> {
        if !self.has_had_io.load(Ordering::Relaxed) {
            // The first registration: from now on a worker about to run tasks makes sure the
            // home is attended; one that is running tasks already did not, so look now (the
            // flag first, then the look, against the worker's look at the flag).
            self.has_had_io.store(true, Ordering::SeqCst);
            self.ensure_attended();
        }
        Arc::clone(&self.home)
    }

    /// Pushes to a worker's own queue (the injection queue if full) and, if that leaves work
    /// to steal, lets a sleeper come for it.
    fn push_local(&self, index: usize, runnable: Runnable) {
        let queue = &self.workers[index].queue;
        if let Err(r) = queue.push(runnable) {
            self.inject.push(r);
        }
        self.notify_one();
    }

    fn push_remote(&self, runnable: Runnable) {
        super::push_remote(&self.gate, &self.inject, runnable, || self.notify_one());
    }

    /// Wakes one sleeping worker, unless one is already searching for work.
    fn notify_one(&self) {
        // One that sleeps in its own kqueue, if there is one: the home stays attended.
        let in_own = |i: usize| !self.workers[i].sleeping.in_home();
        if let Some(index) = self.idle.to_notify(in_own) {
            self.wake_sleeper(index);
        }
    }

    /// Triggers the kqueue worker `index` sleeps in, if it sleeps and nobody has yet.
    fn wake_sleeper(&self, index: usize) {
        let worker = &self.workers[index];
        match worker.sleeping.take() {
            Some(true) => self.home.wake(),
            Some(false) => worker.driver.wake(),
            None => {}
        }
    }

    /// A searching worker found work; if it was the last one searching, another sleeper gets
    /// a chance to look for more.
    fn stop_searching(&self) {
        if self.idle.stop_searching() {
            self.notify_one();
        }
    }

    fn has_work(&self) -> bool {
        !self.inject.is_empty() || self.workers.iter().any(|w| !w.queue.is_empty())
    }

    fn next_task(
        &self,
        local: &Local,
        tick: u32,
        remote_interval: u32,
        lifo_polls: &mut u32,
    ) -> Option<Runnable> {
        // Remote work first every `remote_interval` ticks, whatever the LIFO slot holds: one
        // task to run now and this worker's share of the rest into its queue, so a backlog of
        // remote spawns behind long-running local work drains in proportion to the workers.
        if tick % remote_interval == 0 {
            if let Some(r) = self.inject.pop() {
                let share = (self.inject.len() / self.workers.len()).min(LOCAL_QUEUE / 8);
                let queue = &self.workers[local.index].queue;
                for _ in 0..share {
                    let Some(more) = self.inject.pop() else {
                        break;
                    };
                    if let Err(more) = queue.push(more) {
                        self.inject.push(more);
                        break;
                    }
                }
                return Some(r);
            }
        }
        if *lifo_polls < MAX_LIFO_POLLS {
            if let Some(r) = local.lifo.take() {
                *lifo_polls += 1;
                return Some(r);
            }
        } else if let Some(r) = local.lifo.take() {
            // The slot had its share: its task queues like any other.
            self.push_local(local.index, r);
        }
        *lifo_polls = 0;
        let queue = &self.workers[local.index].queue;
        queue.pop().or_else(|| self.inject.pop())
    }

    /// After a turn of a kqueue on worker `index`: if the events queued more than one task,
    /// a sleeper may come for the rest.
    fn notify_if_queued(&self, index: usize) {
        if self.workers[index].queue.len() > 1 {
            self.notify_one();
        }
    }

    /// Puts the yielded tasks back in the queue; whether there were any.
    fn wake_deferred(&self, local: &Local) -> bool {
        // Drained in place (no task code runs here), keeping the list's allocation.
        let mut deferred = local.deferred.borrow_mut();
        if deferred.is_empty() {
            return false;
        }
        let queue = &self.workers[local.index].queue;
        for r in deferred.drain(..) {
            if let Err(r) = queue.push(r) {
                self.inject.push(r);
            }
        }
        drop(deferred);
        if queue.len() > 1 {
            self.notify_one();
        }
        true
    }

    /// Takes one task from another worker (and up to half of the rest of its queue).
    fn steal(&self, index: usize, seed: &mut u32) -> Option<Runnable> {
        let n = self.workers.len();
        *seed ^= *seed << 13;
        *seed ^= *seed >> 17;
        *seed ^= *seed << 5;
        let start = *seed as usize % n;
        let own = &self.workers[index].queue;
        for i in 0..n {
            let victim = (start + i) % n;
            if victim == index {
                continue;
            }
            let queue = &self.workers[victim].queue;
            let Some(first) = queue.pop() else {
                continue;
            };
            for _ in 0..queue.len() / 2 {
                let Some(r) = queue.pop() else {
                    break;
                };
                if let Err(r) = own.push(r) {
                    self.inject.push(r);
                    break;
                }
            }
            return Some(first);
        }
        self.inject.pop()
    }

    /// Looks at the home without waiting (a busy worker's periodic look); how many events it
    /// handled. A trigger it collects was meant for the worker that sleeps there, and is passed
    /// on, if one still does: its wait woke for the trigger, found it gone, and waits on. (If
    /// the home is free, the trigger's worker has woken since, and a trigger passed on would
    /// only be collected by the next look, and passed on again.)
    fn look_at_home(&self, index: usize, events: &mut [Kevent]) -> usize {
        if !self.home.has_registrations() {
            return 0;
        }
        let turn = super::turn_or_panic(&self.home, events, Some(Duration::ZERO));
        if turn.woken && self.home_seat.is_taken() {
            self.home.wake();
        }
        self.workers[index].turns.fetch_add(1, Ordering::Relaxed);
        self.notify_if_queued(index);
        turn.events
    }

    /// A worker, awake since its last sleep (its sleep flag lowered) with I/O in the home, is
    /// about to run a task, or the home is getting its first registration: if nobody waits in
    /// the home, a sleeper's alarm is armed (`attend.rs`).
    fn ensure_attended(&self) {
        let sleepers = self
            .workers
            .iter()
            .enumerate()
            .map(|(i, w)| (i, &w.alarm, w.sleeping.is_up()));
        let Some(index) = attend::needs_alarm(&self.home_seat, sleepers) else {
            return;
        };
        let worker = &self.workers[index];
        if worker.driver.alarm(STUCK_CHECK).is_err() {
            // The timer could not be set (the kernel is short of memory for it): wake the
            // sleeper instead, which goes back to sleep in the home if it is still free. The
            // guard costs a wake-up then, but holds.
            worker.alarm.clear();
            self.wake_sleeper(index);
        }
    }

    /// Sleeps, in the home if no other worker has it, else in this worker's own kqueue, unless
    /// there is work; whether the worker is searching when it wakes (a notifier woke it for
    /// work, see `idle.rs`), and how many events the wait handled (`None`: it found work and
    /// did not wait).
    fn sleep_in_kqueue(
        &self,
        index: usize,
        events: &mut [Kevent],
        searching: bool,
    ) -> (bool, Option<usize>) {
        let worker = &self.workers[index];
        // `sleeping` first: a notifier that takes us off the sleeper list after this point
        // will trigger the kqueue we sleep in (and a worker leaving the home will see us
        // asleep: `attend.rs`).
        let on_home = self.home_seat.settle(
            |in_home| worker.sleeping.raise(in_home),
            || worker.sleeping.lower(),
        );
        self.idle.sleep(index, searching);
        let mut found = None;
        // Work pushed before we were counted as sleeping would have found no one to wake.
        if !(self.has_work() || self.is_closed()) {
            let driver = if on_home { &self.home } else { &worker.driver };
            let turn = super::turn_or_panic(driver, events, None);
            if turn.alarm {
                // Awake for the alarm: back to sleep, in the home if it is still free.
                worker.alarm.clear();
            }
            found = Some(turn.events);
        }
        worker.sleeping.lower();
        if on_home {
            // Left for the next worker to sleep: another look at the flag is not needed, a
            // trigger that comes late is collected by the home's next waiter (a wait that
            // returns at once) and passed on by a look.
            self.home_seat.leave();
        }
        // Woken by our own events (or never slept): take ourselves off the sleeper list, not
        // searching. If a notifier already did, it counted us as searching.
        let searching = self.idle.wake_up(index);
        if !searching {
            self.notify_if_queued(index);
        }
        (searching, found)
    }

    fn run_worker(self: &Arc<Self>, index: usize, handle: &Handle) {
        let _enter = context::enter(handle.clone());
        let worker = &self.workers[index];
        let _driving = context::set_driving(&self.home);
        let local = Local {
            shared: Arc::as_ptr(self),
            index,
            lifo: Cell::new(None),
            deferred: RefCell::new(Vec::new()),
            polling: Cell::new(false),
        };
        struct WorkerGuard(*const Local);
        impl Drop for WorkerGuard {
            fn drop(&mut self) {
                let prev = self.0;
                let _ = WORKER.try_with(|w| w.set(prev));
            }
        }
        let guard = WorkerGuard(WORKER.with(|w| w.replace(&local)));
        let mut events = vec![Kevent::zeroed(); self.event_capacity];
        let mut tick: u32 = 0;
        // Tasks run since this worker last looked at the home, and how many it runs before
        // it looks again without waiting (`polls_before_look`).
        let (mut unpolled, mut look_after) = (0, EVENT_INTERVAL);
        let mut lifo_polls = 0;
        let mut remote_interval = REMOTE_INTERVAL;
        let mut batch_start = Instant::now();
        let mut searching = false;
        // Has slept since it last ran a task (then it checks the home is attended before the next).
        let mut slept = false;
        let mut seed: u32 = 0x9e37_79b9 ^ (index as u32).wrapping_mul(0x85eb_ca6b) | 1;
        while !self.is_closed() {
            let next = match self.next_task(&local, tick, remote_interval, &mut lifo_polls) {
                Some(r) => Some(r),
                // Out of queued work: this worker's own yielded tasks run before it steals
                // (stealing first would take half of a busy worker's queue while our own
                // tasks wait, and that worker would steal them back in turn).
                None if self.wake_deferred(&local) => continue,
                None => self.steal(index, &mut seed),
            };
            if let Some(runnable) = next {
                if searching {
                    searching = false;
                    self.stop_searching();
                }
                if std::mem::take(&mut slept) && self.has_had_io.load(Ordering::SeqCst) {
                    self.ensure_attended();
                }
                local.polling.set(true);
                runnable.run();
                local.polling.set(false);
                tick = tick.wrapping_add(1);
                unpolled += 1;
                if unpolled >= look_after {
                    let found = self.look_at_home(index, &mut events);
                    self.wake_deferred(&local);
                    // Look at the injection queue about every 200 µs of task time, however
                    // long tasks take (tokio tunes its global queue interval the same way):
                    // slow tasks would otherwise leave remote spawns waiting.
                    let now = Instant::now();
                    let per_task = now.duration_since(batch_start) / unpolled;
                    (unpolled, look_after) = (0, super::polls_before_look(found));
                    batch_start = now;
                    remote_interval =
                        (Duration::from_micros(200).as_nanos() / per_task.as_nanos().max(1))
                            .clamp(2, u128::from(REMOTE_INTERVAL)) as u32;
                }
                continue;
            }
            let found;
            (searching, found) = self.sleep_in_kqueue(index, &mut events, searching);
            if let Some(found) = found {
                (unpolled, look_after) = (0, super::polls_before_look(found));
                batch_start = Instant::now();
            }
            slept = true;
            worker.turns.fetch_add(1, Ordering::Relaxed);
        }
        if searching {
            self.idle.stop_searching();
        }
        // `shutdown_timeout` may have stopped waiting for this worker and drained the queues
        // while a poll here outlived it; what that poll scheduled since (the task itself, woken
        // while it ran; a task it spawned or woke) landed in our queue, where nothing would
        // ever run or cancel it. Cancel it here (a cancel may wake more: loop until empty).
        // Timers dropped on this thread (by the last polls, or by those cancels) queued their
        // deletes for a wait that will never come: apply them, or their slots would keep their
        // tasks' wakers, the tasks this runtime, and the runtime those slots (a leak).
        loop {
            let deferred = std::mem::take(&mut *local.deferred.borrow_mut());
            let queued = local.lifo.take().into_iter().chain(deferred);
            let mut any = false;
            for r in queued {
                any = true;
                task::cancel(r);
            }
            while let Some(r) = worker.queue.pop().or_else(|| self.inject.pop()) {
                any = true;
                task::cancel(r);
            }
            if any {
                continue;
            }
            if !self.home.has_pending() {
                break;
            }
            self.home.flush();
        }
        drop(guard);
    }

    /// Starts the worker threads.
    pub(crate) fn start(
        self: &Arc<Self>,
        handle: &Handle,
        name: &(dyn Fn() -> String + Send + Sync),
        stack_size: Option<usize>,
    ) -> io::Result<()> {
        for index in 0..self.workers.len() {
            let shared = Arc::clone(self);
            let handle = handle.clone();
            let mut builder = thread::Builder::new().name(name());
            if let Some(size) = stack_size {
                builder = builder.stack_size(size);
            }
            *self.running.locked() += 1;
            let spawned = builder.spawn(move || {
                struct Stopped(Arc<MultiThread>);
                impl Drop for Stopped {
                    fn drop(&mut self) {
                        let mut running = self.0.running.locked();
                        *running -= 1;
                        self.0.all_stopped.notify_all();
                    }
                }
                let stopped = Stopped(Arc::clone(&shared));
                shared.run_worker(index, &handle);
                drop(handle);
                drop(stopped);
            });
            match spawned {
                Ok(thread) => self.threads.locked().push(thread),
                Err(e) => {
                    *self.running.locked() -= 1;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Stops the workers (waiting up to `timeout` for them to finish their current poll), then
    /// cancels every task.
    pub(crate) fn shutdown(self: &Arc<Self>, handle: &Handle, timeout: Option<Duration>) {
        self.gate.close();
        for index in 0..self.workers.len() {
            self.workers[index].sleeping.lower();
            self.workers[index].driver.wake();
        }
        self.home.wake();
        let deadline = timeout.map(|t| Instant::now() + t);
        let running = self.running.locked();
        let running = super::wait_while_until(&self.all_stopped, running, deadline, |n| *n > 0);
        let all_stopped = *running == 0;
        drop(running);
        if all_stopped {
            // Past their last task, the workers only drop what they hold (the runtime's
            // kqueues among it, if theirs are the last references): wait for that, so the
            // descriptors are closed when the shutdown returns. A worker still in a task after
            // the timeout is left to finish on its own, detached.
            let me = thread::current().id();
            let threads = std::mem::take(&mut *self.threads.locked());
            for worker in threads {
                if worker.thread().id() != me {
                    // A worker's panic was its task's (caught) or the runtime's own, reported
                    // where it happened: joining only waits for the thread to be gone.
                    let _ = worker.join();
                }
            }
        }
        let _enter = context::enter(handle.clone());
        // Woken from here (or by the destructors of the tasks cancelled here), an idle task
        // lands in the injection queue, where this loop finds it: cancelling is iterative,
        // however long a chain of tasks that wake each other on drop.
        let drain = || {
            let mut any = false;
            loop {
                let mut more = false;
                while let Some(r) = self.inject.pop() {
                    more = true;
                    task::cancel(r);
                }
                for worker in self.workers.iter() {
                    while let Some(r) = worker.queue.pop() {
                        more = true;
                        task::cancel(r);
                    }
                }
                if !more {
                    return any;
                }
                any = true;
            }
        };
        self.registry.cancel_all(drain);
        self.gate.finish();
        // A wake-up that saw the runtime closing may have queued its task after the last pass.
        gate::drain(&self.gate, &self.inject, task::cancel);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::runtime::{handle, Builder, Runtime};
    use std::sync::atomic::AtomicUsize;

    fn runtime(workers: usize) -> Runtime {
        Builder::new_multi_thread()
            .worker_threads(workers)
            .build()
            .unwrap()
    }

    /// Waits (up to 10 s, then fails with `what`) until `done`.
    fn settle(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Asleep with no alarm pending in the kqueue it sleeps in: nothing but new work or
    /// events will wake it. (An alarm armed while it slept in its own kqueue and left behind
    /// when it moved to the home fires where nobody waits.)
    fn quiet(w: &Worker) -> bool {
        w.sleeping.is_up() && (w.sleeping.in_home() || !w.alarm.is_armed())
    }

    /// The scheduler state behind a multi-thread runtime.
    fn shared_of(rt: &Runtime) -> &Arc<MultiThread> {
        let handle::Inner::Multi(shared) = &rt.handle().inner else {
            unreachable!("a multi-thread runtime")
        };
        shared
    }

    /// Every registration goes to the home kqueue: from outside the workers, from `block_on`,
    /// and from a task on any worker.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn every_registration_goes_to_the_home() {
        let rt = runtime(3);
        let shared = shared_of(&rt);
        let home = Arc::as_ptr(&shared.home) as usize;
        assert_eq!(
            Arc::as_ptr(&shared.driver()) as usize,
            home,
            "from the test thread"
        );
        let from_block_on = rt.block_on(async { Arc::as_ptr(&shared.driver()) as usize });
        assert_eq!(from_block_on, home, "from block_on");
        for _ in 0..8 {
            let shared_in_task = Arc::clone(shared);
            let task = rt.spawn(async move {
                assert!(current_worker(Arc::as_ptr(&shared_in_task)).is_some());
                Arc::as_ptr(&shared_in_task.driver()) as usize
            });
            assert_eq!(rt.block_on(task).unwrap(), home, "from a task");
        }
    }

    /// While one worker runs a long task, the idle one sleeps in the home (where a socket's
    /// event wakes it directly), not in its own kqueue; and a notification finds it there.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn an_idle_worker_sleeps_in_the_home_while_another_runs() {
        let rt = runtime(2);
        let shared = shared_of(&rt);
        let (started, release) = (
            Arc::new(std::sync::atomic::AtomicBool::new(false)),
            Arc::new(std::sync::atomic::AtomicBool::new(false)),
        );
        let (s, r) = (Arc::clone(&started), Arc::clone(&release));
        let shared_in_task = Arc::clone(shared);
        let busy = rt.spawn(async move {
            s.store(true, Ordering::SeqCst);
            while !r.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(1));
            }
            current_worker(Arc::as_ptr(&shared_in_task)).unwrap()
        });
        let sleeper_in_home = || {
            shared
                .workers
                .iter()
                .position(|w| w.sleeping.is_up() && w.sleeping.in_home())
        };
        settle("no worker went to sleep in the home", || {
            started.load(Ordering::SeqCst) && sleeper_in_home().is_some()
        });
        let idle = sleeper_in_home().expect("it sleeps there until something wakes it");
        assert!(shared.home_seat.is_taken());
        // A task spawned from outside wakes the sleeper through the home's trigger.
        let ran_on = rt.block_on(rt.spawn({
            let shared = Arc::clone(shared);
            async move { current_worker(Arc::as_ptr(&shared)).unwrap() }
        }));
        assert_eq!(ran_on.unwrap(), idle, "the busy worker ran it");
        release.store(true, Ordering::SeqCst);
        assert_ne!(rt.block_on(busy).unwrap(), idle);
    }

    /// Both workers asleep, one in the home and one in its own kqueue; a socket's event wakes
    /// the one in the home into a task that blocks: the other's alarm brings it to the home,
    /// where a second socket's event reaches its task while the first still blocks.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn the_home_left_for_a_long_poll_is_taken_by_an_alarmed_sleeper() {
        use std::io::Write;
        use std::os::unix::net::UnixStream;
        use std::sync::atomic::AtomicBool;
        let rt = runtime(2);
        let shared = shared_of(&rt);
        let pair = || {
            let (a, b) = UnixStream::pair().unwrap();
            a.set_nonblocking(true).unwrap();
            (a, b)
        };
        let ((a1, mut b1), (a2, mut b2)) = (pair(), pair());
        let (waiting, blocking, released) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let blocker = {
            let (waiting, blocking, released) = (
                Arc::clone(&waiting),
                Arc::clone(&blocking),
                Arc::clone(&released),
            );
            rt.spawn(async move {
                let fd = crate::io::AsyncFd::new(a1).unwrap();
                waiting.fetch_add(1, Ordering::SeqCst);
                let _ready = fd.readable().await.unwrap();
                blocking.store(true, Ordering::SeqCst);
                let deadline = Instant::now() + Duration::from_secs(10);
                while !released.load(Ordering::SeqCst) && Instant::now() < deadline {
                    thread::sleep(Duration::from_millis(1));
                }
            })
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = {
            let (waiting, released) = (Arc::clone(&waiting), Arc::clone(&released));
            rt.spawn(async move {
                let fd = crate::io::AsyncFd::new(a2).unwrap();
                waiting.fetch_add(1, Ordering::SeqCst);
                let _ready = fd.readable().await.unwrap();
                // Still blocking: the event did not wait for the stuck worker.
                tx.send(!released.load(Ordering::SeqCst)).unwrap();
            })
        };
        // The one in its own kqueue with no alarm pending: only the blocker's worker can
        // bring it to the home in time, by arming its alarm.
        settle("the workers never both went to sleep", || {
            waiting.load(Ordering::SeqCst) == 2
                && shared.workers.iter().all(quiet)
                && shared.workers.iter().any(|w| !w.sleeping.in_home())
        });
        b1.write_all(b"x").unwrap();
        settle("the blocker never ran", || blocking.load(Ordering::SeqCst));
        b2.write_all(b"x").unwrap();
        let in_time = rx.recv_timeout(Duration::from_secs(5));
        released.store(true, Ordering::SeqCst);
        rt.block_on(blocker).unwrap();
        rt.block_on(reader).unwrap();
        let in_time = in_time.expect("the reader never woke");
        assert!(in_time, "the event waited for the worker stuck in a poll");
    }

    /// A worker runs a batch of events more than `EVENT_INTERVAL` long whole before it looks at
    /// the home again: the one turn that harvested the batch is the only one until it sleeps.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_batch_runs_whole_before_the_next_look() {
        use std::io::Write;
        use std::os::unix::net::UnixStream;
        use std::sync::mpsc;
        const TASKS: usize = 2 * EVENT_INTERVAL as usize;
        let rt = runtime(1);
        let shared = shared_of(&rt);
        let worker = &shared.workers[0];
        let waiting = Arc::new(AtomicUsize::new(0));
        let left = Arc::new(AtomicUsize::new(TASKS));
        let mut peers = Vec::new();
        for _ in 0..TASKS {
            let (a, b) = UnixStream::pair().unwrap();
            a.set_nonblocking(true).unwrap();
            peers.push(b);
            let (waiting, left) = (Arc::clone(&waiting), Arc::clone(&left));
            rt.spawn(async move {
                let fd = crate::io::AsyncFd::new(a).unwrap();
                waiting.fetch_add(1, Ordering::SeqCst);
                let _ready = fd.readable().await.unwrap();
                left.fetch_sub(1, Ordering::SeqCst);
            });
        }
        settle("the tasks never all waited", || {
            waiting.load(Ordering::SeqCst) == TASKS && worker.sleeping.is_up()
        });
        // The worker is held in a task while every fd becomes readable, so that its next wait
        // harvests them all at once.
        let (release, held) = mpsc::channel::<()>();
        let (entered, in_task) = mpsc::channel();
        rt.spawn(async move {
            entered.send(()).unwrap();
            held.recv().unwrap();
        });
        in_task.recv().unwrap();
        for peer in &mut peers {
            peer.write_all(b"x").unwrap();
        }
        let before = worker.turns.load(Ordering::SeqCst);
        release.send(()).unwrap();
        settle("the batch never ran", || {
            left.load(Ordering::SeqCst) == 0 && worker.sleeping.is_up()
        });
        let turns = worker.turns.load(Ordering::SeqCst) - before;
        assert_eq!(turns, 1, "{turns} looks at the kqueue for one batch");
    }

    /// Once the work is done, every worker ends up asleep with no alarm pending in the kqueue
    /// it sleeps in, and then nothing wakes them: an idle runtime costs no wake-ups (the guard
    /// on stuck workers must not keep the sleepers waking each other).
    #[test]
    #[cfg_attr(miri, ignore)]
    fn an_idle_runtime_stops_waking_up() {
        let rt = runtime(2);
        let shared = shared_of(&rt);
        // Work on both workers, with a socket registered on one of them.
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                rt.spawn(async {
                    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
                    a.set_nonblocking(true).unwrap();
                    let _fd = crate::io::AsyncFd::new(a).unwrap();
                    for _ in 0..100 {
                        crate::task::yield_now().await;
                    }
                })
            })
            .collect();
        rt.block_on(async {
            for t in tasks {
                t.await.unwrap();
            }
        });
        let all_quiet = || shared.workers.iter().all(quiet);
        settle(
            "the workers never all went to sleep with no alarm pending",
            all_quiet,
        );
        let turns = || -> Vec<u64> {
            shared
                .workers
                .iter()
                .map(|w| w.turns.load(Ordering::Relaxed))
                .collect()
        };
        let before = turns();
        thread::sleep(10 * STUCK_CHECK);
        assert_eq!(turns(), before, "an idle worker woke up");
        assert!(all_quiet());
    }
}
