//! A slot's waiter list: the wakers of the `readable()` / `writable()` futures (and `async_io`)
//! waiting on one registration, any number per direction.
//!
//! Several tasks may wait on one fd in one direction (an `Arc<UdpSocket>` read by several
//! tasks, a `TcpStream` shared by `&`): each waiting future owns an entry here, keyed by its
//! slab index, from its first pending poll until it completes, is dropped, or an event for its
//! direction drains the list (all of a direction's waiters are woken by one of its events).
//! The lists live under the slot's lock; wakers are taken out under it and woken, or dropped,
//! after it is released (a wake may run or free a task, whose futures may come back here).
//!
//! Why a vector of entries and not tokio's intrusive list of nodes pinned in the futures: no
//! `unsafe` and no `!Unpin` future, at the price of one allocation per slot that ever had a
//! waiter (kept across reuses of the slot).

use std::task::Waker;

use super::slots::Direction;

/// One direction's waiters: a vector of entries (a key is an index) and the free indices.
/// An event takes them all out at once, so draining resets both vectors (keeping their
/// capacity) rather than freeing entries one by one.
#[derive(Default)]
struct List {
    entries: Vec<Option<Waker>>,
    free: Vec<usize>,
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct Waiters {
    /// Per direction (`Direction::index`).
    lists: [List; 2],
}

impl Waiters {
    /// Adds a waiter; its key stays valid until it is removed or its direction drained.
    pub(crate) fn insert(&mut self, direction: Direction, waker: &Waker) -> usize {
        let list = &mut self.lists[direction.index()];
        let waker = Some(waker.clone());
        match list.free.pop() {
            Some(key) => {
                list.entries[key] = waker;
                key
            }
            None => {
                // Room for one at first, not `Vec`'s four: most registrations only ever have
                // one waiter per direction (a connection's task), and an idle connection keeps
                // this allocation for as long as it waits.
                if list.entries.capacity() == 0 {
                    list.entries.reserve_exact(1);
                }
                list.entries.push(waker);
                list.entries.len() - 1
            }
        }
    }

    /// Gives a listed waiter the waker of its latest poll; returns the one it replaces, for
    /// the caller to drop outside the lock.
    pub(crate) fn update(
        &mut self,
        direction: Direction,
        key: usize,
        waker: &Waker,
    ) -> Option<Waker> {
        let entry = self.lists[direction.index()].entries.get_mut(key)?;
        match entry {
            Some(old) if old.will_wake(waker) => None,
            _ => entry.replace(waker.clone()),
        }
    }

    /// Removes a waiter; returns its waker, for the caller to drop outside the lock.
    pub(crate) fn remove(&mut self, direction: Direction, key: usize) -> Option<Waker> {
        let list = &mut self.lists[direction.index()];
        let waker = list.entries.get_mut(key)?.take();
        if waker.is_some() {
            list.free.push(key);
        }
        waker
    }

    /// Takes every waiter of `direction` out (an event for it); returns how many.
    pub(crate) fn drain(&mut self, direction: Direction, woken: &mut Woken) -> usize {
        let list = &mut self.lists[direction.index()];
        let mut n = 0;
        for waker in list.entries.drain(..).flatten() {
            woken.push(waker);
            n += 1;
        }
        list.free.clear();
        n
    }

    /// Empties both lists (the slot is released), keeping their capacity for the next owner.
    pub(crate) fn take_all(&mut self) -> Woken {
        let mut woken = Woken::default();
        self.drain(Direction::Read, &mut woken);
        self.drain(Direction::Write, &mut woken);
        woken
    }
}

/// Wakers taken out of the list, to wake (or drop) once the lock is released. The one-waiter
/// case allocates nothing.
#[derive(Default)]
pub(crate) struct Woken {
    first: Option<Waker>,
    rest: Vec<Waker>,
}

impl Woken {
    /// How many wakers it holds.
    #[cfg(all(test, loom))]
    pub(crate) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    fn push(&mut self, waker: Waker) {
        if self.first.is_none() {
            self.first = Some(waker);
        } else {
            self.rest.push(waker);
        }
    }

    /// Wakes them all.
    pub(crate) fn wake_all(self) {
        if let Some(first) = self.first {
            first.wake();
        }
        for waker in self.rest {
            waker.wake();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    use super::{Direction, Waiters, Woken};

    struct Nothing;

    impl Wake for Nothing {
        fn wake(self: Arc<Self>) {}
    }

    /// An idle connection's task is one waiter that stays listed: its entry vector holds room
    /// for one (16 bytes), not `Vec`'s first four; a second waiter still fits after it.
    #[test]
    fn the_first_waiter_allocates_room_for_one() {
        let waker = Waker::from(Arc::new(Nothing));
        let mut waiters = Waiters::default();
        assert_eq!(waiters.insert(Direction::Read, &waker), 0);
        assert_eq!(waiters.lists[Direction::Read.index()].entries.capacity(), 1);
        assert_eq!(waiters.insert(Direction::Read, &waker), 1);
        let mut woken = Woken::default();
        assert_eq!(waiters.drain(Direction::Read, &mut woken), 2);
        assert_eq!(
            waiters.lists[Direction::Write.index()].entries.capacity(),
            0
        );
    }
}
