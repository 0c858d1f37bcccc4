//! The `PROC` row of the semantics' filter table: `NOTE_EXIT` with the wait status, `EV_EOF |
//! EV_ONESHOT | EV_CLEAR`, the child is not reaped, a re-add with `fflags` = 0 disarms it,
//! absent pid → `ESRCH`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};

use common::*;
use knote_reactor::{note, Filter, Flags, Kevent, Kqueue};

/// A child that exits with `code` once its stdin is closed.
fn gated_child(code: i32) -> Child {
    Command::new("sh")
        .args(["-c", &format!("read x; exit {code}")])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn sh")
}

/// Waits for the `NOTE_EXIT` event of `pid` and checks what every exit event carries.
fn exit_event(kq: &Kqueue, pid: u32) -> Kevent {
    let ev = wait_for(kq, pid as usize, Filter::PROC);
    assert!(ev.fflags() & note::EXIT != 0, "NOTE_EXIT in fflags: {ev:?}");
    // FreeBSD's PROC filter sets EV_CLEAR on the knote itself.
    assert!(
        ev.flags()
            .contains(Flags::EOF | Flags::ONESHOT | Flags::CLEAR),
        "EV_EOF | EV_ONESHOT | EV_CLEAR on exit: {ev:?}"
    );
    assert!(!ev.is_error(), "{ev:?}");
    assert_no_action_flags(&ev);
    ev
}

/// Blocks until `pid` has exited, without reaping it.
fn wait_exited_not_reaped(pid: u32) {
    loop {
        // SAFETY: an all-zero siginfo_t is valid; waitid writes into it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is valid for writes; WNOWAIT leaves the child waitable.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            return;
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(err.kind(), std::io::ErrorKind::Interrupted, "waitid: {err}");
    }
}

#[test]
fn note_exit_reports_the_wait_status_and_does_not_reap() {
    let kq = kq();
    let mut child = gated_child(7);
    let pid = child.id();
    register(
        &kq,
        &[Kevent::proc(
            pid as i32,
            Flags::ADD,
            note::EXIT | note::EXITSTATUS,
            0x9D,
        )],
    );
    assert!(
        wait(&kq, 8, Some(QUIET)).is_empty(),
        "exit before the child exited"
    );
    drop(child.stdin.take());
    let ev = exit_event(&kq, pid);
    assert_eq!(ev.udata(), 0x9D);
    let status = ExitStatus::from_raw(ev.data() as i32);
    assert_eq!(status.code(), Some(7), "data = wait status: {ev:?}");
    // Not reaped: the parent still collects the same status.
    let reaped = child
        .wait()
        .expect("waitpid after NOTE_EXIT: the child was reaped");
    assert_eq!(reaped.code(), Some(7));
    // EV_ONESHOT: the knote is gone.
    assert!(poll(&kq).is_empty());
    assert_eq!(
        receipt(&kq, Kevent::proc(pid as i32, Flags::DELETE, 0, 0)),
        i64::from(libc::ENOENT)
    );
}

#[test]
fn note_exit_for_a_child_that_already_exited() {
    let kq = kq();
    let mut child = Command::new("sh")
        .args(["-c", "exit 3"])
        .spawn()
        .expect("spawn sh");
    let pid = child.id();
    wait_exited_not_reaped(pid);
    register(
        &kq,
        &[Kevent::proc(
            pid as i32,
            Flags::ADD,
            note::EXIT | note::EXITSTATUS,
            1,
        )],
    );
    let ev = exit_event(&kq, pid);
    assert_eq!(ExitStatus::from_raw(ev.data() as i32).code(), Some(3));
    assert_eq!(child.wait().unwrap().code(), Some(3));
}

#[test]
fn note_exit_of_a_killed_child_reports_the_signal() {
    let kq = kq();
    let mut child = gated_child(0);
    let pid = child.id();
    register(
        &kq,
        &[Kevent::proc(
            pid as i32,
            Flags::ADD,
            note::EXIT | note::EXITSTATUS,
            2,
        )],
    );
    child.kill().unwrap();
    let ev = exit_event(&kq, pid);
    let status = ExitStatus::from_raw(ev.data() as i32);
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{ev:?}");
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
}

#[test]
fn note_fork_and_exec_are_accepted() {
    let kq = kq();
    let mut child = gated_child(4);
    let pid = child.id();
    let outcome = receipt(
        &kq,
        Kevent::proc(
            pid as i32,
            Flags::ADD,
            note::EXIT | note::FORK | note::EXEC,
            3,
        ),
    );
    assert_eq!(outcome, 0, "NOTE_FORK | NOTE_EXEC must be accepted");
    drop(child.stdin.take());
    let ev = exit_event(&kq, pid);
    // Documented shim difference (SEMANTICS.md): NOTE_FORK / NOTE_EXEC are never reported by the shim.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    assert_eq!(ev.fflags() & (note::FORK | note::EXEC), 0, "{ev:?}");
    assert_eq!(ExitStatus::from_raw(ev.data() as i32).code(), Some(4));
    assert_eq!(child.wait().unwrap().code(), Some(4));
}

