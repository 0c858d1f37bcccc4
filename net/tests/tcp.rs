//! TCP on loopback: connecting (refused, through a name, each address in turn), accepting,
//! resets, half-closes, 1,000 concurrent echo connections on both runtime flavours,
//! futures-io utilities, split halves, options, and the non-blocking/close-on-exec guarantee.

#[path = "../../executor/tests/common/mod.rs"]
mod common;

use std::io;
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use common::{on, Flavour};
use futures_util::io::{copy, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use futures_util::StreamExt;
use knote_executor::spawn;
use knote_executor::time::timeout;
use knote_net::{lookup_host, TcpListener, TcpSocket, TcpStream};

/// Longest any one exchange may take before the test fails.
const LIMIT: Duration = Duration::from_secs(20);

const BOTH: [Flavour; 2] = [Flavour::Current, Flavour::Multi4];

fn fd_flags(fd: i32) -> (bool, bool) {
    // SAFETY: fcntl F_GETFL/F_GETFD on an fd the caller keeps open.
    let (fl, fd_fl) = unsafe {
        (
            libc::fcntl(fd, libc::F_GETFL),
            libc::fcntl(fd, libc::F_GETFD),
        )
    };
    assert!(
        fl >= 0 && fd_fl >= 0,
        "fcntl: {}",
        io::Error::last_os_error()
    );
    (fl & libc::O_NONBLOCK != 0, fd_fl & libc::FD_CLOEXEC != 0)
}

/// Raises the soft descriptor limit (a CI box may start at 1,024; 1,000 connections need two
/// ends each).
fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is valid for writes.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    if lim.rlim_cur < want as libc::rlim_t {
        lim.rlim_cur = lim.rlim_max.min(want as libc::rlim_t);
        // SAFETY: `lim` is a valid rlimit.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    }
}

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// Accepts forever, echoing each connection with `futures::io::copy` over its split halves.
async fn echo_server(listener: TcpListener) {
    loop {
        let (mut stream, _) = listener.accept().await.expect("accept");
        spawn(async move {
            // (`TcpStream::split`, not futures' `AsyncReadExt::split`, which takes the stream by
            // value and would win method resolution.)
            let (r, mut w) = TcpStream::split(&mut stream);
            copy(r, &mut w).await.expect("echo copy");
            w.close().await.expect("shutdown after echo");
        });
    }
}

fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ seed.wrapping_mul(131) ^ (i >> 8)) as u8)
        .collect()
}

#[test]
fn connect_refused_is_an_error() {
    on(&BOTH, |rt, _| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(); // closed again: nothing listens there now
        let err = rt
            .block_on(timeout(LIMIT, TcpStream::connect(("127.0.0.1", port))))
            .expect("connect finished")
            .expect_err("nothing listens");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    });
}

/// "Unreachable" made deterministic on loopback-only machines: a TCP connect to the IPv4
/// limited-broadcast or a multicast address is refused by the stack itself before any packet
/// is sent (Linux answers `ENETUNREACH`; the BSDs and macOS an error too), whatever the
/// routing table holds, where a TEST-NET address would depend on a default route and time out.
#[test]
fn connect_unreachable_is_an_error() {
    on(&BOTH, |rt, _| {
        for addr in ["255.255.255.255:9", "224.0.0.1:9"] {
            let err = rt
                .block_on(timeout(LIMIT, TcpStream::connect(addr)))
                .expect("connect finished")
                .expect_err("no TCP to broadcast or multicast");
            #[cfg(any(target_os = "linux", target_os = "android"))]
            assert_eq!(err.raw_os_error(), Some(libc::ENETUNREACH), "{addr}: {err}");
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            assert!(
                err.raw_os_error().is_some(),
                "{addr}: a kernel error, {err}"
            );
        }
    });
}

#[test]
fn connect_by_name_tries_each_address() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (l, addr) = listener().await;
            // "localhost" may resolve to ::1 first, where nothing listens: the IPv4 address is
            // tried next. The lookup itself runs on the blocking pool.
            let connect = TcpStream::connect(format!("localhost:{}", addr.port()));
            let (client, accepted) = futures_util::join!(connect, l.accept());
            let client = client.expect("connect through localhost");
            let (server, peer) = accepted.unwrap();
            assert_eq!(client.peer_addr().unwrap(), addr);
            assert_eq!(server.peer_addr().unwrap(), peer);
            assert_eq!(client.local_addr().unwrap(), peer);
        });
    });
}

