//! A TCP echo server that shuts down gracefully on Ctrl-C (`SIGINT`): it stops accepting,
//! tells every open connection to finish, waits for them up to a deadline, cuts off the ones
//! still busy, and exits reporting how many were drained and how many cut off.
//!
//! ```text
//! cargo run --release --example graceful_shutdown -- [ADDR] [--deadline-ms MS]
//! ```
//!
//! `ADDR` defaults to `127.0.0.1:7004`, the deadline to 5000 ms. The pieces:
//!
//! - `knote::signal::ctrl_c()` is created before the listener, so a `SIGINT` from the moment
//!   the server says it listens is seen (and no longer kills the process);
//! - the accept loop races `accept` against that future; on the signal it drops the listener
//!   (new connections are refused from then on) and sends `true` on a `knote::sync::watch`
//!   channel every connection subscribed to;
//! - a connection waits for either its next bytes or that notice (both cancel-safe); echoing
//!   what it read is never interrupted. Told to finish, it shuts its write side down (the
//!   client reads EOF) and ends: that is a *drained* connection;
//! - a connection that cannot finish in time (stuck writing to a client that does not read)
//!   is aborted when `knote::time::timeout_at` reaches the deadline: *cut off*.
//!
//! `--help` prints the usage. Exit codes: 0 shut down (whether or not some connections were
//! cut off), 1 a runtime, signal or listener error, 2 a bad command line.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::process::ExitCode;
use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::io::AsyncWriteExt;
use knote::net::{TcpListener, TcpStream};
use knote::runtime::Builder;
use knote::sync::watch;
use knote::time::{timeout_at, Instant};

/// How much one read takes at most.
const READ_BUF: usize = 64 * 1024;

/// The usage `--help` prints.
pub const USAGE: &str = "usage: graceful_shutdown [ADDR] [--deadline-ms MS]

A TCP echo server that shuts down gracefully on Ctrl-C (SIGINT): it stops
accepting, tells open connections to finish, waits for them up to the
deadline, cuts off the rest, and reports how many were drained and cut off.

  ADDR              the address to listen on (default 127.0.0.1:7004)
  --deadline-ms MS  how long connections get to finish (default 5000)
  --help            print this and exit";

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
    /// The address to listen on.
    pub addr: String,
    /// How long connections get to finish once told to.
    pub deadline: Duration,
}

/// Parses the arguments (without the program name).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut options = Options {
        addr: "127.0.0.1:7004".to_owned(),
        deadline: Duration::from_millis(5000),
    };
    let mut addr_seen = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--deadline-ms" => {
                let ms = args.next().ok_or("--deadline-ms needs a number")?;
                let ms = ms
                    .parse()
                    .map_err(|_| format!("--deadline-ms: not a number: {ms:?}"))?;
                options.deadline = Duration::from_millis(ms);
            }
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag:?}")),
            addr if !addr_seen => {
                options.addr = addr.to_owned();
                addr_seen = true;
            }
            extra => return Err(format!("unexpected argument {extra:?}")),
        }
    }
    Ok(Command::Serve(options))
}

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The client closed its side first.
    ClientClosed,
    /// Told to finish, it did.
    Finished,
}

/// Echoes `stream` until the client closes its side or `stop` says to finish (or its sender
/// is gone), then shuts the write side down.
pub async fn connection(stream: TcpStream, mut stop: watch::Receiver<bool>) -> io::Result<Ending> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0; READ_BUF];
    let ending = loop {
        if *stop.borrow_and_update() {
            break Ending::Finished;
        }
        // The inherent `read` and `changed` are both cancel-safe: whichever loses loses
        // nothing. Writing the echo is not raced: what was read is always written back.
        let n = match select(pin!(stream.read(&mut buf)), pin!(stop.changed())).await {
            Either::Left((read, _)) => read?,
            Either::Right(_) => break Ending::Finished,
        };
        if n == 0 {
            break Ending::ClientClosed;
        }
        (&stream).write_all(&buf[..n]).await?;
    };
    stream.shutdown(std::net::Shutdown::Write)?;
    Ok(ending)
}

