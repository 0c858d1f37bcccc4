//! The workloads, their contestants, the summary rows and goals, and the run that ties them
//! together.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::cpu::{self, ProcessCpu};
use crate::load::{self, LoadResult, Protocol, Until};
use crate::process::{self, ServerProcess};
use crate::report::{
    self, Goal, GoalSpec, Metrics, Report, Row, RowSpec, Subject, Target, Versions, WorkloadRecord,
};
use crate::stats::interleave_order;
use crate::strace;
use crate::sys::{self, Machine};

/// How much of everything a run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The default: a few short rounds, under 2 minutes on 2 cores.
    Quick,
    /// The published comparison: more and longer rounds.
    Full,
    /// Hidden (`--smoke`): everything once, briefly, for the smoke test.
    Smoke,
}

/// A run's parameters.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The mode they came from.
    pub mode: Mode,
    /// Rounds per workload (the syscall count runs once).
    pub rounds: usize,
    /// Seconds of load per side per round.
    pub secs: f64,
    /// Load connections.
    pub conns: usize,
    /// Echo message size in bytes.
    pub msg: usize,
    /// Workers of the multi-thread runtimes.
    pub workers: usize,
    /// Load generator threads.
    pub load_threads: usize,
    /// Idle connections in the scale workload (fewer if the fd limit forbids).
    pub idle_conns: usize,
    /// Idle tasks in the idle-tasks workload.
    pub idle_tasks: usize,
    /// Round trips per connection in the traced syscall run.
    pub strace_rounds: u64,
    /// Seconds of each `wrk` cross-check run.
    pub wrk_secs: u64,
}

