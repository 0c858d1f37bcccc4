//! `knote-bench soak` end to end: a short run passes, and bad arguments are refused.

use std::process::Command;

/// The binary, built by cargo for this test.
fn knote_bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_knote-bench"))
}

#[test]
fn a_three_second_soak_passes() {
    let out = knote_bench()
        .args(["soak", "--seconds", "3", "--progress", "1"])
        .output()
        .expect("knote-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "soak failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.trim_end().ends_with("result: PASS"), "{stdout}");
    for workload in [
        "connection churn",
        "wake storms",
        "timer storms",
        "child processes",
    ] {
        assert!(stdout.contains(workload), "{workload} missing:\n{stdout}");
    }
    // A progress line a second, on stderr.
    assert!(stderr.contains("soak "), "no progress line:\n{stderr}");
}

#[test]
fn bad_arguments_are_refused_with_exit_code_2() {
    for args in [
        &["soak", "--minutes"][..],
        &["soak", "--minutes", "-1"],
        &["soak", "--seconds", "NaN"],
        &["soak", "--workers", "1.5"],
        &["soak", "--frobnicate"],
    ] {
        let out = knote_bench().args(args).output().expect("knote-bench runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: no explanation");
    }
}
