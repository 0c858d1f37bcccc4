//! The C ABI from C: `tests/c/kevent_test.c`, a FreeBSD-style program, compiled against
//! `<sys/event.h>` and the static library, one process per test case.
#![cfg(target_os = "linux")]

mod support;

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use knote_capi::{CKevent, KQUEUE_CLOEXEC};
use knote_reactor::{note, Filter, Flags};

/// The test program, compiled once for all the tests of this binary.
fn program() -> &'static PathBuf {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let source = support::package_dir().join("tests/c/kevent_test.c");
        support::compile("kevent_test", &source, &support::static_link_args())
    })
}

/// Runs one C test case and checks it passed.
fn run(name: &str) {
    let out = Command::new(program())
        .arg(name)
        .output()
        .expect("running the C test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim() == format!("ok {name}"),
        "C test {name}: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

macro_rules! c_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run(stringify!($name));
            }
        )*
        const C_TESTS: &[&str] = &[$(stringify!($name)),*];
    };
}

c_tests![
    read_write_pipe,
    read_write_socketpair,
    timer_units,
    timer_periodic_counts,
    user_trigger_and_fflags,
    signal,
    proc_exit,
    enable_disable_delete,
    oneshot_and_dispatch,
    receipt_entries,
    same_array_for_changes_and_events,
    error_entries,
    no_room_for_errors,
    bad_arguments,
    eintr,
    timeout_expires,
    closed_kqueue_number_reused_by_a_pipe,
    closed_kqueue_number_reused_by_a_kqueue,
    close_cycles_leak_no_fds,
    fork_child_does_not_inherit,
    kqueue1_and_kqueuex,
    kqueue_fd_is_pollable,
    threads_share_a_kqueue,
];

#[test]
fn every_c_test_is_run() {
    let out = Command::new(program()).arg("list").output().unwrap();
    assert!(out.status.success());
    let listed: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        listed, C_TESTS,
        "the C program's tests and this file's list differ"
    );
}

#[test]
fn an_unknown_test_name_fails() {
    let out = Command::new(program())
        .arg("no_such_test")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `name value` lines printed by the C program's `layout` mode.
fn layout() -> BTreeMap<String, i64> {
    let out = Command::new(program()).arg("layout").output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (name, value) = line.split_once(' ').expect("name value");
            (name.to_string(), value.parse().expect("a number"))
        })
        .collect()
}

#[test]
fn the_headers_struct_is_the_rust_struct() {
    let c = layout();
    let rust = [
        ("sizeof", size_of::<CKevent>()),
        ("ident", offset_of!(CKevent, ident)),
        ("filter", offset_of!(CKevent, filter)),
        ("flags", offset_of!(CKevent, flags)),
        ("fflags", offset_of!(CKevent, fflags)),
        ("data", offset_of!(CKevent, data)),
        ("udata", offset_of!(CKevent, udata)),
        ("ext", offset_of!(CKevent, ext)),
    ];
    for (name, value) in rust {
        assert_eq!(c[name], value as i64, "{name}");
    }
}

#[test]
fn the_headers_constants_are_the_reactors() {
    let c = layout();
    let filters = [
        ("EVFILT_READ", Filter::READ),
        ("EVFILT_WRITE", Filter::WRITE),
        ("EVFILT_VNODE", Filter::VNODE),
        ("EVFILT_PROC", Filter::PROC),
        ("EVFILT_SIGNAL", Filter::SIGNAL),
        ("EVFILT_TIMER", Filter::TIMER),
        ("EVFILT_USER", Filter::USER),
    ];
    for (name, filter) in filters {
        assert_eq!(c[name], i64::from(filter.raw()), "{name}");
    }
    let flags = [
        ("EV_ADD", Flags::ADD),
        ("EV_DELETE", Flags::DELETE),
        ("EV_ENABLE", Flags::ENABLE),
        ("EV_DISABLE", Flags::DISABLE),
        ("EV_ONESHOT", Flags::ONESHOT),
        ("EV_CLEAR", Flags::CLEAR),
        ("EV_RECEIPT", Flags::RECEIPT),
        ("EV_DISPATCH", Flags::DISPATCH),
        ("EV_EOF", Flags::EOF),
        ("EV_ERROR", Flags::ERROR),
    ];
    for (name, flag) in flags {
        assert_eq!(c[name], i64::from(flag.bits()), "{name}");
    }
    let notes = [
        ("NOTE_TRIGGER", note::TRIGGER),
        ("NOTE_FFNOP", note::FFNOP),
        ("NOTE_FFAND", note::FFAND),
        ("NOTE_FFOR", note::FFOR),
        ("NOTE_FFCOPY", note::FFCOPY),
        ("NOTE_FFCTRLMASK", note::FFCTRLMASK),
        ("NOTE_FFLAGSMASK", note::FFLAGSMASK),
        ("NOTE_LOWAT", note::LOWAT),
        ("NOTE_EXIT", note::EXIT),
        ("NOTE_FORK", note::FORK),
        ("NOTE_EXEC", note::EXEC),
        ("NOTE_SECONDS", note::SECONDS),
        ("NOTE_MSECONDS", note::MSECONDS),
        ("NOTE_USECONDS", note::USECONDS),
        ("NOTE_NSECONDS", note::NSECONDS),
        ("NOTE_ABSTIME", note::ABSTIME),
        ("NOTE_DELETE", note::DELETE),
        ("NOTE_WRITE", note::WRITE),
        ("NOTE_EXTEND", note::EXTEND),
        ("NOTE_ATTRIB", note::ATTRIB),
        ("NOTE_LINK", note::LINK),
        ("NOTE_RENAME", note::RENAME),
        ("NOTE_REVOKE", note::REVOKE),
        ("KQUEUE_CLOEXEC", KQUEUE_CLOEXEC),
    ];
    for (name, value) in notes {
        assert_eq!(c[name], i64::from(value), "{name}");
    }
}
