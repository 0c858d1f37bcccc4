//! Runs every workload of `knote-bench` briefly (`--smoke`: one round of a few hundred
//! milliseconds per side, 100 idle connections, 1,000 idle tasks) and checks that the JSON it
//! wrote has every workload with non-zero figures for every contestant. No timing is asserted.

use std::process::Command;

use serde_json::Value;

/// Each workload's contestants and the metric each must have measured (above zero).
const EXPECTED: &[(&str, &[&str], &str)] = &[
    ("echo-ct", &["knote", "tokio", "reactor"], "msg/s"),
    ("echo-mt", &["knote", "tokio"], "msg/s"),
    ("hyper-ct", &["knote", "tokio"], "req/s"),
    ("hyper-mt", &["knote", "tokio"], "req/s"),
    ("churn", &["knote", "tokio"], "conn/s"),
    ("scale", &["knote", "tokio"], "busy msg/s (idle)"),
    ("idle-tasks", &["knote", "tokio"], "bytes/idle task"),
    ("syscalls", &["knote", "tokio", "reactor"], "syscalls/msg"),
];

#[test]
fn every_workload_measures_something() {
    let dir = std::env::temp_dir().join(format!("knote-bench-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("smoke.json");
    let svg = dir.join("smoke.svg");
    let output = Command::new(env!("CARGO_BIN_EXE_knote-bench"))
        .arg("--smoke")
        .arg("--json")
        .arg(&json)
        .arg("--svg")
        .arg(&svg)
        .output()
        .expect("run knote-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "knote-bench failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("goals (issue 9)"), "{stdout}");
    assert!(stderr.contains("round 1/1"), "no progress lines: {stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    std::fs::remove_dir_all(&dir).unwrap();

    assert_eq!(report["mode"], "smoke");
    assert!(report["machine"]["cpus"].as_u64().unwrap() >= 1);
    let workloads = report["workloads"].as_array().unwrap();
    for (name, contestants, metric) in EXPECTED {
        let record = workloads
            .iter()
            .find(|w| w["name"] == *name)
            .unwrap_or_else(|| panic!("no workload {name} in the report"));
        let notes = record["notes"].to_string();
        // Figures that need what a system may lack: strace with ptrace; Linux's /proc.
        if *name == "syscalls" && notes.contains("n/a") {
            eprintln!("smoke: syscalls not measured here: {notes}");
            continue;
        }
        if *name == "idle-tasks" && !cfg!(target_os = "linux") {
            continue;
        }
        let rounds = record["rounds"].as_array().unwrap();
        assert_eq!(rounds.len(), 1, "{name}: one round in smoke mode");
        for contestant in *contestants {
            let value = rounds[0][contestant][metric]
                .as_f64()
                .unwrap_or_else(|| panic!("{name}: no {metric} for {contestant}: {record}"));
            assert!(value > 0.0, "{name}: {contestant}'s {metric} is {value}");
        }
    }
    // Where the servers' CPU went (Linux: the process CPU clock and /proc).
    if cfg!(target_os = "linux") {
        for name in ["echo-ct", "echo-mt", "hyper-ct", "hyper-mt"] {
            let record = workloads.iter().find(|w| w["name"] == name).unwrap();
            let cpu = record["rounds"][0]["knote"]["server CPU µs/op"]
                .as_f64()
                .unwrap_or_else(|| panic!("{name}: no server CPU figure: {record}"));
            assert!(cpu > 0.0, "{name}: server CPU {cpu} µs/op");
        }
        assert!(
            report["cpu"]
                .as_array()
                .is_some_and(|rows| !rows.is_empty()),
            "no CPU rows in the report"
        );
    }
    let rows = report["rows"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["label"] == "msg/s knote÷tokio"));
    assert!(!report["goals"].as_array().unwrap().is_empty());
}
