//! The echo contestants: `examples/echo.rs`'s service on knote, the same service on tokio with
//! tokio::net, and `examples/reactor_echo.rs`'s hand-written loop (the ceiling). Each serves
//! until the process ends.

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
