//! Wake storms: bursts of cross-thread wake-ups, each one accounted for.
//!
//! - From a thread outside the runtimes: a `Notify` permit to each of a set of waiter tasks at
//!   once, then a burst of messages on an mpsc channel to one consumer task that checks their
//!   order; each burst waits (bounded) until every wake-up was seen.
//! - Between tasks: a task spawns a burst of waiters onto a runtime (its own, or the other
//!   one, so the wake-up crosses runtimes), each waiting on a oneshot, then sends them all and
//!   joins them, checking each got its value.

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use knote::runtime::Handle;
use knote::sync::{mpsc, oneshot, Notify};
use knote::time::timeout;

use super::churn::Rng;
use super::shared::{Shared, STOP_POLL, WAIT_LIMIT};

/// Waiter tasks woken by `Notify` from the outside thread in each burst.
const NOTIFY_WAITERS: usize = 16;
/// Messages per channel burst from the outside thread.
const CHANNEL_BURST: u64 = 64;

/// The task side of the outside thread's storms, spawned on a runtime: its waiters and its
/// consumer. Hand it to [`outside_storms`] on a plain thread.
#[derive(Debug)]
pub(crate) struct OutsideTargets {
    notifies: Vec<Arc<Notify>>,
    acks: std_mpsc::Receiver<u64>,
    channel: mpsc::UnboundedSender<(u64, bool)>,
}

/// Spawns the waiter tasks and the channel consumer on `handle`.
pub(crate) fn spawn_outside_targets(
    handle: &Handle,
    shared: &Arc<Shared>,
) -> (OutsideTargets, Vec<knote::JoinHandle<()>>) {
    let (ack_tx, acks) = std_mpsc::channel();
    let mut tasks = Vec::new();
    let notifies: Vec<_> = (0..NOTIFY_WAITERS)
        .map(|_| Arc::new(Notify::new()))
        .collect();
    for notify in &notifies {
        let (notify, ack, shared) = (Arc::clone(notify), ack_tx.clone(), Arc::clone(shared));
        tasks.push(handle.spawn(async move {
            while !shared.stopping() {
                // Bounded, to see the stop flag; a permit that comes meanwhile is kept by the
                // Notify for the next `notified()`.
                if timeout(STOP_POLL, notify.notified()).await.is_ok() {
                    Shared::add(&shared.counters.wakes_received, 1);
                    if ack.send(1).is_err() {
                        return;
                    }
                }
            }
        }));
    }
    let (channel, mut rx) = mpsc::unbounded::<(u64, bool)>();
    let shared = Arc::clone(shared);
    tasks.push(handle.spawn(async move {
        let mut expected = 0;
        while !shared.stopping() {
            match timeout(STOP_POLL, rx.next()).await {
                Err(_) => {}
                Ok(None) => return,
                Ok(Some((seq, last))) => {
                    if seq == expected {
                        Shared::add(&shared.counters.wakes_received, 1);
                    } else {
                        Shared::add(&shared.counters.wakes_lost, 1);
                        shared.incident(format!(
                            "channel message {seq} arrived where {expected} was due"
                        ));
                    }
                    expected = seq + 1;
                    if last && ack_tx.send(CHANNEL_BURST).is_err() {
                        return;
                    }
                }
            }
        }
    }));
    (
        OutsideTargets {
            notifies,
            acks,
            channel,
        },
        tasks,
    )
}