/// What [`serve`] did, returned when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Connections accepted.
    pub accepted: usize,
    /// Connections whose client closed them before the shutdown.
    pub closed_by_client: usize,
    /// Connections that finished when told to, within the deadline.
    pub drained: usize,
    /// Connections still busy at the deadline, aborted.
    pub cut_off: usize,
    /// Connections that ended with an error (a reset, say).
    pub failed: usize,
}

impl Report {
    fn count(&mut self, ended: Result<io::Result<Ending>, impl Sized>) {
        match ended {
            Ok(Ok(Ending::ClientClosed)) => self.closed_by_client += 1,
            Ok(Ok(Ending::Finished)) => self.drained += 1,
            Ok(Err(_)) | Err(_) => self.failed += 1,
        }
    }
}

/// Serves `listener` until `shutdown` resolves, then drops the listener (no more accepts),
/// tells every connection to finish, and waits for them until `deadline` has passed, aborting
/// the ones still running. `on_stop_accepting` runs right after the listener is dropped (the
/// example prints a line there). An accept error or a `shutdown` error ends the server at
/// once, connections aborted as runtime shutdown does.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = io::Result<()>>,
    deadline: Duration,
    on_stop_accepting: impl FnOnce(),
) -> io::Result<Report> {
    let (stop, _) = watch::channel(false);
    let mut report = Report::default();
    let mut connections = Vec::new();
    let mut shutdown = pin!(shutdown);
    loop {
        match select(pin!(listener.accept()), shutdown.as_mut()).await {
            Either::Left((accepted, _)) => {
                let (stream, _) = accepted?;
                report.accepted += 1;
                // Tally the connections that are done, so a long-running server keeps only the
                // live ones.
                let (done, live): (Vec<_>, Vec<_>) = std::mem::take(&mut connections)
                    .into_iter()
                    .partition(|c: &knote::task::JoinHandle<_>| c.is_finished());
                connections = live;
                for c in done {
                    report.count(c.await);
                }
                connections.push(knote::spawn(connection(stream, stop.subscribe())));
            }
            Either::Right((signalled, _)) => {
                signalled?;
                break;
            }
        }
    }
    drop(listener);
    on_stop_accepting();
    // `send_replace`, not `send`: with no connection open there is no receiver, and that is
    // not an error here.
    stop.send_replace(true);
    let deadline = Instant::now() + deadline;
    for mut c in connections {
        match timeout_at(deadline, &mut c).await {
            Ok(ended) => report.count(ended),
            Err(_elapsed) => {
                c.abort();
                report.cut_off += 1;
            }
        }
    }
    Ok(report)
}

/// Runs the server for `options` on a runtime of its own until Ctrl-C, printing where it
/// listens and when it stops accepting on standard error.
pub fn run(options: &Options) -> io::Result<Report> {
    let runtime = Builder::new_multi_thread().build()?;
    runtime.block_on(async {
        // Before the listener: a SIGINT from the moment we say we listen is ours.
        let ctrl_c = knote::signal::ctrl_c();
        let listener = TcpListener::bind(options.addr.as_str()).await?;
        eprintln!("graceful_shutdown: listening on {}", listener.local_addr()?);
        serve(listener, ctrl_c, options.deadline, || {
            eprintln!("graceful_shutdown: interrupted, no longer accepting");
        })
        .await
    })
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Serve(options)) => options,
        Err(err) => {
            eprintln!("graceful_shutdown: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(r) => {
            eprintln!(
                "graceful_shutdown: {} accepted, {} closed by their client, {} drained, \
                 {} cut off, {} failed",
                r.accepted, r.closed_by_client, r.drained, r.cut_off, r.failed
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("graceful_shutdown: {}: {err}", options.addr);
            ExitCode::FAILURE
        }
    }
}
