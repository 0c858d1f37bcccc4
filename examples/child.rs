//! Runs a program and streams its output line by line as it comes, each line marked with the
//! stream it came from; exits with the program's exit code.
//!
//! ```text
//! cargo run --example child -- PROGRAM [ARGS...]
//! cargo run --example child -- sh -c 'echo one; sleep 1; echo two >&2; exit 3'
//! ```
//!
//! The child's standard output and error are pipes on knote's runtime
//! ([`knote::process::Command`]); both are read at once, so neither can fill up and stall the
//! child, and the exit is waited for with one `EVFILT_PROC` knote.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitCode, ExitStatus};

use futures_util::io::{AsyncBufReadExt, BufReader};
use futures_util::stream::{self, StreamExt};
use knote::process::{Command, Stdio};

const USAGE: &str = "usage: child PROGRAM [ARGS...]\n\n\
    Runs PROGRAM with ARGS and prints each line it writes, prefixed with `out: ` (standard\n\
    output) or `err: ` (standard error), as the lines arrive; exits with its exit code.";

/// Which of the child's streams a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    /// `--help`.
    Help,
    /// No program given.
    Usage,
    /// Run this program with these arguments.
    Run(OsString, Vec<OsString>),
}

/// Reads the arguments (without this program's name).
pub fn parse(mut args: impl Iterator<Item = OsString>) -> Invocation {
    match args.next() {
        None => Invocation::Usage,
        Some(arg) if arg == "--help" || arg == "-h" => Invocation::Help,
        Some(program) => Invocation::Run(program, args.collect()),
    }
}

/// Runs `program` with `args`, handing each line of its output (without the newline) to
/// `emit` as it arrives, and returns its exit status once both streams ended and it exited.
pub async fn run(
    program: &OsString,
    args: &[OsString],
    mut emit: impl FnMut(Source, &str),
) -> io::Result<ExitStatus> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let out = child.stdout.take().expect("piped above");
    let err = child.stderr.take().expect("piped above");
    let out = BufReader::new(out).lines().map(|l| (Source::Stdout, l));
    let err = BufReader::new(err).lines().map(|l| (Source::Stderr, l));
    let mut lines = stream::select(out, err);
    while let Some((source, line)) = lines.next().await {
        emit(source, &line?);
    }
    child.wait().await
}

/// The exit code to leave with: the child's, or 128 + the signal that killed it (as a shell
/// reports it).
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signal)) => (128 + signal) as u8,
        (None, None) => 1,
    }
}

fn main() -> ExitCode {
    let (program, args) = match parse(std::env::args_os().skip(1)) {
        Invocation::Help => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Invocation::Usage => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
        Invocation::Run(program, args) => (program, args),
    };
    let rt = match knote::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("child: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(run(&program, &args, |source, line| match source {
        Source::Stdout => println!("out: {line}"),
        Source::Stderr => println!("err: {line}"),
    }));
    match result {
        Ok(status) => ExitCode::from(exit_code(status)),
        Err(e) => {
            eprintln!("child: {}: {e}", program.to_string_lossy());
            ExitCode::FAILURE
        }
    }
}
