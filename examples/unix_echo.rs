//! A Unix-domain stream echo server on `knote::net`: every connection is a task that writes
//! back what it reads.
//!
//! ```text
//! cargo run --release --example unix_echo -- [PATH] [--max-conns N]
//! ```
//!
//! `PATH` defaults to `knote-unix-echo.sock` in the temporary directory; it must not exist
//! (a socket file left by an earlier run is an error, not silently replaced), and the server
//! removes it when it stops. With `--max-conns N` it stops accepting after `N` connections
//! and exits once they have all closed. `--help` prints the usage. Exit codes: 0 done, 1 a
//! runtime or socket error, 2 a bad command line.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use futures_util::StreamExt;
use knote::net::{UnixListener, UnixStream};

/// How much one read takes at most.
const READ_BUF: usize = 64 * 1024;

/// The usage `--help` prints.
pub const USAGE: &str = "usage: unix_echo [PATH] [--max-conns N]

A Unix-domain stream echo server on knote::net.

  PATH           the socket path to bind; it must not exist
                 (default: knote-unix-echo.sock in the temporary directory)
  --max-conns N  stop after N connections, once they have all closed
  --help         print this and exit";

#[path = "support/cli.rs"]
mod cli;

/// What the command line asks for.
pub type Command = cli::Command<Options>;

/// The server's options.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// The socket path to bind.
    pub path: PathBuf,
    /// Stop after this many connections.
    pub max_conns: Option<usize>,
}

/// The socket path when none is given.
pub fn default_path() -> PathBuf {
    std::env::temp_dir().join("knote-unix-echo.sock")
}

/// Parses the arguments (without the program name).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    cli::parse(args, cli::Spec::new(1, "--max-conns"), |mut args| {
        Ok(Options {
            path: args.positional().map_or_else(default_path, PathBuf::from),
            max_conns: args.count()?,
        })
    })
}

/// What [`serve`] did, returned when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: usize,
    /// Bytes echoed, over all connections.
    pub bytes: u64,
    /// Connections that ended with an error instead of EOF.
    pub failed: usize,
}

/// Echoes `stream` until the peer closes its side, then closes this one; returns the bytes
/// echoed.
pub async fn echo(mut stream: UnixStream) -> io::Result<u64> {
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

/// Accepts on `listener` (through its `incoming()` stream), each connection in its own task,
/// until `max_conns` connections (forever if `None`) were accepted and have closed. An error
/// of one connection ends that connection only; an accept error ends the server.
pub async fn serve(listener: &UnixListener, max_conns: Option<usize>) -> io::Result<Stats> {
    let mut stats = Stats::default();
    let mut connections = Vec::new();
    let mut incoming = listener.incoming();
    while max_conns.map_or(true, |max| stats.accepted < max) {
        let stream = match incoming.next().await {
            Some(stream) => stream?,
            None => break, // `incoming` never ends; this is for form's sake
        };
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

/// Binds `path` and serves it as [`serve`] does, removing the socket file when done (also when
/// serving failed).
pub async fn serve_path(path: &Path, max_conns: Option<usize>) -> io::Result<Stats> {
    let listener = UnixListener::bind(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind {}: {e}", path.display())))?;
    let served = serve(&listener, max_conns).await;
    drop(listener);
    let removed = std::fs::remove_file(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot remove {}: {e}", path.display())));
    let stats = served?;
    removed?;
    Ok(stats)
}

fn main() -> ExitCode {
    cli::main(
        "unix_echo",
        USAGE,
        parse_args(std::env::args().skip(1)),
        |_| false,
        |options| async move {
            eprintln!("unix_echo: listening on {}", options.path.display());
            serve_path(&options.path, options.max_conns).await
        },
        |stats| {
            format!(
                "served {} connections, {} bytes ({} ended with an error)",
                stats.accepted, stats.bytes, stats.failed
            )
        },
    )
}
