//! `knote::hyper`: unmodified hyper servers and clients (HTTP/1, HTTP/2, hyper-util's auto
//! builder) talking over loopback on knote, on both runtime flavours; hyper's timeouts through
//! `KnoteTimer` (on the real clock and on a paused one); and the I/O adapter's read and
//! vectored-write paths.

use std::convert::Infallible;
use std::future::poll_fn;
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::io::AsyncWriteExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::rt::{Read, ReadBuf, Timer, Write};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use knote::hyper::{KnoteExecutor, KnoteIo, KnoteTimer, LocalExecutor};
use knote::net::{TcpListener, TcpStream, UnixStream};
use knote::time::timeout;

/// How long any one exchange may take before the test fails instead of hanging.
const BOUND: Duration = Duration::from_secs(20);

/// A body of `len` bytes that is not periodic at any small stride.
fn pattern(len: usize) -> Bytes {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// The service every server here runs: `/echo` streams the request body back, anything else
/// says hello and which HTTP version it was asked with.
async fn service(
    req: Request<Incoming>,
) -> Result<Response<http_body_util::combinators::BoxBody<Bytes, hyper::Error>>, Infallible> {
    let response = if req.uri().path() == "/echo" {
        Response::new(req.into_body().boxed())
    } else {
        let text = format!("hello over {:?}", req.version());
        Response::new(
            Full::new(Bytes::from(text))
                .map_err(|never| match never {})
                .boxed(),
        )
    };
    Ok(response)
}

/// Accepts `conns` connections on `listener`, serving each with `serve`, and returns once all
/// of them ended (each connection's result is asserted to be a clean close).
async fn accept_n<F, Fut>(listener: TcpListener, conns: usize, serve: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (stream, _) = listener.accept().await.unwrap();
        tasks.push(knote::spawn(serve(stream)));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
}

async fn serve_h1(stream: TcpStream) -> Result<(), String> {
    hyper::server::conn::http1::Builder::new()
        .timer(KnoteTimer::new())
        .serve_connection(KnoteIo::new(stream), service_fn(service))
        .await
        .map_err(|e| format!("http1 server: {e}"))
}

async fn serve_h2(stream: TcpStream) -> Result<(), String> {
    hyper::server::conn::http2::Builder::new(KnoteExecutor::new())
        .timer(KnoteTimer::new())
        .serve_connection(KnoteIo::new(stream), service_fn(service))
        .await
        .map_err(|e| format!("http2 server: {e:?}"))
}

async fn serve_auto(stream: TcpStream) -> Result<(), String> {
    hyper_util::server::conn::auto::Builder::new(KnoteExecutor::new())
        .serve_connection(KnoteIo::new(stream), service_fn(service))
        .await
        .map_err(|e| format!("auto server: {e}"))
}

/// A GET and a 3 MiB echo over one HTTP/1 connection, then the connection closes.
async fn h1_client(addr: std::net::SocketAddr) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(KnoteIo::new(stream))
        .await
        .unwrap();
    let driver = knote::spawn(conn);
    let hello = sender
        .send_request(Request::get("/").body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    assert_eq!(hello.status(), StatusCode::OK);
    let body = hello.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"hello over HTTP/1.1");

    let sent = pattern(3 << 20);
    let echo = sender
        .send_request(
            Request::post("/echo")
                .body(Full::new(sent.clone()))
                .unwrap(),
        )
        .await
        .unwrap();
    let back = echo.into_body().collect().await.unwrap().to_bytes();
    assert!(
        back == sent,
        "the echoed body differs ({} bytes back)",
        back.len()
    );
    drop(sender);
    driver.await.unwrap().unwrap();
}

/// Eight concurrent GETs and two concurrent 1 MiB echoes over one HTTP/2 connection.
async fn h2_client(addr: std::net::SocketAddr) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::Builder::new(KnoteExecutor::new())
        .timer(KnoteTimer::new())
        .handshake(KnoteIo::new(stream))
        .await
        .unwrap();
    let driver = knote::spawn(conn);
    let mut requests = Vec::new();
    for i in 0..10 {
        let mut sender = sender.clone();
        requests.push(knote::spawn(async move {
            if i < 8 {
                let response = sender
                    .send_request(
                        Request::get("http://x/")
                            .body(Full::new(Bytes::new()))
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(&body[..], b"hello over HTTP/2.0");
            } else {
                let sent = pattern((1 << 20) + i);
                let response = sender
                    .send_request(
                        Request::post("http://x/echo")
                            .body(Full::new(sent.clone()))
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                let back = response.into_body().collect().await.unwrap().to_bytes();
                assert!(back == sent, "the echoed body differs");
            }
        }));
    }
    for request in requests {
        request.await.unwrap();
    }
    drop(sender);
    driver.await.unwrap().unwrap();
}

async fn bound<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    match timeout(BOUND, future).await {
        Ok(out) => out,
        Err(_) => panic!("{what} took longer than {BOUND:?}"),
    }
}

