//! The registry of live tasks: what lets a runtime that shuts down find, and drop, every task it
//! ever spawned, even one that nothing will ever wake again (two tasks awaiting each other's
//! channels, say).
//!
//! Each entry holds a [`Waker`] of its task. Shutting down wakes them all, which hands each
//! task's `Runnable` to the runtime's queues, where it is cancelled (run once more with its
//! abort flag set, which drops the future). A task enters the registry when it first goes idle
//! (returns `Pending`): until then it is always in a queue or running, where shutdown finds it
//! anyway, so a task that completes in its first poll never touches the registry's locks. An
//! entry is removed by its task's own guard when the future is dropped.
//!
//! Sharded, and each thread spreads its spawns over the shards round-robin, so that spawns
//! and completions on different threads rarely meet on one lock (a single shard for spawns
//! from outside a multi-thread runtime was its most contended lock).

use crate::loom::Locked;
use std::sync::Mutex;
use std::task::Waker;

pub(crate) struct Registry {
    shards: Box<[Mutex<slab::Slab<Waker>>]>,
}

/// Where a task's entry sits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EntryKey {
    pub(crate) shard: u32,
    pub(crate) key: u32,
}

impl EntryKey {
    /// As one word, for an atomic (`u64::MAX` is no entry: shard counts stay far below 2^32).
    pub(crate) fn encode(self) -> u64 {
        u64::from(self.shard) << 32 | u64::from(self.key)
    }

    pub(crate) fn decode(word: u64) -> Option<EntryKey> {
        (word != u64::MAX).then_some(EntryKey {
            shard: (word >> 32) as u32,
            key: word as u32,
        })
    }
}

impl Registry {
    pub(crate) fn new(shards: usize) -> Registry {
        Registry {
            shards: (0..shards.max(1))
                .map(|_| Mutex::new(slab::Slab::new()))
                .collect(),
        }
    }

    fn shard(&self, shard: u32) -> std::sync::MutexGuard<'_, slab::Slab<Waker>> {
        // A poisoned shard only means a waker's drop panicked while we held it; the slab is
        // still consistent.
        self.shards[shard as usize % self.shards.len()].locked()
    }

    /// Stores `waker` in `shard`; the key finds it again.
    pub(crate) fn insert(&self, shard: u32, waker: Waker) -> EntryKey {
        let shard = shard % self.shards.len() as u32;
        let key = self.shard(shard).insert(waker);
        EntryKey {
            shard,
            key: u32::try_from(key).expect("fewer than 2^32 live tasks per shard"),
        }
    }

    pub(crate) fn remove(&self, key: EntryKey) {
        let waker = self.shard(key.shard).try_remove(key.key as usize);
        // Dropped outside the lock: a waker's drop may run arbitrary code (the last reference
        // to a task frees it).
        drop(waker);
    }

    /// Wakes the task of `key` (an abort: the task must run once more to drop its future).
    pub(crate) fn wake(&self, key: EntryKey) {
        let waker = self.shard(key.shard).get(key.key as usize).cloned();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Shutdown's loop: `drain` cancels what the run queues hold (saying whether it cancelled
    /// anything), then every idle task is woken (which queues it on the closing runtime), and
    /// round again until no idle task is left. Bounded by progress, not by a round count: each
    /// round cancels a task or removes an entry, or the loop stops, leaving only tasks that no
    /// queue of the caller's holds (one still running on a worker that outlived shutdown's
    /// timeout, which cancels it itself when its poll returns; a local task seen off its
    /// thread, leaked by design).
    pub(crate) fn cancel_all(&self, mut drain: impl FnMut() -> bool) {
        loop {
            drain();
            let wakers = self.snapshot();
            if wakers.is_empty() {
                return;
            }
            let before = wakers.len();
            for w in wakers {
                w.wake();
            }
            if !drain() && self.len() >= before {
                return;
            }
        }
    }

    /// Wakers of every live task, cloned (entries stay until the tasks' guards remove them).
    pub(crate) fn snapshot(&self) -> Vec<Waker> {
        let mut all = Vec::new();
        for shard in 0..self.shards.len() {
            all.extend(self.shard(shard as u32).iter().map(|(_, w)| w.clone()));
        }
        all
    }

    /// How many tasks have live futures.
    pub(crate) fn len(&self) -> usize {
        (0..self.shards.len())
            .map(|s| self.shard(s as u32).len())
            .sum()
    }
}

thread_local! {
    static NEXT_SHARD: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// The shard for this thread's next spawn.
pub(crate) fn next_shard() -> u32 {
    NEXT_SHARD
        .try_with(|n| {
            let shard = n.get();
            n.set(shard.wrapping_add(1));
            shard
        })
        .unwrap_or(0)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    /// Shutdown's loop runs until the registry is empty, however many rounds that takes, as
    /// long as each makes progress (it gave up silently after 64 rounds).
    #[test]
    fn cancel_all_runs_until_empty() {
        let registry = Registry::new(2);
        let keys: Vec<EntryKey> = (0..200)
            .map(|i| registry.insert(i, Waker::from(Arc::new(Noop))))
            .collect();
        let mut keys = keys.into_iter();
        // Each drain cancels one task (its guard removes its entry).
        registry.cancel_all(|| match keys.next() {
            Some(key) => {
                registry.remove(key);
                true
            }
            None => false,
        });
        assert_eq!(registry.len(), 0);
    }

    /// Entries that no round can remove (tasks held elsewhere) end the loop instead of
    /// spinning it.
    #[test]
    fn cancel_all_stops_without_progress() {
        let registry = Registry::new(1);
        registry.insert(0, Waker::from(Arc::new(Noop)));
        let mut rounds = 0;
        registry.cancel_all(|| {
            rounds += 1;
            false
        });
        assert_eq!(registry.len(), 1);
        assert!(rounds <= 3, "{rounds} rounds without progress");
    }
}
