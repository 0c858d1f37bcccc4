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
use knote::runtime::Builder;

/// How much one read takes at most.
const READ_BUF: usize = 64 * 1024;

/// The usage `--help` prints.
pub const USAGE: &str = "usage: unix_echo [PATH] [--max-conns N]

A Unix-domain stream echo server on knote::net.

  PATH           the socket path to bind; it must not exist
                 (default: knote-unix-echo.sock in the temporary directory)
  --max-conns N  stop after N connections, once they have all closed
  --help         print this and exit";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Print the usage.
    Help,
    /// Serve.
    Serve(Options),
}

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
    let mut options = Options {
        path: default_path(),
        max_conns: None,
    };
    let mut path_seen = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--max-conns" => {
                let n = args.next().ok_or("--max-conns needs a number")?;
                let n = n
                    .parse()
                    .map_err(|_| format!("--max-conns: not a number: {n:?}"))?;
                options.max_conns = Some(n);
            }
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag:?}")),
            path if !path_seen => {
                options.path = PathBuf::from(path);
                path_seen = true;
            }
            extra => return Err(format!("unexpected argument {extra:?}")),
        }
    }
    Ok(Command::Serve(options))
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
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Serve(options)) => options,
        Err(err) => {
            eprintln!("unix_echo: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match Builder::new_multi_thread().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("unix_echo: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("unix_echo: listening on {}", options.path.display());
    match runtime.block_on(serve_path(&options.path, options.max_conns)) {
        Ok(stats) => {
            eprintln!(
                "unix_echo: served {} connections, {} bytes ({} ended with an error)",
                stats.accepted, stats.bytes, stats.failed
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("unix_echo: {err}");
            ExitCode::FAILURE
        }
    }
}
