//! The command line the server examples share (`echo`, `hyper_hello`, `axum_hello`, `chat`,
//! `udp_echo`, `unix_echo`, `proxy`): positional arguments (addresses, a path), an optional
//! `--current-thread`, one count option (`--max-conns N`, `--max-datagrams N`) and `--help`;
//! and the frame of their `main`: the usage for `--help`, exit code 2 for a bad command line,
//! the runtime asked for, exit code 1 for a runtime or serving error, 0 with a summary line
//! when serving ends.
//!
//! Each example includes it with `#[path = "support/cli.rs"] mod cli;`. The path is relative
//! to the example's own file, so the include works as well where a test or a bench includes
//! the example itself as a module (`#[path = "../examples/echo.rs"] mod echo;`).

// Not every example uses every piece (a fixed runtime flavour, no positional argument).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::process::ExitCode;
use std::str::FromStr;

use knote::net::TcpListener;
use knote::runtime::Builder;

/// What a command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<O> {
    /// Print the usage.
    Help,
    /// Serve, with these options.
    Serve(O),
}

/// What an example's command line takes besides `--help`.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// How many positional arguments, at most.
    pub positional: usize,
    /// Whether `--current-thread` is taken.
    pub current_thread: bool,
    /// The option that takes a count (`--max-conns`).
    pub count: &'static str,
}

impl Spec {
    /// Up to `positional` positional arguments and the count option `count`.
    pub const fn new(positional: usize, count: &'static str) -> Spec {
        Spec {
            positional,
            current_thread: false,
            count,
        }
    }

    /// Takes `--current-thread` too.
    pub const fn with_current_thread(self) -> Spec {
        Spec {
            current_thread: true,
            ..self
        }
    }
}

/// A command line parsed against a [`Spec`].
#[derive(Debug, Default)]
pub struct Args {
    /// The positional arguments not yet taken, in order.
    positional: VecDeque<String>,
    /// Whether `--current-thread` was given.
    pub current_thread: bool,
    /// The count option and its value, if given.
    count: Option<(&'static str, String)>,
}

impl Args {
    /// The next positional argument, if there is one.
    pub fn positional(&mut self) -> Option<String> {
        self.positional.pop_front()
    }

    /// The next positional argument, or `default`.
    pub fn positional_or(&mut self, default: &str) -> String {
        self.positional().unwrap_or_else(|| default.to_owned())
    }

    /// The count option's value, if given (an error if it is not a number of type `N`).
    pub fn count<N: FromStr>(&self) -> Result<Option<N>, String> {
        let Some((option, n)) = &self.count else {
            return Ok(None);
        };
        n.parse()
            .map(Some)
            .map_err(|_| format!("{option}: not a number: {n:?}"))
    }
}

/// Parses `args` (without the program name) against `spec`; `options` makes an example's
/// options of what was given (its error is a bad command line too).
pub fn parse<O>(
    args: impl IntoIterator<Item = String>,
    spec: Spec,
    options: impl FnOnce(Args) -> Result<O, String>,
) -> Result<Command<O>, String> {
    let mut parsed = Args::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--current-thread" if spec.current_thread => parsed.current_thread = true,
            count if count == spec.count => {
                let n = args
                    .next()
                    .ok_or_else(|| format!("{count} needs a number"))?;
                parsed.count = Some((spec.count, n));
            }
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag:?}")),
            _ if parsed.positional.len() < spec.positional => parsed.positional.push_back(arg),
            extra => return Err(format!("unexpected argument {extra:?}")),
        }
    }
    options(parsed).map(Command::Serve)
}

/// The options of a TCP server with a runtime choice, `[ADDR] [--current-thread]
/// [--max-conns N]` (`echo`, `hyper_hello`, `axum_hello`).
#[derive(Debug, PartialEq, Eq)]
pub struct ServerOptions {
    /// The address to listen on.
    pub addr: String,
    /// A current-thread runtime instead of a multi-thread one.
    pub current_thread: bool,
    /// Stop after this many connections.
    pub max_conns: Option<usize>,
}

/// Parses `[ADDR] [--current-thread] [--max-conns N]`, `ADDR` defaulting to `default_addr`.
pub fn parse_server(
    args: impl IntoIterator<Item = String>,
    default_addr: &str,
) -> Result<Command<ServerOptions>, String> {
    let spec = Spec::new(1, "--max-conns").with_current_thread();
    parse(args, spec, |mut args| {
        Ok(ServerOptions {
            addr: args.positional_or(default_addr),
            current_thread: args.current_thread,
            max_conns: args.count()?,
        })
    })
}

/// Binds a TCP listener to `addr` (an error names it) and says so on stderr as `name`,
/// with its local address after `scheme` (`http://`, or nothing).
pub async fn listen(name: &str, addr: &str, scheme: &str) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await.map_err(at(addr))?;
    eprintln!("{name}: listening on {scheme}{}", listener.local_addr()?);
    Ok(listener)
}

/// An error prefixed with what it concerns (an address, a path).
pub fn at(what: &str) -> impl Fn(io::Error) -> io::Error + '_ {
    move |err| io::Error::new(err.kind(), format!("{what}: {err}"))
}

/// An example's `main`, as `name`: `command` (its `parse_args`) is `--help` (print `usage`,
/// exit 0) or a bad command line (print the error and `usage`, exit 2) or options; those are
/// served on a runtime (current-thread if `current_thread` says so, else multi-thread) by
/// `serve`, whose result ends the program: its `summary` line and exit 0, or its error and
/// exit 1 (as does a runtime that cannot start).
pub fn main<O, T, F>(
    name: &str,
    usage: &str,
    command: Result<Command<O>, String>,
    current_thread: fn(&O) -> bool,
    serve: impl FnOnce(O) -> F,
    summary: impl FnOnce(T) -> String,
) -> ExitCode
where
    F: Future<Output = io::Result<T>>,
{
    let options = match command {
        Ok(Command::Help) => {
            println!("{usage}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Serve(options)) => options,
        Err(err) => {
            eprintln!("{name}: {err}\n{usage}");
            return ExitCode::from(2);
        }
    };
    let runtime = if current_thread(&options) {
        Builder::new_current_thread().build()
    } else {
        Builder::new_multi_thread().build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("{name}: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(options)) {
        Ok(done) => {
            eprintln!("{name}: {}", summary(done));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{name}: {err}");
            ExitCode::FAILURE
        }
    }
}
