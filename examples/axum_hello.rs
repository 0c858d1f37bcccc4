//! An axum app on knote, with no tokio runtime: axum's `Router` (built without its `tokio`
//! feature, so without `axum::serve`) is a tower service, served here through hyper-util's
//! `TowerToHyperService` and auto builder over `knote::hyper`.
//!
//! ```text
//! cargo run --release --features hyper --example axum_hello -- [ADDR] [--current-thread] [--max-conns N]
//! ```
//!
//! `ADDR` defaults to `127.0.0.1:3000`. Routes: `/` says hello, `/hello/{name}` greets
//! `name`. The server runs on a multi-thread runtime unless `--current-thread` is given; with
//! `--max-conns N` it stops after `N` connections, once they have all closed. `--help` prints
//! the usage.

use std::io;
use std::process::ExitCode;

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use hyper_util::service::TowerToHyperService;
use knote::hyper::{KnoteExecutor, KnoteIo, KnoteTimer};
use knote::net::{TcpListener, TcpStream};
use knote::runtime::Builder;

const USAGE: &str = "usage: axum_hello [ADDR] [--current-thread] [--max-conns N]

An axum app served by hyper on knote (no tokio runtime).

  ADDR              the address to listen on (default 127.0.0.1:3000)
  --current-thread  run on a current-thread runtime (default: multi-thread)
  --max-conns N     stop after N connections, once they have all closed
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

/// The app's routes.
pub fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "Hello from axum on knote!" }))
        .route(
            "/hello/{name}",
            get(|Path(name): Path<String>| async move { format!("Hello, {name}!") }),
        )
}

/// Serves `app` on one connection, HTTP/1.1 or HTTP/2 as the client speaks.
pub async fn serve_connection(stream: TcpStream, app: Router) -> Result<(), String> {
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut builder = hyper_util::server::conn::auto::Builder::new(KnoteExecutor::new());
    builder.http1().timer(KnoteTimer::new());
    builder.http2().timer(KnoteTimer::new());
    builder
        .serve_connection(KnoteIo::new(stream), TowerToHyperService::new(app))
        .await
        .map_err(|e| e.to_string())
}

/// Accepts on `listener`, serving `app` on each connection in its own task, until
/// `max_conns` connections (forever if `None`) were accepted and have closed; returns how
/// many ended with an error. An accept error ends the server.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    max_conns: Option<usize>,
) -> io::Result<usize> {
    let mut accepted = 0;
    let mut connections = Vec::new();
    while max_conns.map_or(true, |max| accepted < max) {
        let (stream, _) = listener.accept().await?;
        accepted += 1;
        let task = knote::spawn(serve_connection(stream, app.clone()));
        if max_conns.is_some() {
            connections.push(task);
        }
    }
    let mut failed = 0;
    for task in connections {
        if !matches!(task.await, Ok(Ok(()))) {
            failed += 1;
        }
    }
    Ok(failed)
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Serve(options)) => options,
        Err(err) => {
            eprintln!("axum_hello: {err}\n{USAGE}");
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
            eprintln!("axum_hello: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listener = TcpListener::bind(options.addr.as_str()).await?;
        eprintln!("axum_hello: listening on http://{}", listener.local_addr()?);
        serve(listener, app(), options.max_conns).await
    });
    match result {
        Ok(failed) => {
            eprintln!("axum_hello: done ({failed} connections ended with an error)");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("axum_hello: {}: {err}", options.addr);
            ExitCode::FAILURE
        }
    }
}
