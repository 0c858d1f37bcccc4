//! The shim's timers: one binary heap of deadlines per kqueue, and one timerfd armed at the
//! earliest of them.
//!
//! A million armed timers therefore cost a million heap entries (24 bytes each), no file
//! descriptors, and `O(log n)` per arm or expiry; a wait never scans them. Cancelling is lazy:
//! each arming gets a fresh sequence number, the knote remembers the current one, and an entry
//! whose sequence no longer matches is discarded when it reaches the top. When discarded entries
//! outnumber live ones the heap is rebuilt, so churn cannot grow it without bound.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One armed deadline: `(deadline_ns, seq, knote index)`.
type Entry = Reverse<(u64, u64, usize)>;

#[derive(Default)]
pub(super) struct TimerHeap {
    heap: BinaryHeap<Entry>,
    next_seq: u64,
    /// Entries in `heap` still current (armed and not superseded).
    live: usize,
}

impl TimerHeap {
    /// No armed timers at all (the common case: skip reading the clock).
    pub(super) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Arms a deadline for knote `idx`; returns the sequence number the knote must keep.
    pub(super) fn arm(&mut self, deadline_ns: u64, idx: usize) -> u64 {
        self.next_seq += 1;
        let seq = self.next_seq;
        self.heap.push(Reverse((deadline_ns, seq, idx)));
        self.live += 1;
        seq
    }

    /// Notes that one armed entry was superseded or cancelled (its knote forgot its sequence).
    pub(super) fn cancelled(&mut self, is_current: impl Fn(u64, usize) -> bool) {
        self.live = self.live.saturating_sub(1);
        if self.heap.len() > 1024 && self.heap.len() > 2 * self.live {
            let entries = std::mem::take(&mut self.heap).into_vec();
            self.heap = entries
                .into_iter()
                .filter(|Reverse((_, seq, idx))| is_current(*seq, *idx))
                .collect();
            self.live = self.heap.len();
        }
    }

    /// The earliest current deadline, discarding superseded entries on top.
    pub(super) fn earliest(&mut self, is_current: impl Fn(u64, usize) -> bool) -> Option<u64> {
        while let Some(Reverse((deadline, seq, idx))) = self.heap.peek().copied() {
            if is_current(seq, idx) {
                return Some(deadline);
            }
            self.heap.pop();
        }
        None
    }

    /// Pops the next current entry due at or before `now_ns`: `(deadline, knote index)`.
    pub(super) fn pop_due(
        &mut self,
        now_ns: u64,
        is_current: impl Fn(u64, usize) -> bool,
    ) -> Option<(u64, usize)> {
        while let Some(Reverse((deadline, seq, idx))) = self.heap.peek().copied() {
            if !is_current(seq, idx) {
                self.heap.pop();
                continue;
            }
            if deadline > now_ns {
                return None;
            }
            self.heap.pop();
            self.live = self.live.saturating_sub(1);
            return Some((deadline, idx));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::TimerHeap;

    #[test]
    fn pops_in_deadline_order_and_skips_cancelled() {
        let mut heap = TimerHeap::default();
        let mut current = [0u64; 3];
        current[0] = heap.arm(30, 0);
        current[1] = heap.arm(10, 1);
        current[2] = heap.arm(20, 2);
        // Knote 1 is re-armed later: its first entry becomes stale.
        current[1] = heap.arm(40, 1);
        let cur = current;
        let is_current = |seq: u64, idx: usize| cur[idx] == seq;
        assert_eq!(heap.earliest(is_current), Some(20));
        assert_eq!(heap.pop_due(25, is_current), Some((20, 2)));
        assert_eq!(heap.pop_due(25, is_current), None);
        assert_eq!(heap.pop_due(100, is_current), Some((30, 0)));
        assert_eq!(heap.pop_due(100, is_current), Some((40, 1)));
        assert_eq!(heap.pop_due(100, is_current), None);
    }

    #[test]
    fn rebuild_keeps_live_entries_only() {
        let mut heap = TimerHeap::default();
        let mut seqs = vec![0u64; 3000];
        for (i, seq) in seqs.iter_mut().enumerate() {
            *seq = heap.arm(i as u64, i);
        }
        // Cancel all but the last 10.
        for seq in seqs.iter_mut().take(2990) {
            *seq = 0;
        }
        let snapshot = seqs.clone();
        for _ in 0..2990 {
            heap.cancelled(|seq, idx| snapshot[idx] == seq);
        }
        assert!(heap.heap.len() < 3000, "heap was rebuilt");
        let mut popped = 0;
        while heap
            .pop_due(u64::MAX, |seq, idx| snapshot[idx] == seq)
            .is_some()
        {
            popped += 1;
        }
        assert_eq!(popped, 10);
    }
}
