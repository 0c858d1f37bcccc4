//! AsyncFd over socket pairs and pipes.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use common::{each, pipe, read_fd, socket_pair, watchdog, write_fd};
use futures_util::poll;
use knote_executor::io::{AsyncFd, Interest, Ready, Registration};
use knote_executor::runtime::Builder;
use knote_executor::time::{sleep, timeout};

#[test]
#[cfg_attr(miri, ignore)]
fn readable_writable_and_try_io() {
    each(|rt, _| {
        rt.block_on(rt.spawn(async {
            let (a, mut b) = socket_pair();
            let fd = AsyncFd::new(a).unwrap();
            // A fresh socket is writable.
            let mut g = fd.writable().await.unwrap();
            assert!(g.ready().is_writable());
            let n = g.try_io(|f| f.get_ref().write(b"ping")).unwrap().unwrap();
            assert_eq!(n, 4);
            let mut buf = [0u8; 8];
            common::wait_until(Duration::from_secs(5), "ping to arrive", || {
                matches!(b.read(&mut buf[..4]), Ok(4))
            });
            assert_eq!(&buf[..4], b"ping");

            // Not readable yet: pending.
            assert!(poll!(pin!(fd.readable())).is_pending());
            b.write_all(b"pong").unwrap();
            let mut g = fd.readable().await.unwrap();
            assert!(g.ready().is_readable());
            assert!(!g.ready().is_read_closed());
            let n = g.try_io(|f| f.get_ref().read(&mut buf)).unwrap().unwrap();
            assert_eq!(&buf[..n], b"pong");
            // Drained: the next try fails with WouldBlock and clears readiness.
            assert!(g.try_io(|f| f.get_ref().read(&mut buf)).is_err());
            assert!(
                poll!(pin!(fd.readable())).is_pending(),
                "readiness was cleared by the WouldBlock"
            );
            // A new edge sets it again.
            b.write_all(b"again").unwrap();
            let n = fd
                .async_io(Interest::READABLE, |mut s| s.read(&mut buf))
                .await
                .unwrap();
            assert_eq!(&buf[..n], b"again");
            drop(b);
        }))
        .unwrap();
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn clear_ready_forgets_readiness() {
    each(|rt, _| {
        rt.block_on(async {
            let (a, mut b) = socket_pair();
            let fd = AsyncFd::with_interest(a, Interest::READABLE).unwrap();
            b.write_all(b"x").unwrap();
            let mut g = fd.readable().await.unwrap();
            let mut byte = [0u8; 1];
            assert_eq!(fd.get_ref().read(&mut byte).unwrap(), 1);
            g.clear_ready();
            assert!(poll!(pin!(fd.readable())).is_pending());
            b.write_all(b"y").unwrap();
            let g = fd.readable().await.unwrap();
            assert!(g.ready().is_readable());
            assert_eq!(g.get_ref().as_raw_fd(), fd.as_raw_fd());
            assert!(format!("{g:?}").contains("ready"));
        });
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn eof_is_reported_when_the_peer_closes() {
    each(|rt, _| {
        rt.block_on(rt.spawn(async {
            let (a, mut b) = socket_pair();
            let fd = AsyncFd::new(a).unwrap();
            b.write_all(b"last").unwrap();
            drop(b);
            let mut buf = [0u8; 16];
            let mut data = Vec::new();
            let mut saw_closed = false;
            for _ in 0..100 {
                let mut g = fd.readable().await.unwrap();
                saw_closed |= g.ready().is_read_closed();
                match g.try_io(|f| f.get_ref().read(&mut buf)) {
                    Ok(Ok(0)) => break,
                    Ok(Ok(n)) => data.extend_from_slice(&buf[..n]),
                    Ok(Err(e)) => panic!("read: {e}"),
                    Err(_would_block) => continue,
                }
            }
            assert_eq!(data, b"last");
            assert!(saw_closed, "EV_EOF must show as Ready::is_read_closed");
            // EOF is final: readable at once from now on.
            let g = fd.readable().await.unwrap();
            assert!(g.ready().is_read_closed());
            assert_eq!(fd.get_ref().read(&mut buf).unwrap(), 0);
        }))
        .unwrap();
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn write_backpressure_then_resume() {
    each(|rt, _| {
        let (a, b) = socket_pair();
        let (drain_tx, drain_rx) = std::sync::mpsc::channel::<()>();
        let drainer = std::thread::spawn(move || {
            let mut b = b;
            drain_rx.recv().unwrap();
            b.set_nonblocking(false).unwrap();
            b.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut total = 0usize;
            let mut buf = vec![0u8; 65536];
            // Read everything the writer sends until it closes.
            loop {
                match b.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => total += n,
                    Err(e) => panic!("drain: {e}"),
                }
            }
            total
        });
        let written = rt
            .block_on(rt.spawn(async move {
                let fd = AsyncFd::new(a).unwrap();
                let chunk = [0xabu8; 8192];
                let mut written = 0usize;
                // Fill the socket until WouldBlock.
                let mut full = false;
                for _ in 0..100_000 {
                    let mut g = fd.writable().await.unwrap();
                    match g.try_io(|f| f.get_ref().write(&chunk)) {
                        Ok(Ok(n)) => written += n,
                        Ok(Err(e)) => panic!("write: {e}"),
                        Err(_) => {
                            full = true;
                            break;
                        }
                    }
                }
                assert!(full, "the socket never filled");
                assert!(
                    poll!(pin!(fd.writable())).is_pending(),
                    "full socket must not be writable"
                );
                // The peer starts reading: writable() resumes.
                drain_tx.send(()).unwrap();
                let g = timeout(Duration::from_secs(10), fd.writable())
                    .await
                    .expect("writable again after the peer read")
                    .unwrap();
                assert!(g.ready().is_writable());
                // Write some more through async_io, then close.
                for _ in 0..64 {
                    written += fd
                        .async_io(Interest::WRITABLE, |mut s| s.write(&chunk))
                        .await
                        .unwrap();
                }
                drop(fd);
                written
            }))
            .unwrap();
        assert_eq!(drainer.join().unwrap(), written);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn bulk_transfer_between_two_tasks() {
    // 1 MiB through a socket pair, a writer task and a reader task, both edge-triggered.
    const TOTAL: usize = 1 << 20;
    each(|rt, _| {
        let (a, b) = socket_pair();
        let writer = rt.spawn(async move {
            let fd = AsyncFd::new(a).unwrap();
            let mut sent = 0usize;
            while sent < TOTAL {
                let end = (sent + 3000).min(TOTAL);
                let chunk: Vec<u8> = (sent..end).map(|i| (i % 251) as u8).collect();
                sent += fd
                    .async_io(Interest::WRITABLE, |mut s| s.write(&chunk))
                    .await
                    .unwrap();
            }
        });
        let reader = rt.spawn(async move {
            let fd = AsyncFd::new(b).unwrap();
            let mut got = 0usize;
            let mut buf = [0u8; 1777];
            while got < TOTAL {
                let n = fd
                    .async_io(Interest::READABLE, |mut s| s.read(&mut buf))
                    .await
                    .unwrap();
                assert!(n > 0, "early EOF");
                for (k, byte) in buf[..n].iter().enumerate() {
                    assert_eq!(*byte, ((got + k) % 251) as u8);
                }
                got += n;
            }
            got
        });
        rt.block_on(writer).unwrap();
        assert_eq!(rt.block_on(reader).unwrap(), TOTAL);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn pipe_read_write_and_eof() {
    each(|rt, _| {
        rt.block_on(rt.spawn(async {
            let (r, w) = pipe();
            let rfd = AsyncFd::with_interest(r, Interest::READABLE).unwrap();
            let wfd = AsyncFd::with_interest(w, Interest::WRITABLE).unwrap();
            let n = wfd
                .async_io(Interest::WRITABLE, |w| {
                    write_fd(w.as_raw_fd(), b"through a pipe")
                })
                .await
                .unwrap();
            assert_eq!(n, 14);
            let mut buf = [0u8; 32];
            let n = rfd
                .async_io(Interest::READABLE, |r| read_fd(r.as_raw_fd(), &mut buf))
                .await
                .unwrap();
            assert_eq!(&buf[..n], b"through a pipe");
            // Close the write end: EOF.
            drop(wfd);
            let g = rfd.readable().await.unwrap();
            assert!(g.ready().is_readable());
            let n = rfd
                .async_io(Interest::READABLE, |r| read_fd(r.as_raw_fd(), &mut buf))
                .await
                .unwrap();
            assert_eq!(n, 0, "EOF");
        }))
        .unwrap();
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn pipe_write_end_sees_the_reader_close() {
    each(|rt, _| {
        rt.block_on(rt.spawn(async {
            let (r, w) = pipe();
            let wfd = AsyncFd::with_interest(w, Interest::WRITABLE).unwrap();
            // Fill the pipe, so the next writability is the reader's close.
            let chunk = [1u8; 4096];
            loop {
                let mut g = wfd.writable().await.unwrap();
                match g.try_io(|w| write_fd(w.as_raw_fd(), &chunk)) {
                    Ok(r) => {
                        r.unwrap();
                    }
                    Err(_) => break,
                }
            }
            assert!(poll!(pin!(wfd.writable())).is_pending());
            drop(r);
            let g = timeout(Duration::from_secs(10), wfd.writable())
                .await
                .expect("the reader's close wakes the writer")
                .unwrap();
            let ready = g.ready();
            assert!(ready.is_writable());
            assert!(
                ready.is_write_closed() || ready.is_error(),
                "closed pipe: {ready:?}"
            );
            let err = write_fd(wfd.as_raw_fd(), b"x").unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
        }))
        .unwrap();
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn new_on_an_invalid_fd_fails() {
    each(|rt, _| {
        rt.block_on(rt.spawn(async {
            // Far above anything this process opens. (Only a raw `Registration` can name an fd
            // that is not open; `AsyncFd` wants it owned or borrowed.)
            // SAFETY: the number is not open, so no file is named; registering fails.
            let err = unsafe { Registration::new(999_999, Interest::READABLE) }
                .expect_err("not an open fd");
            assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
            // An empty interest is refused, not registered as a wait that never ends.
            let (a, b) = socket_pair();
            let err = AsyncFd::with_interest(a, Interest::empty()).expect_err("empty interest");
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
            drop(b);
            // The runtime is fine afterwards.
            let (a, _b) = socket_pair();
            let fd = AsyncFd::new(a).unwrap();
            fd.writable().await.unwrap();
        }))
        .unwrap();
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn new_outside_a_runtime_fails_and_with_handle_works() {
    watchdog(|| {
        let (a, mut b) = socket_pair();
        let err = AsyncFd::new(a.try_clone().unwrap()).expect_err("no runtime");
        assert!(err.to_string().contains("no knote runtime"), "{err}");
        let rt = Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let fd = AsyncFd::with_handle(a, Interest::READABLE, rt.handle()).unwrap();
        assert_eq!(fd.registration().interest(), Interest::READABLE);
        assert!(fd.registration().interest().is_readable());
        assert!(!fd.registration().interest().is_writable());
        b.write_all(b"z").unwrap();
        let fd = Arc::new(fd);
        let f = Arc::clone(&fd);
        let got = rt
            .block_on(rt.spawn(async move {
                let mut byte = [0u8; 1];
                f.async_io(Interest::READABLE, |mut s| s.read(&mut byte))
                    .await
                    .unwrap();
                byte[0]
            }))
            .unwrap();
        assert_eq!(got, b'z');
        assert!(format!("{fd:?}").contains("AsyncFd"));
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn into_inner_deregisters() {
    each(|rt, _| {
        rt.block_on(rt.spawn(async {
            let (a, mut b) = socket_pair();
            let raw = a.as_raw_fd();
            let fd = AsyncFd::new(a).unwrap();
            let mut a = fd.into_inner();
            // Still open and usable.
            assert_eq!(a.as_raw_fd(), raw);
            b.write_all(b"q").unwrap();
            let mut byte = [0u8; 1];
            common::wait_until(Duration::from_secs(5), "byte", || {
                matches!(a.read(&mut byte), Ok(1))
            });
            a.write_all(b"r").unwrap();
            // Registering it again (same thread, same kqueue) works: the knotes are gone.
            let fd = AsyncFd::new(a).unwrap();
            b.write_all(b"s").unwrap();
            let n = fd
                .async_io(Interest::READABLE, |mut s| s.read(&mut byte))
                .await
                .unwrap();
            assert_eq!((n, byte[0]), (1, b's'));
            let mut fd = fd;
            // SAFETY: only borrowed, the stream (and its fd) stays in place.
            let _: &mut UnixStream = unsafe { fd.get_mut() };
            drop(b);
        }))
        .unwrap();
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn reused_fd_number_gets_no_stale_readiness() {
    // Drop an AsyncFd whose fd was readable, then make the same fd *number* a different
    // socket (dup2 onto a number we still hold, so no other thread can take it meanwhile)
    // and register it again: the new registration must not inherit the old readiness, and
    // must see its own events.
    each(|rt, _| {
        rt.block_on(rt.spawn(async {
            let (a1, mut b1) = socket_pair();
            let n = a1.as_raw_fd();
            // Keep the number: the AsyncFd borrows it.
            let keep: OwnedFd = a1.into();
            let fd1 = AsyncFd::new(keep.as_fd()).unwrap();
            b1.write_all(b"old").unwrap();
            let g = fd1.readable().await.unwrap();
            assert!(g.ready().is_readable());
            drop(fd1); // deregisters; the fd stays open (held by `keep`)

            let (a2, mut b2) = socket_pair();
            // SAFETY: dup2 onto `n`, which `keep` owns: atomically replaces its file.
            let rc = unsafe { libc::dup2(a2.as_raw_fd(), n) };
            assert_eq!(rc, n);
            drop(a2);
            let fd2 = AsyncFd::new(keep.as_fd()).unwrap();
            // The old socket's data and readiness are gone with it.
            sleep(Duration::from_millis(5)).await;
            assert!(
                poll!(pin!(fd2.readable())).is_pending(),
                "stale readiness from the old registration"
            );
            // The old peer writing again must not wake the new registration (its socket is
            // closed now: the write fails or goes nowhere).
            let _ = b1.write_all(b"ghost");
            sleep(Duration::from_millis(5)).await;
            assert!(poll!(pin!(fd2.readable())).is_pending());
            b2.write_all(b"new").unwrap();
            let mut buf = [0u8; 8];
            let got = fd2
                .async_io(Interest::READABLE, |f| read_fd(f.as_raw_fd(), &mut buf))
                .await
                .unwrap();
            assert_eq!(&buf[..got], b"new");
            drop(fd2);
            drop(keep);
        }))
        .unwrap();
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn dropped_then_reopened_fd_number() {
    // The ordinary way: drop (close) and open a new socket, which usually gets the lowest
    // free number again. Whether or not it does, the new registration behaves correctly.
    each(|rt, _| {
        rt.block_on(rt.spawn(async {
            for _ in 0..20 {
                let (a1, mut b1) = socket_pair();
                let fd1 = AsyncFd::new(a1).unwrap();
                b1.write_all(b"1").unwrap();
                let _ = fd1.readable().await.unwrap();
                drop(fd1);
                let (a2, mut b2) = socket_pair();
                let fd2 = AsyncFd::new(a2).unwrap();
                match poll!(pin!(fd2.readable())) {
                    Poll::Pending => {}
                    Poll::Ready(g) => {
                        // Only a real event may make it ready: a read must not block...
                        // except that it may, if the readiness is stale.
                        let mut g = g.unwrap();
                        let mut b = [0u8; 1];
                        let r = g.try_io(|f| f.get_ref().read(&mut b));
                        assert!(r.is_ok(), "stale readiness on a reused fd number");
                    }
                }
                b2.write_all(b"2").unwrap();
                let mut byte = [0u8; 1];
                fd2.async_io(Interest::READABLE, |mut s| s.read(&mut byte))
                    .await
                    .unwrap();
                assert_eq!(byte[0], b'2');
                drop(b1);
            }
        }))
        .unwrap();
    });
}

#[test]
fn ready_set_accessors() {
    assert!(Ready::READABLE.is_readable());
    assert!(!Ready::READABLE.is_writable());
    assert!(Ready::WRITABLE.is_writable());
    assert!(Ready::READ_CLOSED.is_readable() && Ready::READ_CLOSED.is_read_closed());
    assert!(Ready::WRITE_CLOSED.is_writable() && Ready::WRITE_CLOSED.is_write_closed());
    assert!(Ready::ERROR.is_readable() && Ready::ERROR.is_writable() && Ready::ERROR.is_error());
    assert!(!Ready::EMPTY.is_readable() && !Ready::EMPTY.is_writable());
    let both = Interest::READABLE | Interest::WRITABLE;
    assert!(both.is_readable() && both.is_writable());
    assert_eq!(Interest::READABLE.add(Interest::WRITABLE), both);
}

#[test]
#[cfg_attr(miri, ignore)]
fn reader_and_writer_tasks_share_one_asyncfd() {
    each(|rt, _| {
        let (a, b) = socket_pair();
        let a = Arc::new(rt.block_on(async { AsyncFd::new(a).unwrap() }));
        let bfd = rt.block_on(async { AsyncFd::new(b).unwrap() });
        let a2 = Arc::clone(&a);
        // a's reader waits; a's writer (another task) sends; b echoes.
        let reader = rt.spawn(async move {
            let mut buf = [0u8; 5];
            let n = a2
                .async_io(Interest::READABLE, |mut s| s.read(&mut buf))
                .await
                .unwrap();
            buf[..n].to_vec()
        });
        let a3 = Arc::clone(&a);
        let writer = rt.spawn(async move {
            sleep(Duration::from_millis(2)).await;
            a3.async_io(Interest::WRITABLE, |mut s| s.write(b"echo!"))
                .await
                .unwrap()
        });
        let echo = rt.spawn(async move {
            let mut buf = [0u8; 5];
            let n = bfd
                .async_io(Interest::READABLE, |mut s| s.read(&mut buf))
                .await
                .unwrap();
            bfd.async_io(Interest::WRITABLE, |mut s| s.write(&buf[..n]))
                .await
                .unwrap();
        });
        assert_eq!(rt.block_on(writer).unwrap(), 5);
        rt.block_on(echo).unwrap();
        assert_eq!(rt.block_on(reader).unwrap(), b"echo!");
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn asyncfd_outlives_its_runtime() {
    // Dropping an AsyncFd after its runtime is gone must not crash.
    watchdog(|| {
        let rt = Builder::new_current_thread().build().unwrap();
        let (a, b) = socket_pair();
        let fd = rt.block_on(async { AsyncFd::new(a).unwrap() });
        drop(rt);
        let s: UnixStream = fd.into_inner();
        drop(s);
        drop(b);
    });
}

/// `poll_transfer`: a read that moves fewer bytes than asked for clears readiness (the next
/// poll waits for an event instead of reading `EAGAIN`); a full one keeps it; a new event
/// makes the fd ready again.
#[test]
#[cfg_attr(miri, ignore)]
fn a_short_transfer_clears_readiness() {
    each(|rt, _| {
        rt.block_on(async {
            let (a, mut b) = socket_pair();
            let fd = AsyncFd::with_interest(a, Interest::READABLE).unwrap();
            let reg = fd.registration();
            b.write_all(b"abcdef").unwrap();
            let mut buf = [0u8; 4];
            // Asked for 4, got 4: readiness is kept (2 bytes are still waiting).
            let n = std::future::poll_fn(|cx| {
                reg.poll_transfer(cx, Interest::READABLE, 4, || fd.get_ref().read(&mut buf))
            })
            .await
            .unwrap();
            assert_eq!(n, 4);
            assert!(poll!(std::future::poll_fn(|cx| reg.poll_read_ready(cx))).is_ready());
            // Asked for 4, got 2: drained, readiness cleared without a read that says EAGAIN.
            let n = std::future::poll_fn(|cx| {
                reg.poll_transfer(cx, Interest::READABLE, 4, || fd.get_ref().read(&mut buf))
            })
            .await
            .unwrap();
            assert_eq!(n, 2);
            assert!(poll!(std::future::poll_fn(|cx| reg.poll_read_ready(cx))).is_pending());
            b.write_all(b"g").unwrap();
            let n = std::future::poll_fn(|cx| {
                reg.poll_transfer(cx, Interest::READABLE, 4, || fd.get_ref().read(&mut buf))
            })
            .await
            .unwrap();
            assert_eq!(n, 1);
        });
    });
}
