//! `knote-bench`: knote against tokio on network workloads, side by side, in one run.
//!
//! ```text
//! cargo run --release -p knote-bench -- [quick|full] [--only WORKLOAD] [--json FILE] [--svg FILE]
//! ```
//!
//! Each workload runs its contestants interleaved (A B C, then C B A, ...), each turn a fresh
//! server process (this binary re-executed as `knote-bench serve SERVER ADDR`) loaded by this
//! process's load generator (blocking sockets on plain threads: neither runtime under test),
//! server and load pinned to different CPUs where there are enough. The table gives, per
//! workload, knote ÷ tokio (or ÷ the hand-written loop) as the median and spread of the
//! per-round ratios, with each side's median absolute figure beside it.
//!
//! `knote-bench soak --minutes N` is the endurance check instead (see the `soak` module).
//!
//! `--help` lists the options and workloads.

mod cpu;
mod echo_servers;
mod http;
mod hyper_servers;
mod idle_tasks;
mod load;
mod process;
mod report;
mod runtimes;
mod soak;
mod stats;
mod strace;
mod sys;
mod workloads;

// The examples' `main`s and command lines are theirs; their services are used here. Each
// example includes the examples' shared command line (`examples/support/cli.rs`) as a module of
// its own, so two examples in one crate load it twice: harmless, they are separate modules.
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../../examples/hyper_hello.rs"]
mod hyper_hello;
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../../examples/echo.rs"]
mod knote_echo;
#[allow(dead_code)]
#[path = "../../examples/reactor_echo.rs"]
mod reactor_echo;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;

use workloads::{Mode, Settings, WORKLOADS};

const USAGE: &str = "usage: knote-bench [quick|full] [--only WORKLOAD[,WORKLOAD...]] [--json FILE] [--svg FILE]
                   [--rounds N] [--secs S] [--conns N] [--msg BYTES] [--workers N] [--load-threads N]

