//! The echo contestants: `examples/echo.rs`'s service on knote, the same service on tokio with
//! tokio::net, and `examples/reactor_echo.rs`'s hand-written loop (the ceiling); and the
//! *frugal* echo service, one generic function run on either runtime, for the scale workload.
//! Each serves until the process ends.
//!
//! The examples' service keeps a 64 KiB read buffer per connection, which dwarfs what the
//! runtime itself spends per connection. The frugal one is what a service with many idle
//! connections does instead (tokio's docs recommend it): wait for readiness with `readable()`,
//! then `try_read` into a per-thread scratch buffer and write the echo back at once with
//! `try_write`; only what the socket would not take is kept, in a per-connection `Vec`, until
//! `writable()`. An idle connection then costs its task, its socket registration and the
//! runtime's readiness state, which is what the scale workload compares.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::TcpListener;

use crate::runtimes::{knote_runtime, tokio_runtime};
use crate::{knote_echo, reactor_echo};

/// The read buffer of the tokio service: the knote example's (and the hand-written loop's).
const READ_BUF: usize = 64 * 1024;

/// `examples/echo.rs`'s `serve` on knote (current-thread when `workers` is `None`).
pub fn serve_knote(listener: TcpListener, workers: Option<usize>) -> io::Result<()> {
    let rt = knote_runtime(workers)?;
    listener.set_nonblocking(true)?;
    rt.block_on(async {
        let listener = knote::net::TcpListener::from_std(listener)?;
        knote_echo::serve(listener, None).await.map(drop)
    })
}

/// The same service on tokio (current-thread when `workers` is `None`).
pub fn serve_tokio(listener: TcpListener, workers: Option<usize>) -> io::Result<()> {
    let rt = tokio_runtime(workers)?;
    listener.set_nonblocking(true)?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        loop {
            let (stream, _) = listener.accept().await?;
            // An error of one connection ends that connection only, as in the knote example.
            tokio::spawn(tokio_echo(stream));
        }
    })
}

/// `examples/echo.rs`'s `echo` with tokio's stream: a 64 KiB buffer, read and `write_all`
/// until EOF, then shut the write side; returns the bytes echoed.
async fn tokio_echo(mut stream: tokio::net::TcpStream) -> io::Result<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.set_nodelay(true)?;
    let mut buf = vec![0; READ_BUF];
    let mut total = 0;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            stream.shutdown().await?;
            return Ok(total);
        }
        stream.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}

/// `examples/reactor_echo.rs`'s loop: one kqueue on this thread, no runtime.
pub fn serve_reactor(listener: TcpListener) -> io::Result<()> {
    reactor_echo::serve(listener, None).map(drop)
}

/// The per-thread scratch buffer of the frugal service: what one `try_read` takes at most.
const SCRATCH: usize = 64 * 1024;

thread_local! {
    /// The frugal service's read buffer, one per runtime thread, shared by its connections.
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

/// What the frugal service needs of a stream: tokio's readiness-first API, which knote's
/// `TcpStream` has with the same names and semantics.
trait ReadyStream {
    /// Waits until readable.
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send;
    /// Waits until writable.
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send;
    /// Reads without waiting (`WouldBlock`: wait again).
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes without waiting (`WouldBlock`: wait again).
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
}

/// `ReadyStream` for a stream type whose inherent methods have tokio's names: the same four
/// calls passed through, written once for both runtimes.
macro_rules! ready_stream {
    ($stream:ty) => {
        impl ReadyStream for $stream {
            fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
                <$stream>::readable(self)
            }
            fn writable(&self) -> impl Future<Output = io::Result<()>> + Send {
                <$stream>::writable(self)
            }
            fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
                <$stream>::try_read(self, buf)
            }
            fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
                <$stream>::try_write(self, buf)
            }
        }
    };
}

ready_stream!(knote::net::TcpStream);
ready_stream!(tokio::net::TcpStream);

/// `Ok(None)` for `WouldBlock`, the rest as it is.
fn unless_would_block(result: io::Result<usize>) -> io::Result<Option<usize>> {
    match result {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// The frugal echo of one connection, until EOF (or an error); returns the bytes echoed.
/// Everything that would block waits for readiness; a connection with nothing in flight holds
/// no buffer.
async fn frugal_echo<S: ReadyStream>(stream: S) -> io::Result<u64> {
    let mut backlog: Vec<u8> = Vec::new();
    let mut total = 0;
    loop {
        // What the socket would not take goes out before anything more is read.
        while !backlog.is_empty() {
            stream.writable().await?;
            if let Some(n) = unless_would_block(stream.try_write(&backlog))? {
                backlog.drain(..n);
            }
        }
        // Nothing in flight: hold no buffer while idle.
        backlog = Vec::new();
        stream.readable().await?;
        let read = SCRATCH_BUF.with(|scratch| -> io::Result<Option<usize>> {
            let mut buf = scratch.borrow_mut();
            let Some(n) = unless_would_block(stream.try_read(&mut buf))? else {
                return Ok(None);
            };
            let written = unless_would_block(stream.try_write(&buf[..n]))?.unwrap_or(0);
            backlog.extend_from_slice(&buf[written..n]);
            Ok(Some(n))
        })?;
        match read {
            Some(0) => return Ok(total),
            Some(n) => total += n as u64,
            None => {}
        }
    }
}

/// The frugal echo service ([`frugal_echo`]) on knote (current-thread when `workers` is
/// `None`).
pub fn serve_knote_frugal(listener: TcpListener, workers: Option<usize>) -> io::Result<()> {
    let rt = knote_runtime(workers)?;
    listener.set_nonblocking(true)?;
    rt.block_on(async {
        let listener = knote::net::TcpListener::from_std(listener)?;
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            knote::spawn(frugal_echo(stream));
        }
    })
}

/// The same frugal service on tokio (current-thread when `workers` is `None`).
pub fn serve_tokio_frugal(listener: TcpListener, workers: Option<usize>) -> io::Result<()> {
    let rt = tokio_runtime(workers)?;
    listener.set_nonblocking(true)?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(frugal_echo(stream));
        }
    })
}
