//! Timer storms: sleeps armed and dropped unfired by the hundred thousand per second, some
//! awaited until they fire (none may fire before its deadline), and `timeout`s that must elapse
//! and `timeout`s that must not.

use std::convert::Infallible;
use std::future::{pending, poll_fn};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::future::join_all;
use knote::time::{sleep, sleep_until, timeout, Instant};

use super::churn::Rng;
use super::shared::{Shared, WAIT_LIMIT};

/// Sleeps armed and dropped per batch.
const BATCH: u64 = 256;
/// Every this many batches: a few sleeps awaited until they fire, and the `timeout` checks.
const CHECK_EVERY: u64 = 8;
/// Sleeps awaited together in one check.
const FIRED_PER_CHECK: usize = 8;

/// One storm task: batches of [`BATCH`] sleeps (5 ms to 5 s) armed and dropped, paced to
/// `per_second` sleeps; every [`CHECK_EVERY`] batches, sleeps of up to 1 ms awaited and two
/// `timeout`s, all checked against the clock. Runs until the run stops.
pub(crate) async fn timer_storm(per_second: f64, seed: u64, shared: Arc<Shared>) {
    let c = &shared.counters;
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let mut batches = 0u64;
    while !shared.stopping() {
        // A poll of its own, with the whole cooperative budget: a sleep polled on a spent
        // budget answers `Pending` without arming its timer.
        knote::task::yield_now().await;
        let mut sleeps: Vec<_> = (0..BATCH)
            .map(|_| sleep(Duration::from_micros(5_000 + rng.below(5_000_000))))
            .collect();
        let early = poll_fn(|cx| {
            let mut early = 0;
            for s in &mut sleeps {
                if s.poll_elapsed(cx).is_ready() && Instant::now() < s.deadline() {
                    early += 1;
                }
            }
            Poll::Ready(early)
        })
        .await;
        drop(sleeps);
        Shared::add(&c.timers_armed, BATCH);
        Shared::add(&c.timers_early, early);
        batches += 1;

        if batches % CHECK_EVERY == 0 {
            check_fired(&mut rng, &shared).await;
            check_timeouts(&mut rng, &shared).await;
        }

        // Pacing: the batch after this one is due when the rate says; a storm that cannot keep
        // up runs back to back (the report shows the rate reached).
        let due = started + Duration::from_secs_f64((batches * BATCH) as f64 / per_second);
        if Instant::now() < due {
            sleep_until(due).await;
            Shared::add(&c.timers_armed, 1);
            Shared::add(&c.timers_fired, 1);
            if Instant::now() < due {
                Shared::add(&c.timers_early, 1);
            }
        }
    }
}

/// Awaits [`FIRED_PER_CHECK`] sleeps of up to 1 ms together, counting those that completed
/// before their deadline.
async fn check_fired(rng: &mut Rng, shared: &Shared) {
    let c = &shared.counters;
    let sleeps = (0..FIRED_PER_CHECK).map(|_| {
        let s = sleep(Duration::from_micros(rng.below(1_000)));
        let deadline = s.deadline();
        async move {
            s.await;
            Instant::now() < deadline
        }
    });
    let early = join_all(sleeps).await.into_iter().filter(|&e| e).count();
    Shared::add(&c.timers_armed, FIRED_PER_CHECK as u64);
    Shared::add(&c.timers_fired, FIRED_PER_CHECK as u64);
    Shared::add(&c.timers_early, early as u64);
}

/// A `timeout` of up to 2 ms around a future that never completes (it must elapse, not before
/// its deadline), and one of [`WAIT_LIMIT`] around a sleep of up to 1 ms (it must complete).
async fn check_timeouts(rng: &mut Rng, shared: &Shared) {
    let c = &shared.counters;
    let limit = Duration::from_micros(rng.below(2_000));
    let start = Instant::now();
    match timeout(limit, pending::<Infallible>()).await {
        Err(_) if start.elapsed() >= limit => Shared::add(&c.timeouts_elapsed, 1),
        Err(_) => {
            Shared::add(&c.timeouts_wrong, 1);
            shared.incident(format!(
                "a timeout of {limit:?} elapsed after {:?}",
                start.elapsed()
            ));
        }
        Ok(never) => match never {},
    }
    let nap = Duration::from_micros(rng.below(1_000));
    match timeout(WAIT_LIMIT, sleep(nap)).await {
        Ok(()) => Shared::add(&c.timeouts_completed, 1),
        Err(_) => {
            Shared::add(&c.timeouts_wrong, 1);
            shared.incident(format!(
                "a timeout of {WAIT_LIMIT:?} elapsed around a sleep of {nap:?}"
            ));
        }
    }
    Shared::add(&c.timers_armed, 3);
    Shared::add(&c.timers_fired, 2);
}