#[knote::test]
async fn http1_current_thread() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = knote::spawn(accept_n(listener, 2, serve_h1));
    bound("http1 clients", async {
        h1_client(addr).await;
        h1_client(addr).await;
        server.await.unwrap();
    })
    .await;
}

#[knote::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_multi_thread() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = knote::spawn(accept_n(listener, 4, serve_h1));
    bound("http1 clients", async {
        let clients: Vec<_> = (0..4).map(|_| knote::spawn(h1_client(addr))).collect();
        for client in clients {
            client.await.unwrap();
        }
        server.await.unwrap();
    })
    .await;
}

#[knote::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_multi_thread() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = knote::spawn(accept_n(listener, 2, serve_h2));
    bound("http2 clients", async {
        let a = knote::spawn(h2_client(addr));
        let b = knote::spawn(h2_client(addr));
        a.await.unwrap();
        b.await.unwrap();
        server.await.unwrap();
    })
    .await;
}

#[knote::test]
async fn http2_current_thread() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = knote::spawn(accept_n(listener, 1, serve_h2));
    bound("http2 client", async {
        h2_client(addr).await;
        server.await.unwrap();
    })
    .await;
}

/// HTTP/2 on a current-thread runtime with a `!Send` service (it holds an `Rc`) and a `!Send`
/// client body: hyper's streams are local tasks, spawned by `LocalExecutor`.
#[knote::test]
async fn http2_local_executor_with_a_non_send_service() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Rc::new(std::cell::Cell::new(0));
    let counter = Rc::clone(&served);
    let server = knote::spawn_local(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let service = service_fn(move |_req: Request<Incoming>| {
            let counter = Rc::clone(&counter);
            async move {
                counter.set(counter.get() + 1);
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                    "request {}",
                    counter.get()
                )))))
            }
        });
        hyper::server::conn::http2::Builder::new(LocalExecutor::new())
            .timer(KnoteTimer::new())
            .serve_connection(KnoteIo::new(stream), service)
            .await
            .unwrap();
    });
    bound("local http2 client", async {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http2::Builder::new(LocalExecutor::new())
            .timer(KnoteTimer::new())
            .handshake::<_, Full<Bytes>>(KnoteIo::new(stream))
            .await
            .unwrap();
        let driver = knote::spawn_local(conn);
        for i in 1..=3 {
            let response = sender
                .send_request(
                    Request::get("http://x/")
                        .body(Full::new(Bytes::new()))
                        .unwrap(),
                )
                .await
                .unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, format!("request {i}"));
        }
        drop(sender);
        driver.await.unwrap().unwrap();
        server.await.unwrap();
    })
    .await;
    assert_eq!(served.get(), 3);
}

/// hyper-util's auto builder: one listener, an HTTP/1 client and an HTTP/2 (prior knowledge)
/// client, each answered in its own version.
#[knote::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_builder_serves_http1_and_http2() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = knote::spawn(accept_n(listener, 2, serve_auto));
    bound("auto clients", async {
        h1_client(addr).await;
        h2_client(addr).await;
        server.await.unwrap();
    })
    .await;
}

