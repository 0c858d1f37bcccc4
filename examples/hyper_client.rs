//! An HTTP client: one GET with unmodified hyper on knote, through `knote::hyper`; prints the
//! status line and the body.
//!
//! ```text
//! cargo run --features hyper --example hyper_client -- [URL | ADDR] [--http2]
//! ```
//!
//! The target is an `http://` URL or a bare `HOST:PORT` (path `/`); it defaults to
//! `http://127.0.0.1:3000/` (the `hyper_hello` example). `--http2` speaks HTTP/2 with prior
//! knowledge instead of HTTP/1.1. `--help` prints the usage.

use std::error::Error;
use std::process::ExitCode;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::HOST;
use hyper::{Request, StatusCode, Uri};
use knote::hyper::{KnoteExecutor, KnoteIo, KnoteTimer};
use knote::net::TcpStream;

const USAGE: &str = "usage: hyper_client [URL | ADDR] [--http2]

GET one URL with hyper on knote; prints the status and the body.

  URL | ADDR  an http:// URL, or HOST:PORT for its path / (default http://127.0.0.1:3000/)
  --http2     HTTP/2 with prior knowledge (default: HTTP/1.1)
  --help      print this and exit";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Print the usage.
    Help,
    /// Fetch.
    Fetch(Options),
}

/// What to fetch, and how.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// `HOST:PORT` to connect to.
    pub authority: String,
    /// The path and query to ask for.
    pub path: String,
    /// HTTP/2 (prior knowledge) instead of HTTP/1.1.
    pub http2: bool,
}

/// Parses the arguments (without the program name).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut target = None;
    let mut http2 = false;
    for arg in args {
        match arg.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--http2" => http2 = true,
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag:?}")),
            t if target.is_none() => target = Some(t.to_owned()),
            extra => return Err(format!("unexpected argument {extra:?}")),
        }
    }
    let target = target.unwrap_or_else(|| "http://127.0.0.1:3000/".to_owned());
    let (authority, path) = parse_target(&target)?;
    Ok(Command::Fetch(Options {
        authority,
        path,
        http2,
    }))
}

/// An `http://` URL or a `HOST:PORT` as (authority, path).
fn parse_target(target: &str) -> Result<(String, String), String> {
    let with_scheme = if target.contains("://") {
        target.to_owned()
    } else {
        format!("http://{target}/")
    };
    let uri: Uri = with_scheme
        .parse()
        .map_err(|e| format!("not a URL or HOST:PORT: {target:?}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("only http:// URLs are supported: {target:?}"));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("no host in {target:?}"))?;
    let port = authority.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    Ok((format!("{}:{port}", authority.host()), path))
}

/// GETs `options.path` from `options.authority`; the status and the whole body.
pub async fn fetch(options: &Options) -> Result<(StatusCode, Bytes), Box<dyn Error + Send + Sync>> {
    let stream = TcpStream::connect(options.authority.as_str()).await?;
    stream.set_nodelay(true)?;
    let io = KnoteIo::new(stream);
    let response = if options.http2 {
        let (mut sender, conn) = hyper::client::conn::http2::Builder::new(KnoteExecutor::new())
            .timer(KnoteTimer::new())
            .handshake(io)
            .await?;
        let driver = knote::spawn(conn);
        let uri = format!("http://{}{}", options.authority, options.path);
        let request = Request::get(uri).body(Empty::<Bytes>::new())?;
        let response = sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        drop(sender);
        driver.await??;
        (parts.status, body)
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        let driver = knote::spawn(conn);
        let request = Request::get(options.path.as_str())
            .header(HOST, options.authority.as_str())
            .body(Empty::<Bytes>::new())?;
        let response = sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        drop(sender);
        driver.await??;
        (parts.status, body)
    };
    Ok(response)
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Fetch(options)) => options,
        Err(err) => {
            eprintln!("hyper_client: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match knote::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("hyper_client: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fetch(&options)) {
        Ok((status, body)) => {
            println!("{status}");
            println!("{}", String::from_utf8_lossy(&body));
            if status.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("hyper_client: {}{}: {err}", options.authority, options.path);
            ExitCode::FAILURE
        }
    }
}