#[test]
fn lookup_host_resolves_names_and_literals() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let addrs: Vec<_> = lookup_host("localhost:80").await.unwrap().collect();
            assert!(
                addrs.iter().any(|a| a.ip().is_loopback() && a.port() == 80),
                "{addrs:?}"
            );
            let literal: Vec<_> = lookup_host("10.1.2.3:4").await.unwrap().collect();
            assert_eq!(literal, ["10.1.2.3:4".parse::<SocketAddr>().unwrap()]);
            let err = lookup_host("no port here")
                .await
                .expect_err("not an address");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        });
    });
}

#[test]
fn peer_reset_is_an_error_not_a_panic() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (l, addr) = listener().await;
            reset_client(&l, addr).await;
        });
    });
}

/// A client reset by its peer (SO_LINGER 0), the reset already seen by a read: std's
/// `shutdown(Write)` then says ENOTCONN.
async fn reset_client(l: &TcpListener, addr: SocketAddr) -> TcpStream {
    let client = TcpStream::connect(addr).await.unwrap();
    let (server, _) = l.accept().await.unwrap();
    server.set_linger(Some(Duration::ZERO)).unwrap();
    drop(server); // SO_LINGER 0: the close sends RST
    let mut buf = [0; 16];
    let err = timeout(LIMIT, client.read(&mut buf))
        .await
        .expect("the read finished")
        .expect_err("a reset connection");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    let err = client.shutdown(Shutdown::Write).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotConnected, "{err}");
    client
}

/// Closing (futures-io `close`: shutting the write side down) a stream its peer reset is `Ok`:
/// nothing more can reach the peer, which is what the close was for. The stream, `&TcpStream`
/// and both kinds of write half.
#[test]
fn closing_a_stream_its_peer_reset_is_ok() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (l, addr) = listener().await;
            let mut client = reset_client(&l, addr).await;
            client.close().await.expect("the stream");
            let client = reset_client(&l, addr).await;
            let mut shared = &client;
            shared.close().await.expect("&TcpStream");
            let mut client = reset_client(&l, addr).await;
            let (_read, mut write) = TcpStream::split(&mut client);
            write.close().await.expect("the borrowed write half");
            let (_read, mut write) = reset_client(&l, addr).await.into_split();
            write.close().await.expect("the owned write half");
        });
    });
}

#[test]
fn half_close_both_ways() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (l, addr) = listener().await;
            let mut client = TcpStream::connect(addr).await.unwrap();
            let (mut server, _) = l.accept().await.unwrap();

            client.write_all(b"from the client").await.unwrap();
            client.close().await.unwrap(); // shuts the write side only
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"from the client");

            // The client still reads after closing its write side, until the server closes.
            server.write_all(b"from the server").await.unwrap();
            server.shutdown(Shutdown::Write).unwrap();
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"from the server");
        });
    });
}

#[test]
fn a_thousand_concurrent_connections_echo() {
    raise_fd_limit(8192);
    on(&BOTH, |rt, flavour| {
        rt.block_on(async move {
            let (l, addr) = listener().await;
            spawn(echo_server(l));
            let clients: Vec<_> = (0..1000)
                .map(|i| {
                    spawn(async move {
                        let mut stream = TcpStream::connect(addr).await.expect("connect");
                        let message = pattern(i, 256 + i % 700);
                        let (mut r, mut w) = TcpStream::split(&mut stream);
                        let write = async {
                            w.write_all(&message).await.unwrap();
                            w.close().await.unwrap();
                        };
                        let mut back = Vec::new();
                        let read = r.read_to_end(&mut back);
                        let ((), n) = futures_util::join!(write, read);
                        n.unwrap();
                        assert_eq!(back, message, "connection {i} on {flavour:?}");
                    })
                })
                .collect();
            for (i, c) in clients.into_iter().enumerate() {
                timeout(LIMIT, c)
                    .await
                    .unwrap_or_else(|_| panic!("client {i} stalled"))
                    .expect("client task");
            }
        });
    });
}

#[test]
fn futures_io_copy_and_buf_reader() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (l, addr) = listener().await;
            let data = pattern(7, 1 << 20);
            let sent = data.clone();
            let sender = spawn(async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                let mut src: &[u8] = &sent;
                let n = copy(&mut src, &mut s).await.unwrap();
                s.close().await.unwrap();
                n
            });
            let (server, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            let n = copy(server, &mut got).await.unwrap();
            assert_eq!(sender.await.unwrap(), n);
            assert_eq!(n as usize, data.len());
            assert!(got == data, "1 MiB through copy arrived changed");

            // Lines through a BufReader (futures-io's AsyncBufRead over the stream).
            let writer = spawn(async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                s.write_all(b"one\ntwo\nthree\n").await.unwrap();
            });
            let (server, _) = l.accept().await.unwrap();
            let lines: Vec<String> = BufReader::new(server)
                .lines()
                .map(Result::unwrap)
                .collect()
                .await;
            writer.await.unwrap();
            assert_eq!(lines, ["one", "two", "three"]);
        });
    });
}

