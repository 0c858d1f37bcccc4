//! What the two executor benches (`rt_current_thread.rs`, `rt_multi_threaded.rs`) share:
//! a prepared workload, the table entry describing one, the criterion settings, and the
//! `KNOTE_BENCH_OP` / `KNOTE_BENCH_FIRST` conventions. Included by `#[path]` (each bench is its
//! own crate), so items one of them does not use are allowed to be dead there.
#![allow(dead_code)]

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};

/// The environment variable that selects one-workload mode (`GROUP/SIDE[/W]:COUNT`).
pub const OP_ENV: &str = "KNOTE_BENCH_OP";
/// The environment variable that puts tokio first in every group.
pub const FIRST_ENV: &str = "KNOTE_BENCH_FIRST";

/// A workload set up (runtime built, background tasks and threads started), ready to step.
/// Dropping it runs `stop` first (background tasks finish), then drops the runtime.
pub struct Prepared {
    pub step: Box<dyn FnMut()>,
    stop: Option<Box<dyn FnOnce()>>,
}

impl Prepared {
    pub fn new(step: impl FnMut() + 'static) -> Prepared {
        Prepared {
            step: Box::new(step),
            stop: None,
        }
    }

    pub fn with_stop(mut self, stop: impl FnOnce() + 'static) -> Prepared {
        self.stop = Some(Box::new(stop));
        self
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

/// One workload: its group name (without the flavour prefix), both sides (`M` makes a
/// `Prepared`), the operations one iteration performs, and whether an iteration is slow (tens
/// of milliseconds).
pub struct Workload<M> {
    pub name: &'static str,
    pub knote: M,
    pub tokio: M,
    pub ops: u64,
    pub slow: bool,
}

pub const fn workload<M>(
    name: &'static str,
    knote: M,
    tokio: M,
    ops: usize,
    slow: bool,
) -> Workload<M> {
    Workload {
        name,
        knote,
        tokio,
        ops: ops as u64,
        slow,
    }
}

impl<M: Copy> Workload<M> {
    /// Both sides in the order to measure them (`KNOTE_BENCH_FIRST=tokio` reverses it, so the
    /// ratio script can interleave A B, B A, …).
    pub fn sides(&self) -> [(&'static str, M); 2] {
        let mut sides = [("knote", self.knote), ("tokio", self.tokio)];
        if std::env::var(FIRST_ENV).is_ok_and(|v| v == "tokio") {
            sides.reverse();
        }
        sides
    }

    /// One side by name.
    pub fn side(&self, side: &str) -> Result<M, String> {
        match side {
            "knote" => Ok(self.knote),
            "tokio" => Ok(self.tokio),
            _ => Err(format!(
                "{OP_ENV}: side {side:?} is neither knote nor tokio"
            )),
        }
    }

    /// The criterion group for this workload, throughput and sampling set.
    pub fn group<'c>(&self, c: &'c mut Criterion, prefix: &str) -> BenchmarkGroup<'c, WallTime> {
        let mut group = c.benchmark_group(format!("{prefix}{}", self.name));
        group.throughput(Throughput::Elements(self.ops));
        if self.slow {
            // Iterations of tens of milliseconds: flat sampling keeps the run time bounded.
            group.sampling_mode(SamplingMode::Flat);
            group.sample_size(10);
        }
        group
    }
}

/// The workload named `group` (`prefix` + name), with the list of names in the error.
pub fn find<'w, M>(
    workloads: &'w [Workload<M>],
    prefix: &str,
    shape: &str,
    group: &str,
) -> Result<&'w Workload<M>, String> {
    workloads
        .iter()
        .find(|w| group.strip_prefix(prefix) == Some(w.name))
        .ok_or_else(|| {
            let names: Vec<String> = workloads
                .iter()
                .map(|w| format!("{prefix}{}/{shape}", w.name))
                .collect();
            format!(
                "{OP_ENV}: unknown group {group:?}; one of: {}",
                names.join(", ")
            )
        })
}

/// Splits `NAME:COUNT`.
pub fn split_count<'s>(spec: &'s str, shape: &str) -> Result<(&'s str, u64), String> {
    let (name, count) = spec
        .rsplit_once(':')
        .ok_or_else(|| format!("{OP_ENV} must be {shape}:COUNT, not {spec:?}"))?;
    let count = count
        .parse()
        .map_err(|_| format!("{OP_ENV}: bad COUNT {count:?}"))?;
    Ok((name, count))
}

/// Runs `count` iterations of a prepared workload (one-workload mode, for perf or callgrind).
pub fn run_steps(mut prepared: Prepared, count: u64) {
    for _ in 0..count {
        (prepared.step)();
    }
}

/// Short warm-up and measurement, so a whole run takes minutes on 2 cores; command line
/// options (`--quick`, `--measurement-time`, …) still override these.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(20)
        .configure_from_args()
}

/// What `criterion_main!` expands to, with the `KNOTE_BENCH_OP` switch in front.
pub fn main(op_mode: fn(&str) -> Result<(), String>, benches: fn(&mut Criterion)) {
    if let Ok(spec) = std::env::var(OP_ENV) {
        if let Err(message) = op_mode(&spec) {
            eprintln!("{message}");
            std::process::exit(2);
        }
        return;
    }
    let mut criterion = config();
    benches(&mut criterion);
    Criterion::default().configure_from_args().final_summary();
}