impl Settings {
    /// The defaults of `mode`.
    pub fn for_mode(mode: Mode) -> Settings {
        let (rounds, secs, idle_conns, idle_tasks, strace_rounds, wrk_secs) = match mode {
            Mode::Quick => (3, 1.0, 10_000, 10_000, 30, 1),
            Mode::Full => (7, 5.0, 10_000, 100_000, 500, 5),
            Mode::Smoke => (1, 0.25, 100, 1_000, 5, 1),
        };
        Settings {
            mode,
            rounds,
            secs,
            conns: 64,
            msg: 64,
            workers: 2,
            load_threads: 1,
            idle_conns,
            idle_tasks,
            strace_rounds,
            wrk_secs,
        }
    }

    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.secs)
    }

    /// One timed load run (`secs` long) of `protocol` over `conns`.
    fn timed_load(
        &self,
        conns: &mut [std::net::TcpStream],
        protocol: Protocol,
    ) -> io::Result<LoadResult> {
        load::run(
            conns,
            protocol,
            self.load_threads,
            Until::Elapsed(self.duration()),
        )
    }

    fn mode_name(&self) -> &'static str {
        match self.mode {
            Mode::Quick => "quick",
            Mode::Full => "full",
            Mode::Smoke => "smoke",
        }
    }

    fn describe(&self) -> BTreeMap<String, String> {
        [
            ("rounds", self.rounds.to_string()),
            ("secs per side", self.secs.to_string()),
            ("connections", self.conns.to_string()),
            ("message bytes", self.msg.to_string()),
            ("workers", self.workers.to_string()),
            ("load threads", self.load_threads.to_string()),
            ("idle connections (asked)", self.idle_conns.to_string()),
            ("idle tasks", self.idle_tasks.to_string()),
            (
                "strace round trips per connection",
                self.strace_rounds.to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// A workload: its name, what it does, and how it runs.
pub struct Workload {
    /// Its name (`--only` takes it).
    pub name: &'static str,
    /// What it does, in a line.
    pub description: &'static str,
    run: fn(&mut Context, &Workload) -> io::Result<WorkloadRecord>,
}

/// Every workload, in the order they run.
pub const WORKLOADS: &[Workload] = &[
    Workload {
        name: "echo-ct",
        description: "echo, current-thread: knote vs tokio vs the hand-written reactor loop",
        run: echo_ct,
    },
    Workload {
        name: "echo-mt",
        description: "echo, multi-thread runtimes (--workers): knote vs tokio",
        run: echo_mt,
    },
    Workload {
        name: "hyper-ct",
        description: "hyper hello world, HTTP/1.1 keep-alive, current-thread (wrk cross-check)",
        run: hyper_ct,
    },
    Workload {
        name: "hyper-mt",
        description: "hyper hello world, HTTP/1.1 keep-alive, multi-thread (wrk cross-check)",
        run: hyper_mt,
    },
    Workload {
        name: "churn",
        description: "connect, one echo round trip, close: connections per second (current-thread)",
        run: churn,
    },
    Workload {
        name: "scale",
        description: "64 busy connections with 10,000 idle ones vs none, and memory per idle \
             connection (the frugal echo service: readiness first, a per-thread buffer)",
        run: scale,
    },
    Workload {
        name: "idle-tasks",
        description: "memory per idle task (resident set growth / N, current-thread)",
        run: idle_tasks,
    },
    Workload {
        name: "syscalls",
        description: "system calls per echoed message (strace -c -f, set-up subtracted)",
        run: syscalls,
    },
];

const fn row(
    workload: &'static str,
    numerator: (&'static str, &'static str),
    denominator: (&'static str, &'static str),
) -> RowSpec {
    RowSpec {
        workload,
        numerator,
        denominator,
    }
}

const MSGS: &str = "msg/s";
const REQS: &str = "req/s";
const CONNS: &str = "conn/s";
const P99: &str = "p99 µs";
const BUSY_IDLE: &str = "busy msg/s (idle)";
const BUSY_ALONE: &str = "busy msg/s (0 idle)";
const PER_IDLE_CONN: &str = "bytes/idle conn";
const PER_IDLE_TASK: &str = "bytes/idle task";
const SYSCALLS: &str = "syscalls/msg";

/// The summary rows.
pub const ROWS: &[RowSpec] = &[
    row("echo-ct", ("knote", MSGS), ("tokio", MSGS)),
    row("echo-ct", ("knote", MSGS), ("reactor", MSGS)),
    row("echo-ct", ("knote", P99), ("tokio", P99)),
    row("echo-mt", ("knote", MSGS), ("tokio", MSGS)),
    row("echo-mt", ("knote", P99), ("tokio", P99)),
    row("hyper-ct", ("knote", REQS), ("tokio", REQS)),
    row("hyper-ct", ("knote", P99), ("tokio", P99)),
    row("hyper-mt", ("knote", REQS), ("tokio", REQS)),
    row("hyper-mt", ("knote", P99), ("tokio", P99)),
    row("churn", ("knote", CONNS), ("tokio", CONNS)),
    row("scale", ("knote", BUSY_IDLE), ("tokio", BUSY_IDLE)),
    row("scale", ("knote", BUSY_IDLE), ("knote", BUSY_ALONE)),
    row("scale", ("tokio", BUSY_IDLE), ("tokio", BUSY_ALONE)),
    row("scale", ("knote", PER_IDLE_CONN), ("tokio", PER_IDLE_CONN)),
    row(
        "idle-tasks",
        ("knote", PER_IDLE_TASK),
        ("tokio", PER_IDLE_TASK),
    ),
    row("syscalls", ("knote", SYSCALLS), ("tokio", SYSCALLS)),
    row("syscalls", ("knote", SYSCALLS), ("reactor", SYSCALLS)),
    // The server's CPU per operation: steadier than a rate where the server and the load share
    // the CPUs (a cheaper server leaves its CPU to the load rather than serving more).
    row("echo-ct", ("knote", cpu::CPU), ("tokio", cpu::CPU)),
    row("echo-ct", ("knote", cpu::CPU), ("reactor", cpu::CPU)),
    row("echo-mt", ("knote", cpu::CPU), ("tokio", cpu::CPU)),
    row("hyper-ct", ("knote", cpu::CPU), ("tokio", cpu::CPU)),
    row("hyper-mt", ("knote", cpu::CPU), ("tokio", cpu::CPU)),
    row("churn", ("knote", cpu::CPU), ("tokio", cpu::CPU)),
];

const fn goal(text: &'static str, subject: Subject, target: Target) -> GoalSpec {
    GoalSpec {
        text,
        subject,
        target,
    }
}

/// The goals of issue 9.
pub const GOALS: &[GoalSpec] = &[
    goal(
        "hyper req/s knote÷tokio ≥ 1.10, current-thread",
        Subject::Ratio(ROWS[5]),
        Target::AtLeast(1.10),
    ),
    goal(
        "hyper req/s knote÷tokio ≥ 1.10, multi-thread",
        Subject::Ratio(ROWS[7]),
        Target::AtLeast(1.10),
    ),
    goal(
        "echo msg/s knote÷tokio ≥ 1.05, current-thread",
        Subject::Ratio(ROWS[0]),
        Target::AtLeast(1.05),
    ),
    goal(
        "echo msg/s knote÷tokio ≥ 1.05, multi-thread",
        Subject::Ratio(ROWS[3]),
        Target::AtLeast(1.05),
    ),
    goal(
        "echo knote ct ÷ reactor_echo ≥ 1.00",
        Subject::Ratio(ROWS[1]),
        Target::AtLeast(1.00),
    ),
    goal(
        "p99 latency knote÷tokio ≤ 1.00, echo ct",
        Subject::Ratio(ROWS[2]),
        Target::AtMost(1.00),
    ),
    goal(
        "p99 latency knote÷tokio ≤ 1.00, echo mt",
        Subject::Ratio(ROWS[4]),
        Target::AtMost(1.00),
    ),
    goal(
        "p99 latency knote÷tokio ≤ 1.00, hyper ct",
        Subject::Ratio(ROWS[6]),
        Target::AtMost(1.00),
    ),
    goal(
        "p99 latency knote÷tokio ≤ 1.00, hyper mt",
        Subject::Ratio(ROWS[8]),
        Target::AtMost(1.00),
    ),
    goal(
        "syscalls per echoed message (knote ct) ≤ 2.02",
        Subject::Absolute("syscalls", "knote", SYSCALLS),
        Target::AtMost(2.02),
    ),
    goal(
        "memory per idle connection knote÷tokio ≤ 0.75",
        Subject::Ratio(ROWS[13]),
        Target::AtMost(0.75),
    ),
    goal(
        "10k idle + 64 busy: knote busy msg/s ≥ 0.90 × 0 idle",
        Subject::Ratio(ROWS[11]),
        Target::AtLeast(0.90),
    ),
];

/// Which CPUs a server and its load run on.
struct Cpus {
    server: Vec<usize>,
    load: Vec<usize>,
}

/// What the workloads share during a run.
struct Context {
    settings: Settings,
    allowed: Vec<usize>,
    fd_limit: u64,
    started: Instant,
    pinning: Vec<String>,
}

impl Context {
    /// The CPUs for a server that uses `threads` of them: the first `threads` allowed ones for
    /// the server and the rest for the load, when pinning is supported and leaves the load at
    /// least one; otherwise everything for both.
    fn cpus(&mut self, threads: usize, what: &str) -> Cpus {
        let cpus = if sys::PINNING_SUPPORTED && self.allowed.len() > threads {
            let (server, load) = self.allowed.split_at(threads);
            Cpus {
                server: server.to_vec(),
                load: load.to_vec(),
            }
        } else {
            Cpus {
                server: self.allowed.clone(),
                load: self.allowed.clone(),
            }
        };
        let line = if cpus.server == cpus.load {
            format!(
                "{what}: server and load unpinned (CPUs {:?}: {})",
                cpus.server,
                if sys::PINNING_SUPPORTED {
                    "too few to keep apart"
                } else {
                    "no affinity on this system"
                }
            )
        } else {
            format!(
                "{what}: server pinned to CPU(s) {:?}, load generator to {:?}",
                cpus.server, cpus.load
            )
        };
        if !self.pinning.contains(&line) {
            self.pinning.push(line);
        }
        cpus
    }

    /// The progress line of one turn, on stderr.
    fn progress(&self, workload: &str, round: usize, rounds: usize, contestant: &str) {
        eprintln!(
            "knote-bench [{:>6.1} s] {workload}: round {}/{rounds}: {contestant}",
            self.started.elapsed().as_secs_f64(),
            round + 1
        );
    }

    /// Runs `contestants` for the configured rounds, interleaved; `turn` is one contestant's
    /// go (its name → its metrics).
    fn rounds(
        &self,
        workload: &Workload,
        contestants: &[&str],
        rounds: usize,
        mut turn: impl FnMut(&str) -> io::Result<Metrics>,
    ) -> io::Result<WorkloadRecord> {
        let mut record = WorkloadRecord {
            name: workload.name.to_owned(),
            description: workload.description.to_owned(),
            contestants: contestants.iter().map(|c| c.to_string()).collect(),
            ..WorkloadRecord::default()
        };
        for round in 0..rounds {
            let mut figures = BTreeMap::new();
            for i in interleave_order(round, contestants.len()) {
                let name = contestants[i];
                self.progress(workload.name, round, rounds, name);
                let metrics = turn(name).map_err(|e| {
                    io::Error::new(e.kind(), format!("{}, {name}: {e}", workload.name))
                })?;
                figures.insert(name.to_owned(), metrics);
            }
            record.rounds.push(figures);
        }
        Ok(record)
    }
}

/// A load run's figures: its rate under `rate_name`, and its latency percentiles.
fn load_metrics(rate_name: &str, result: &LoadResult) -> Metrics {
    let mut metrics = Metrics::new();
    metrics.insert(rate_name.to_owned(), result.rate());
    for (name, q) in [("p50 µs", 0.5), (P99, 0.99), ("p999 µs", 0.999)] {
        if let Some(us) = result.latency_us(q) {
            metrics.insert(name.to_owned(), us);
        }
    }
    metrics
}

/// What the load of a timed turn does.
#[derive(Clone, Copy)]
enum TurnLoad {
    /// Requests of `protocol` on the `--conns` connections, opened before the clock starts
    /// (their setup is not part of the server's CPU per operation).
    KeptAlive(Protocol),
    /// Connection churn: connect, one echo, close, over and over (an operation is a
    /// connection).
    Churn,
}

/// One timed load run against a fresh `server` process: the load's figures (its rate under
/// `rate_name`) and where the server's CPU went meanwhile, per operation (or why that could
/// not be read).
fn timed_turn(
    ctx: &Context,
    server: &str,
    cpus: &Cpus,
    turn: TurnLoad,
    rate_name: &str,
) -> io::Result<(Metrics, Result<(), String>)> {
    let s = &ctx.settings;
    let process = ServerProcess::start(server, &cpus.server, s.workers, None)?;
    let mut conns = match turn {
        TurnLoad::KeptAlive(_) => load::connect(process.addr, s.conns)?,
        TurnLoad::Churn => Vec::new(),
    };
    let before = ProcessCpu::of(process.pid());
    let result = match turn {
        TurnLoad::KeptAlive(protocol) => s.timed_load(&mut conns, protocol)?,
        TurnLoad::Churn => load::churn(process.addr, s.msg, s.load_threads, s.duration())?,
    };
    let after = ProcessCpu::of(process.pid());
    drop(conns);
    process.stop()?;
    let mut metrics = load_metrics(rate_name, &result);
    let cpu = before.and_then(|before| {
        after.map(|after| after.add_per_op(&before, result.count, &mut metrics))
    });
    Ok((metrics, cpu))
}

/// The rounds of a workload whose turns are `timed_turn`s against `server(contestant)`; if the
/// server's CPU could not be read, a note on the record says why (the first reason seen).
fn timed_rounds(
    ctx: &Context,
    w: &Workload,
    contestants: &[&str],
    cpus: &Cpus,
    turn: TurnLoad,
    rate_name: &str,
    server: impl Fn(&str) -> String,
) -> io::Result<WorkloadRecord> {
    let mut missing = None;
    let mut record = ctx.rounds(w, contestants, ctx.settings.rounds, |c| {
        let (metrics, cpu) = timed_turn(ctx, &server(c), cpus, turn, rate_name)?;
        if let Err(why) = cpu {
            missing.get_or_insert(why);
        }
        Ok(metrics)
    })?;
    if let Some(why) = missing {
        record
            .notes
            .push(format!("server CPU figures missing: {why}"));
    }
    Ok(record)
}

/// The server name of `contestant` in a family (`echo`/`hyper`) and flavour (`ct`/`mt`).
fn server_name(family: &str, contestant: &str, flavour: &str) -> String {
    match contestant {
        "reactor" => "echo-reactor".to_owned(),
        rt => format!("{family}-{rt}-{flavour}"),
    }
}

fn echo_ct(ctx: &mut Context, w: &Workload) -> io::Result<WorkloadRecord> {
    echo(ctx, w, &["knote", "tokio", "reactor"], "ct")
}

fn echo_mt(ctx: &mut Context, w: &Workload) -> io::Result<WorkloadRecord> {
    echo(ctx, w, &["knote", "tokio"], "mt")
}

fn echo(
    ctx: &mut Context,
    w: &Workload,
    contestants: &[&str],
    flavour: &str,
) -> io::Result<WorkloadRecord> {
    let threads = if flavour == "ct" {
        1
    } else {
        ctx.settings.workers
    };
    let cpus = ctx.cpus(threads, &format!("echo {flavour}"));
    sys::set_affinity(&cpus.load)?;
    let turn = TurnLoad::KeptAlive(Protocol::Echo {
        msg: ctx.settings.msg,
    });
    timed_rounds(ctx, w, contestants, &cpus, turn, MSGS, |c| {
        server_name("echo", c, flavour)
    })
}

fn hyper_ct(ctx: &mut Context, w: &Workload) -> io::Result<WorkloadRecord> {
    hyper(ctx, w, "ct")
}

fn hyper_mt(ctx: &mut Context, w: &Workload) -> io::Result<WorkloadRecord> {
    hyper(ctx, w, "mt")
}

fn hyper(ctx: &mut Context, w: &Workload, flavour: &str) -> io::Result<WorkloadRecord> {
    let threads = if flavour == "ct" {
        1
    } else {
        ctx.settings.workers
    };
    let cpus = ctx.cpus(threads, &format!("hyper {flavour}"));
    sys::set_affinity(&cpus.load)?;
    let contestants = ["knote", "tokio"];
    let turn = TurnLoad::KeptAlive(Protocol::Http);
    let mut record = timed_rounds(ctx, w, &contestants, &cpus, turn, REQS, |c| {
        server_name("hyper", c, flavour)
    })?;
    // wrk (pinned like our load: it inherits this thread's affinity), once per contestant.
    for c in contestants {
        eprintln!(
            "knote-bench [{:>6.1} s] {}: wrk cross-check: {c}",
            ctx.started.elapsed().as_secs_f64(),
            w.name
        );
        let process = ServerProcess::start(
            &server_name("hyper", c, flavour),
            &cpus.server,
            ctx.settings.workers,
            None,
        )?;
        let rate = load::wrk(process.addr, ctx.settings.conns, ctx.settings.wrk_secs);
        process.stop()?;
        match rate {
            Ok(rate) => {
                record.wrk.insert(c.to_owned(), rate);
            }
            Err(why) => {
                record
                    .notes
                    .push(format!("no wrk cross-check for {c}: {why}"));
                break;
            }
        }
    }
    Ok(record)
}

fn churn(ctx: &mut Context, w: &Workload) -> io::Result<WorkloadRecord> {
    let cpus = ctx.cpus(1, "churn");
    sys::set_affinity(&cpus.load)?;
    let contestants = ["knote", "tokio"];
    timed_rounds(ctx, w, &contestants, &cpus, TurnLoad::Churn, CONNS, |c| {
        server_name("echo", c, "ct")
    })
}

/// File descriptors kept back from the idle connections: the busy ones, the listener, the
/// runtime's own, stdio and some slack.
const FD_RESERVE: u64 = 128;

fn scale(ctx: &mut Context, w: &Workload) -> io::Result<WorkloadRecord> {
    let cpus = ctx.cpus(1, "scale");
    sys::set_affinity(&cpus.load)?;
    let s = ctx.settings.clone();
    // Both processes hold one fd per idle connection; they have the same limit.
    let room = ctx.fd_limit.saturating_sub(FD_RESERVE + s.conns as u64) as usize;
    let idle = s.idle_conns.min(room);
    let mut notes = vec![format!(
        "{idle} idle connections (fd limit {}{})",
        ctx.fd_limit,
        if idle < s.idle_conns {
            format!(": fewer than the {} asked for", s.idle_conns)
        } else {
            String::new()
        }
    )];
    notes.push(
        "both sides serve the frugal echo service (bench/src/echo_servers.rs: readable(), then \
         try_read into a per-thread buffer and try_write), not the examples' 64 KiB buffer per \
         connection, so the memory per idle connection is the runtime's own"
            .to_owned(),
    );
    let mut record = ctx.rounds(w, &["knote", "tokio"], s.rounds, |c| {
        let process = ServerProcess::start(
            &server_name("frugal", c, "ct"),
            &cpus.server,
            s.workers,
            None,
        )?;
        let protocol = Protocol::Echo { msg: s.msg };
        let mut busy = load::connect(process.addr, s.conns)?;
        let alone = s.timed_load(&mut busy, protocol)?;
        let before = sys::rss_bytes(process.pid());
        let idle_conns = load::open_idle(process.addr, idle)?;
        // The last ones' tasks have answered; give the allocator's bookkeeping a moment.
        std::thread::sleep(Duration::from_millis(100));
        let after = sys::rss_bytes(process.pid());
        let loaded = s.timed_load(&mut busy, protocol)?;
        drop(idle_conns);
        drop(busy);
        process.stop()?;
        let mut metrics = Metrics::new();
        metrics.insert(BUSY_ALONE.to_owned(), alone.rate());
        metrics.insert(BUSY_IDLE.to_owned(), loaded.rate());
        if let (Some(before), Some(after)) = (before, after) {
            metrics.insert(
                PER_IDLE_CONN.to_owned(),
                (after as f64 - before as f64) / idle.max(1) as f64,
            );
        }
        Ok(metrics)
    })?;
    if !cfg!(target_os = "linux") {
        notes.push("no /proc: memory per idle connection not measured".to_owned());
    }
    record.notes.append(&mut notes);
    Ok(record)
}

fn idle_tasks(ctx: &mut Context, w: &Workload) -> io::Result<WorkloadRecord> {
    let n = ctx.settings.idle_tasks;
    let mut record = ctx.rounds(w, &["knote", "tokio"], ctx.settings.rounds, |c| {
        let mut metrics = Metrics::new();
        if let Some(bytes) = process::idle_tasks(c, n)? {
            metrics.insert(PER_IDLE_TASK.to_owned(), bytes);
        }
        Ok(metrics)
    })?;
    record.notes.push(format!("{n} idle tasks per process"));
    Ok(record)
}

/// Whether `strace -c -f` works here (installed, and ptrace allowed); why not otherwise.
fn strace_works() -> Result<(), String> {
    let out = std::env::temp_dir().join(format!("knote-bench-strace-check-{}", std::process::id()));
    let status = std::process::Command::new("strace")
        .arg("-c")
        .arg("-f")
        .arg("-o")
        .arg(&out)
        .arg(std::env::current_exe().map_err(|e| e.to_string())?)
        .arg("--help")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    // The summary of `--help` is of no use; it may not exist if strace failed early.
    let _removed = std::fs::remove_file(&out);
    match status {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("strace exited with {status} (is ptrace allowed?)")),
        Err(err) => Err(format!("strace: {err}")),
    }
}

fn syscalls(ctx: &mut Context, w: &Workload) -> io::Result<WorkloadRecord> {
    let contestants = ["knote", "tokio", "reactor"];
    if let Err(why) = strace_works() {
        return Ok(WorkloadRecord {
            name: w.name.to_owned(),
            description: w.description.to_owned(),
            contestants: contestants.iter().map(|c| c.to_string()).collect(),
            notes: vec![format!("n/a: {why}")],
            ..WorkloadRecord::default()
        });
    }
    let cpus = ctx.cpus(1, "syscalls");
    sys::set_affinity(&cpus.load)?;
    let s = ctx.settings.clone();
    let messages = s.strace_rounds * s.conns as u64;
    let mut record = ctx.rounds(w, &contestants, 1, |c| {
        let server = server_name("echo", c, "ct");
        let base = traced(&server, &cpus, &s, 0)?;
        let full = traced(&server, &cpus, &s, s.strace_rounds)?;
        let (total, each) = strace::per_operation(&base, &full, messages);
        let mut metrics = Metrics::new();
        metrics.insert(SYSCALLS.to_owned(), total);
        for (name, per) in each {
            metrics.insert(format!("{SYSCALLS} {name}"), per);
        }
        Ok(metrics)
    })?;
    record.notes.push(format!(
        "{messages} messages ({} connections × {}), a run with none subtracted",
        s.conns, s.strace_rounds
    ));
    Ok(record)
}

/// One server run under `strace -c -f`: its connections make `rounds` round trips each.
fn traced(server: &str, cpus: &Cpus, s: &Settings, rounds: u64) -> io::Result<strace::Calls> {
    let out = std::env::temp_dir().join(format!(
        "knote-bench-strace-{}-{server}-{rounds}.txt",
        std::process::id()
    ));
    let process = ServerProcess::start(server, &cpus.server, s.workers, Some(&out))?;
    let mut conns = load::connect(process.addr, s.conns)?;
    load::run(
        &mut conns,
        Protocol::Echo { msg: s.msg },
        s.load_threads,
        Until::Rounds(rounds),
    )?;
    drop(conns);
    // Let the server see every EOF and close before it is told to exit, so both runs count
    // the same tear-down.
    std::thread::sleep(Duration::from_millis(200));
    process.stop()?;
    let text = std::fs::read_to_string(&out)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", out.display())))?;
    std::fs::remove_file(&out)?;
    Ok(strace::parse_summary(&text))
}

/// Runs the selected workloads (all when `only` is empty), prints the table and goals, and
/// writes the JSON and SVG files asked for.
pub fn run(
    settings: &Settings,
    only: &[String],
    json: Option<&Path>,
    svg: Option<&Path>,
) -> io::Result<()> {
    let fd_limit = sys::raise_fd_limit()?;
    let allowed = sys::allowed_cpus()?;
    let mut ctx = Context {
        settings: settings.clone(),
        allowed,
        fd_limit,
        started: Instant::now(),
        pinning: vec![format!("open-file limit raised to {fd_limit}")],
    };
    let selected: Vec<&Workload> = WORKLOADS
        .iter()
        .filter(|w| only.is_empty() || only.iter().any(|o| o == w.name))
        .collect();
    let mut records = Vec::new();
    for workload in selected {
        records.push((workload.run)(&mut ctx, workload)?);
    }
    // Back to every CPU for whatever runs after (rustc --version below is harmless either way).
    sys::set_affinity(&ctx.allowed)?;
    let rows: Vec<Row> = ROWS
        .iter()
        .filter_map(|spec| {
            let record = records.iter().find(|r| r.name == spec.workload)?;
            Some(Row::compute(spec, record))
        })
        .collect();
    let goals: Vec<Goal> = GOALS.iter().map(|g| Goal::check(g, &records)).collect();
    let cpu_rows = cpu::rows(&records);
    let report = Report {
        machine: Machine::this(),
        versions: versions(),
        mode: settings.mode_name().to_owned(),
        settings: settings.describe(),
        pinning: ctx.pinning,
        cpu: cpu_rows.clone(),
        ceilings: cpu::ceilings(&cpu_rows),
        workloads: records,
        rows,
        goals,
    };
    print!("{}", report::render_table(&report));
    if let Some(path) = json {
        report::write_json(&report, path)?;
        println!("\nwrote {}", path.display());
    }
    if let Some(path) = svg {
        report::write_svg(&report, path)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// The versions compared: knote's own, tokio's and hyper's as locked, rustc's if on PATH.
fn versions() -> Versions {
    const LOCK: &str = include_str!("../../Cargo.lock");
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    Versions {
        knote: env!("CARGO_PKG_VERSION").to_owned(),
        tokio: report::locked_version(LOCK, "tokio"),
        hyper: report::locked_version(LOCK, "hyper"),
        rustc,
    }
}
