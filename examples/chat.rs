//! A line-based chat server on `knote::net`: every line a client sends reaches every other
//! client, prefixed with the sender's number.
//!
//! ```text
//! cargo run --release --features tokio-io --example chat -- [ADDR] [--max-conns N]
//! ```
//!
//! Lines are framed with tokio-util's `LinesCodec` (`FramedRead`/`FramedWrite` on the owned
//! halves of each `knote::net::TcpStream`, which implement tokio's `AsyncRead`/`AsyncWrite`
//! with knote's `tokio-io` feature; no tokio runtime is involved). The room is a
//! `knote::sync::broadcast` channel: each connection's task subscribes, greets its client
//! with `welcome N` once subscribed, and then waits for whichever comes first, a line from
//! its client (sent to the room) or a line from the room (written to its client, unless it is
//! the client's own). A client too slow to keep up is told how many lines it missed.
//!
//! `ADDR` defaults to `127.0.0.1:7003`. With `--max-conns N` it stops accepting after `N`
//! connections and exits once they have all closed. `--help` prints the usage. Exit codes: 0
//! done, 1 a runtime or listener error, 2 a bad command line. Try it with `nc 127.0.0.1 7003`
//! in two terminals.

use std::io;
use std::pin::pin;
use std::process::ExitCode;

use futures_util::future::{select, Either};
use futures_util::{SinkExt, StreamExt};
use knote::net::{TcpListener, TcpStream};
use knote::sync::broadcast::{self, error::RecvError};
use tokio_util::codec::{FramedRead, FramedWrite, LinesCodec, LinesCodecError};

/// The longest line a client may send; a longer one ends its connection.
pub const MAX_LINE: usize = 8 * 1024;

/// Lines the room holds for its slowest reader before that reader misses some.
const ROOM_CAPACITY: usize = 256;

/// The usage `--help` prints.
pub const USAGE: &str = "usage: chat [ADDR] [--max-conns N]

A line-based chat server on knote::net: each line a client sends reaches all
the others as \"N: line\", N the sender's number.

  ADDR           the address to listen on (default 127.0.0.1:7003)
  --max-conns N  stop after N connections, once they have all closed
  --help         print this and exit";

#[path = "support/cli.rs"]
mod cli;

/// What the command line asks for.
pub type Command = cli::Command<Options>;

/// The server's options.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// The address to listen on.
    pub addr: String,
    /// Stop after this many connections.
    pub max_conns: Option<usize>,
}

/// Parses the arguments (without the program name).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    cli::parse(args, cli::Spec::new(1, "--max-conns"), |mut args| {
        Ok(Options {
            addr: args.positional_or("127.0.0.1:7003"),
            max_conns: args.count()?,
        })
    })
}

/// A line in the room: who sent it, and the line.
pub type Said = (usize, String);

/// A codec error as an `io::Error` (an over-long line is `InvalidData`).
fn codec_error(err: LinesCodecError) -> io::Error {
    match err {
        LinesCodecError::Io(err) => err,
        err @ LinesCodecError::MaxLineLengthExceeded => {
            io::Error::new(io::ErrorKind::InvalidData, err)
        }
    }
}

/// Client `id`'s session: greets it, then relays its lines to `room` and the room's other
/// lines to it, until it closes (or fails); returns how many lines it sent.
pub async fn session(
    stream: TcpStream,
    id: usize,
    room: broadcast::Sender<Said>,
) -> io::Result<u64> {
    stream.set_nodelay(true)?;
    // Subscribed before the greeting: a client that saw `welcome` sees every later line.
    let mut heard = room.subscribe();
    let (read, write) = stream.into_split();
    let mut lines = FramedRead::new(read, LinesCodec::new_with_max_length(MAX_LINE));
    let mut out = FramedWrite::new(write, LinesCodec::new_with_max_length(MAX_LINE));
    out.send(format!("welcome {id}"))
        .await
        .map_err(codec_error)?;
    let mut sent = 0;
    loop {
        // Both futures are cancel-safe: the codec keeps a partial line in its buffer, the
        // receiver its place in the channel.
        let next = match select(pin!(lines.next()), pin!(heard.recv())).await {
            Either::Left((line, _)) => Either::Left(line),
            Either::Right((said, _)) => Either::Right(said),
        };
        match next {
            Either::Left(None) => break,
            Either::Left(Some(line)) => {
                let line = line.map_err(codec_error)?;
                // The sender's own receiver is alive, so the room has a receiver: cannot fail.
                room.send((id, line))
                    .map_err(|_| io::Error::other("the room has no receivers"))?;
                sent += 1;
            }
            Either::Right(Ok((from, _))) if from == id => {}
            Either::Right(Ok((from, line))) => {
                out.send(format!("{from}: {line}"))
                    .await
                    .map_err(codec_error)?;
            }
            Either::Right(Err(RecvError::Lagged(missed))) => {
                out.send(format!("*** you missed {missed} lines"))
                    .await
                    .map_err(codec_error)?;
            }
            // This session holds a sender: the room cannot close under it.
            Either::Right(Err(RecvError::Closed)) => break,
        }
    }
    SinkExt::<String>::close(&mut out)
        .await
        .map_err(codec_error)?;
    Ok(sent)
}

/// What [`serve`] did, returned when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: usize,
    /// Lines clients sent to the room.
    pub lines: u64,
    /// Sessions that ended with an error (a reset, an over-long line) instead of EOF.
    pub failed: usize,
}

/// Accepts on `listener`, client `n` (from 1) in a session task of its own, until `max_conns`
/// connections (forever if `None`) were accepted and have closed. An error of one session ends
/// that session only; an accept error ends the server.
pub async fn serve(listener: TcpListener, max_conns: Option<usize>) -> io::Result<Stats> {
    let (room, _) = broadcast::channel(ROOM_CAPACITY);
    let mut stats = Stats::default();
    let mut sessions = Vec::new();
    while max_conns.map_or(true, |max| stats.accepted < max) {
        let (stream, _) = listener.accept().await?;
        stats.accepted += 1;
        let task = knote::spawn(session(stream, stats.accepted, room.clone()));
        if max_conns.is_some() {
            sessions.push(task);
        }
    }
    for task in sessions {
        match task.await {
            Ok(Ok(lines)) => stats.lines += lines,
            Ok(Err(_)) | Err(_) => stats.failed += 1,
        }
    }
    Ok(stats)
}

fn main() -> ExitCode {
    cli::main(
        "chat",
        USAGE,
        parse_args(std::env::args().skip(1)),
        |_| false,
        |options| async move {
            let listener = cli::listen("chat", &options.addr, "").await?;
            serve(listener, options.max_conns).await
        },
        |stats| {
            format!(
                "{} clients, {} lines ({} ended with an error)",
                stats.accepted, stats.lines, stats.failed
            )
        },
    )
}
