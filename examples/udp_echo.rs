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
use knote::runtime::Builder;

/// The largest datagram taken whole (an IPv4 UDP payload's limit); longer ones are cut there.
const MAX_DATAGRAM: usize = 65_507;

/// The usage `--help` prints.
pub const USAGE: &str = "usage: udp_echo [ADDR] [--max-datagrams N]

A UDP echo server on knote::net: each datagram goes back to its sender.

  ADDR                the address to bind (default 127.0.0.1:7002)
  --max-datagrams N   exit after echoing N datagrams
  --help              print this and exit";

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
    /// The address to bind.
    pub addr: String,
    /// Exit after this many datagrams.
    pub max_datagrams: Option<u64>,
}

/// Parses the arguments (without the program name).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut options = Options {
        addr: "127.0.0.1:7002".to_owned(),
        max_datagrams: None,
    };
    let mut addr_seen = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--max-datagrams" => {
                let n = args.next().ok_or("--max-datagrams needs a number")?;
                let n = n
                    .parse()
                    .map_err(|_| format!("--max-datagrams: not a number: {n:?}"))?;
                options.max_datagrams = Some(n);
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
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Serve(options)) => options,
        Err(err) => {
            eprintln!("udp_echo: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("udp_echo: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let socket = UdpSocket::bind(options.addr.as_str()).await?;
        eprintln!("udp_echo: bound to {}", socket.local_addr()?);
        serve(&socket, options.max_datagrams).await
    });
    match result {
        Ok(stats) => {
            eprintln!(
                "udp_echo: echoed {} datagrams, {} bytes",
                stats.datagrams, stats.bytes
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("udp_echo: {}: {err}", options.addr);
            ExitCode::FAILURE
        }
    }
}
