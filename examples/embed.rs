//! A host application with a main loop of its own — plain `poll(2)` — that drives knote tasks
//! and timers through a [`LocalRuntime`], the way a GUI toolkit, a game loop or a C program
//! with its own event loop would embed knote.
//!
//! ```text
//! cargo run --example embed                          # type lines; Ctrl-D ends
//! printf 'a\nb\n' | cargo run --example embed        # lines from a pipe
//! cargo run --example embed -- --pipe                # lines written by a helper thread
//! ```
//!
//! What it shows:
//!
//! - the host owns the loop: it waits in `poll(2)` on its own input fd *and* on the runtime's fd
//!   ([`LocalRuntime::as_raw_fd`], the kqueue, readable whenever a timer fired, an fd became
//!   ready or a task was woken — from any thread), with a timeout it chooses itself (1 s here);
//! - it calls [`LocalRuntime::turn`]`(Some(Duration::ZERO))` only when that fd is readable, or
//!   when the previous turn said more tasks are ready (then it polls with timeout 0, so its own
//!   input is not starved either). It never sleeps inside knote and never spins;
//! - each line read from the input is handed to a task of its own ([`LocalRuntime::spawn_local`],
//!   so tasks may share `Rc<RefCell<..>>` state with the host) that waits a short
//!   [`knote::time::sleep`] and then replies; an [`knote::time::interval`] task prints a
//!   heartbeat;
//! - the tasks do not write to the output themselves: they put their lines in an outbox the host
//!   drains after every turn, so the host keeps control of its output;
//! - on end of input the host waits for the outstanding replies, drops the runtime (which cancels
//!   the heartbeat task) and prints a summary.
//!
//! The loop lives in [`run`], which `tests/embed.rs` calls with a pipe as input. `--help`
//! prints the usage. Exit codes: 0 done, 1 an I/O or runtime error, 2 a bad command line.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::rc::Rc;
use std::thread;
use std::time::Duration;

use knote::runtime::LocalRuntime;
use knote::time::{interval, sleep, MissedTickBehavior};

/// The host's knobs.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long each line's task waits before it replies.
    pub reply_delay: Duration,
    /// Period of the heartbeat task.
    pub heartbeat: Duration,
    /// The host's own `poll(2)` timeout when nothing is ready (knote's timers do not need it:
    /// they make the runtime's fd readable by themselves).
    pub poll_timeout: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            reply_delay: Duration::from_millis(100),
            heartbeat: Duration::from_millis(500),
            poll_timeout: Duration::from_secs(1),
        }
    }
}

/// What happened during one [`run`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Lines read from the input.
    pub lines: usize,
    /// Replies the line tasks produced (all of them, or `run` would still be waiting).
    pub replies: usize,
    /// Heartbeats the interval task printed.
    pub heartbeats: usize,
    /// `poll(2)` calls the host made.
    pub polls: usize,
    /// Of those, how many timed out with nothing to do.
    pub idle_polls: usize,
    /// `LocalRuntime::turn` calls.
    pub turns: usize,
    /// Tasks still alive when the runtime was dropped (the heartbeat), cancelled by the drop.
    pub cancelled_at_shutdown: usize,
}

/// Lines the tasks want printed; the host writes them out after each turn.
type Outbox = Rc<RefCell<Vec<String>>>;

/// Runs the host loop until `input` reaches end of file and every line has been replied to.
///
/// `input` is read with one `read(2)` per readiness reported by `poll(2)`, so it may be a
/// blocking fd (a terminal, a pipe, a regular file); it is not buffered behind `poll`'s back.
pub fn run<I, W>(mut input: I, out: &mut W, config: &Config) -> io::Result<Summary>
where
    I: AsRawFd + Read,
    W: Write,
{
    let rt = LocalRuntime::new()?;
    let outbox: Outbox = Rc::default();
    let replies = Rc::new(Cell::new(0usize));
    let heartbeats = Rc::new(Cell::new(0usize));
    let mut summary = Summary::default();

    // The heartbeat: a `!Send` task (it holds `Rc`s) on an interval timer. Spawned outside
    // `turn`, it makes the runtime's fd readable, so the first poll below runs it.
    {
        let outbox = Rc::clone(&outbox);
        let heartbeats = Rc::clone(&heartbeats);
        let period = config.heartbeat;
        rt.spawn_local(async move {
            let mut ticker = interval(period);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
            ticker.tick().await; // the first tick is immediate
            loop {
                ticker.tick().await;
                heartbeats.set(heartbeats.get() + 1);
                outbox
                    .borrow_mut()
                    .push(format!("[heartbeat {}]", heartbeats.get()));
            }
        });
    }

    let input_fd = input.as_raw_fd();
    let knote_fd = rt.as_raw_fd();
    let mut input_open = true;
    let mut partial = Vec::new();
    let mut buf = [0u8; 4096];
    // Whether the last turn left tasks ready: then the host polls without waiting.
    let mut more = false;
    let host_timeout = poll_millis(config.poll_timeout);

    loop {
        flush_outbox(&outbox, out)?;
        if !input_open && replies.get() == summary.lines {
            break;
        }

        let mut fds = [
            libc::pollfd {
                // A negative fd is ignored by poll(2): that is how a closed input drops out.
                fd: if input_open { input_fd } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: knote_fd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let timeout = if more { 0 } else { host_timeout };
        summary.polls += 1;
        // SAFETY: `fds` is a valid array of two pollfds for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 && !more {
            // The host's own timeout: a real host would do its periodic chores here.
            summary.idle_polls += 1;
            continue;
        }
        if fds[1].revents & libc::POLLNVAL != 0 {
            return Err(io::Error::other("the runtime's fd is not open"));
        }

        // The host's own input first: each complete line becomes a task.
        if fds[0].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            match input.read(&mut buf) {
                Ok(0) => {
                    input_open = false;
                    if !partial.is_empty() {
                        // A last line without its newline still counts.
                        partial.push(b'\n');
                    }
                }
                Ok(len) => partial.extend_from_slice(&buf[..len]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            while let Some(end) = partial.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = partial.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line[..end]).into_owned();
                summary.lines += 1;
                // Spawned from outside `turn`: the runtime's fd becomes readable, and the next
                // poll returns at once to run it.
                rt.spawn_local(reply(
                    summary.lines,
                    line,
                    config.reply_delay,
                    Rc::clone(&outbox),
                    Rc::clone(&replies),
                ));
            }
        }

        // Then knote, when its fd says so (or the last turn left work).
        if more || fds[1].revents & libc::POLLIN != 0 {
            summary.turns += 1;
            more = rt.turn(Some(Duration::ZERO))?;
        }
    }

    summary.replies = replies.get();
    summary.heartbeats = heartbeats.get();
    summary.cancelled_at_shutdown = rt.live_tasks();
    // Clean shutdown: dropping the runtime drops every task's future (the heartbeat's included)
    // and closes its kqueue.
    drop(rt);
    Ok(summary)
}

