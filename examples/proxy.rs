//! A TCP proxy on `knote::net`: every accepted connection is joined to a new connection to the
//! upstream address, and bytes are copied both ways.
//!
//! ```text
//! cargo run --release --example proxy -- LISTEN_ADDR UPSTREAM_ADDR [--current-thread] [--max-conns N]
//! ```
//!
//! Each direction is its own copy loop over owned halves of the two streams (one of them in a
//! task of its own, so on a multi-thread runtime the two directions run in parallel). When one
//! side reaches EOF, the proxy shuts the write side of the other down (`shutdown(Write)`), so a
//! half-close passes through and the other direction goes on until its own EOF. With
//! `--max-conns N` it stops accepting after `N` connections and exits once they have all
//! closed. `--help` prints the usage. Exit codes: 0 done, 1 a runtime or listener error, 2 a
//! bad command line.

use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::process::ExitCode;

use futures_util::future::{select, Either};
use futures_util::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use knote::net::{TcpListener, TcpStream};

/// How much one read takes at most: large, so a bulk transfer costs few wake-ups.
const COPY_BUF: usize = 256 * 1024;

/// The usage `--help` prints.
pub const USAGE: &str = "usage: proxy LISTEN_ADDR UPSTREAM_ADDR [--current-thread] [--max-conns N]

A TCP proxy on knote::net: each connection to LISTEN_ADDR is joined to a new
connection to UPSTREAM_ADDR, bytes copied both ways, half-closes passed on.

  LISTEN_ADDR       the address to listen on, e.g. 127.0.0.1:7001
  UPSTREAM_ADDR     the address to connect each connection to
  --current-thread  run on a current-thread runtime (default: multi-thread)
  --max-conns N     stop after N connections, once they have all closed
  --help            print this and exit";

#[path = "support/cli.rs"]
mod cli;

/// What the command line asks for.
pub type Command = cli::Command<Options>;

/// The proxy's options.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// The address to listen on.
    pub listen: String,
    /// The address each connection is joined to.
    pub upstream: String,
    /// A current-thread runtime instead of a multi-thread one.
    pub current_thread: bool,
    /// Stop after this many connections.
    pub max_conns: Option<usize>,
}

/// Parses the arguments (without the program name).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let spec = cli::Spec::new(2, "--max-conns").with_current_thread();
    cli::parse(args, spec, |mut args| {
        Ok(Options {
            listen: args.positional().ok_or("LISTEN_ADDR is missing")?,
            upstream: args.positional().ok_or("UPSTREAM_ADDR is missing")?,
            current_thread: args.current_thread,
            max_conns: args.count()?,
        })
    })
}

/// Copies `from` into `to` until `from`'s EOF, then closes `to` (for a stream's write half:
/// shuts its write side down, so the peer reads EOF); returns the bytes copied.
pub async fn copy_half<R, W>(mut from: R, mut to: W) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0; COPY_BUF];
    let mut total = 0;
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            to.close().await?;
            return Ok(total);
        }
        to.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}

/// Bytes one proxied connection carried, each way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Carried {
    /// From the client to the upstream.
    pub to_upstream: u64,
    /// From the upstream to the client.
    pub to_client: u64,
}

/// Joins `client` to `upstream` until both directions have reached EOF: the client-to-upstream
/// copy in a task of its own, the other in this one. An error in either direction ends the
/// other at once (its halves dropped), so a broken connection is closed, not left half-open.
pub async fn proxy(client: TcpStream, upstream: TcpStream) -> io::Result<Carried> {
    client.set_nodelay(true)?;
    upstream.set_nodelay(true)?;
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let forward = knote::spawn(copy_half(client_read, upstream_write));
    let back = pin!(copy_half(upstream_read, client_write));
    let joined = |r: Result<io::Result<u64>, knote::task::JoinError>| {
        r.map_err(|e| io::Error::other(format!("the client-to-upstream task failed: {e}")))?
    };
    // Whichever direction ends first: an error ends the other at once (a broken connection
    // is closed, not left half-open), EOF waits for the other's EOF.
    match select(forward, back).await {
        Either::Left((forward, back)) => {
            let to_upstream = joined(forward)?; // on error, `back` is dropped with its halves
            Ok(Carried {
                to_upstream,
                to_client: back.await?,
            })
        }
        Either::Right((back, forward)) => match back {
            Ok(to_client) => Ok(Carried {
                to_upstream: joined(forward.await)?,
                to_client,
            }),
            Err(err) => {
                forward.abort();
                Err(err)
            }
        },
    }
}

/// What [`serve`] did, returned when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: usize,
    /// Bytes carried, over all connections.
    pub carried: Carried,
    /// Connections that ended with an error (the upstream refused, a reset) instead of EOF.
    pub failed: usize,
}

/// Accepts on `listener` and proxies each connection to `upstream` in its own task, until
/// `max_conns` connections (forever if `None`) were accepted and have closed. An error of one
/// connection (the upstream refusing, say) ends that connection only; an accept error ends the
/// proxy.
pub async fn serve(
    listener: TcpListener,
    upstream: SocketAddr,
    max_conns: Option<usize>,
) -> io::Result<Stats> {
    let mut stats = Stats::default();
    let mut connections = Vec::new();
    while max_conns.map_or(true, |max| stats.accepted < max) {
        let (client, _) = listener.accept().await?;
        stats.accepted += 1;
        let task = knote::spawn(async move {
            let upstream = TcpStream::connect(upstream).await?;
            proxy(client, upstream).await
        });
        if max_conns.is_some() {
            connections.push(task);
        }
    }
    for task in connections {
        match task.await {
            Ok(Ok(carried)) => {
                stats.carried.to_upstream += carried.to_upstream;
                stats.carried.to_client += carried.to_client;
            }
            Ok(Err(_)) | Err(_) => stats.failed += 1,
        }
    }
    Ok(stats)
}

fn main() -> ExitCode {
    cli::main(
        "proxy",
        USAGE,
        parse_args(std::env::args().skip(1)),
        |options| options.current_thread,
        |options| async move {
            let upstream = knote::net::lookup_host(options.upstream.as_str())
                .await
                .map_err(cli::at(&options.upstream))?
                .next()
                .ok_or_else(|| io::Error::other(format!("{}: no address", options.upstream)))?;
            let listener = TcpListener::bind(options.listen.as_str())
                .await
                .map_err(cli::at(&options.listen))?;
            eprintln!(
                "proxy: listening on {}, upstream {upstream}",
                listener.local_addr()?
            );
            serve(listener, upstream, options.max_conns).await
        },
        |stats| {
            format!(
                "{} connections, {} bytes to the upstream, {} back ({} ended with an error)",
                stats.accepted, stats.carried.to_upstream, stats.carried.to_client, stats.failed
            )
        },
    )
}
