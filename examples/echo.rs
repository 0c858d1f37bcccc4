//! A TCP echo server on `knote::net`: every connection is a task that writes back what it
//! reads.
//!
//! ```text
//! cargo run --release --example echo -- [ADDR] [--current-thread] [--max-conns N]
//! ```
//!
//! `ADDR` defaults to `127.0.0.1:7000`. The server runs on a multi-thread runtime unless
//! `--current-thread` is given. With `--max-conns N` it stops accepting after `N` connections
//! and exits once they have all closed, so scripts and tests can make it stop by itself.
//! `--help` prints the usage.

use std::io;
use std::process::ExitCode;

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use knote::net::{TcpListener, TcpStream};

/// How much one read takes at most.
const READ_BUF: usize = 64 * 1024;

const USAGE: &str = "usage: echo [ADDR] [--current-thread] [--max-conns N]

A TCP echo server on knote::net.

  ADDR              the address to listen on (default 127.0.0.1:7000)
  --current-thread  run on a current-thread runtime (default: multi-thread)
  --max-conns N     stop after N connections, once they have all closed
  --help            print this and exit";

#[path = "support/cli.rs"]
mod cli;

/// What the command line asks for.
pub type Command = cli::Command<Options>;

/// The server's options.
pub use cli::ServerOptions as Options;

/// Parses the arguments (without the program name).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    cli::parse_server(args, "127.0.0.1:7000")
}

/// What [`serve`] did, returned when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: usize,
    /// Bytes echoed, over all connections.
    pub bytes: u64,
    /// Connections that ended with an error (a reset, say) instead of EOF.
    pub failed: usize,
}

/// Echoes `stream` until the peer closes its side, then closes this one; returns the bytes
/// echoed.
pub async fn echo(mut stream: TcpStream) -> io::Result<u64> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0; READ_BUF];
    let mut total = 0;
    loop {
        let n = AsyncReadExt::read(&mut stream, &mut buf).await?;
        if n == 0 {
            stream.close().await?;
            return Ok(total);
        }
        stream.write_all(&buf[..n]).await?;
        total += n as u64;
    }
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
        let task = knote::spawn(echo(stream));
        if max_conns.is_some() {
            connections.push(task);
        }
    }
    for task in connections {
        match task.await {
            Ok(Ok(bytes)) => stats.bytes += bytes,
            Ok(Err(_)) | Err(_) => stats.failed += 1,
        }
    }
    Ok(stats)
}

fn main() -> ExitCode {
    cli::main(
        "echo",
        USAGE,
        parse_args(std::env::args().skip(1)),
        |options| options.current_thread,
        |options| async move {
            let listener = cli::listen("echo", &options.addr, "").await?;
            serve(listener, options.max_conns).await
        },
        |stats| {
            format!(
                "served {} connections, {} bytes ({} ended with an error)",
                stats.accepted, stats.bytes, stats.failed
            )
        },
    )
}
