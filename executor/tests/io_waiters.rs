//! Several waiters on one fd: every task awaiting a direction is woken by its events, a
//! cancelled wait leaves nothing behind, readers and writers wait independently, and a
//! registration over a dup of an fd leaves the other number's knotes alone.

mod common;

use std::future::Future;
use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::{each, socket_pair, CountingWaker};
use futures_util::poll;
use knote_executor::io::{AsyncFd, Interest};
use knote_executor::time::{sleep, timeout};

/// Long enough for a woken task to run on any flavour; a lost wake-up fails the test after it.
const WOKEN_WITHIN: Duration = Duration::from_secs(10);

/// Sleeps in small steps until `count` reaches `n` (bounded by the watchdog).
async fn until_started(count: &AtomicUsize, n: usize) {
    while count.load(Ordering::SeqCst) < n {
        sleep(Duration::from_millis(1)).await;
    }
    // Let the last ones reach their first pending poll.
    sleep(Duration::from_millis(5)).await;
}

fn all_readers_are_woken(n: usize) {
    each(move |rt, flavour| {
        let (a, mut b) = socket_pair();
        let fd = Arc::new(rt.block_on(async { AsyncFd::new(a).unwrap() }));
        let started = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let fd = Arc::clone(&fd);
                let started = Arc::clone(&started);
                rt.spawn(async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    let guard = fd.readable().await.unwrap();
                    assert!(guard.ready().is_readable());
                })
            })
            .collect();
        rt.block_on(async {
            until_started(&started, n).await;
            b.write_all(b"x").unwrap();
            for (i, task) in tasks.into_iter().enumerate() {
                timeout(WOKEN_WITHIN, task)
                    .await
                    .unwrap_or_else(|_| panic!("{flavour:?}: waiter {i} of {n} never woken"))
                    .unwrap();
            }
        });
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn two_tasks_awaiting_readable_are_both_woken() {
    all_readers_are_woken(2);
}

#[test]
#[cfg_attr(miri, ignore)]
fn many_tasks_awaiting_readable_are_all_woken() {
    all_readers_are_woken(16);
}