#[test]
fn note_exit_of_a_process_that_is_not_our_child() {
    let kq = kq();
    // sh forks a grandchild that waits on our pipe (as fd 3, since a background job's stdin is
    // /dev/null), prints its pid, and reaps it.
    let mut child = Command::new("sh")
        .args(["-c", "exec 3<&0; (read x <&3; exit 5) & echo $!; wait"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let grandchild: u32 = line.trim().parse().expect("grandchild pid");
    register(
        &kq,
        &[Kevent::proc(grandchild as i32, Flags::ADD, note::EXIT, 4)],
    );
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    let ev = exit_event(&kq, grandchild);
    // Documented shim difference (SEMANTICS.md): for a process that is not our child the shim cannot read
    // the exit status and reports 0.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    assert_eq!(ev.data(), 0, "{ev:?}");
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    assert_eq!(ExitStatus::from_raw(ev.data() as i32).code(), Some(5));
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn absent_pid_is_esrch() {
    let kq = kq();
    // Far above any pid_max (Linux: at most 2^22; FreeBSD: 99999).
    let absent = 0x3fff_fff0;
    let events = submit(
        &kq,
        &[Kevent::proc(absent, Flags::ADD, note::EXIT, 0)],
        4,
        Some(std::time::Duration::ZERO),
    )
    .unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].is_error());
    assert_eq!(events[0].data(), i64::from(libc::ESRCH));
    // A reaped child is absent too.
    let mut child = Command::new("true").spawn().expect("spawn true");
    let pid = child.id();
    child.wait().unwrap();
    assert_eq!(
        receipt(&kq, Kevent::proc(pid as i32, Flags::ADD, note::EXIT, 0)),
        i64::from(libc::ESRCH)
    );
}

#[test]
fn proc_delete_before_exit() {
    let kq = kq();
    let mut child = gated_child(1);
    let pid = child.id();
    register(&kq, &[Kevent::proc(pid as i32, Flags::ADD, note::EXIT, 0)]);
    register(&kq, &[Kevent::proc(pid as i32, Flags::DELETE, 0, 0)]);
    drop(child.stdin.take());
    assert_eq!(child.wait().unwrap().code(), Some(1));
    assert!(wait(&kq, 8, Some(QUIET)).is_empty());
}

#[test]
fn every_kqueue_watching_a_child_gets_its_exit() {
    let kq1 = kq();
    let kq2 = kq();
    let mut child = gated_child(6);
    let pid = child.id();
    register(
        &kq1,
        &[Kevent::proc(
            pid as i32,
            Flags::ADD,
            note::EXIT | note::EXITSTATUS,
            1,
        )],
    );
    register(
        &kq2,
        &[Kevent::proc(
            pid as i32,
            Flags::ADD,
            note::EXIT | note::EXITSTATUS,
            2,
        )],
    );
    drop(child.stdin.take());
    for (kq, udata) in [(&kq1, 1), (&kq2, 2)] {
        let ev = exit_event(kq, pid);
        assert_eq!(ev.udata(), udata);
        assert_eq!(ExitStatus::from_raw(ev.data() as i32).code(), Some(6));
    }
    assert_eq!(child.wait().unwrap().code(), Some(6));
}

#[test]
fn the_exit_flags_are_exactly_eof_oneshot_clear() {
    let kq = kq();
    let mut child = gated_child(2);
    let pid = child.id();
    // Registered without EV_RECEIPT (which a knote would keep and return).
    submit(
        &kq,
        &[Kevent::proc(pid as i32, Flags::ADD, note::EXIT, 8)],
        0,
        None,
    )
    .unwrap();
    drop(child.stdin.take());
    let ev = exit_event(&kq, pid);
    assert_eq!(
        ev.flags(),
        Flags::EOF | Flags::ONESHOT | Flags::CLEAR,
        "{ev:?}"
    );
    assert_eq!(child.wait().unwrap().code(), Some(2));
}

#[test]
fn readding_with_fflags_zero_disarms_the_exit() {
    let kq = kq();
    let mut child = gated_child(9);
    let pid = child.id();
    register(&kq, &[Kevent::proc(pid as i32, Flags::ADD, note::EXIT, 1)]);
    // Re-added without NOTE_EXIT: nothing it asks for can fire any more.
    register(&kq, &[Kevent::proc(pid as i32, Flags::ADD, 0, 2)]);
    drop(child.stdin.take());
    wait_exited_not_reaped(pid);
    let events = wait(&kq, 8, Some(QUIET));
    assert!(
        events.is_empty(),
        "an exit was delivered to a knote without NOTE_EXIT: {events:?}"
    );
    // FreeBSD drops the knote (EV_DROP) when the exit finds no note to report.
    assert_eq!(
        receipt(&kq, Kevent::proc(pid as i32, Flags::DELETE, 0, 0)),
        i64::from(libc::ENOENT)
    );
    assert_eq!(child.wait().unwrap().code(), Some(9), "not reaped");
}
