//! `process::Command` and `Child`: exit statuses, captured output, stdin piping, kill,
//! kill_on_drop, many children at once, and no zombie left behind, on every runtime flavour.

mod common;

use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use common::{watchdog, Flavour, ALL};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use knote_executor::process::{Command, Stdio};
use knote_executor::time::{sleep, timeout};

const GUARD: Duration = Duration::from_secs(10);

fn on_all(body: impl Fn(Flavour) + Send + Sync + 'static) {
    watchdog(move || {
        for flavour in ALL {
            body(flavour);
        }
    });
}

/// Whether `pid` names a process (running or a zombie): `kill(pid, 0)` succeeds.
fn exists(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// Whether `pid` is our unreaped child (a zombie or running): `waitid` with `WNOWAIT`
/// finds it without reaping it.
fn unreaped_child(pid: u32) -> bool {
    // SAFETY: an all-zero siginfo_t is valid; `info` is valid for writes.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above; WNOWAIT leaves the child as it is.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    r == 0
}

/// Polls `cond` every millisecond until it holds, for at most GUARD.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < GUARD, "{what}: not within {GUARD:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn exit_statuses_zero_nonzero_and_killed_by_a_signal() {
    on_all(|flavour| {
        flavour.build().block_on(async {
            let ok = Command::new("true").status().await.unwrap();
            assert!(ok.success(), "{flavour:?}");
            let three = Command::new("sh").args(["-c", "exit 3"]).status().await;
            assert_eq!(three.unwrap().code(), Some(3), "{flavour:?}");
            let killed = Command::new("sh")
                .args(["-c", "kill -TERM $$"])
                .status()
                .await;
            assert_eq!(killed.unwrap().signal(), Some(libc::SIGTERM), "{flavour:?}");
        });
    });
}

#[test]
fn spawning_a_missing_program_is_an_error() {
    Flavour::Current.build().block_on(async {
        let err = Command::new("/nonexistent/knote-no-such-program")
            .spawn()
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    });
}

#[test]
fn spawning_outside_a_runtime_is_an_error_and_starts_nothing() {
    assert!(Command::new("true").spawn().is_err());
}

#[test]
fn output_captures_stdout_and_stderr_apart() {
    on_all(|flavour| {
        flavour.build().block_on(async {
            let out = Command::new("sh")
                .args(["-c", "printf out; printf err >&2; exit 4"])
                .output()
                .await
                .unwrap();
            assert_eq!(out.status.code(), Some(4), "{flavour:?}");
            assert_eq!(out.stdout, b"out", "{flavour:?}");
            assert_eq!(out.stderr, b"err", "{flavour:?}");
        });
    });
}

#[test]
fn output_larger_than_a_pipe_buffer_does_not_deadlock() {
    // 1 MiB on each stream: the child blocks on full pipes unless both are read while waiting.
    on_all(|flavour| {
        flavour.build().block_on(async {
            let out = Command::new("sh")
                .args([
                    "-c",
                    "head -c 1048576 /dev/zero; head -c 1048576 /dev/zero >&2",
                ])
                .output()
                .await
                .unwrap();
            assert!(out.status.success(), "{flavour:?}");
            assert_eq!(out.stdout.len(), 1 << 20, "{flavour:?}");
            assert_eq!(out.stderr.len(), 1 << 20, "{flavour:?}");
        });
    });
}

#[test]
fn env_and_current_dir_reach_the_child() {
    Flavour::Current.build().block_on(async {
        let out = Command::new("sh")
            .args([
                "-c",
                "printf '%s:%s:%s' \"$KNOTE_A\" \"${HOME-unset}\" \"$(pwd)\"",
            ])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("KNOTE_A", "a")
            .env("HOME", "h")
            .env_remove("HOME")
            .current_dir("/")
            .output()
            .await
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "a:unset:/");
    });
}

#[test]
fn stdin_piped_through_cat_comes_back() {
    on_all(|flavour| {
        flavour.build().block_on(async {
            let mut child = Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let mut stdout = child.stdout.take().unwrap();
            // More than a pipe holds, written while reading, so both directions wait.
            let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
            let expected = data.clone();
            let writer = async move {
                stdin.write_all(&data).await.unwrap();
                stdin.close().await.unwrap();
            };
            let reader = async move {
                let mut got = Vec::new();
                stdout.read_to_end(&mut got).await.unwrap();
                got
            };
            let ((), got) = futures_util::future::join(writer, reader).await;
            assert!(got == expected, "{flavour:?}: {} bytes back", got.len());
            assert!(child.wait().await.unwrap().success());
        });
    });
}

#[test]
fn kill_ends_the_child_and_reaps_it() {
    on_all(|flavour| {
        flavour.build().block_on(async {
            let mut child = Command::new("sleep").arg("100").spawn().unwrap();
            let pid = child.id().unwrap();
            child.kill().await.unwrap();
            assert_eq!(child.id(), None);
            let status = child.try_wait().unwrap().unwrap();
            assert_eq!(status.signal(), Some(libc::SIGKILL), "{flavour:?}");
            assert!(!unreaped_child(pid), "{flavour:?}: left a zombie");
            // Killing a reaped child is a no-op, and its status stays.
            child.start_kill().unwrap();
            assert_eq!(child.wait().await.unwrap().signal(), Some(libc::SIGKILL));
        });
    });
}

#[test]
fn kill_on_drop_ends_the_child_and_no_zombie_is_left() {
    let pid = Flavour::Current.build().block_on(async {
        let child = Command::new("sleep")
            .arg("100")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        child.id().unwrap()
    });
    eventually("the killed child is reaped", || {
        !exists(pid) && !unreaped_child(pid)
    });
}

