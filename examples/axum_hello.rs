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

const USAGE: &str = "usage: axum_hello [ADDR] [--current-thread] [--max-conns N]

An axum app served by hyper on knote (no tokio runtime).

  ADDR              the address to listen on (default 127.0.0.1:3000)
  --current-thread  run on a current-thread runtime (default: multi-thread)
  --max-conns N     stop after N connections, once they have all closed
  --help            print this and exit";

#[path = "support/cli.rs"]
mod cli;

/// What the command line asks for.
pub type Command = cli::Command<Options>;

/// The server's options.
pub use cli::ServerOptions as Options;

/// Parses the arguments (without the program name).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    cli::parse_server(args, "127.0.0.1:3000")
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
    cli::main(
        "axum_hello",
        USAGE,
        parse_args(std::env::args().skip(1)),
        |options| options.current_thread,
        |options| async move {
            let listener = cli::listen("axum_hello", &options.addr, "http://").await?;
            serve(listener, app(), options.max_conns).await
        },
        |failed| format!("done ({failed} connections ended with an error)"),
    )
}