#[test]
#[cfg_attr(miri, ignore)]
fn several_readers_of_one_datagram_socket_each_get_a_datagram() {
    // The `Arc<UdpSocket>` server pattern: K tasks in `async_io(READABLE, recv)` on one
    // socket; K datagrams; each task gets one (those that lose the race to a datagram see
    // WouldBlock, clear and wait again).
    const K: usize = 6;
    each(|rt, flavour| {
        let (a, b) = UnixDatagram::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let fd = Arc::new(rt.block_on(async { AsyncFd::new(a).unwrap() }));
        let started = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..K)
            .map(|_| {
                let fd = Arc::clone(&fd);
                let started = Arc::clone(&started);
                rt.spawn(async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    let mut buf = [0u8; 8];
                    let n = fd
                        .async_io(Interest::READABLE, |s| s.recv(&mut buf))
                        .await
                        .unwrap();
                    assert_eq!(n, 1);
                    buf[0]
                })
            })
            .collect();
        let mut got = rt.block_on(async {
            until_started(&started, K).await;
            for i in 0..K as u8 {
                b.send(&[i]).unwrap();
            }
            let mut got = Vec::new();
            for task in tasks {
                let byte = timeout(WOKEN_WITHIN, task)
                    .await
                    .unwrap_or_else(|_| panic!("{flavour:?}: a reader was never woken"))
                    .unwrap();
                got.push(byte);
            }
            got
        });
        got.sort_unstable();
        assert_eq!(got, (0..K as u8).collect::<Vec<_>>());
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_dropped_wait_leaves_no_waker_behind() {
    each(|rt, _| {
        rt.block_on(rt.spawn(async {
            let (a, mut b) = socket_pair();
            let fd = AsyncFd::new(a).unwrap();
            let counter = CountingWaker::new();
            {
                let waker = Waker::from(Arc::clone(&counter));
                let mut cx = Context::from_waker(&waker);
                let mut wait = pin!(fd.readable());
                assert!(wait.as_mut().poll(&mut cx).is_pending());
                // Polled again with the same waker: still one entry, one clone.
                assert!(wait.as_mut().poll(&mut cx).is_pending());
                assert_eq!(Arc::strong_count(&counter), 3, "the waiter holds one clone");
            }
            assert_eq!(
                Arc::strong_count(&counter),
                1,
                "a dropped readable() future left its waker in the registration"
            );
            // An event now wakes nobody dead (and the live wait below still works).
            b.write_all(b"x").unwrap();
            let guard = timeout(WOKEN_WITHIN, fd.readable())
                .await
                .expect("woken")
                .unwrap();
            assert!(guard.ready().is_readable());
            assert_eq!(counter.count(), 0, "the dropped wait was woken");
            // The same for a cancelled async_io.
            let mut byte = [0u8; 1];
            assert_eq!(fd.get_ref().read(&mut byte).unwrap(), 1);
            {
                let waker = Waker::from(Arc::clone(&counter));
                let mut cx = Context::from_waker(&waker);
                let mut io = pin!(fd.async_io(Interest::READABLE, |mut s| s.read(&mut byte)));
                assert!(io.as_mut().poll(&mut cx).is_pending());
            }
            assert_eq!(Arc::strong_count(&counter), 1, "async_io left its waker");
            b.write_all(b"y").unwrap();
            let mut byte = [0u8; 1];
            fd.async_io(Interest::READABLE, |mut s| s.read(&mut byte))
                .await
                .unwrap();
            assert_eq!((byte[0], counter.count()), (b'y', 0));
        }))
        .unwrap();
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_reader_and_a_writer_wait_independently() {
    each(|rt, flavour| {
        let (a, mut b) = socket_pair();
        let fd = Arc::new(rt.block_on(async { AsyncFd::new(a).unwrap() }));
        // Fill a's send buffer: not writable, and nothing to read either.
        rt.block_on(async {
            let chunk = [0u8; 4096];
            for _ in 0..100_000 {
                let mut guard = fd.writable().await.unwrap();
                if guard.try_io(|f| f.get_ref().write(&chunk)).is_err() {
                    return;
                }
            }
            panic!("the socket never filled");
        });
        let read_done = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicUsize::new(0));
        let reader = {
            let (fd, done, started) = (
                Arc::clone(&fd),
                Arc::clone(&read_done),
                Arc::clone(&started),
            );
            rt.spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                let guard = fd.readable().await.unwrap();
                assert!(guard.ready().is_readable());
                done.store(true, Ordering::SeqCst);
            })
        };
        let writer = {
            let (fd, started) = (Arc::clone(&fd), Arc::clone(&started));
            rt.spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                let guard = fd.writable().await.unwrap();
                assert!(guard.ready().is_writable());
            })
        };
        rt.block_on(async {
            until_started(&started, 2).await;
            // The peer drains: a write event, which wakes the writer only.
            let mut sink = vec![0u8; 1 << 16];
            while b.read(&mut sink).is_ok() {}
            timeout(WOKEN_WITHIN, writer)
                .await
                .unwrap_or_else(|_| panic!("{flavour:?}: the writer was never woken"))
                .unwrap();
            sleep(Duration::from_millis(5)).await;
            assert!(
                !read_done.load(Ordering::SeqCst),
                "{flavour:?}: the reader completed on a write event"
            );
            // Now a read event.
            b.write_all(b"r").unwrap();
            timeout(WOKEN_WITHIN, reader)
                .await
                .unwrap_or_else(|_| panic!("{flavour:?}: the reader was never woken"))
                .unwrap();
        });
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn poll_read_ready_keeps_the_last_callers_waker_beside_the_waiters() {
    // The poll_* API's one waker slot (tokio's semantics) lives beside the waiter list: a
    // readable() waiter and a poll_read_ready caller are both woken by one event.
    each(|rt, _| {
        rt.block_on(rt.spawn(async {
            let (a, mut b) = socket_pair();
            let fd = AsyncFd::new(a).unwrap();
            let first = CountingWaker::new();
            let last = CountingWaker::new();
            let listed = CountingWaker::new();
            for w in [&first, &last] {
                let waker = Waker::from(Arc::clone(w));
                assert!(fd
                    .poll_read_ready(&mut Context::from_waker(&waker))
                    .is_pending());
            }
            let waker = Waker::from(Arc::clone(&listed));
            let mut wait = pin!(fd.readable());
            assert!(wait
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
            b.write_all(b"x").unwrap();
            // This task's own wait completes once the event is dispatched; the dispatching
            // thread (another worker, on a multi-thread runtime) may still be waking the
            // others when it does: wait for their wake-ups, boundedly.
            timeout(WOKEN_WITHIN, fd.readable())
                .await
                .expect("woken")
                .unwrap();
            timeout(WOKEN_WITHIN, async {
                while listed.count() == 0 || last.count() == 0 {
                    sleep(Duration::from_millis(1)).await;
                }
            })
            .await
            .expect("the listed waiter and the poll_* API's last waker are woken");
            assert_eq!(listed.count(), 1, "the listed waiter is woken once");
            assert_eq!(last.count(), 1, "the poll_* API's last waker is woken once");
            assert_eq!(
                first.count(),
                0,
                "only the last poll_* caller's waker is kept"
            );
            assert!(matches!(
                wait.as_mut().poll(&mut Context::from_waker(&waker)),
                Poll::Ready(Ok(_))
            ));
        }))
        .unwrap();
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn dropping_a_registration_over_a_dup_leaves_the_other_number_alone() {
    // Two registrations of one file under two numbers (a dup): knotes are keyed by number, so
    // dropping one (its knotes deleted, its number closed) must leave the other's working.
    each(|rt, flavour| {
        rt.block_on(rt.spawn(async move {
            let (a, mut b) = socket_pair();
            let dup = a.try_clone().unwrap();
            let first = AsyncFd::new(a).unwrap();
            let second = AsyncFd::new(dup).unwrap();
            drop(first);
            assert!(poll!(pin!(second.readable())).is_pending());
            b.write_all(b"d").unwrap();
            let mut byte = [0u8; 1];
            timeout(
                WOKEN_WITHIN,
                second.async_io(Interest::READABLE, |mut s| s.read(&mut byte)),
            )
            .await
            .unwrap_or_else(|_| panic!("{flavour:?}: the dup's knotes went with the other"))
            .unwrap();
            assert_eq!(byte[0], b'd');
            // And a new socket that takes the freed number gets its own, working knotes.
            let (c, mut e) = socket_pair();
            let third = AsyncFd::new(c).unwrap();
            e.write_all(b"n").unwrap();
            timeout(
                WOKEN_WITHIN,
                third.async_io(Interest::READABLE, |mut s| s.read(&mut byte)),
            )
            .await
            .expect("the new owner of the number is woken")
            .unwrap();
            assert_eq!(byte[0], b'n');
        }))
        .unwrap();
    });
}
