//! The `child` example's line streaming, compiled in as a module: what
//! `cargo run --example child` runs. Every wait has a deadline.

#[allow(dead_code)]
#[path = "../examples/child.rs"]
mod child;

use std::ffi::OsString;
use std::time::Duration;

use child::{exit_code, parse, run, Invocation, Source};
use knote::time::timeout;

const GUARD: Duration = Duration::from_secs(10);

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

fn sh(script: &str) -> (OsString, Vec<OsString>) {
    ("sh".into(), os(&["-c", script]))
}

#[test]
fn arguments_are_parsed() {
    assert_eq!(parse(os(&["--help"]).into_iter()), Invocation::Help);
    assert_eq!(parse(os(&[]).into_iter()), Invocation::Usage);
    assert_eq!(
        parse(os(&["ls", "-l", "/"]).into_iter()),
        Invocation::Run("ls".into(), os(&["-l", "/"]))
    );
}

#[test]
fn lines_of_both_streams_are_told_apart_and_the_exit_code_kept() {
    let rt = knote::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (program, args) = sh("echo one; echo two >&2; printf 'three\\nfour'; exit 3");
    let mut lines = Vec::new();
    let status = rt
        .block_on(timeout(
            GUARD,
            run(&program, &args, |source, line| {
                lines.push((source, line.to_string()))
            }),
        ))
        .unwrap()
        .unwrap();
    assert_eq!(exit_code(status), 3);
    let of = |want: Source| -> Vec<&str> {
        lines
            .iter()
            .filter(|(s, _)| *s == want)
            .map(|(_, l)| l.as_str())
            .collect()
    };
    assert_eq!(of(Source::Stdout), ["one", "three", "four"]);
    assert_eq!(of(Source::Stderr), ["two"]);
}

#[test]
fn lines_arrive_while_the_child_runs() {
    // The child writes its second line only after the first has been seen here (it waits for
    // a file that the callback creates): if lines were only read at the end, this would hang
    // until the deadline.
    let flag = std::env::temp_dir().join(format!("knote-child-example-{}", std::process::id()));
    let _ = std::fs::remove_file(&flag);
    let script = format!(
        "echo first; i=0; while [ ! -e '{0}' ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done; \
         [ -e '{0}' ] && echo second",
        flag.display()
    );
    let (program, args) = sh(&script);
    let rt = knote::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut seen = Vec::new();
    let status = rt
        .block_on(timeout(
            GUARD * 2,
            run(&program, &args, |_, line| {
                if line == "first" {
                    std::fs::write(&flag, b"").unwrap();
                }
                seen.push(line.to_string());
            }),
        ))
        .unwrap()
        .unwrap();
    let _ = std::fs::remove_file(&flag);
    assert!(status.success());
    assert_eq!(seen, ["first", "second"]);
}

#[test]
fn a_child_killed_by_a_signal_exits_as_a_shell_says() {
    let rt = knote::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (program, args) = sh("kill -KILL $$");
    let status = rt
        .block_on(timeout(GUARD, run(&program, &args, |_, _| {})))
        .unwrap()
        .unwrap();
    assert_eq!(exit_code(status), 128 + 9);
}
