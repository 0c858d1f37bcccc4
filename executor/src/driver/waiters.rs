//! A slot's waiter list: the wakers of the `readable()` / `writable()` futures (and `async_io`)
//! waiting on one registration, any number per direction.
//!
//! Several tasks may wait on one fd in one direction (an `Arc<UdpSocket>` read by several
//! tasks, a `TcpStream` shared by `&`): each waiting future owns an entry here, keyed by its
//! slab index, from its first pending poll until it completes or is dropped, and an event wakes
//! every entry of its direction. The list lives under the slot's lock; wakers are taken out
//! under it and woken, or dropped, after it is released (a wake may run or free a task, whose
//! futures may come back to this list).
//!
//! Why a slab and not tokio's intrusive list of nodes pinned in the futures: no `unsafe` and
//! no `!Unpin` future, at the price of one allocation per slot that ever had a waiter (kept
//! across reuses of the slot).

use std::task::Waker;

use slab::Slab;

use super::slots::Direction;

struct Waiter {
    direction: Direction,
    /// `None` once an event took it (the future has been woken and not polled since).
    waker: Option<Waker>,
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct Waiters {
    list: Slab<Waiter>,
}

impl Waiters {
    /// Adds a waiter; its key stays valid until [`remove`](Waiters::remove).
    pub(crate) fn insert(&mut self, direction: Direction, waker: &Waker) -> usize {
        self.list.insert(Waiter {
            direction,
            waker: Some(waker.clone()),
        })
    }

    /// Gives a listed waiter the waker of its latest poll; returns the one it replaces, for
    /// the caller to drop outside the lock.
    pub(crate) fn update(&mut self, key: usize, waker: &Waker) -> Option<Waker> {
        let entry = self.list.get_mut(key)?;
        match &entry.waker {
            Some(old) if old.will_wake(waker) => None,
            _ => entry.waker.replace(waker.clone()),
        }
    }

    /// Removes a waiter; returns its waker, for the caller to drop outside the lock.
    pub(crate) fn remove(&mut self, key: usize) -> Option<Waker> {
        self.list.try_remove(key).and_then(|w| w.waker)
    }

    /// Takes the wakers of the waiters of the directions given (entries stay: their futures
    /// remove them).
    pub(crate) fn take_wakers(&mut self, read: bool, write: bool) -> Woken {
        let mut woken = Woken::default();
        for (_, waiter) in self.list.iter_mut() {
            let wanted = match waiter.direction {
                Direction::Read => read,
                Direction::Write => write,
            };
            if wanted {
                if let Some(waker) = waiter.waker.take() {
                    woken.push(waker);
                }
            }
        }
        woken
    }

    /// Empties the list (the slot is released), keeping its capacity for the next owner.
    pub(crate) fn take_all(&mut self) -> Woken {
        let mut woken = Woken::default();
        for waiter in self.list.drain() {
            if let Some(waker) = waiter.waker {
                woken.push(waker);
            }
        }
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
