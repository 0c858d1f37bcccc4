//! The `embed` example's host loop, fed through a pipe, and the embedding contract it relies on:
//! `LocalRuntime::as_raw_fd` is readable under plain `poll(2)` whenever work is pending —
//! a timer, a wake-up from another thread — and `turn` then runs it.
//!
//! The example file is compiled into this test as a module, so what is tested is exactly what
//! `cargo run --example embed` runs. Every wait is bounded: a broken runtime fails these tests,
//! it does not hang them.

// The example's `main` (and its stdin helper) are its entry point when built as an example;
// they are unused here.
#[allow(dead_code)]
#[path = "../examples/embed.rs"]
mod embed;

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use knote::runtime::LocalRuntime;
use knote::sync::oneshot;
use knote::time::sleep;

use embed::{feed, pipe, run, Config, Summary};

/// Longest a whole host run may take before the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest the runtime's fd may take to become readable after work was made pending.
const WAKE_TIMEOUT_MS: libc::c_int = 5_000;

/// Whether `fd` is readable within `timeout_ms` (poll(2), `EINTR` retried).
fn readable(fd: RawFd, timeout_ms: libc::c_int) -> bool {
    loop {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if n < 0 {
            let err = io::Error::last_os_error();
            assert_eq!(err.kind(), io::ErrorKind::Interrupted, "poll: {err}");
            continue;
        }
        assert_eq!(
            pfd.revents & libc::POLLNVAL,
            0,
            "the runtime's fd is not open"
        );
        return n == 1 && pfd.revents & libc::POLLIN != 0;
    }
}

/// Runs the example's host loop on a pipe fed with `lines` (`gap` apart, then `linger` before
/// closing), in a thread of its own, and waits (bounded) for its summary and output.
fn host(
    lines: &'static [&'static str],
    gap: Duration,
    linger: Duration,
    config: Config,
) -> (Summary, String) {
    let (r, w) = pipe().expect("pipe");
    let feeder = thread::spawn(move || {
        feed(w.try_clone().expect("dup the pipe's write end"), lines, gap)?;
        thread::sleep(linger);
        drop(w);
        io::Result::Ok(())
    });
    let host = thread::spawn(move || {
        let mut out = Vec::new();
        let summary = run(r, &mut out, &config);
        (summary, out)
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    while !host.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the host loop did not finish within {RUN_TIMEOUT:?} of its input's end"
        );
        thread::sleep(Duration::from_millis(5));
    }
    feeder
        .join()
        .expect("the feeder thread panicked")
        .expect("feed the pipe");
    let (summary, out) = host.join().expect("the host thread panicked");
    let summary = summary.expect("run returned an error");
    (
        summary,
        String::from_utf8(out).expect("the output is UTF-8"),
    )
}