knote vs tokio on network workloads, interleaved, server and load in separate processes.
(`knote-bench soak --help`: the endurance check.)

  quick            (default) 3 rounds of 1 s per side: under 2 minutes on 2 cores
  full             the published comparison: 7 rounds of 5 s per side
  --only W         run only these workloads (repeatable, or a comma-separated list)
  --json FILE      write every round's figures, the summary and the goals as JSON
  --svg FILE       draw the ratios as an SVG chart
  --rounds N       rounds per workload (overrides the mode's)
  --secs S         seconds per side per round (overrides the mode's)
  --conns N        load connections (default 64)
  --msg BYTES      echo message size (default 64)
  --workers N      multi-thread runtimes' workers (default 2)
  --load-threads N load generator threads (default 1)
  --help           print this and exit

workloads:";

/// The usage text with the list of workloads.
fn usage() -> String {
    let mut text = format!("{USAGE}\n");
    for w in WORKLOADS {
        text += &format!("  {:<12} {}\n", w.name, w.description);
    }
    text
}

/// What the command line asks for.
#[derive(Debug)]
enum Command {
    Help,
    Bench {
        settings: Settings,
        only: Vec<String>,
        json: Option<PathBuf>,
        svg: Option<PathBuf>,
    },
    /// Hidden: be a server process.
    Serve {
        server: String,
        addr: String,
        cpus: Option<Vec<usize>>,
        workers: usize,
    },
    /// Hidden: measure memory per idle task in this process.
    IdleTasks {
        runtime: String,
        n: usize,
    },
}

fn number<T: std::str::FromStr>(flag: &str, value: Option<String>) -> Result<T, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
    value
        .parse()
        .map_err(|_| format!("{flag}: not a valid number: {value:?}"))
}

fn parse_args(args: Vec<String>) -> Result<Command, String> {
    let mut args = args.into_iter();
    let mut mode = Mode::Quick;
    let mut first = true;
    let mut only = Vec::new();
    let (mut json, mut svg) = (None, None);
    let mut overrides: Vec<(String, String)> = Vec::new();
    while let Some(arg) = args.next() {
        let was_first = std::mem::replace(&mut first, false);
        match arg.as_str() {
            "serve" if was_first => {
                let server = args.next().ok_or("serve SERVER ADDR")?;
                let addr = args.next().ok_or("serve SERVER ADDR")?;
                let (mut cpus, mut workers) = (None, 2);
                while let Some(flag) = args.next() {
                    match flag.as_str() {
                        "--cpus" => {
                            let list = args.next().ok_or("--cpus needs a list")?;
                            cpus = if list == "all" {
                                None
                            } else {
                                Some(
                                    list.split(',')
                                        .map(|c| number("--cpus", Some(c.to_owned())))
                                        .collect::<Result<_, _>>()?,
                                )
                            };
                        }
                        "--workers" => workers = number("--workers", args.next())?,
                        other => return Err(format!("serve: unknown option {other:?}")),
                    }
                }
                return Ok(Command::Serve {
                    server,
                    addr,
                    cpus,
                    workers,
                });
            }
            "idle-tasks" if was_first => {
                let runtime = args.next().ok_or("idle-tasks RUNTIME N")?;
                let n = number("idle-tasks", args.next())?;
                return Ok(Command::IdleTasks { runtime, n });
            }
            "quick" if was_first => mode = Mode::Quick,
            "full" if was_first => mode = Mode::Full,
            "--smoke" => mode = Mode::Smoke,
            "--help" | "-h" => return Ok(Command::Help),
            "--only" => {
                let list = args.next().ok_or("--only needs a workload")?;
                for name in list.split(',') {
                    if !WORKLOADS.iter().any(|w| w.name == name) {
                        return Err(format!("--only: unknown workload {name:?}"));
                    }
                    only.push(name.to_owned());
                }
            }
            "--json" => json = Some(PathBuf::from(args.next().ok_or("--json needs a file")?)),
            "--svg" => svg = Some(PathBuf::from(args.next().ok_or("--svg needs a file")?)),
            "--rounds" | "--secs" | "--conns" | "--msg" | "--workers" | "--load-threads" => {
                let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
                overrides.push((arg.clone(), value));
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let mut settings = Settings::for_mode(mode);
    for (flag, value) in overrides {
        let v = Some(value);
        match flag.as_str() {
            "--rounds" => settings.rounds = number(&flag, v)?,
            "--secs" => settings.secs = number(&flag, v)?,
            "--conns" => settings.conns = number(&flag, v)?,
            "--msg" => settings.msg = number(&flag, v)?,
            "--workers" => settings.workers = number(&flag, v)?,
            _ => settings.load_threads = number(&flag, v)?,
        }
    }
    if settings.rounds == 0 || settings.conns == 0 || settings.msg == 0 || settings.workers == 0 {
        return Err("--rounds, --conns, --msg and --workers must be at least 1".to_owned());
    }
    if !(settings.secs > 0.0 && settings.secs <= 3600.0) {
        return Err("--secs must be more than 0 and at most 3600".to_owned());
    }
    settings.load_threads = settings.load_threads.clamp(1, settings.conns);
    Ok(Command::Bench {
        settings,
        only,
        json,
        svg,
    })
}

/// The hidden `serve` subcommand: bind, print the address, serve until stdin closes.
/// A server of the `serve` subcommand: serves on the listener until the process ends.
type ServeFn = Box<dyn FnOnce(TcpListener) -> std::io::Result<()>>;

/// The server called `name`, multi-thread ones with `workers` workers.
fn server_by_name(name: &str, workers: usize) -> Option<ServeFn> {
    let mt = Some(workers);
    let forever = std::future::pending::<()>;
    Some(match name {
        "echo-knote-ct" => Box::new(|l| echo_servers::serve_knote(l, None)),
        "echo-knote-mt" => Box::new(move |l| echo_servers::serve_knote(l, mt)),
        "echo-tokio-ct" => Box::new(|l| echo_servers::serve_tokio(l, None)),
        "echo-tokio-mt" => Box::new(move |l| echo_servers::serve_tokio(l, mt)),
        "echo-reactor" => Box::new(echo_servers::serve_reactor),
        "frugal-knote-ct" => Box::new(|l| echo_servers::serve_knote_frugal(l, None)),
        "frugal-knote-mt" => Box::new(move |l| echo_servers::serve_knote_frugal(l, mt)),
        "frugal-tokio-ct" => Box::new(|l| echo_servers::serve_tokio_frugal(l, None)),
        "frugal-tokio-mt" => Box::new(move |l| echo_servers::serve_tokio_frugal(l, mt)),
        "hyper-knote-ct" => Box::new(move |l| hyper_servers::serve_knote(l, None, forever())),
        "hyper-knote-mt" => Box::new(move |l| hyper_servers::serve_knote(l, mt, forever())),
        "hyper-tokio-ct" => Box::new(move |l| hyper_servers::serve_tokio(l, None, forever())),
        "hyper-tokio-mt" => Box::new(move |l| hyper_servers::serve_tokio(l, mt, forever())),
        _ => return None,
    })
}

/// The hidden `serve` subcommand: pin, bind, print the address, serve until stdin closes.
fn serve(server: &str, addr: &str, cpus: Option<Vec<usize>>, workers: usize) -> Result<(), String> {
    let run = server_by_name(server, workers)
        .ok_or_else(|| format!("serve: unknown server {server:?}"))?;
    if let Some(cpus) = cpus {
        sys::set_affinity(&cpus).map_err(|e| e.to_string())?;
    }
    let listener = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    process::exit_when_stdin_closes();
    println!("{}{local}", process::LISTENING);
    run(listener).map_err(|e| format!("{server}: {e}"))
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("soak") {
        // The endurance check has its own options (`knote-bench soak --help`).
        args.next();
        return soak::main(args);
    }
    let command = match parse_args(args.collect()) {
        Ok(command) => command,
        Err(err) => {
            eprintln!("knote-bench: {err}\n\n{}", usage());
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Help => {
            print!("{}", usage());
            Ok(())
        }
        Command::Serve {
            server,
            addr,
            cpus,
            workers,
        } => serve(&server, &addr, cpus, workers),
        Command::IdleTasks { runtime, n } => match idle_tasks::measure(&runtime, n) {
            Ok(Some(bytes)) => {
                println!("{}{bytes:.1}", idle_tasks::PREFIX);
                // The tasks are never woken: leave without tearing the runtime down.
                std::process::exit(0)
            }
            Ok(None) => {
                println!("{}n/a", idle_tasks::PREFIX);
                std::process::exit(0)
            }
            Err(err) => Err(err.to_string()),
        },
        Command::Bench {
            settings,
            only,
            json,
            svg,
        } => workloads::run(&settings, &only, json.as_deref(), svg.as_deref())
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("knote-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn modes_and_overrides() {
        let Ok(Command::Bench {
            settings,
            only,
            json,
            ..
        }) = parse_args(args(&[
            "full",
            "--only",
            "echo-ct,churn",
            "--json",
            "x.json",
            "--rounds",
            "2",
        ]))
        else {
            panic!("not a bench command");
        };
        assert_eq!(settings.mode, Mode::Full);
        assert_eq!(settings.rounds, 2);
        assert_eq!(only, ["echo-ct", "churn"]);
        assert_eq!(json, Some(PathBuf::from("x.json")));
        let Ok(Command::Bench { settings, .. }) = parse_args(args(&[])) else {
            panic!("not a bench command");
        };
        assert_eq!(settings.mode, Mode::Quick);
    }

    #[test]
    fn bad_arguments_are_errors() {
        for bad in [
            &["--only", "nope"][..],
            &["--rounds", "x"],
            &["--rounds", "0"],
            &["--secs", "-1"],
            &["--json"],
            &["full", "quick"],
            &["serve", "echo-knote-ct"],
            &["serve", "x", "y", "--cpus", "a"],
            &["--bogus"],
        ] {
            assert!(parse_args(args(bad)).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn hidden_subcommands() {
        let Ok(Command::Serve {
            server,
            cpus,
            workers,
            ..
        }) = parse_args(args(&[
            "serve",
            "echo-reactor",
            "127.0.0.1:0",
            "--cpus",
            "0,3",
            "--workers",
            "4",
        ]))
        else {
            panic!("not serve");
        };
        assert_eq!(
            (server.as_str(), cpus, workers),
            ("echo-reactor", Some(vec![0, 3]), 4)
        );
        assert!(server_by_name("echo-knote-mt", 2).is_some());
        for frugal in [
            "frugal-knote-ct",
            "frugal-knote-mt",
            "frugal-tokio-ct",
            "frugal-tokio-mt",
        ] {
            assert!(server_by_name(frugal, 2).is_some(), "{frugal}");
        }
        assert!(server_by_name("echo-knote", 2).is_none());
        assert!(matches!(
            parse_args(args(&["idle-tasks", "tokio", "10"])),
            Ok(Command::IdleTasks { n: 10, .. })
        ));
    }
}
