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
use knote::runtime::Builder;

const USAGE: &str = "usage: hyper_hello [ADDR] [--current-thread] [--max-conns N]

An HTTP/1.1 and HTTP/2 hello-world server: hyper on knote.

  ADDR              the address to listen on (default 127.0.0.1:3000)
  --current-thread  run on a current-thread runtime (default: multi-thread)
  --max-conns N     stop after N connections, once they have all closed
  --help            print this and exit";

/// What every request is answered with.
pub const HELLO: &str = "Hello, world!";

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
    /// A current-thread runtime instead of a multi-thread one.
    pub current_thread: bool,
    /// Stop after this many connections.
    pub max_conns: Option<usize>,
}

/// Parses the arguments (without the program name).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut options = Options {
        addr: "127.0.0.1:3000".to_owned(),
        current_thread: false,
        max_conns: None,
    };
    let mut addr_seen = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--current-thread" => options.current_thread = true,
            "--max-conns" => {
                let n = args.next().ok_or("--max-conns needs a number")?;
                let n = n
                    .parse()
                    .map_err(|_| format!("--max-conns: not a number: {n:?}"))?;
                options.max_conns = Some(n);
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
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Serve(options)) => options,
        Err(err) => {
            eprintln!("hyper_hello: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = if options.current_thread {
        Builder::new_current_thread().build()
    } else {
        Builder::new_multi_thread().build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("hyper_hello: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listener = TcpListener::bind(options.addr.as_str()).await?;
        eprintln!(
            "hyper_hello: listening on http://{}",
            listener.local_addr()?
        );
        serve(listener, options.max_conns).await
    });
    match result {
        Ok(stats) => {
            eprintln!(
                "hyper_hello: served {} connections ({} ended with an error)",
                stats.accepted, stats.failed
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("hyper_hello: {}: {err}", options.addr);
            ExitCode::FAILURE
        }
    }
}