/// The outside thread's loop: a `Notify` burst, a channel burst, a short pause, until the
/// run stops; each burst waits until every wake-up arrived, at most [`WAIT_LIMIT`].
pub(crate) fn outside_storms(targets: OutsideTargets, shared: &Shared) {
    let c = &shared.counters;
    let mut rng = Rng::new(0x5eed);
    let mut seq = 0;
    while !shared.stopping() {
        Shared::add(&c.wakes_sent, NOTIFY_WAITERS as u64);
        for notify in &targets.notifies {
            notify.notify_one();
        }
        await_acks(&targets.acks, NOTIFY_WAITERS as u64, "Notify", shared);

        Shared::add(&c.wakes_sent, CHANNEL_BURST);
        for i in 0..CHANNEL_BURST {
            if targets
                .channel
                .unbounded_send((seq, i + 1 == CHANNEL_BURST))
                .is_err()
            {
                // The consumer leaves when the run stops; before that, it may not.
                if !shared.stopping() {
                    shared.incident("the channel consumer task is gone");
                }
                return;
            }
            seq += 1;
        }
        await_acks(&targets.acks, CHANNEL_BURST, "channel", shared);
        std::thread::sleep(Duration::from_micros(rng.below(1000)));
    }
}

/// Waits until acknowledgements for `expected` wake-ups came in, or [`WAIT_LIMIT`] passed
/// (then the missing ones are lost, unless the run is stopping and the waiters left).
fn await_acks(acks: &std_mpsc::Receiver<u64>, expected: u64, what: &str, shared: &Shared) {
    let give_up = Instant::now() + WAIT_LIMIT;
    let mut seen = 0;
    while seen < expected {
        match acks.recv_timeout(give_up.saturating_duration_since(Instant::now())) {
            Ok(n) => seen += n,
            Err(_) => break,
        }
    }
    Shared::add(&shared.counters.wake_bursts, 1);
    if seen < expected && !shared.stopping() {
        Shared::add(&shared.counters.wakes_lost, expected - seen);
        shared.incident(format!(
            "{what} burst from outside the runtimes: {} of {expected} wake-ups not seen within \
             {WAIT_LIMIT:?}",
            expected - seen
        ));
    }
}

/// Bursts of `burst` waiters spawned on `target`, woken through oneshots by this task and
/// joined, until the run stops. `what` names the direction in incidents.
pub(crate) async fn task_storms(
    target: Handle,
    burst: usize,
    what: &'static str,
    shared: Arc<Shared>,
) {
    let c = &shared.counters;
    while !shared.stopping() {
        let mut senders = Vec::with_capacity(burst);
        let mut waiters = Vec::with_capacity(burst);
        for i in 0..burst {
            let (tx, rx) = oneshot::channel::<usize>();
            senders.push(tx);
            waiters.push((
                i,
                target.spawn(async move { timeout(WAIT_LIMIT, rx).await }),
            ));
        }
        // Let the waiters start (and park) before they are woken.
        knote::task::yield_now().await;
        for (i, tx) in senders.into_iter().enumerate() {
            // A send fails only if its waiter is gone: the join below says why.
            tx.send(i).ok();
        }
        Shared::add(&c.wakes_sent, burst as u64);
        let mut lost = 0;
        let mut first = None;
        for (i, waiter) in waiters {
            match timeout(2 * WAIT_LIMIT, waiter).await {
                Ok(Ok(Ok(Ok(got)))) if got == i => {}
                other => {
                    lost += 1;
                    first.get_or_insert_with(|| match other {
                        Ok(Ok(Ok(Ok(got)))) => format!("waiter {i} got {got}"),
                        Ok(Ok(Ok(Err(_)))) => format!("waiter {i}'s sender was dropped"),
                        Ok(Ok(Err(_))) => format!("waiter {i} not woken within {WAIT_LIMIT:?}"),
                        Ok(Err(e)) => format!("waiter {i} failed: {e}"),
                        Err(_) => format!("waiter {i} not joined within {:?}", 2 * WAIT_LIMIT),
                    });
                }
            }
        }
        Shared::add(&c.wakes_received, (burst - lost) as u64);
        Shared::add(&c.wake_bursts, 1);
        if let Some(first) = first {
            Shared::add(&c.wakes_lost, lost as u64);
            shared.incident(format!("{what}: {lost} of {burst} wake-ups lost; {first}"));
        }
    }
}
