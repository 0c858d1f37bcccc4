//! Unix-domain sockets: stream echo over a path and an abstract name, pairs, half-close, peer
//! credentials, and datagrams (pair, bound paths, abstract names, several readers).

#[path = "../../executor/tests/common/mod.rs"]
mod common;

use std::io;
use std::net::Shutdown;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{on, Flavour};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use knote_executor::spawn;
use knote_executor::time::timeout;
use knote_net::{UnixDatagram, UnixListener, UnixStream};

const LIMIT: Duration = Duration::from_secs(20);
const BOTH: [Flavour; 2] = [Flavour::Current, Flavour::Multi4];

/// A socket path of its own for each call, removed when dropped.
struct TempPath(PathBuf);

impl TempPath {
    fn new(tag: &str) -> TempPath {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("knote-net-{}-{tag}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&p); // a leftover of a crashed earlier run, if any
        TempPath(p)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        // Cleanup only: a path already gone (never bound) is fine.
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn echo_once(listener: UnixListener) {
    let (mut s, _) = listener.accept().await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    s.write_all(&buf).await.unwrap();
    s.close().await.unwrap();
}

async fn round_trip(mut client: UnixStream, message: &[u8]) {
    client.write_all(message).await.unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    timeout(LIMIT, client.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, message);
}

#[test]
fn stream_over_a_path() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let path = TempPath::new("stream");
            let listener = UnixListener::bind(&path.0).unwrap();
            assert_eq!(
                listener.local_addr().unwrap().as_pathname(),
                Some(path.0.as_path())
            );
            let server = spawn(echo_once(listener));
            let client = UnixStream::connect(&path.0).await.unwrap();
            assert_eq!(
                client.peer_addr().unwrap().as_pathname(),
                Some(path.0.as_path())
            );
            round_trip(client, b"over a path").await;
            server.await.unwrap();
        });
    });
}

#[test]
fn connect_to_nothing_is_an_error() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let path = TempPath::new("absent");
            let err = UnixStream::connect(&path.0)
                .await
                .expect_err("nobody bound it");
            assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        });
    });
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn stream_over_an_abstract_name() {
    use std::os::linux::net::SocketAddrExt;
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let name = format!("knote-net-test-{}", std::process::id());
            let listener = UnixListener::bind_abstract(name.as_bytes()).unwrap();
            assert_eq!(
                listener.local_addr().unwrap().as_abstract_name(),
                Some(name.as_bytes())
            );
            let server = spawn(echo_once(listener));
            let client = UnixStream::connect_abstract(name.as_bytes()).await.unwrap();
            round_trip(client, b"abstract").await;
            server.await.unwrap();
        });
    });
}

#[test]
fn pair_half_close_and_peer_cred() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (mut a, mut b) = UnixStream::pair().unwrap();
            let cred = a.peer_cred().unwrap();
            // SAFETY: getuid/getgid cannot fail.
            let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
            assert_eq!((cred.uid, cred.gid), (uid, gid));
            #[cfg(any(target_os = "linux", target_os = "android"))]
            assert_eq!(cred.pid, Some(std::process::id() as i32));

            a.write_all(b"a to b").await.unwrap();
            a.close().await.unwrap();
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"a to b");
            // `&UnixStream` writes too, and `a` still reads after closing its write side.
            (&b).write_all(b"b to a").await.unwrap();
            b.shutdown(Shutdown::Write).unwrap();
            let mut got = Vec::new();
            (&a).read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"b to a");
        });
    });
}

#[test]
fn datagrams_pair_paths_and_readers() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (a, b) = UnixDatagram::pair().unwrap();
            a.send(b"one").await.unwrap();
            let mut buf = [0; 16];
            let n = b.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"one");
            // SAFETY: getuid cannot fail.
            assert_eq!(b.peer_cred().unwrap().uid, unsafe { libc::getuid() });

            let pa = TempPath::new("dgram-a");
            let pb = TempPath::new("dgram-b");
            let x = UnixDatagram::bind(&pa.0).unwrap();
            let y = Arc::new(UnixDatagram::bind(&pb.0).unwrap());
            // Two readers of one socket: each datagram reaches exactly one of them.
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    let y = Arc::clone(&y);
                    spawn(async move {
                        let mut buf = [0; 16];
                        let (n, from) = y.recv_from(&mut buf).await.unwrap();
                        (
                            buf[..n].to_vec(),
                            from.as_pathname().map(|p| p.to_path_buf()),
                        )
                    })
                })
                .collect();
            knote_executor::time::sleep(Duration::from_millis(20)).await;
            x.send_to(b"d1", &pb.0).await.unwrap();
            x.send_to(b"d2", &pb.0).await.unwrap();
            let mut got = Vec::new();
            for r in readers {
                let (data, from) = timeout(LIMIT, r).await.expect("a reader stalled").unwrap();
                assert_eq!(from.as_deref(), Some(pa.0.as_path()));
                got.push(data);
            }
            got.sort();
            assert_eq!(got, [b"d1".to_vec(), b"d2".to_vec()]);

            let unbound = UnixDatagram::unbound().unwrap();
            unbound.connect(&pb.0).unwrap();
            unbound.send(b"from unbound").await.unwrap();
            let n = y.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"from unbound");
        });
    });
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn datagrams_over_abstract_names() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let name = format!("knote-net-dgram-{}", std::process::id());
            let server = UnixDatagram::bind_abstract(name.as_bytes()).unwrap();
            let client = UnixDatagram::bind_abstract(format!("{name}-c").as_bytes()).unwrap();
            client
                .send_to_addr(b"ping", &server.local_addr().unwrap())
                .await
                .unwrap();
            let mut buf = [0; 8];
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"ping");
            server.send_to_addr(b"pong", &from).await.unwrap();
            let n = client.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"pong");
        });
    });
}

