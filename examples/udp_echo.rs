//! A UDP echo server on `knote::net`: every datagram goes back to its sender as it came.
//!
//! ```text
//! cargo run --release --example udp_echo -- [ADDR] [--max-datagrams N]
//! ```
//!
//! `ADDR` defaults to `127.0.0.1:7002`. With `--max-datagrams N` it exits after echoing `N`
//! datagrams, so scripts and tests can make it stop by itself. `--help` prints the usage.
//! Exit codes: 0 done, 1 a runtime or socket error, 2 a bad command line.

use std::io;
use std::process::ExitCode;

use knote::net::UdpSocket;

/// The largest datagram taken whole (an IPv4 UDP payload's limit); longer ones are cut there.
const MAX_DATAGRAM: usize = 65_507;

/// The usage `--help` prints.
pub const USAGE: &str = "usage: udp_echo [ADDR] [--max-datagrams N]

A UDP echo server on knote::net: each datagram goes back to its sender.

  ADDR                the address to bind (default 127.0.0.1:7002)
  --max-datagrams N   exit after echoing N datagrams
  --help              print this and exit";

#[path = "support/cli.rs"]
mod cli;

/// What the command line asks for.
pub type Command = cli::Command<Options>;

/// The server's options.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// The address to bind.
    pub addr: String,
    /// Exit after this many datagrams.
    pub max_datagrams: Option<u64>,
}

/// Parses the arguments (without the program name).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    cli::parse(args, cli::Spec::new(1, "--max-datagrams"), |mut args| {
        Ok(Options {
            addr: args.positional_or("127.0.0.1:7002"),
            max_datagrams: args.count()?,
        })
    })
}

/// What [`serve`] did, returned when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams echoed.
    pub datagrams: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Echoes each datagram on `socket` back to its sender, until `max_datagrams` were echoed
/// (forever if `None`). A send or receive error ends the server.
pub async fn serve(socket: &UdpSocket, max_datagrams: Option<u64>) -> io::Result<Stats> {
    let mut stats = Stats::default();
    let mut buf = vec![0; MAX_DATAGRAM];
    while max_datagrams.map_or(true, |max| stats.datagrams < max) {
        let (n, peer) = socket.recv_from(&mut buf).await?;
        let sent = socket.send_to(&buf[..n], peer).await?;
        if sent != n {
            return Err(io::Error::other(format!(
                "sent {sent} of a {n}-byte datagram to {peer}"
            )));
        }
        stats.datagrams += 1;
        stats.bytes += n as u64;
    }
    Ok(stats)
}

fn main() -> ExitCode {
    cli::main(
        "udp_echo",
        USAGE,
        parse_args(std::env::args().skip(1)),
        |_| true,
        |options| async move {
            let socket = UdpSocket::bind(options.addr.as_str())
                .await
                .map_err(cli::at(&options.addr))?;
            eprintln!("udp_echo: bound to {}", socket.local_addr()?);
            serve(&socket, options.max_datagrams).await
        },
        |stats| {
            format!(
                "echoed {} datagrams, {} bytes",
                stats.datagrams, stats.bytes
            )
        },
    )
}