#[test]
fn shared_stream_one_task_reads_another_writes() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (l, addr) = listener().await;
            spawn(echo_server(l));
            let stream = Arc::new(TcpStream::connect(addr).await.unwrap());
            let data = pattern(3, 300_000);
            let reader = {
                let stream = Arc::clone(&stream);
                let len = data.len();
                spawn(async move {
                    let mut back = vec![0; len];
                    (&*stream).read_exact(&mut back).await.unwrap();
                    back
                })
            };
            let writer = {
                let stream = Arc::clone(&stream);
                let data = data.clone();
                spawn(async move { (&*stream).write_all(&data).await.unwrap() })
            };
            writer.await.unwrap();
            let back = timeout(LIMIT, reader).await.unwrap().unwrap();
            assert!(back == data, "the shared stream mixed bytes up");
        });
    });
}

#[test]
fn inherent_reads_let_several_tasks_wait() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (l, addr) = listener().await;
            let stream = Arc::new(TcpStream::connect(addr).await.unwrap());
            let (mut server, _) = l.accept().await.unwrap();
            let readers: Vec<_> = (0..4)
                .map(|_| {
                    let stream = Arc::clone(&stream);
                    spawn(async move {
                        let mut total = 0;
                        let mut buf = [0; 1];
                        loop {
                            match stream.read(&mut buf).await.unwrap() {
                                0 => return total,
                                n => total += n,
                            }
                        }
                    })
                })
                .collect();
            knote_executor::time::sleep(Duration::from_millis(20)).await;
            server.write_all(&[1; 64]).await.unwrap();
            server.close().await.unwrap();
            let mut total = 0;
            for r in readers {
                total += timeout(LIMIT, r)
                    .await
                    .expect("a reader was not woken")
                    .unwrap();
            }
            assert_eq!(total, 64);
        });
    });
}

#[test]
fn split_halves_and_reunite() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (l, addr) = listener().await;
            spawn(echo_server(l));
            let a = TcpStream::connect(addr).await.unwrap();
            let b = TcpStream::connect(addr).await.unwrap();
            let a_addr = a.local_addr().unwrap();
            let (mut ra, mut wa) = a.into_split();
            let (rb, wb) = b.into_split();
            let writer = spawn(async move {
                wa.write_all(b"owned halves").await.unwrap();
                wa
            });
            let mut buf = [0; 12];
            ra.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"owned halves");
            let wa = writer.await.unwrap();

            let err = ra.reunite(wb).expect_err("halves of different streams");
            let (ra, wb) = (err.0, err.1);
            let a = ra.reunite(wa).expect("halves of one stream");
            assert_eq!(a.local_addr().unwrap(), a_addr);
            let _b = wb.reunite(rb).expect("halves of one stream");

            let mut a = a;
            a.write_all(b"again").await.unwrap();
            let mut buf = [0; 5];
            a.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"again");
        });
    });
}

#[test]
fn peek_and_vectored_writes() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (l, addr) = listener().await;
            let client = TcpStream::connect(addr).await.unwrap();
            let (mut server, _) = l.accept().await.unwrap();
            let bufs = [io::IoSlice::new(b"vec"), io::IoSlice::new(b"tored")];
            let n = client.write_vectored(&bufs).await.unwrap();
            assert_eq!(n, 8, "one writev of 8 bytes to an empty socket buffer");
            let mut peeked = [0; 8];
            let mut have = 0;
            while have < 8 {
                have = server.peek(&mut peeked).await.unwrap();
            }
            assert_eq!(&peeked, b"vectored");
            let mut read = [0; 8];
            server.read_exact(&mut read).await.unwrap();
            assert_eq!(&read, b"vectored", "peek left the bytes in place");
        });
    });
}

