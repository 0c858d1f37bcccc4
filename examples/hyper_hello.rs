//! An HTTP hello-world server: unmodified hyper (through hyper-util's auto builder, so both
//! HTTP/1.1 and HTTP/2 with prior knowledge) on knote, through `knote::hyper`.
//!
//! ```text
//! cargo run --release --features hyper --example hyper_hello -- [ADDR] [--current-thread] [--max-conns N]
//! ```
//!
//! `ADDR` defaults to `127.0.0.1:3000`. The server runs on a multi-thread runtime unless
//! `--current-thread` is given. With `--max-conns N` it stops accepting after `N` connections
//! and exits once they have all closed. `--help` prints the usage. Try it with
//! `curl http://127.0.0.1:3000/`, `curl --http2-prior-knowledge http://127.0.0.1:3000/` or
//! the `hyper_client` example.

use std::convert::Infallible;
use std::io;
use std::process::ExitCode;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use knote::hyper::{KnoteExecutor, KnoteIo, KnoteTimer};
use knote::net::{TcpListener, TcpStream};

const USAGE: &str = "usage: hyper_hello [ADDR] [--current-thread] [--max-conns N]

An HTTP/1.1 and HTTP/2 hello-world server: hyper on knote.

  ADDR              the address to listen on (default 127.0.0.1:3000)
  --current-thread  run on a current-thread runtime (default: multi-thread)
  --max-conns N     stop after N connections, once they have all closed
  --help            print this and exit";

/// What every request is answered with.
pub const HELLO: &str = "Hello, world!";

#[path = "support/cli.rs"]
mod cli;

/// What the command line asks for.
pub type Command = cli::Command<Options>;

/// The server's options.
pub use cli::ServerOptions as Options;

/// Parses the arguments (without the program name).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    cli::parse_server(args, "127.0.0.1:3000")
}

/// The service: [`HELLO`] to every request. It knows nothing of the runtime (the benchmark
/// serves this same function on tokio).
pub async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        HELLO.as_bytes(),
    ))))
}

/// Serves one connection, HTTP/1.1 or HTTP/2 as the client speaks.
pub async fn serve_connection(stream: TcpStream) -> Result<(), String> {
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut builder = hyper_util::server::conn::auto::Builder::new(KnoteExecutor::new());
    builder.http1().timer(KnoteTimer::new());
    builder.http2().timer(KnoteTimer::new());
    builder
        .serve_connection(KnoteIo::new(stream), service_fn(hello))
        .await
        .map_err(|e| e.to_string())
}

/// What [`serve`] did, returned when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: usize,
    /// Connections that ended with an error instead of a clean close.
    pub failed: usize,
}

/// Accepts on `listener`, each connection in its own task, until `max_conns` connections
/// (forever if `None`) were accepted and have closed. An error of one connection ends that
/// connection only; an accept error ends the server.
pub async fn serve(listener: TcpListener, max_conns: Option<usize>) -> io::Result<Stats> {
    let mut stats = Stats::default();
    let mut connections = Vec::new();
    while max_conns.map_or(true, |max| stats.accepted < max) {
        let (stream, _) = listener.accept().await?;
        stats.accepted += 1;
        let task = knote::spawn(serve_connection(stream));
        if max_conns.is_some() {
            connections.push(task);
        }
    }
    for task in connections {
        if !matches!(task.await, Ok(Ok(()))) {
            stats.failed += 1;
        }
    }
    Ok(stats)
}

fn main() -> ExitCode {
    cli::main(
        "hyper_hello",
        USAGE,
        parse_args(std::env::args().skip(1)),
        |options| options.current_thread,
        |options| async move {
            let listener = cli::listen("hyper_hello", &options.addr, "http://").await?;
            serve(listener, options.max_conns).await
        },
        |stats| {
            format!(
                "served {} connections ({} ended with an error)",
                stats.accepted, stats.failed
            )
        },
    )
}
