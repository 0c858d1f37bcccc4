//! UDP on loopback: send_to/recv_from, connected send/recv, two tasks reading one socket,
//! peek, options, multicast membership, and non-blocking/close-on-exec sockets.

#[path = "../../executor/tests/common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use common::{on, Flavour};
use knote_executor::spawn;
use knote_executor::time::timeout;
use knote_net::UdpSocket;

const LIMIT: Duration = Duration::from_secs(20);
const BOTH: [Flavour; 2] = [Flavour::Current, Flavour::Multi4];

async fn bound() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

#[test]
fn send_to_and_recv_from() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (a, a_addr) = bound().await;
            let (b, b_addr) = bound().await;
            // SAFETY: fcntl F_GETFL/F_GETFD on an open fd.
            let (fl, fd) = unsafe {
                (
                    libc::fcntl(a.as_raw_fd(), libc::F_GETFL),
                    libc::fcntl(a.as_raw_fd(), libc::F_GETFD),
                )
            };
            assert!(fl & libc::O_NONBLOCK != 0 && fd & libc::FD_CLOEXEC != 0);
            let reply = spawn(async move {
                let mut buf = [0; 64];
                let (n, from) = b.recv_from(&mut buf).await.unwrap();
                b.send_to(&buf[..n], from).await.unwrap();
                from
            });
            a.send_to(b"datagram", b_addr).await.unwrap();
            let mut buf = [0; 64];
            let (n, from) = timeout(LIMIT, a.recv_from(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&buf[..n], b"datagram");
            assert_eq!(from, b_addr);
            assert_eq!(reply.await.unwrap(), a_addr);
        });
    });
}

#[test]
fn connected_send_recv_and_peek() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (a, a_addr) = bound().await;
            let (b, b_addr) = bound().await;
            a.connect(b_addr).await.unwrap();
            b.connect(a_addr).await.unwrap();
            assert_eq!(a.peer_addr().unwrap(), b_addr);
            a.send(b"first").await.unwrap();
            a.send(b"second").await.unwrap();
            let mut buf = [0; 16];
            let n = b.peek(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"first");
            let (n, from) = b.peek_from(&mut buf).await.unwrap();
            assert_eq!((&buf[..n], from), (&b"first"[..], a_addr));
            let n = b.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"first", "peek left the datagram queued");
            let n = b.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"second");
            let err = b.try_recv(&mut buf).expect_err("nothing queued");
            assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
            // poll forms
            std::future::poll_fn(|cx| a.poll_send(cx, b"polled"))
                .await
                .unwrap();
            let n = std::future::poll_fn(|cx| b.poll_recv(cx, &mut buf))
                .await
                .unwrap();
            assert_eq!(&buf[..n], b"polled");
        });
    });
}

#[test]
fn two_tasks_read_one_socket() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (rx, rx_addr) = bound().await;
            let rx = Arc::new(rx);
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    let rx = Arc::clone(&rx);
                    spawn(async move {
                        let mut got = Vec::new();
                        let mut buf = [0; 8];
                        loop {
                            let n = rx.recv(&mut buf).await.unwrap();
                            if &buf[..n] == b"end" {
                                return got;
                            }
                            got.push(u32::from_le_bytes(buf[..4].try_into().unwrap()));
                        }
                    })
                })
                .collect();
            // Both readers wait before anything is sent, so both are woken by the first
            // datagram's event.
            knote_executor::time::sleep(Duration::from_millis(20)).await;
            let (tx, _) = bound().await;
            for i in 0..200u32 {
                tx.send_to(&i.to_le_bytes(), rx_addr).await.unwrap();
                if i % 16 == 0 {
                    knote_executor::task::yield_now().await;
                }
            }
            for _ in 0..2 {
                tx.send_to(b"end", rx_addr).await.unwrap();
            }
            let mut all = HashSet::new();
            for r in readers {
                let got = timeout(LIMIT, r).await.expect("a reader stalled").unwrap();
                for v in got {
                    assert!(all.insert(v), "datagram {v} read twice");
                }
            }
            assert_eq!(all.len(), 200, "every datagram read exactly once");
        });
    });
}

#[test]
fn options_and_multicast() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (s, _) = bound().await;
            s.set_broadcast(true).unwrap();
            assert!(s.broadcast().unwrap());
            s.set_ttl(9).unwrap();
            assert_eq!(s.ttl().unwrap(), 9);
            s.set_multicast_loop_v4(false).unwrap();
            assert!(!s.multicast_loop_v4().unwrap());
            s.set_multicast_ttl_v4(3).unwrap();
            assert_eq!(s.multicast_ttl_v4().unwrap(), 3);
            let group = Ipv4Addr::new(239, 255, 0, 77);
            s.join_multicast_v4(group, Ipv4Addr::LOCALHOST).unwrap();
            s.leave_multicast_v4(group, Ipv4Addr::LOCALHOST).unwrap();
            let err = s
                .leave_multicast_v4(group, Ipv4Addr::LOCALHOST)
                .expect_err("not a member any more");
            assert!(err.raw_os_error().is_some(), "{err}");

            let s6 = UdpSocket::bind("[::1]:0").await.unwrap();
            let group6: Ipv6Addr = "ff02::1:77".parse().unwrap();
            // Interface 1 is loopback on Linux; the BSDs and macOS number it 1 too.
            s6.join_multicast_v6(&group6, 1).unwrap();
            s6.leave_multicast_v6(&group6, 1).unwrap();
            s6.set_multicast_loop_v6(true).unwrap();
            assert!(s6.multicast_loop_v6().unwrap());

            // from_std sets non-blocking; into_std hands the socket back.
            let std_socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let addr = std_socket.local_addr().unwrap();
            let s = UdpSocket::from_std(std_socket).unwrap();
            let err = s.try_recv_from(&mut [0; 4]).expect_err("nothing queued");
            assert_eq!(
                err.kind(),
                io::ErrorKind::WouldBlock,
                "from_std left it blocking"
            );
            assert_eq!(s.into_std().local_addr().unwrap(), addr);
        });
    });
}