#[test]
fn options_and_std_conversions() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (l, addr) = listener().await;
            assert_eq!(fd_flags(l.as_raw_fd()), (true, true), "listener");
            l.set_ttl(42).unwrap();
            assert_eq!(l.ttl().unwrap(), 42);

            let client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = l.accept().await.unwrap();
            assert_eq!(
                fd_flags(client.as_raw_fd()),
                (true, true),
                "connected stream"
            );
            assert_eq!(
                fd_flags(server.as_raw_fd()),
                (true, true),
                "accepted stream"
            );

            client.set_nodelay(true).unwrap();
            assert!(client.nodelay().unwrap());
            client.set_ttl(17).unwrap();
            assert_eq!(client.ttl().unwrap(), 17);
            client.set_linger(Some(Duration::from_secs(3))).unwrap();
            assert_eq!(client.linger().unwrap(), Some(Duration::from_secs(3)));
            assert!(client.take_error().unwrap().is_none());

            // from_std sets non-blocking mode itself.
            let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let std_addr = std_listener.local_addr().unwrap();
            let std_client = std::net::TcpStream::connect(std_addr).unwrap();
            assert!(
                !fd_flags(std_client.as_raw_fd()).0,
                "std streams start blocking"
            );
            let client = TcpStream::from_std(std_client).unwrap();
            assert!(
                fd_flags(client.as_raw_fd()).0,
                "from_std left the stream blocking"
            );
            let listener = TcpListener::from_std(std_listener).unwrap();
            assert!(
                fd_flags(listener.as_raw_fd()).0,
                "from_std left the listener blocking"
            );
            let (_accepted, _) = listener.accept().await.unwrap();
            let back = client.into_std();
            assert_eq!(back.peer_addr().unwrap(), std_addr);
            let _ = listener.into_std().local_addr().unwrap();
        });
    });
}

#[test]
fn tcp_socket_options_before_bind_and_connect() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let socket = TcpSocket::new_v4().unwrap();
            assert_eq!(
                fd_flags(socket.as_raw_fd()),
                (true, true),
                "a new TcpSocket"
            );
            socket.set_reuseaddr(true).unwrap();
            assert!(socket.reuseaddr().unwrap());
            socket.set_reuseport(true).unwrap();
            assert!(socket.reuseport().unwrap());
            socket.set_recv_buffer_size(64 * 1024).unwrap();
            assert!(socket.recv_buffer_size().unwrap() >= 64 * 1024);
            socket.set_send_buffer_size(64 * 1024).unwrap();
            assert!(socket.send_buffer_size().unwrap() >= 64 * 1024);
            socket.bind((Ipv4Addr::LOCALHOST, 0).into()).unwrap();
            let addr = socket.local_addr().unwrap();
            let listener = socket.listen(16).unwrap();
            assert_eq!(listener.local_addr().unwrap(), addr);

            let client = TcpSocket::new_v4().unwrap();
            client.set_keepalive(true).unwrap();
            assert!(client.keepalive().unwrap());
            client.set_nodelay(true).unwrap();
            let stream = client.connect(addr).await.unwrap();
            assert!(
                stream.nodelay().unwrap(),
                "the option set before connect stays"
            );
            let (mut server, _) = listener.accept().await.unwrap();
            let mut s = stream;
            s.write_all(b"x").await.unwrap();
            let mut b = [0; 1];
            server.read_exact(&mut b).await.unwrap();
        });
    });
}

#[test]
fn incoming_is_a_stream_of_connections() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (l, addr) = listener().await;
            let clients = spawn(async move {
                let mut v = Vec::new();
                for _ in 0..3 {
                    v.push(TcpStream::connect(addr).await.unwrap());
                }
                v
            });
            let accepted: Vec<_> = l.incoming().take(3).collect().await;
            assert_eq!(accepted.len(), 3);
            for s in accepted {
                s.unwrap();
            }
            clients.await.unwrap();
            let m = l.accept_metrics();
            assert_eq!(m.accepted, 3);
            assert_eq!(m.backoffs, 0);
        });
    });
}

#[test]
fn several_tasks_accept_on_one_listener() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (l, addr) = listener().await;
            let l = Arc::new(l);
            let acceptors: Vec<_> = (0..4)
                .map(|_| {
                    let l = Arc::clone(&l);
                    spawn(async move {
                        let mut mine = Vec::new();
                        // Each acceptor takes what it can until the shared count is reached.
                        while l.accept_metrics().accepted < 40 {
                            match timeout(Duration::from_millis(50), l.accept()).await {
                                Ok(accepted) => mine.push(accepted.unwrap().0),
                                Err(_) => continue,
                            }
                        }
                        mine.len()
                    })
                })
                .collect();
            knote_executor::time::sleep(Duration::from_millis(10)).await;
            let mut clients = Vec::new();
            for _ in 0..40 {
                clients.push(TcpStream::connect(addr).await.unwrap());
            }
            let mut total = 0;
            for a in acceptors {
                total += timeout(LIMIT, a)
                    .await
                    .expect("an acceptor stalled")
                    .unwrap();
            }
            assert_eq!(total, 40);
        });
    });
}