#[test]
#[cfg_attr(miri, ignore)]
fn every_line_is_answered_with_heartbeats_and_a_clean_end() {
    const LINES: &[&str] = &["alpha", "beta", "gamma delta", "", "épsilon"];
    let config = Config {
        reply_delay: Duration::from_millis(10),
        heartbeat: Duration::from_millis(20),
        poll_timeout: Duration::from_secs(1),
    };
    let (summary, out) = host(
        LINES,
        Duration::from_millis(30),
        Duration::from_millis(50),
        config,
    );

    assert_eq!(summary.lines, LINES.len(), "output:\n{out}");
    assert_eq!(summary.replies, LINES.len(), "output:\n{out}");
    for (i, line) in LINES.iter().enumerate() {
        let shout: String = line.chars().rev().collect::<String>().to_uppercase();
        let want = format!("reply {}: {line:?} -> {shout:?}", i + 1);
        assert!(
            out.lines().any(|l| l == want),
            "missing {want:?} in the output:\n{out}"
        );
    }
    assert!(summary.heartbeats >= 1, "no heartbeat: {summary:?}\n{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("[heartbeat ")).count(),
        summary.heartbeats,
        "output:\n{out}"
    );
    // Only the heartbeat task was still alive; the drop cancelled it.
    assert_eq!(summary.cancelled_at_shutdown, 1, "{summary:?}");
    // No busy loop: every poll was answered by an input line, a timer or a wake-up (a spinning
    // host would make thousands of polls in the ~200 ms this takes).
    let events = summary.lines * 3 + summary.heartbeats + summary.idle_polls + 10;
    assert!(
        summary.polls <= 3 * events,
        "too many polls for the work done: {summary:?}"
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn heartbeats_keep_coming_while_the_input_is_quiet() {
    // One line, then 500 ms of silence: the heartbeat's timer alone must wake the host (whose
    // own poll timeout, 5 s, is far longer), every 20 ms.
    let config = Config {
        reply_delay: Duration::from_millis(5),
        heartbeat: Duration::from_millis(20),
        poll_timeout: Duration::from_secs(5),
    };
    let (summary, out) = host(
        &["ping"],
        Duration::ZERO,
        Duration::from_millis(500),
        config,
    );
    assert_eq!(summary.replies, 1, "output:\n{out}");
    assert_eq!(summary.idle_polls, 0, "{summary:?}");
    assert!(
        summary.heartbeats >= 5,
        "the heartbeat stalled ({} in 500 ms at a 20 ms period): {summary:?}\n{out}",
        summary.heartbeats
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn end_of_file_at_once_ends_the_run() {
    let config = Config {
        reply_delay: Duration::from_millis(1),
        heartbeat: Duration::from_secs(3600),
        poll_timeout: Duration::from_secs(5),
    };
    let (summary, out) = host(&[], Duration::ZERO, Duration::ZERO, config);
    assert_eq!(summary.lines, 0);
    assert_eq!(summary.heartbeats, 0);
    assert_eq!(summary.cancelled_at_shutdown, 1);
    assert_eq!(out, "");
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_spawn_from_another_thread_makes_the_fd_readable() {
    let rt = LocalRuntime::new().expect("LocalRuntime::new");
    rt.run_until_stalled().expect("turn");
    assert!(
        !readable(rt.as_raw_fd(), 0),
        "an idle runtime's fd is readable: a host polling it would spin"
    );

    let ran = Arc::new(AtomicBool::new(false));
    let handle = rt.handle().clone();
    let spawner = {
        let ran = Arc::clone(&ran);
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            drop(handle.spawn(async move { ran.store(true, Ordering::SeqCst) }));
        })
    };
    assert!(
        readable(rt.as_raw_fd(), WAKE_TIMEOUT_MS),
        "a spawn from another thread did not make the runtime's fd readable"
    );
    spawner.join().expect("the spawning thread panicked");
    assert!(
        !ran.load(Ordering::SeqCst),
        "the task ran before the host turned"
    );

    rt.run_until_stalled().expect("turn");
    assert!(ran.load(Ordering::SeqCst), "the task did not run in turn");
    assert_eq!(rt.live_tasks(), 0);
    assert!(
        !readable(rt.as_raw_fd(), 0),
        "the wake-up stayed pending after the turn that ran its task"
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_channel_send_from_another_thread_makes_the_fd_readable() {
    let rt = LocalRuntime::new().expect("LocalRuntime::new");
    let (tx, rx) = oneshot::channel::<u32>();
    let got = Rc::new(Cell::new(None));
    rt.spawn_local({
        let got = Rc::clone(&got);
        async move { got.set(rx.await.ok()) }
    });
    rt.run_until_stalled().expect("turn");
    assert_eq!(got.get(), None);
    assert!(!readable(rt.as_raw_fd(), 0), "readable before the send");

    let sender = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        tx.send(42).expect("the receiving task is alive");
    });
    assert!(
        readable(rt.as_raw_fd(), WAKE_TIMEOUT_MS),
        "a send from another thread did not make the runtime's fd readable"
    );
    sender.join().expect("the sending thread panicked");

    let more = rt.turn(Some(Duration::ZERO)).expect("turn");
    assert!(!more, "nothing else is ready");
    assert_eq!(got.get(), Some(42), "the woken task did not run in turn");
    assert_eq!(rt.live_tasks(), 0);
}

/// A host that turns only when the fd is readable (or the last turn said more is ready) must
/// see every timer: also one armed by a task that the turn's own kqueue wait woke (here the
/// second sleep, armed right after the first one fired).
#[test]
#[cfg_attr(miri, ignore)]
fn a_timer_armed_in_a_turn_after_its_wait_makes_the_fd_readable() {
    let rt = LocalRuntime::new().expect("LocalRuntime::new");
    let fired = Rc::new(Cell::new(0u32));
    rt.spawn_local({
        let fired = Rc::clone(&fired);
        async move {
            for _ in 0..3 {
                sleep(Duration::from_millis(10)).await;
                fired.set(fired.get() + 1);
            }
        }
    });

    let deadline = Instant::now() + Duration::from_millis(WAKE_TIMEOUT_MS as u64);
    let mut more = true; // the spawn is pending
    while fired.get() < 3 {
        let ready = more || readable(rt.as_raw_fd(), WAKE_TIMEOUT_MS);
        assert!(
            ready && Instant::now() < deadline,
            "the runtime's fd stayed unreadable with a timer pending (after {} of 3 sleeps)",
            fired.get()
        );
        more = rt.turn(Some(Duration::ZERO)).expect("turn");
    }
    assert_eq!(rt.live_tasks(), 0);
}

#[test]
#[cfg_attr(miri, ignore)]
fn turn_with_a_timeout_waits_for_a_timer() {
    // The other way to embed: let `turn` itself block, up to a bound.
    let rt = LocalRuntime::new().expect("LocalRuntime::new");
    let done = Rc::new(Cell::new(false));
    rt.spawn_local({
        let done = Rc::clone(&done);
        async move {
            sleep(Duration::from_millis(20)).await;
            done.set(true);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done.get() {
        assert!(Instant::now() < deadline, "the sleep never completed");
        rt.turn(Some(Duration::from_secs(1))).expect("turn");
    }
}

#[test]
fn command_line() {
    use embed::{parse_args, Command};
    let args = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()));
    assert_eq!(args(&["--help"]), Ok(Command::Help));
    assert_eq!(args(&["--pipe", "-h"]), Ok(Command::Help));
    assert_eq!(args(&[]), Ok(Command::Run { pipe: false }));
    assert_eq!(args(&["--pipe"]), Ok(Command::Run { pipe: true }));
    assert!(args(&["--bogus"]).is_err());
    assert!(args(&["file"]).is_err());
}
