//! The readiness-first API of the streams (tokio's): `readable()`/`writable()` wait, and
//! `try_read`/`try_write` (and their vectored forms) move bytes without waiting, clearing the
//! readiness they found gone, so the next wait waits for an event. Loopback only.

#[path = "../../executor/tests/common/mod.rs"]
mod common;

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use common::{on, Flavour};
use futures_util::FutureExt;
use knote_executor::spawn;
use knote_executor::time::timeout;
use knote_net::{TcpStream, UnixStream};

/// Longest any one wait may take before the test fails.
const LIMIT: Duration = Duration::from_secs(20);

const BOTH: [Flavour; 2] = [Flavour::Current, Flavour::Multi4];

/// A connected pair: the knote side (registered with the current runtime) and a blocking std
/// peer.
fn tcp_pair() -> (TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    (TcpStream::from_std(accepted).unwrap(), peer)
}

fn would_block<T: std::fmt::Debug>(result: io::Result<T>) -> bool {
    matches!(&result, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

#[test]
fn try_read_without_readiness_would_block_and_readable_waits_for_data() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (stream, mut peer) = tcp_pair();
            let mut buf = [0; 64];
            // Nothing sent yet: no readiness, no wait.
            assert!(would_block(stream.try_read(&mut buf)));
            assert!(stream.readable().now_or_never().is_none());
            peer.write_all(b"hello").unwrap();
            timeout(LIMIT, stream.readable()).await.unwrap().unwrap();
            assert_eq!(stream.try_read(&mut buf).unwrap(), 5);
            assert_eq!(&buf[..5], b"hello");
            // The short read drained the socket: readiness is gone, the next wait waits.
            assert!(would_block(stream.try_read(&mut buf)));
            assert!(stream.readable().now_or_never().is_none());
            peer.write_all(b"again").unwrap();
            timeout(LIMIT, stream.readable()).await.unwrap().unwrap();
            assert_eq!(stream.try_read(&mut buf).unwrap(), 5);
            assert_eq!(&buf[..5], b"again");
        });
    });
}

#[test]
fn a_try_read_that_would_block_clears_readiness() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (stream, mut peer) = tcp_pair();
            peer.write_all(&[7; 8]).unwrap();
            timeout(LIMIT, stream.readable()).await.unwrap().unwrap();
            // Exactly what was sent: not a short read, so readiness stays...
            let mut eight = [0; 8];
            assert_eq!(stream.try_read(&mut eight).unwrap(), 8);
            assert!(stream.readable().now_or_never().is_some());
            // ...until the socket says `EAGAIN`, which clears it.
            assert!(would_block(stream.try_read(&mut eight)));
            assert!(stream.readable().now_or_never().is_none());
            // The vectored form reads the next message.
            peer.write_all(b"abcdef").unwrap();
            timeout(LIMIT, stream.readable()).await.unwrap().unwrap();
            let (mut a, mut b) = ([0; 2], [0; 8]);
            let n = stream
                .try_read_vectored(&mut [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)])
                .unwrap();
            assert_eq!((n, &a, &b[..4]), (6, b"ab", &b"cdef"[..]));
        });
    });
}

#[test]
fn try_read_sees_eof_after_readable() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (stream, peer) = tcp_pair();
            peer.shutdown(Shutdown::Write).unwrap();
            timeout(LIMIT, stream.readable()).await.unwrap().unwrap();
            assert_eq!(stream.try_read(&mut [0; 16]).unwrap(), 0);
            // EOF is final: still readable, still EOF.
            assert!(stream.readable().now_or_never().is_some());
            assert_eq!(stream.try_read(&mut [0; 16]).unwrap(), 0);
        });
    });
}

/// Fill the send buffer with `try_write` until it says `WouldBlock` (the peer reads nothing);
/// `writable()` then waits until the peer drains, and writing works again.
#[test]
fn try_write_until_full_then_writable_waits_for_room() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (stream, mut peer) = tcp_pair();
            // A fresh stream is writable at once.
            timeout(LIMIT, stream.writable()).await.unwrap().unwrap();
            let chunk = vec![3; 64 << 10];
            let mut sent = 0;
            // Loopback buffers are a few MiB at most: 4 GiB means the writes never filled it.
            for _ in 0..65_536 {
                match stream.try_write(&chunk) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("try_write: {e}"),
                }
            }
            assert!(would_block(stream.try_write(&chunk)), "never filled");
            assert!(stream.writable().now_or_never().is_none());
            let drain = std::thread::spawn(move || {
                let mut buf = vec![0; 64 << 10];
                let mut got = 0;
                while got < sent + 2 {
                    let n = peer.read(&mut buf).unwrap();
                    assert_ne!(n, 0, "EOF after {got} bytes");
                    got += n;
                }
                got
            });
            timeout(LIMIT, stream.writable()).await.unwrap().unwrap();
            let wrote = stream
                .try_write_vectored(&[IoSlice::new(b"x"), IoSlice::new(b"y")])
                .unwrap();
            assert_eq!(wrote, 2);
            assert_eq!(drain.join().unwrap(), sent + 2);
        });
    });
}

/// Several tasks wait on one shared stream (`&self`): one event wakes them all.
#[test]
fn several_tasks_wait_for_readable_on_a_shared_stream() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (stream, mut peer) = tcp_pair();
            let stream = Arc::new(stream);
            let waiters: Vec<_> = (0..3)
                .map(|_| {
                    let stream = Arc::clone(&stream);
                    spawn(async move { timeout(LIMIT, stream.readable()).await })
                })
                .collect();
            // Let them park before the data comes.
            knote_executor::time::sleep(Duration::from_millis(20)).await;
            peer.write_all(b"z").unwrap();
            for w in waiters {
                w.await.unwrap().unwrap().unwrap();
            }
            let mut buf = [0; 4];
            assert_eq!(stream.try_read(&mut buf).unwrap(), 1);
        });
    });
}

#[test]
fn unix_streams_have_the_same_methods() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (a, b) = UnixStream::pair().unwrap();
            let mut buf = [0; 16];
            assert!(would_block(a.try_read(&mut buf)));
            timeout(LIMIT, b.writable()).await.unwrap().unwrap();
            assert_eq!(b.try_write(b"ping").unwrap(), 4);
            timeout(LIMIT, a.readable()).await.unwrap().unwrap();
            assert_eq!(a.try_read(&mut buf).unwrap(), 4);
            assert!(would_block(a.try_read(&mut buf)));
            assert_eq!(b.try_write_vectored(&[IoSlice::new(b"po")]).unwrap(), 2);
            timeout(LIMIT, a.readable()).await.unwrap().unwrap();
            let n = a
                .try_read_vectored(&mut [IoSliceMut::new(&mut buf)])
                .unwrap();
            assert_eq!(&buf[..n], b"po");
        });
    });
}
