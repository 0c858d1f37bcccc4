//! tokio's `AsyncRead`/`AsyncWrite` on knote's streams (the `tokio-io` feature): tokio-util's
//! `Framed` with a `LinesCodec` over a knote `TcpStream` and `UnixStream`, with no tokio runtime
//! in the process.
#![cfg(feature = "tokio-io")]

#[path = "../../executor/tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::{on, Flavour};
use futures_util::{SinkExt, StreamExt};
use knote_executor::spawn;
use knote_executor::time::timeout;
use knote_net::{TcpListener, TcpStream, UnixStream};
use tokio_util::codec::{Framed, LinesCodec};

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn framed_lines_over_a_tcp_stream() {
    on(&[Flavour::Current, Flavour::Multi4], |rt, _| {
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            // An upper-casing line server.
            let server = spawn(async move {
                let (stream, _) = listener.accept().await.unwrap();
                let mut lines = Framed::new(stream, LinesCodec::new());
                while let Some(line) = lines.next().await {
                    let line = line.unwrap();
                    lines.send(line.to_uppercase()).await.unwrap();
                }
            });
            let stream = TcpStream::connect(addr).await.unwrap();
            let mut lines = Framed::new(stream, LinesCodec::new());
            for word in ["alpha", "beta", "gamma"] {
                lines.send(word).await.unwrap();
                let back = timeout(LIMIT, lines.next())
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
                assert_eq!(back, word.to_uppercase());
            }
            // Shutting down the write side (tokio's poll_shutdown) ends the server's stream.
            SinkExt::<&str>::close(&mut lines).await.unwrap();
            timeout(LIMIT, server).await.unwrap().unwrap();
            assert!(
                tokio::runtime::Handle::try_current().is_err(),
                "no tokio runtime"
            );
        });
    });
}

#[test]
fn framed_lines_over_a_unix_pair() {
    on(&[Flavour::Current], |rt, _| {
        rt.block_on(async {
            let (a, b) = UnixStream::pair().unwrap();
            let mut a = Framed::new(a, LinesCodec::new());
            let mut b = Framed::new(b, LinesCodec::new());
            a.send("over a unix pair").await.unwrap();
            assert_eq!(b.next().await.unwrap().unwrap(), "over a unix pair");
        });
    });
}

/// tokio's `poll_read` reads straight into the `ReadBuf`'s uninitialised part: the bytes past
/// what was read keep whatever they held (zeroing the unfilled part first, as
/// `initialize_unfilled` does, would overwrite them).
#[test]
fn poll_read_does_not_zero_the_unfilled_part() {
    use std::mem::MaybeUninit;
    use std::pin::Pin;
    use tokio::io::{AsyncRead, ReadBuf};

    on(&[Flavour::Current], |rt, _| {
        rt.block_on(async {
            let (mut a, b) = UnixStream::pair().unwrap();
            futures_util::AsyncWriteExt::write_all(&mut a, b"hello")
                .await
                .unwrap();
            let mut storage = [MaybeUninit::new(0xa5u8); 64];
            let mut buf = ReadBuf::uninit(&mut storage);
            let mut b = b;
            std::future::poll_fn(|cx| Pin::new(&mut b).poll_read(cx, &mut buf))
                .await
                .unwrap();
            assert_eq!(buf.filled(), b"hello");
            // SAFETY: every byte of `storage` was initialised when it was created.
            let rest: Vec<u8> = storage[5..]
                .iter()
                .map(|byte| unsafe { byte.assume_init() })
                .collect();
            assert!(rest.iter().all(|&byte| byte == 0xa5), "{rest:?}");
        })
    });
}

/// tokio's `poll_shutdown` of a stream whose peer is gone is `Ok` (knote-net's one write
/// shutdown, as futures-io's `close`): a TCP stream its peer reset (std's `shutdown(Write)`
/// says ENOTCONN there) and a Unix stream whose peer closed.
#[test]
fn shutdown_of_a_stream_whose_peer_is_gone_is_ok() {
    use std::future::poll_fn;
    use std::io;
    use std::net::Shutdown;
    use std::pin::Pin;
    use tokio::io::AsyncWrite;

    async fn shutdown<S: AsyncWrite + Unpin>(mut stream: S) -> io::Result<()> {
        poll_fn(|cx| Pin::new(&mut stream).poll_shutdown(cx)).await
    }

    on(&[Flavour::Current, Flavour::Multi4], |rt, _| {
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let client = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (server, _) = listener.accept().await.unwrap();
            server.set_linger(Some(Duration::ZERO)).unwrap();
            drop(server);
            let mut buf = [0; 8];
            let err = timeout(LIMIT, client.read(&mut buf))
                .await
                .unwrap()
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
            let err = client.shutdown(Shutdown::Write).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotConnected, "{err}");
            shutdown(client).await.expect("the TCP stream");

            let (a, b) = UnixStream::pair().unwrap();
            drop(b);
            shutdown(a).await.expect("the Unix stream");
        });
    });
}
