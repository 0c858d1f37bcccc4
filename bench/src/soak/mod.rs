//! `knote-bench soak --minutes N`: an endurance check of knote (not a comparison).
//!
//! For the given time, all at once, on a multi-thread runtime and a current-thread runtime:
//!
//! - **connection churn** ([`churn`]): an echo server on each runtime; client tasks on both
//!   runtimes and client threads with blocking std sockets connect (paced, 12,000 a minute by
//!   default), echo 1 to 6 frames with a verifiable pattern, check every byte and close;
//! - **wake storms** ([`wake`]): bursts of wake-ups from a thread outside the runtimes
//!   (`Notify`, an mpsc channel) and from tasks to tasks on the same and on the other runtime
//!   (oneshots), every one accounted for;
//! - **timer storms** ([`timers`]): about 100,000 sleeps a second armed and dropped, some
//!   awaited until they fire, and `timeout`s;
//! - **a child process a second** ([`child`]) through `knote::process::Command`.
//!
//! The report ([`SoakReport`]) gives messages lost and corrupted, wake-ups lost, timers that
//! fired early, open fds before and after, resident memory after warm-up, half-way and at the
//! end, children left, and errors by kind; the run fails if any check does not hold. Every
//! wait is bounded ([`shared::WAIT_LIMIT`]), so a dead server or a stuck task is reported, and
//! the run always stops by itself.

mod child;
mod churn;
mod probe;
mod report;
mod shared;
mod timers;
mod wake;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use knote::net::TcpListener;
use knote::runtime::{Builder, Handle, Runtime};

pub use report::{RssSamples, SoakReport};

use churn::{KnoteClient, Pacer, Server, StdClient};
use shared::{Shared, WAIT_LIMIT};

const USAGE: &str = "usage: knote-bench soak [--minutes N | --seconds N] [OPTIONS]

An endurance check of knote: connection churn on echo servers, wake storms, timer storms and a
child process a second, all at once on a multi-thread and a current-thread runtime. Prints a
progress line every few seconds on stderr and the report on stdout; exits 1 if a check failed.

  --minutes N            how long to run (fractions allowed; default 1)
  --seconds N            the same in seconds
  --workers N            worker threads of the multi-thread runtime (default: one per CPU)
  --connects-per-minute N  connection churn rate (default 12000)
  --timers-per-second N  sleeps armed and dropped per second (default 100000)
  --progress SECONDS     time between progress lines (default 5)
  --quiet                no progress lines
  --help                 print this and exit";

/// Options of a soak run (from `knote-bench soak --minutes N`).
#[derive(Clone, Debug, PartialEq)]
pub struct SoakOptions {
    /// How long the load runs.
    pub duration: Duration,
    /// Worker threads of the multi-thread runtime (`None`: the runtime's default).
    pub workers: Option<usize>,
    /// Connections opened and closed per minute, over all clients.
    pub connects_per_minute: f64,
    /// Sleeps armed (and mostly dropped unfired) per second, over all timer storms.
    pub timers_per_second: f64,
    /// Time between progress lines on stderr (`None`: none).
    pub progress: Option<Duration>,
}

impl Default for SoakOptions {
    fn default() -> SoakOptions {
        SoakOptions {
            duration: Duration::from_secs(60),
            workers: None,
            connects_per_minute: 12_000.0,
            timers_per_second: 100_000.0,
            progress: Some(Duration::from_secs(5)),
        }
    }
}

/// Parses the arguments after `soak`.
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<SoakOptions, String> {
    let mut options = SoakOptions::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<f64, String> {
            let text = args.next().ok_or(format!("{name} needs a number"))?;
            match text.parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
                _ => Err(format!("{name}: not a positive number: {text:?}")),
            }
        };
        match arg.as_str() {
            "--minutes" => options.duration = seconds("--minutes", value("--minutes")? * 60.0)?,
            "--seconds" => options.duration = seconds("--seconds", value("--seconds")?)?,
            "--workers" => {
                let n = value("--workers")?;
                if n.fract() != 0.0 || n > 1024.0 {
                    return Err(format!("--workers: not a thread count: {n}"));
                }
                options.workers = Some(n as usize);
            }
            "--connects-per-minute" => {
                options.connects_per_minute = value("--connects-per-minute")?
            }
            "--timers-per-second" => options.timers_per_second = value("--timers-per-second")?,
            "--progress" => options.progress = Some(seconds("--progress", value("--progress")?)?),
            "--quiet" => options.progress = None,
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(options)
}

