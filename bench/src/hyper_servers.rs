//! The `hyper_hello` example's service served by hyper's HTTP/1 connection builder on knote
//! (`knote::hyper`) and on tokio (hyper-util's `TokioIo`/`TokioTimer`): the runtime is the only
//! difference. Used by `knote-bench` and by `benches/hyper_wrk.rs`, which include this file
//! together with `runtimes.rs` and the example (as `crate::runtimes`, `crate::hyper_hello`).

use std::future::Future;
use std::io;
use std::net::TcpListener;

use futures_util::future;
use hyper::service::service_fn;

use crate::hyper_hello::hello;
use crate::runtimes::{knote_runtime, tokio_runtime};

/// Serves hello world on `listener` with knote (current-thread when `workers` is `None`) until
/// `stop` completes. An accept error ends the server with that error.
pub fn serve_knote(
    listener: TcpListener,
    workers: Option<usize>,
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    use knote::hyper::{KnoteIo, KnoteTimer};
    let rt = knote_runtime(workers)?;
    listener.set_nonblocking(true)?;
    rt.block_on(async {
        let listener = knote::net::TcpListener::from_std(listener)?;
        let accept = async {
            loop {
                let (stream, _) = listener.accept().await?;
                stream.set_nodelay(true)?;
                knote::spawn(async move {
                    // A connection's error (a client gone mid-request) ends that connection.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(KnoteTimer::new())
                        .serve_connection(KnoteIo::new(stream), service_fn(hello))
                        .await;
                });
            }
        };
        until_stopped(accept, stop).await
    })
}

/// Serves hello world on `listener` with tokio (current-thread when `workers` is `None`) until
/// `stop` completes. An accept error ends the server with that error.
pub fn serve_tokio(
    listener: TcpListener,
    workers: Option<usize>,
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let rt = tokio_runtime(workers)?;
    listener.set_nonblocking(true)?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let accept = async {
            loop {
                let (stream, _) = listener.accept().await?;
                stream.set_nodelay(true)?;
                tokio::spawn(async move {
                    // A connection's error (a client gone mid-request) ends that connection.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .serve_connection(TokioIo::new(stream), service_fn(hello))
                        .await;
                });
            }
        };
        until_stopped(accept, stop).await
    })
}

/// Runs the accept loop until it fails (its error) or `stop` completes (`Ok`).
async fn until_stopped(
    accept: impl Future<Output = io::Result<()>>,
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    futures_util::pin_mut!(accept, stop);
    match future::select(accept, stop).await {
        future::Either::Left((result, _)) => result,
        future::Either::Right(((), _)) => Ok(()),
    }
}
