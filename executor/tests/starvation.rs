//! A busy task cannot starve timers, sockets or other tasks.

mod common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{each, on, socket_pair, SINGLE};
use knote_executor::io::{AsyncFd, Interest};
use knote_executor::spawn;
use knote_executor::task::yield_now;
use knote_executor::time::sleep;

/// A task that yields in a loop until `stop`; returns how many times it yielded.
async fn busy(stop: Arc<AtomicBool>) -> u64 {
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        yield_now().await;
    }
    n
}

#[test]
#[cfg_attr(miri, ignore)]
fn yielding_task_does_not_starve_a_timer() {
    on(&SINGLE, |rt, _| {
        let stop = Arc::new(AtomicBool::new(false));
        let spins = rt.spawn(busy(Arc::clone(&stop)));
        let s = Arc::clone(&stop);
        let timer = rt.spawn(async move {
            let start = Instant::now();
            sleep(Duration::from_millis(10)).await;
            s.store(true, Ordering::SeqCst);
            start.elapsed()
        });
        let (elapsed, n) = rt.block_on(async move { (timer.await.unwrap(), spins.await.unwrap()) });
        assert!(elapsed >= Duration::from_millis(10));
        assert!(n > 0, "the busy task ran meanwhile");
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn yielding_task_does_not_starve_the_block_on_future() {
    on(&SINGLE, |rt, _| {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        let (st, s) = (Arc::clone(&started), Arc::clone(&stop));
        let spins = rt.spawn(async move {
            st.store(true, Ordering::SeqCst);
            busy(s).await
        });
        rt.block_on(async {
            // Once the busy task runs, the block_on future's timer must still fire.
            while !started.load(Ordering::SeqCst) {
                yield_now().await;
            }
            sleep(Duration::from_millis(10)).await;
        });
        stop.store(true, Ordering::SeqCst);
        assert!(rt.block_on(spins).unwrap() > 0);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn yielding_tasks_do_not_starve_each_other_or_remote_wakeups() {
    on(&SINGLE, |rt, _| {
        let stop = Arc::new(AtomicBool::new(false));
        let busy: Vec<_> = (0..8).map(|_| rt.spawn(busy(Arc::clone(&stop)))).collect();
        // A task woken from another thread (remote queue) gets to run.
        let (tx, rx) = knote_executor::sync::oneshot::channel::<u32>();
        let waiter = rt.spawn(async move { rx.await.unwrap() });
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            tx.send(3).unwrap();
        });
        assert_eq!(rt.block_on(waiter).unwrap(), 3);
        stop.store(true, Ordering::SeqCst);
        t.join().unwrap();
        rt.block_on(async {
            for b in busy {
                assert!(b.await.unwrap() > 0);
            }
        });
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn yielding_task_does_not_starve_a_socket() {
    on(&SINGLE, |rt, _| {
        let (a, mut b) = socket_pair();
        let stop = Arc::new(AtomicBool::new(false));
        let spins = rt.spawn(busy(Arc::clone(&stop)));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let s = Arc::clone(&stop);
        let reader = rt.spawn(async move {
            let fd = AsyncFd::new(a).unwrap();
            ready_tx.send(()).unwrap();
            let mut buf = [0u8; 16];
            let n = fd
                .async_io(Interest::READABLE, |mut s| s.read(&mut buf))
                .await
                .unwrap();
            s.store(true, Ordering::SeqCst);
            buf[..n].to_vec()
        });
        let writer = std::thread::spawn(move || {
            ready_rx.recv().unwrap();
            std::thread::sleep(Duration::from_millis(5));
            b.write_all(b"hello").unwrap();
            b
        });
        let got = rt.block_on(reader).unwrap();
        assert_eq!(got, b"hello");
        assert!(rt.block_on(spins).unwrap() > 0);
        drop(writer.join().unwrap());
    });
}

/// recv(2) of one byte with MSG_PEEK: always ready once data is there, never drains it.
fn peek_one(s: &std::os::unix::net::UnixStream) -> std::io::Result<u8> {
    use std::os::fd::AsRawFd;
    let mut b = 0u8;
    // SAFETY: one valid byte of buffer.
    let n = unsafe { libc::recv(s.as_raw_fd(), (&mut b as *mut u8).cast(), 1, libc::MSG_PEEK) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(b)
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn always_ready_fd_does_not_starve_a_timer() {
    // The reader never gets WouldBlock (it peeks): only the cooperative budget makes it
    // yield. Without it, the timer task would never run and this test would hang.
    each(|rt, _| {
        let (a, mut b) = socket_pair();
        b.write_all(&[7u8; 4096]).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        let (s, r) = (Arc::clone(&stop), Arc::clone(&reads));
        let reader = rt.spawn(async move {
            let fd = AsyncFd::new(a).unwrap();
            while !s.load(Ordering::SeqCst) {
                let byte = fd.async_io(Interest::READABLE, peek_one).await.unwrap();
                assert_eq!(byte, 7);
                r.fetch_add(1, Ordering::Relaxed);
            }
        });
        let (s, r) = (Arc::clone(&stop), Arc::clone(&reads));
        let timer = rt.spawn(async move {
            // Start the clock once the reader is spinning.
            while r.load(Ordering::Relaxed) == 0 {
                yield_now().await;
            }
            let start = Instant::now();
            sleep(Duration::from_millis(10)).await;
            s.store(true, Ordering::SeqCst);
            start.elapsed()
        });
        let elapsed = rt.block_on(timer).unwrap();
        assert!(elapsed >= Duration::from_millis(10));
        rt.block_on(reader).unwrap();
        assert!(reads.load(Ordering::Relaxed) > 0);
        drop(b);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn always_ready_fd_reading_bytes_does_not_starve_a_timer() {
    // The same with real 1-byte reads from a socket full of data.
    each(|rt, _| {
        let (a, mut b) = socket_pair();
        let mut filled = 0usize;
        loop {
            match b.write(&[1u8; 4096]) {
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
            if filled > 8 << 20 {
                break;
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(AtomicUsize::new(0));
        let (s, p) = (Arc::clone(&stop), Arc::clone(&progress));
        let reader = rt.spawn(async move {
            let fd = AsyncFd::new(a).unwrap();
            let mut got = 0usize;
            let mut byte = [0u8; 1];
            while !s.load(Ordering::SeqCst) {
                let n = fd
                    .async_io(Interest::READABLE, |mut s| s.read(&mut byte))
                    .await
                    .unwrap();
                got += n;
                p.store(got, Ordering::Relaxed);
            }
            got
        });
        let (s, p) = (Arc::clone(&stop), Arc::clone(&progress));
        let timer = rt.spawn(async move {
            while p.load(Ordering::Relaxed) == 0 {
                yield_now().await;
            }
            sleep(Duration::from_millis(5)).await;
            s.store(true, Ordering::SeqCst);
        });
        rt.block_on(timer).unwrap();
        let got = rt.block_on(reader).unwrap();
        assert!(got > 0 && got <= filled);
        drop(b);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn many_ready_join_handles_in_one_poll_do_not_starve() {
    // Awaiting thousands of finished JoinHandles in one task spends the budget too.
    each(|rt, _| {
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let timer = rt.spawn(async move {
            sleep(Duration::from_millis(2)).await;
            s.store(true, Ordering::SeqCst);
        });
        let total = rt.block_on(async {
            let mut total = 0u64;
            loop {
                let hs: Vec<_> = (0..300u64).map(|i| spawn(async move { i })).collect();
                for h in hs {
                    total += h.await.unwrap();
                }
                if stop.load(Ordering::SeqCst) {
                    break;
                }
            }
            total
        });
        rt.block_on(timer).unwrap();
        assert!(total > 0);
    });
}

/// Wakes its task while it runs, like an event arriving mid-poll (not a yield).
struct WakeSelfOnce(bool);

impl std::future::Future for WakeSelfOnce {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

/// A task woken while it runs is queued like any woken task; only `yield_now` sends a task
/// behind everything else. (Every wake-up while running was treated as a yield: such a task
/// waited behind yielding loops and was invisible to stealers.)
#[test]
#[cfg_attr(miri, ignore)]
fn woken_while_running_is_not_a_yield() {
    on(&[common::Flavour::Multi1], |rt, _| {
        let yields = Arc::new(AtomicUsize::new(0));
        let seen = rt.block_on(async {
            let y = Arc::clone(&yields);
            spawn(async move {
                let y2 = Arc::clone(&y);
                // A yielding loop, spawned by the task below on the same (only) worker.
                spawn(async move {
                    for _ in 0..100 {
                        knote_executor::task::yield_now().await;
                        y2.fetch_add(1, Ordering::SeqCst);
                    }
                });
                for _ in 0..10 {
                    WakeSelfOnce(false).await;
                }
                y.load(Ordering::SeqCst)
            })
            .await
            .unwrap()
        });
        assert!(
            seen <= 1,
            "the yielding loop ran {seen} times ahead of a task woken while running"
        );
    });
}

/// The `block_on` future itself yielding in a loop (no task at all) does not starve a timer
/// it waits for beside the loop: the runtime still looks at its kqueue and fires due timers.
#[test]
#[cfg_attr(miri, ignore)]
fn a_yielding_block_on_future_does_not_starve_its_own_timer() {
    on(&SINGLE, |rt, _| {
        let yields = rt.block_on(async {
            let mut timer = std::pin::pin!(sleep(Duration::from_millis(10)));
            // Bounded: a starved timer never fires, and the loop gives up instead of hanging.
            for n in 0..20_000_000u64 {
                if futures_util::poll!(timer.as_mut()).is_ready() {
                    return Some(n);
                }
                yield_now().await;
            }
            None
        });
        assert!(
            yields.is_some(),
            "the timer never fired while block_on's future yielded"
        );
    });
}
