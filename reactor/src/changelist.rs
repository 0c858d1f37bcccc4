//! `ChangeList`: changes queued now and submitted with the next wait.

use std::io;
use std::time::Duration;

use crate::{Kevent, Kqueue};

/// A change list that rides along with the next wait, so registering costs no system call of
/// its own (on native kqueue the whole list goes to the kernel in the same `kevent` call).
///
/// Failures of queued changes come back as `EV_ERROR` entries of that call's event list, as in
/// C; leave room for them.
#[derive(Debug, Default, Clone)]
pub struct ChangeList {
    changes: Vec<Kevent>,
}

impl ChangeList {
    /// An empty list.
    pub fn new() -> ChangeList {
        ChangeList::default()
    }

    /// An empty list with room for `capacity` changes before it allocates.
    pub fn with_capacity(capacity: usize) -> ChangeList {
        ChangeList {
            changes: Vec::with_capacity(capacity),
        }
    }

    /// Queues a change.
    pub fn push(&mut self, change: Kevent) {
        self.changes.push(change);
    }

    /// The queued changes, in order.
    pub fn as_slice(&self) -> &[Kevent] {
        &self.changes
    }

    /// How many changes are queued.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Drops the queued changes without submitting them.
    pub fn clear(&mut self) {
        self.changes.clear();
    }

    /// `kq.kevent(queued changes, events, timeout)`, then empties the list.
    ///
    /// The list is emptied whether or not the call succeeds: when `kevent` fails (no room for an
    /// error entry, or `EINTR` after the changes were applied) the kernel has already consumed
    /// the changes it could, exactly as a C caller's list would be.
    pub fn submit(
        &mut self,
        kq: &Kqueue,
        events: &mut [Kevent],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let result = kq.kevent(&self.changes, events, timeout);
        self.changes.clear();
        result
    }
}

impl Extend<Kevent> for ChangeList {
    fn extend<I: IntoIterator<Item = Kevent>>(&mut self, iter: I) {
        self.changes.extend(iter);
    }
}