/// The task of one line: wait a little, then reply.
async fn reply(n: usize, line: String, delay: Duration, outbox: Outbox, replies: Rc<Cell<usize>>) {
    sleep(delay).await;
    let shout: String = line.chars().rev().collect::<String>().to_uppercase();
    outbox
        .borrow_mut()
        .push(format!("reply {n}: {line:?} -> {shout:?}"));
    replies.set(replies.get() + 1);
}

fn flush_outbox(outbox: &Outbox, out: &mut impl Write) -> io::Result<()> {
    let lines = std::mem::take(&mut *outbox.borrow_mut());
    if lines.is_empty() {
        return Ok(());
    }
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()
}

/// `timeout` in poll(2)'s milliseconds, rounded up (a 0.5 ms timeout must not become a spin).
fn poll_millis(timeout: Duration) -> libc::c_int {
    let ms = timeout.as_nanos().div_ceil(1_000_000);
    ms.min(libc::c_int::MAX as u128) as libc::c_int
}

/// A pipe: `(read end, write end)`, both close-on-exec.
pub fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two fds pipe(2) writes.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe(2) succeeded, so both fds are open and owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [&r, &w] {
        // SAFETY: plain fcntl on an fd we own.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((File::from(r), File::from(w)))
}

/// Writes `lines` to `w` one at a time, `gap` apart, then closes it (end of file for the reader).
pub fn feed(mut w: File, lines: &[&str], gap: Duration) -> io::Result<()> {
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            thread::sleep(gap);
        }
        writeln!(w, "{line}")?;
    }
    Ok(())
}

/// The usage `--help` prints.
pub const USAGE: &str = "usage: embed [--pipe]

A host loop of its own (poll(2)) driving knote tasks and timers through a
LocalRuntime: each input line gets a delayed reply, a heartbeat ticks.

  --pipe   read lines written by a helper thread instead of standard input
  --help   print this and exit

Without --pipe it reads standard input until end of input (Ctrl-D).";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Print the usage.
    Help,
    /// Run the host loop; `true`: on lines from a helper thread (`--pipe`).
    Run {
        /// Lines from a helper thread instead of standard input.
        pipe: bool,
    },
}

/// Parses the arguments (without the program name).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut pipe = false;
    for arg in args {
        match arg.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--pipe" => pipe = true,
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    Ok(Command::Run { pipe })
}

/// Standard input as an unbuffered `File` (a duplicate of fd 0), if there is a usable one.
fn stdin_file() -> Option<File> {
    let fd = io::stdin().as_fd().try_clone_to_owned().ok()?;
    Some(File::from(fd))
}

fn main() -> ExitCode {
    let use_pipe = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run { pipe }) => pipe,
        Err(err) => {
            eprintln!("embed: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = Config::default();

    let mut helper = None;
    let input = match (use_pipe, stdin_file()) {
        (false, Some(stdin)) => stdin,
        (_, stdin) => {
            if !use_pipe && stdin.is_none() {
                eprintln!("embed: standard input is not usable; reading from a helper thread");
            }
            let (r, w) = match pipe() {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("embed: pipe: {e}");
                    return ExitCode::FAILURE;
                }
            };
            helper = Some(thread::spawn(move || {
                feed(
                    w,
                    &["hello", "from a helper thread", "goodbye"],
                    Duration::from_millis(700),
                )
            }));
            r
        }
    };

    let stdout = io::stdout();
    let mut out = stdout.lock();
    let result = run(input, &mut out, &config);
    if let Some(helper) = helper {
        match helper.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("embed: the helper thread failed to write: {e}"),
            Err(_) => eprintln!("embed: the helper thread panicked"),
        }
    }
    match result {
        Ok(s) => {
            let _ = writeln!(
                out,
                "done: {} lines, {} replies, {} heartbeats; {} polls ({} idle), {} turns; \
                 {} task(s) cancelled at shutdown",
                s.lines,
                s.replies,
                s.heartbeats,
                s.polls,
                s.idle_polls,
                s.turns,
                s.cancelled_at_shutdown
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("embed: {e}");
            ExitCode::FAILURE
        }
    }
}