/// `secs` seconds as a duration, if it is one (at most a year: a longer soak is a typo).
fn seconds(name: &str, secs: f64) -> Result<Duration, String> {
    if secs > 365.0 * 86_400.0 {
        return Err(format!("{name}: more than a year"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{name}: {e}"))
}

/// `knote-bench soak ARGS`: parses, runs, prints the report; the exit code says whether it
/// passed (0), failed a check (1), or could not run (2: bad arguments or set-up failure).
pub fn main(args: impl IntoIterator<Item = String>) -> ExitCode {
    let args: Vec<String> = args.into_iter().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let options = match parse_args(args) {
        Ok(options) => options,
        Err(why) => {
            eprintln!("knote-bench soak: {why}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(report) => {
            if let Err(e) = writeln!(io::stdout().lock(), "{report}") {
                eprintln!("knote-bench soak: cannot print the report: {e}");
                return ExitCode::from(2);
            }
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("knote-bench soak: could not run: {e}");
            ExitCode::from(2)
        }
    }
}

/// How long after the start the resident memory is first sampled: a sixth of the run, at least
/// half a second and at most ten (by then every pool, heap and arena has met the load).
fn warm_up(duration: Duration) -> Duration {
    (duration / 6).clamp(Duration::from_millis(500), Duration::from_secs(10))
}

/// Something the run waits for at the end: a task, or a plain thread.
enum Worker {
    /// A task on one of the runtimes, by name.
    Task(&'static str, knote::JoinHandle<()>),
    /// A plain thread.
    Thread(ThreadWorker),
}

/// A plain thread of the run, by name, with the receiver that hears when it ended (see
/// [`Done`]): it is joined only then, so that a stuck thread cannot hang the run.
struct ThreadWorker {
    name: &'static str,
    thread: thread::JoinHandle<()>,
    ended: std_mpsc::Receiver<()>,
}

/// The current-thread runtime, which runs on a thread of its own until released.
struct CurrentThread {
    /// Its handle, to spawn onto it.
    handle: Handle,
    /// Sending (or dropping) it ends the thread's `block_on`.
    release: knote::sync::oneshot::Sender<()>,
    /// The thread.
    thread: ThreadWorker,
}

/// Runs the soak for `options.duration` and reports what it saw. An error means it could not
/// start (no runtime, no listener); everything that goes wrong after that is in the report.
pub fn run(options: &SoakOptions) -> io::Result<SoakReport> {
    let began = Instant::now();
    let fds_start = probe::fd_table()?;
    let mut builder = Builder::new_multi_thread();
    builder.thread_name("soak-multi");
    if let Some(n) = options.workers {
        builder.worker_threads(n);
    }
    let multi = builder.build()?;
    let shared = Arc::new(Shared::new(options.duration));
    let mut report = SoakReport {
        planned: options.duration,
        workers: multi.handle().worker_threads(),
        ..SoakReport::default()
    };
    // The current-thread runtime lives on a thread of its own, running until `release` says.
    let current = start_current_thread(&shared)?;
    let workers = match start_load(options, &multi, &current.handle, &shared) {
        Ok(workers) => workers,
        Err(e) => {
            shared.stop();
            // Fails only if the thread already ended, which is what this asks for.
            current.release.send(()).ok();
            return Err(e);
        }
    };

    report.rss = watch(options, &shared);
    shared.stop();
    // Dropped with it, the current-thread runtime's last handle (its thread dropped the
    // runtime): its kqueue closes then.
    stop(workers, &multi, current, &shared);
    multi.shutdown_timeout(WAIT_LIMIT);

    // The shutdown returned, so the runtimes' descriptors are closed (it waits for their
    // threads): what is open now beyond the start is a leak.
    let fds_end = probe_or_tally("open fds", probe::fd_table(), &shared);
    report.fds = (
        fds_start.as_ref().map(|t| t.len()),
        fds_end.as_ref().map(|t| t.len()),
    );
    if let (Some(start), Some(end)) = (&fds_start, &fds_end) {
        report.new_fds = end
            .iter()
            .filter(|&(fd, what)| start.get(fd) != Some(what))
            .map(|(fd, what)| format!("{fd} {what}"))
            .collect();
    }
    report.children_left = probe_or_tally("children", probe::live_children(), &shared);
    report.totals = shared.counters.snapshot();
    report.errors = shared.errors();
    report.incidents = shared.incidents();
    report.elapsed = began.elapsed();
    Ok(report)
}

/// Starts the thread of the current-thread runtime.
fn start_current_thread(shared: &Arc<Shared>) -> io::Result<CurrentThread> {
    let (handle_tx, handle_rx) = std_mpsc::channel::<io::Result<Handle>>();
    let (release, released) = knote::sync::oneshot::channel::<()>();
    let (done, ended) = std_mpsc::channel();
    let shared = Arc::clone(shared);
    let thread = thread::Builder::new()
        .name("soak-current".to_owned())
        .spawn(move || {
            let _done = Done(done);
            let runtime = match Builder::new_current_thread().build() {
                Ok(runtime) => runtime,
                Err(e) => {
                    handle_tx.send(Err(e)).ok();
                    return;
                }
            };
            if handle_tx.send(Ok(runtime.handle().clone())).is_err() {
                return;
            }
            // Runs the tasks spawned onto it until released, or (should the release never
            // come) well after the run's deadline.
            let last = shared.deadline + 8 * WAIT_LIMIT;
            let wait = last.saturating_duration_since(Instant::now());
            runtime.block_on(knote::time::timeout(wait, released)).ok();
        })?;
    match handle_rx.recv_timeout(WAIT_LIMIT) {
        Ok(Ok(handle)) => Ok(CurrentThread {
            handle,
            release,
            thread: ThreadWorker {
                name: "soak-current",
                thread,
                ended,
            },
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::other("the current-thread runtime did not start")),
    }
}

/// Sends on its channel when dropped: a thread says it ended, even by a panic.
struct Done(std_mpsc::Sender<()>);

impl Drop for Done {
    fn drop(&mut self) {
        // The receiver is gone only if the run stopped waiting for this thread.
        self.0.send(()).ok();
    }
}

/// Spawns `f` on a thread named `name`, as a [`Worker`] that says when it ended.
fn spawn_thread(name: &'static str, f: impl FnOnce() + Send + 'static) -> io::Result<Worker> {
    let (done, ended) = std_mpsc::channel();
    let thread = thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _done = Done(done);
            f();
        })?;
    Ok(Worker::Thread(ThreadWorker {
        name,
        thread,
        ended,
    }))
}

/// Binds an echo server on `handle`'s runtime and spawns it; its address.
fn start_server(
    handle: &Handle,
    which: Server,
    shared: &Arc<Shared>,
    workers: &mut Vec<Worker>,
) -> io::Result<SocketAddr> {
    let listener = {
        let _in = handle.enter();
        TcpListener::from_std(std::net::TcpListener::bind("127.0.0.1:0")?)?
    };
    let addr = listener.local_addr()?;
    let task = handle.spawn(churn::serve(listener, which, Arc::clone(shared)));
    workers.push(Worker::Task("echo server", task));
    Ok(addr)
}

/// Starts every workload on the two runtimes and on plain threads.
fn start_load(
    options: &SoakOptions,
    multi: &Runtime,
    current: &Handle,
    shared: &Arc<Shared>,
) -> io::Result<Vec<Worker>> {
    let multi = multi.handle();
    let mut workers = Vec::new();
    let servers = vec![
        start_server(multi, Server::MultiThread, shared, &mut workers)?,
        start_server(current, Server::CurrentThread, shared, &mut workers)?,
    ];

    // Connection churn: two client tasks on the multi-thread runtime, one on the
    // current-thread one, two plain threads; all against both servers in turn.
    let pacer = Arc::new(Pacer::new(options.connects_per_minute / 60.0, shared));
    let client = |c: KnoteClient| {
        churn::client_loop(c, servers.clone(), Arc::clone(&pacer), Arc::clone(shared))
    };
    for _ in 0..2 {
        workers.push(Worker::Task("client", multi.spawn(client(KnoteClient))));
    }
    workers.push(Worker::Task("client", current.spawn(client(KnoteClient))));
    for _ in 0..2 {
        let (servers, pacer, shared) = (servers.clone(), Arc::clone(&pacer), Arc::clone(shared));
        workers.push(spawn_thread("soak-std-client", move || {
            let clients = churn::client_loop(StdClient, servers, pacer, Arc::clone(&shared));
            if let Err(e) = churn::run_blocking(clients) {
                shared.incident(format!("a client thread stopped: {e}"));
            }
        })?);
    }

    // Wake storms: from a plain thread, and task to task within and across the runtimes.
    let (targets, tasks) = wake::spawn_outside_targets(multi, shared);
    workers.extend(tasks.into_iter().map(|t| Worker::Task("wake target", t)));
    let outside = Arc::clone(shared);
    workers.push(spawn_thread("soak-waker", move || {
        wake::outside_storms(targets, &outside)
    })?);
    let storm = |target: &Handle, burst, what| {
        wake::task_storms(target.clone(), burst, what, Arc::clone(shared))
    };
    spawn_task(
        &mut workers,
        "wake storm",
        multi,
        storm(multi, 64, "multi-thread to multi-thread"),
    );
    spawn_task(
        &mut workers,
        "wake storm",
        multi,
        storm(current, 32, "multi-thread to current-thread"),
    );
    spawn_task(
        &mut workers,
        "wake storm",
        current,
        storm(multi, 32, "current-thread to multi-thread"),
    );

    // Timer storms: two fifths of the rate on each multi-thread task, a fifth on the
    // current-thread runtime.
    let rate = options.timers_per_second;
    let timers = |share: f64, seed| timers::timer_storm(rate * share, seed, Arc::clone(shared));
    spawn_task(&mut workers, "timer storm", multi, timers(0.4, 1));
    spawn_task(&mut workers, "timer storm", multi, timers(0.4, 2));
    spawn_task(&mut workers, "timer storm", current, timers(0.2, 3));

    spawn_task(
        &mut workers,
        "children",
        multi,
        child::children(Arc::clone(shared)),
    );
    Ok(workers)
}

/// Spawns `f` on `handle`'s runtime as a [`Worker`] named `name`.
fn spawn_task(
    workers: &mut Vec<Worker>,
    name: &'static str,
    handle: &Handle,
    f: impl std::future::Future<Output = ()> + Send + 'static,
) {
    workers.push(Worker::Task(name, handle.spawn(f)));
}

/// Watches the run until its deadline: a progress line every `options.progress`, and the
/// resident memory after warm-up, half-way and at the deadline.
fn watch(options: &SoakOptions, shared: &Shared) -> RssSamples {
    let duration = options.duration;
    let (warm, middle) = (warm_up(duration), (duration / 2).max(warm_up(duration)));
    let mut rss = RssSamples::default();
    let mut progress = options.progress;
    let mut next_progress = progress.map(|every| shared.started + every);
    let mut samples = [(warm, &mut rss.start), (middle, &mut rss.middle)];
    let mut last_rss = None;
    loop {
        let now = Instant::now();
        if now >= shared.deadline {
            break;
        }
        for (at, sample) in samples.iter_mut() {
            if sample.is_none() && now >= shared.started + *at {
                last_rss = probe_or_tally("resident memory", probe::rss_bytes(), shared);
                **sample = last_rss;
            }
        }
        if next_progress.is_some_and(|at| now >= at) {
            let line = progress_line(shared, last_rss);
            // A progress line that cannot be written (stderr closed) is no failure of the
            // soak: the lines stop, the report still comes.
            if writeln!(io::stderr().lock(), "{line}").is_err() {
                progress = None;
            }
            next_progress = progress.map(|every| now + every);
        }
        let mut wake = shared.deadline;
        wake = wake.min(next_progress.unwrap_or(wake));
        for (at, sample) in &samples {
            if sample.is_none() {
                wake = wake.min(shared.started + *at);
            }
        }
        thread::sleep(wake.saturating_duration_since(Instant::now()));
    }
    rss.end = probe_or_tally("resident memory", probe::rss_bytes(), shared);
    rss
}

/// One progress line: time, and the counts so far.
fn progress_line(shared: &Shared, rss: Option<u64>) -> String {
    let t = shared.counters.snapshot();
    let fds = probe_or_tally("open fds", probe::open_fds(), shared);
    format!(
        "soak {:>5.1}/{:.0} s: {} connections ({} lost, {} corrupted), {} wake-ups ({} lost), \
         {} sleeps armed ({} fired), {} children, rss {}, {} fds, {} errors",
        shared.started.elapsed().as_secs_f64(),
        (shared.deadline - shared.started).as_secs_f64(),
        t.connections,
        t.messages_lost,
        t.messages_corrupted,
        t.wakes_received,
        t.wakes_lost,
        t.timers_armed,
        t.timers_fired,
        t.children_checked,
        report::mib(probe_or_tally("resident memory", probe::rss_bytes(), shared).or(rss)),
        fds.map_or_else(|| "unknown".to_owned(), |n| n.to_string()),
        shared.errors().total(),
    )
}

/// A probe's figure; an error reading it is counted, and the figure is unknown.
fn probe_or_tally<T>(what: &str, read: io::Result<Option<T>>, shared: &Shared) -> Option<T> {
    read.unwrap_or_else(|e| {
        shared.error(&format!("probe {what}"), &e);
        None
    })
}

/// Waits, at most a few [`WAIT_LIMIT`]s in all, for every workload to end (they saw the stop
/// flag), then ends the current-thread runtime's thread; what does not end in time, or ended
/// by a panic, is an incident.
fn stop(workers: Vec<Worker>, multi: &Runtime, current: CurrentThread, shared: &Shared) {
    let give_up = Instant::now() + 4 * WAIT_LIMIT;
    let left = || give_up.saturating_duration_since(Instant::now());
    let mut threads = Vec::new();
    for worker in workers {
        match worker {
            Worker::Task(name, task) => match multi.block_on(knote::time::timeout(left(), task)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => shared.incident(format!("task {name:?} failed: {e}")),
                Err(_) => shared.incident(format!("task {name:?} did not stop in time")),
            },
            Worker::Thread(thread) => threads.push(thread),
        }
    }
    // The current-thread runtime's tasks all ended above: its thread may go (a failed send
    // means it already went, its own time limit having passed; the wait below says so).
    current.release.send(()).ok();
    for ThreadWorker {
        name,
        thread,
        ended,
    } in threads.into_iter().chain([current.thread])
    {
        if ended.recv_timeout(left()).is_err() {
            shared.incident(format!("thread {name:?} did not stop in time"));
        } else if thread.join().is_err() {
            shared.incident(format!("thread {name:?} panicked"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<SoakOptions, String> {
        parse_args(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn minutes_and_seconds_set_the_duration() {
        assert_eq!(parse(&[]).unwrap().duration, Duration::from_secs(60));
        assert_eq!(
            parse(&["--minutes", "0.05"]).unwrap().duration,
            Duration::from_secs(3)
        );
        assert_eq!(
            parse(&["--seconds", "2.5"]).unwrap().duration,
            Duration::from_millis(2500)
        );
    }

    #[test]
    fn options_are_read() {
        let o = parse(&[
            "--workers",
            "3",
            "--connects-per-minute",
            "600",
            "--timers-per-second",
            "1000",
            "--quiet",
        ])
        .unwrap();
        assert_eq!(o.workers, Some(3));
        assert_eq!(o.connects_per_minute, 600.0);
        assert_eq!(o.timers_per_second, 1000.0);
        assert_eq!(o.progress, None);
    }

    #[test]
    fn bad_numbers_are_refused() {
        for args in [
            &["--minutes"][..],
            &["--minutes", "0"],
            &["--minutes", "-2"],
            &["--minutes", "inf"],
            &["--seconds", "1e12"],
            &["--workers", "0.5"],
            &["--timers-per-second", "x"],
            &["--what"],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn warm_up_is_a_sixth_within_bounds() {
        assert_eq!(warm_up(Duration::from_secs(60)), Duration::from_secs(10));
        assert_eq!(warm_up(Duration::from_secs(600)), Duration::from_secs(10));
        assert_eq!(warm_up(Duration::from_secs(12)), Duration::from_secs(2));
        assert_eq!(warm_up(Duration::from_secs(1)), Duration::from_millis(500));
    }
}