/// HTTP/1 over a Unix stream pair.
#[knote::test]
async fn http1_over_a_unix_stream() {
    let (a, b) = UnixStream::pair().unwrap();
    let server = knote::spawn(async move {
        hyper::server::conn::http1::Builder::new()
            .serve_connection(KnoteIo::new(a), service_fn(service))
            .await
            .unwrap();
    });
    bound("unix client", async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(KnoteIo::new(b))
            .await
            .unwrap();
        let driver = knote::spawn(conn);
        let sent = pattern(200_000);
        let response = sender
            .send_request(
                Request::post("/echo")
                    .body(Full::new(sent.clone()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let back = response.into_body().collect().await.unwrap().to_bytes();
        assert!(back == sent);
        drop(sender);
        driver.await.unwrap().unwrap();
        server.await.unwrap();
    })
    .await;
}

/// A request sent in 1000-byte pieces, yielding between them, so the server's reads are
/// short and many: what it collects is what was sent, byte for byte.
#[knote::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_arriving_in_short_pieces_reads_back_whole() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = pattern(300_000);
    let expected = sent.clone();
    let server = knote::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let service = service_fn(move |req: Request<Incoming>| {
            let expected = expected.clone();
            async move {
                let got = req.into_body().collect().await?.to_bytes();
                let verdict = if got == expected { "same" } else { "different" };
                Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(verdict))))
            }
        });
        hyper::server::conn::http1::Builder::new()
            .serve_connection(KnoteIo::new(stream), service)
            .await
            .unwrap();
    });
    bound("short-piece client", async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let head = format!(
            "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            sent.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        for piece in sent.chunks(1000) {
            stream.write_all(piece).await.unwrap();
            knote::task::yield_now().await;
        }
        let mut response = Vec::new();
        futures_util::io::AsyncReadExt::read_to_end(&mut stream, &mut response)
            .await
            .unwrap();
        let response = String::from_utf8(response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.ends_with("\r\n\r\nsame"), "{response}");
        server.await.unwrap();
    })
    .await;
}

/// The read adapter writes only the bytes it read: spare capacity beyond them keeps what was
/// there, and none of it is zeroed first (a read through `initialize_unfilled` would zero
/// the whole unfilled part of this never-initialised `ReadBuf`).
#[knote::test]
async fn read_fills_without_zeroing_the_spare_capacity() {
    let (a, b) = UnixStream::pair().unwrap();
    (&b).write_all(b"hyper").await.unwrap();
    let mut io = KnoteIo::new(a);
    let mut memory = [MaybeUninit::new(0xa5_u8); 64];
    let filled = {
        let mut buf = ReadBuf::uninit(&mut memory);
        poll_fn(|cx| Pin::new(&mut io).poll_read(cx, buf.unfilled()))
            .await
            .unwrap();
        buf.filled().to_vec()
    };
    assert_eq!(filled, b"hyper");
    // SAFETY: every element was initialised above, and the adapter only stores bytes.
    let memory: Vec<u8> = memory.iter().map(|b| unsafe { b.assume_init() }).collect();
    assert_eq!(&memory[..5], b"hyper");
    assert!(memory[5..].iter().all(|&b| b == 0xa5), "{memory:?}");

    // EOF fills nothing.
    drop(b);
    let mut more = [MaybeUninit::new(0_u8); 8];
    let mut buf = ReadBuf::uninit(&mut more);
    poll_fn(|cx| Pin::new(&mut io).poll_read(cx, buf.unfilled()))
        .await
        .unwrap();
    assert!(buf.filled().is_empty());
}

/// `poll_write_vectored` sends several slices with one call (loopback takes them whole), in
/// order, and the adapter says it is vectored, which is what makes hyper use it.
#[knote::test]
async fn vectored_writes_send_every_slice_in_order() {
    let (a, b) = UnixStream::pair().unwrap();
    let mut io = KnoteIo::new(a);
    assert!(io.is_write_vectored());
    let parts: [&[u8]; 3] = [b"HTTP/1.1 200 OK\r\n", b"content-length: 2\r\n\r\n", b"hi"];
    let slices = parts.map(IoSlice::new);
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let n = poll_fn(|cx| Pin::new(&mut io).poll_write_vectored(cx, &slices))
        .await
        .unwrap();
    assert_eq!(n, total);
    poll_fn(|cx| Pin::new(&mut io).poll_flush(cx))
        .await
        .unwrap();
    poll_fn(|cx| Pin::new(&mut io).poll_shutdown(cx))
        .await
        .unwrap();
    let mut got = Vec::new();
    futures_util::io::AsyncReadExt::read_to_end(&mut &b, &mut got)
        .await
        .unwrap();
    assert_eq!(
        got,
        parts.concat(),
        "shutdown ends the stream after the slices"
    );
}

/// Shutting down a connection the peer has reset is `Ok` (hyper's graceful HTTP/2 close
/// hit `ENOTCONN` when the client had closed with the server's GOAWAY unread).
#[knote::test]
async fn shutdown_after_the_peer_reset_is_ok() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = TcpStream::connect(addr).await.unwrap();
    let (stream, _) = listener.accept().await.unwrap();
    // Linger zero: closing sends RST.
    peer.set_linger(Some(Duration::ZERO)).unwrap();
    drop(peer);
    let mut buf = [0; 16];
    let err = bound("the reset", stream.read(&mut buf)).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    let raw = stream.shutdown(std::net::Shutdown::Write).unwrap_err();
    assert_eq!(raw.kind(), std::io::ErrorKind::NotConnected, "{raw}");
    let mut io = KnoteIo::new(stream);
    poll_fn(|cx| Pin::new(&mut io).poll_shutdown(cx))
        .await
        .unwrap();
}