#[test]
fn a_child_dropped_without_wait_is_reaped_when_it_exits() {
    let rt = Flavour::Current.build();
    let pid = rt.block_on(async {
        let child = Command::new("sh").args(["-c", "exit 0"]).spawn().unwrap();
        child.id().unwrap()
    });
    // Dropped while running (or just exited): the reaper collects it, with no later call.
    eventually("the dropped child is reaped", || {
        !exists(pid) && !unreaped_child(pid)
    });
    // Dropped after it exited (a zombie at drop time).
    let pid = rt.block_on(async {
        let child = Command::new("true").spawn().unwrap();
        let pid = child.id().unwrap();
        eventually("the child exits", || {
            // SAFETY: see `unreaped_child`; this only checks that it exited.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            unsafe {
                libc::waitid(
                    libc::P_PID,
                    pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
                ) == 0
                    && info.si_pid() == pid as i32
            }
        });
        drop(child);
        pid
    });
    eventually("the zombie is reaped", || !exists(pid));
}

#[test]
fn a_child_that_exited_before_wait_is_waited_for() {
    on_all(|flavour| {
        flavour.build().block_on(async {
            let mut child = Command::new("sh").args(["-c", "exit 5"]).spawn().unwrap();
            let pid = child.id().unwrap();
            // Let it exit (a zombie) before any knote exists for it.
            while !exited(pid) {
                sleep(Duration::from_millis(1)).await;
            }
            let status = timeout(GUARD, child.wait()).await.unwrap().unwrap();
            assert_eq!(status.code(), Some(5), "{flavour:?}");
            assert!(!exists(pid), "{flavour:?}: not reaped");
        });
    });
}

/// Whether our child `pid` has exited (without reaping it).
fn exited(pid: u32) -> bool {
    // SAFETY: an all-zero siginfo_t is valid and `info` valid for writes; WNOWAIT reaps
    // nothing.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        ) == 0
            && info.si_pid() == pid as i32
    }
}

#[test]
fn a_wait_that_is_cancelled_can_be_resumed() {
    Flavour::Current.build().block_on(async {
        let mut child = Command::new("sh")
            .args(["-c", "read x; exit 6"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        // Waits on the knote, then gives up: the child is still running.
        assert!(timeout(Duration::from_millis(20), child.wait())
            .await
            .is_err());
        assert!(child.id().is_some());
        drop(stdin);
        let status = timeout(GUARD, child.wait()).await.unwrap().unwrap();
        assert_eq!(status.code(), Some(6));
    });
}

#[test]
fn fifty_children_waited_for_concurrently() {
    on_all(|flavour| {
        let rt = flavour.build();
        rt.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..50u8 {
                tasks.push(knote_executor::spawn(async move {
                    let mut child = Command::new("sh")
                        .args(["-c", &format!("sleep 0.0{}; exit {i}", i % 5)])
                        .spawn()
                        .unwrap();
                    timeout(GUARD, child.wait()).await.unwrap().unwrap().code()
                }));
            }
            for (i, task) in tasks.into_iter().enumerate() {
                assert_eq!(task.await.unwrap(), Some(i as i32), "{flavour:?}");
            }
        });
    });
}

#[test]
fn wait_with_output_reads_both_pipes() {
    Flavour::Current.build().block_on(async {
        let child = Command::new("sh")
            .args(["-c", "echo one; echo two >&2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.wait_with_output().await.unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"one\n");
        assert_eq!(out.stderr, b"two\n");
    });
}

#[cfg(feature = "tokio-io")]
#[test]
fn the_pipes_work_through_tokios_io_traits() {
    Flavour::Current.build().block_on(async {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stdin, b"through tokio")
            .await
            .unwrap();
        tokio::io::AsyncWriteExt::shutdown(&mut stdin)
            .await
            .unwrap();
        let mut got = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut got)
            .await
            .unwrap();
        assert_eq!(got, "through tokio");
        assert!(child.wait().await.unwrap().success());
    });
}

#[test]
fn an_exit_wakes_only_the_task_waiting_for_that_child() {
    // No SIGCHLD fan-out: each waiter has its own PROC knote, so the exits of some children
    // do not poll the waiters of the others.
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    Flavour::Current.build().block_on(async {
        let mut sleepers = Vec::new();
        for _ in 0..10 {
            let polls = Arc::new(AtomicUsize::new(0));
            let counted = Arc::clone(&polls);
            let mut child = Command::new("sleep")
                .arg("100")
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let pid = child.id().unwrap();
            let task = knote_executor::spawn(async move {
                let mut wait = std::pin::pin!(child.wait());
                futures_util::future::poll_fn(|cx| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    wait.as_mut().poll(cx)
                })
                .await
            });
            sleepers.push((pid, polls, task));
        }
        // Let every waiter register and park.
        while sleepers
            .iter()
            .any(|(_, p, _)| p.load(Ordering::SeqCst) == 0)
        {
            knote_executor::task::yield_now().await;
        }
        for _ in 0..5 {
            let status = Command::new("true").status().await.unwrap();
            assert!(status.success());
        }
        for (pid, polls, _) in &sleepers {
            assert_eq!(
                polls.load(Ordering::SeqCst),
                1,
                "the waiter of {pid} was woken"
            );
        }
        for (pid, _, task) in sleepers {
            // SAFETY: `pid` is our unreaped child (its waiter holds it).
            assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
            let status = timeout(GUARD, task).await.unwrap().unwrap().unwrap();
            assert_eq!(status.signal(), Some(libc::SIGKILL));
        }
    });
}