#[test]
fn incoming_is_a_stream_of_connections() {
    use futures_util::StreamExt;
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let path = TempPath::new("incoming");
            let listener = UnixListener::bind(&path.0).unwrap();
            let server = spawn(async move {
                let mut incoming = listener.incoming();
                for _ in 0..3 {
                    let mut s = incoming.next().await.expect("never ends").unwrap();
                    let mut buf = Vec::new();
                    s.read_to_end(&mut buf).await.unwrap();
                    s.write_all(&buf).await.unwrap();
                    s.close().await.unwrap();
                }
                listener.accept_metrics().accepted
            });
            for i in 0..3u8 {
                let client = UnixStream::connect(&path.0).await.unwrap();
                round_trip(client, &[i; 100]).await;
            }
            let accepted = timeout(LIMIT, server).await.unwrap().unwrap();
            assert_eq!(accepted, 3);
        });
    });
}

#[test]
fn borrowed_halves_read_and_write_at_once() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (mut a, b) = UnixStream::pair().unwrap();
            let echo = spawn(async move {
                let mut b = b;
                let (mut r, mut w) = UnixStream::split(&mut b);
                futures_util::io::copy(&mut r, &mut w).await.unwrap();
                w.close().await.unwrap();
            });
            let message: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
            let (mut r, mut w) = UnixStream::split(&mut a);
            assert!(r.local_addr().unwrap().is_unnamed());
            assert!(w.peer_addr().unwrap().is_unnamed());
            let write = async {
                w.write_all(&message).await.unwrap();
                w.close().await.unwrap(); // the write side shuts; reads go on
            };
            let read = async {
                let mut back = Vec::new();
                r.read_to_end(&mut back).await.unwrap();
                back
            };
            let ((), back) = futures_util::join!(write, read);
            assert!(back == message, "the echo differs");
            timeout(LIMIT, echo).await.unwrap().unwrap();
        });
    });
}

#[test]
fn owned_halves_and_reunite() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (a, mut peer_a) = UnixStream::pair().unwrap();
            let (b, _peer_b) = UnixStream::pair().unwrap();
            let (mut ra, mut wa) = a.into_split();
            let (rb, wb) = b.into_split();
            let writer = spawn(async move {
                wa.write_all(b"owned halves").await.unwrap();
                wa
            });
            let mut buf = [0; 12];
            peer_a.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"owned halves");
            peer_a.write_all(b"back").await.unwrap();
            let mut buf = [0; 4];
            ra.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"back");
            let wa = writer.await.unwrap();

            let err = ra.reunite(wb).expect_err("halves of different streams");
            assert!(err.to_string().contains("different streams"), "{err}");
            let (ra, wb) = (err.0, err.1);
            let mut a = ra.reunite(wa).expect("halves of one stream");
            let _b = wb.reunite(rb).expect("halves of one stream");

            a.write_all(b"again").await.unwrap();
            let mut buf = [0; 5];
            peer_a.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"again");
            // Closing the reunited stream's write side reaches the peer as EOF.
            a.close().await.unwrap();
            let mut rest = Vec::new();
            peer_a.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
        });
    });
}

/// The Unix halves are the generic TCP ones: tokio's traits come with them too.
#[cfg(feature = "tokio-io")]
#[test]
fn halves_have_tokio_traits() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_util::codec::{FramedRead, FramedWrite, LinesCodec};
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (a, b) = UnixStream::pair().unwrap();
            let (ra, _wa) = a.into_split();
            let mut b = b;
            let (_rb, wb) = UnixStream::split(&mut b);
            let mut out = FramedWrite::new(wb, LinesCodec::new());
            out.send("one line").await.unwrap();
            SinkExt::<&str>::close(&mut out).await.unwrap(); // shuts b's write side
            let mut lines = FramedRead::new(ra, LinesCodec::new());
            let line = timeout(LIMIT, lines.next()).await.unwrap();
            assert_eq!(line.unwrap().unwrap(), "one line");
            assert!(lines.next().await.is_none(), "EOF after the close");
        });
    });
}

/// Closing (futures-io `close`: shutting the write side down) a stream whose peer is gone is
/// `Ok`, the stream and its write halves alike. (Linux never says ENOTCONN to a Unix
/// shutdown; the BSDs and macOS do once the peer closed: knote-net's close turns it into
/// `Ok`, as for TCP, see `closing_a_stream_its_peer_reset_is_ok` in tcp.rs.)
#[test]
fn closing_a_stream_whose_peer_closed_is_ok() {
    on(&BOTH, |rt, _| {
        rt.block_on(async {
            let (mut a, b) = UnixStream::pair().unwrap();
            drop(b);
            let mut buf = [0; 8];
            assert_eq!(timeout(LIMIT, a.read(&mut buf)).await.unwrap().unwrap(), 0);
            a.close().await.expect("the stream");
            let (mut a, b) = UnixStream::pair().unwrap();
            drop(b);
            let (_read, mut write) = UnixStream::split(&mut a);
            write.close().await.expect("the borrowed write half");
            let (a, b) = UnixStream::pair().unwrap();
            drop(b);
            let (_read, mut write) = a.into_split();
            write.close().await.expect("the owned write half");
        });
    });
}
