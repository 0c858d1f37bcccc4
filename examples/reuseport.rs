//! Per-core accept: one current-thread runtime per thread, each with its own `SO_REUSEPORT`
//! listener on the same port, serving the `echo` example's service. Nothing is shared between
//! the threads: the kernel spreads connections among the listeners (Linux, Android; FreeBSD
//! needs `SO_REUSEPORT_LB`, and macOS gives them all to one listener), and every connection
//! lives on the thread whose listener accepted it — the shape monoio and glommio users choose.
//!
//! ```text
//! cargo run --release --example reuseport -- [ADDR] [--threads N]
//! ```
//!
//! `ADDR` defaults to `127.0.0.1:7000`; `--threads` to the number of CPUs. `--help` prints the
//! usage.

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::thread::JoinHandle;

use knote::net::TcpSocket;
use knote::runtime::Builder;

#[allow(dead_code)]
#[path = "echo.rs"]
mod echo;

const USAGE: &str = "usage: reuseport [ADDR] [--threads N]

A TCP echo server with one SO_REUSEPORT listener per thread, each on its own current-thread
knote runtime.

  ADDR         the address to listen on (default 127.0.0.1:7000)
  --threads N  how many listeners and threads (default: the number of CPUs)
  --help       print this and exit";

/// `n` sockets bound to `addr` with `SO_REUSEPORT` (if `addr`'s port is 0, the first picks
/// one and the others share it), not yet listening: each becomes a listener on the runtime of
/// the thread it is moved to.
pub fn bind_all(addr: SocketAddr, n: usize) -> io::Result<Vec<TcpSocket>> {
    let mut addr = addr;
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.bind(addr)?;
        addr = socket.local_addr()?;
        sockets.push(socket);
    }
    Ok(sockets)
}

/// Starts one thread per socket: a current-thread runtime, the socket listening on it, and
/// the echo service until `max_conns` connections (forever if `None`) were served there.
/// Returns once every socket listens (or its thread has failed).
pub fn start(
    sockets: Vec<TcpSocket>,
    max_conns: Option<usize>,
) -> Vec<JoinHandle<io::Result<echo::Stats>>> {
    let (listening_tx, listening) = std::sync::mpsc::channel();
    let threads: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, socket)| {
            let listening_tx = listening_tx.clone();
            std::thread::Builder::new()
                .name(format!("reuseport-{i}"))
                .spawn(move || {
                    let rt = Builder::new_current_thread().build()?;
                    rt.block_on(async move {
                        let listener = socket.listen(1024)?;
                        // The receiver waits for every thread, so it is there to take this.
                        listening_tx
                            .send(())
                            .expect("start() waits for every listener");
                        drop(listening_tx);
                        echo::serve(listener, max_conns).await
                    })
                })
                .expect("spawn a listener thread")
        })
        .collect();
    drop(listening_tx);
    // Ends early (a closed channel) only if a thread failed before listening: its error is in
    // its JoinHandle.
    for _ in listening.iter().take(threads.len()) {}
    threads
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<(String, usize)>, String> {
    let mut addr = None;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--help" | "-h" => return Ok(None),
            "--threads" => {
                let n = args.next().ok_or("--threads needs a number")?;
                threads = match n.parse() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(format!("--threads: not a positive number: {n:?}")),
                };
            }
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag:?}")),
            a if addr.is_none() => addr = Some(a.to_owned()),
            extra => return Err(format!("unexpected argument {extra:?}")),
        }
    }
    Ok(Some((
        addr.unwrap_or_else(|| "127.0.0.1:7000".to_owned()),
        threads,
    )))
}

fn main() -> ExitCode {
    let (addr, threads) = match parse_args(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("reuseport: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let addr: SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(_) => {
            eprintln!("reuseport: {addr:?} is not an IP address and port");
            return ExitCode::from(2);
        }
    };
    let sockets = match bind_all(addr, threads) {
        Ok(s) => s,
        Err(err) => {
            eprintln!("reuseport: bind {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("reuseport: {threads} listeners on {addr}");
    let mut code = ExitCode::SUCCESS;
    for (i, thread) in start(sockets, None).into_iter().enumerate() {
        match thread.join() {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                eprintln!("reuseport: listener {i}: {err}");
                code = ExitCode::FAILURE;
            }
            Err(_) => {
                eprintln!("reuseport: listener {i} panicked");
                code = ExitCode::FAILURE;
            }
        }
    }
    code
}