/// `header_read_timeout` through `KnoteTimer` on the real clock: a client that connects and
/// never sends is dropped by the server, which reports a timeout.
#[knote::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_read_timeout_drops_a_silent_client() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = knote::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        hyper::server::conn::http1::Builder::new()
            .timer(KnoteTimer::new())
            .header_read_timeout(Duration::from_millis(100))
            .serve_connection(KnoteIo::new(stream), service_fn(service))
            .await
    });
    bound("silent client", async {
        // Before connecting: the server's timer may start before `connect` returns here.
        let started = std::time::Instant::now();
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let result = server.await.unwrap();
        let err = result.expect_err("a silent client must time out");
        assert!(err.is_timeout(), "not a timeout: {err}");
        assert!(started.elapsed() >= Duration::from_millis(100));
        let mut rest = Vec::new();
        // The server closed (it may have sent a 408 first).
        futures_util::io::AsyncReadExt::read_to_end(&mut silent, &mut rest)
            .await
            .unwrap();
    })
    .await;
}

/// The same under a paused clock: a 30 s header timeout fires when knote's clock, which hyper
/// reads through `KnoteTimer::now`, auto-advances to it, and not before.
#[knote::test(start_paused = true)]
async fn header_read_timeout_follows_the_paused_clock() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = knote::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let accepted = knote::time::Instant::now();
        let result = hyper::server::conn::http1::Builder::new()
            .timer(KnoteTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(KnoteIo::new(stream), service_fn(service))
            .await;
        (result, accepted.elapsed())
    });
    let _silent = TcpStream::connect(addr).await.unwrap();
    let (result, waited) = timeout(Duration::from_secs(300), server)
        .await
        .expect("the header timeout never fired")
        .unwrap();
    assert!(result
        .expect_err("a silent client must time out")
        .is_timeout());
    assert!(waited >= Duration::from_secs(30), "fired after {waited:?}");
    assert!(waited < Duration::from_secs(300));
}

/// `KnoteTimer::now` is knote's clock: it stands still while paused and moves by `advance`.
#[knote::test(start_paused = true)]
async fn timer_now_is_the_runtime_clock() {
    let timer = KnoteTimer::new();
    let before = timer.now();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(timer.now(), before, "a paused clock stands still");
    knote::time::advance(Duration::from_secs(7)).await;
    assert_eq!(timer.now() - before, Duration::from_secs(7));
}

/// `reset` moves the deadline of the same boxed sleep, in place: the box is not replaced.
#[knote::test(start_paused = true)]
async fn timer_reset_rearms_the_same_sleep() {
    let timer = KnoteTimer::new();
    let start = timer.now();
    let mut sleep = timer.sleep(Duration::from_secs(3600));
    // Armed first (polled once), then moved.
    assert!(poll_fn(|cx| std::task::Poll::Ready(sleep.as_mut().poll(cx).is_pending())).await);
    let address = &*sleep as *const dyn hyper::rt::Sleep as *const ();
    timer.reset(&mut sleep, start + Duration::from_secs(2));
    assert_eq!(&*sleep as *const dyn hyper::rt::Sleep as *const (), address);
    sleep.as_mut().await;
    assert_eq!(timer.now() - start, Duration::from_secs(2));
    // An elapsed sleep is reset into the future, again in place.
    timer.reset(&mut sleep, start + Duration::from_secs(5));
    assert_eq!(&*sleep as *const dyn hyper::rt::Sleep as *const (), address);
    sleep.as_mut().await;
    assert_eq!(timer.now() - start, Duration::from_secs(5));
}

/// `KnoteExecutor::with_handle` spawns hyper's futures from a thread outside the runtime.
#[test]
fn executor_with_a_handle_spawns_from_outside() {
    use hyper::rt::Executor;
    let rt = knote::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let executor = KnoteExecutor::with_handle(rt.handle().clone());
    let (tx, rx) = std::sync::mpsc::channel();
    executor.execute(async move {
        tx.send(knote::runtime::Handle::try_current().is_ok())
            .unwrap();
    });
    assert!(rx.recv_timeout(BOUND).unwrap(), "it ran on a knote runtime");
}
