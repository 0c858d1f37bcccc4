//! Where a server's CPU goes: its CPU time (the process's CPU clock, to the nanosecond), its
//! user and system split and its voluntary context switches (`/proc`, the split in 10 ms clock
//! ticks) over a load run, per operation (Linux; elsewhere the figures are absent).
//!
//! Why the tool measures this: on loopback most of an echo or HTTP server's time is the
//! kernel's TCP work, the same for every contestant; a runtime can only save on what is its
//! own. The hand-written loop (`reactor_echo`) makes the same system calls with next to no user
//! work, so tokio's CPU per message above the loop's is tokio's own cost, and
//! `tokio's CPU ÷ the loop's CPU` is the most *any* runtime could gain over tokio on this
//! machine, as a throughput ratio, if the server's CPU is what limits it: the [`Ceiling`]. A
//! goal above the ceiling is out of reach of runtime work.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::report::{Metrics, WorkloadRecord};
use crate::stats::median;

/// The server's CPU time per operation, in microseconds (its CPU clock: user and system).
pub const CPU: &str = "server CPU µs/op";
/// The server's user time per operation, in microseconds.
pub const USER: &str = "server user µs/op";
/// The server's system time per operation, in microseconds.
pub const SYS: &str = "server sys µs/op";
/// The server's voluntary context switches (sleeps) per operation, all threads.
pub const CSW: &str = "server csw/op";

/// A process's CPU time and voluntary context switches so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessCpu {
    /// CPU time, in seconds (all threads, the process's CPU clock).
    pub cpu_s: f64,
    /// User time, in seconds (all threads; whole clock ticks).
    pub user_s: f64,
    /// System time, in seconds (all threads; whole clock ticks).
    pub sys_s: f64,
    /// Voluntary context switches of its threads that are still running.
    pub vol_csw: u64,
}

impl ProcessCpu {
    /// Process `pid`'s figures now, or why they cannot be read.
    #[cfg(target_os = "linux")]
    pub fn of(pid: u32) -> Result<ProcessCpu, String> {
        let read =
            |path: String| std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"));
        let stat_path = format!("/proc/{pid}/stat");
        let stat = read(stat_path.clone())?;
        let (utime, stime) =
            parse_stat_times(&stat).ok_or_else(|| format!("{stat_path}: no CPU times in it"))?;
        // SAFETY: sysconf has no preconditions; it reads a constant of the system.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if ticks <= 0 {
            return Err(format!("sysconf(_SC_CLK_TCK) gave {ticks}"));
        }
        let mut vol_csw = 0;
        let tasks = format!("/proc/{pid}/task");
        for task in std::fs::read_dir(&tasks).map_err(|e| format!("{tasks}: {e}"))? {
            // A thread that exits between the listing and the read has no status to add.
            let Ok(path) = task.map(|t| t.path().join("status")) else {
                continue;
            };
            let Ok(status) = std::fs::read_to_string(&path) else {
                continue;
            };
            vol_csw += parse_voluntary_switches(&status)
                .ok_or_else(|| format!("{}: no voluntary_ctxt_switches in it", path.display()))?;
        }
        let mut clock: libc::clockid_t = 0;
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let pid = libc::pid_t::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
        // SAFETY: both calls write only through the pointers given, which point at locals.
        // `clock_getcpuclockid` returns its error number; `clock_gettime` sets errno.
        let got = unsafe { libc::clock_getcpuclockid(pid, &mut clock) };
        if got != 0 {
            let e = std::io::Error::from_raw_os_error(got);
            return Err(format!("clock_getcpuclockid({pid}): {e}"));
        }
        // SAFETY: as above.
        if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(format!("clock_gettime(CPU clock of {pid}): {e}"));
        }
        Ok(ProcessCpu {
            cpu_s: now.tv_sec as f64 + now.tv_nsec as f64 / 1e9,
            user_s: utime as f64 / ticks as f64,
            sys_s: stime as f64 / ticks as f64,
            vol_csw,
        })
    }

    /// Process `pid`'s figures now, or why they cannot be read: here, always.
    #[cfg(not(target_os = "linux"))]
    pub fn of(_pid: u32) -> Result<ProcessCpu, String> {
        Err("read from Linux's /proc and per-process CPU clocks: not on this system".to_owned())
    }

    /// Adds what the process spent from `before` to `self` over `ops` operations to `metrics`
    /// (nothing for no operations).
    pub fn add_per_op(&self, before: &ProcessCpu, ops: u64, metrics: &mut Metrics) {
        if ops == 0 {
            return;
        }
        let ops = ops as f64;
        let switches = self.vol_csw.saturating_sub(before.vol_csw) as f64;
        for (name, value) in [
            (CPU, (self.cpu_s - before.cpu_s).max(0.0) * 1e6 / ops),
            (USER, (self.user_s - before.user_s).max(0.0) * 1e6 / ops),
            (SYS, (self.sys_s - before.sys_s).max(0.0) * 1e6 / ops),
            (CSW, switches / ops),
        ] {
            metrics.insert(name.to_owned(), value);
        }
    }
}

/// utime and stime (in clock ticks) from the text of `/proc/PID/stat`: fields 14 and 15,
/// counted after the `)` that closes the command name (which may hold spaces and parentheses).
// Pure text parsing, tested everywhere; only Linux has the files.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub fn parse_stat_times(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3 (the state): utime is field 14, stime field 15.
    let mut fields = rest.split_whitespace().skip(11);
    let utime = fields.next()?.parse().ok()?;
    let stime = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// `voluntary_ctxt_switches` from the text of `/proc/PID/task/TID/status`.
// Pure text parsing, tested everywhere; only Linux has the files.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub fn parse_voluntary_switches(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))?
        .trim()
        .parse()
        .ok()
}

/// One contestant's median CPU figures in one workload.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CpuRow {
    /// The workload.
    pub workload: String,
    /// The contestant.
    pub contestant: String,
    /// Median CPU µs per operation.
    pub cpu_us: f64,
    /// Median user µs per operation.
    pub user_us: f64,
    /// Median system µs per operation.
    pub sys_us: f64,
    /// Median voluntary context switches per operation.
    pub csw: Option<f64>,
}

impl CpuRow {
    /// User time's share of the server's CPU (by clock ticks).
    pub fn user_share(&self) -> f64 {
        self.user_us / (self.user_us + self.sys_us).max(f64::MIN_POSITIVE)
    }
}

/// The rows of every workload whose turns measured the server's CPU, in the records' order.
pub fn rows(records: &[WorkloadRecord]) -> Vec<CpuRow> {
    let mut rows = Vec::new();
    for record in records {
        for contestant in &record.contestants {
            let med = |metric| median(&record.series(contestant, metric));
            if let (Some(cpu_us), Some(user_us), Some(sys_us)) = (med(CPU), med(USER), med(SYS)) {
                rows.push(CpuRow {
                    workload: record.name.clone(),
                    contestant: contestant.clone(),
                    cpu_us,
                    user_us,
                    sys_us,
                    csw: med(CSW),
                });
            }
        }
    }
    rows
}

/// What the hand-written loop says about a workload's room for runtime work (see the module
/// docs).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ceiling {
    /// The workload (one with the `reactor` contestant).
    pub workload: String,
    /// tokio's CPU µs per operation above the loop's: tokio's own cost.
    pub tokio_above_loop_us: f64,
    /// knote's CPU µs per operation above the loop's.
    pub knote_above_loop_us: f64,
    /// tokio's own cost as a share of tokio's server CPU.
    pub runtime_share: f64,
    /// The most a runtime with no cost above the loop could gain over tokio, as a throughput
    /// ratio, where the server's CPU limits the throughput.
    pub ceiling: f64,
}

/// The ceiling of each workload that has knote, tokio and the loop among `rows`.
pub fn ceilings(rows: &[CpuRow]) -> Vec<Ceiling> {
    let mut by_workload: BTreeMap<&str, BTreeMap<&str, &CpuRow>> = BTreeMap::new();
    for row in rows {
        by_workload
            .entry(&row.workload)
            .or_default()
            .insert(&row.contestant, row);
    }
    by_workload
        .into_iter()
        .filter_map(|(workload, rows)| {
            let (knote, tokio, reactor) =
                (rows.get("knote")?, rows.get("tokio")?, rows.get("reactor")?);
            let own = tokio.cpu_us - reactor.cpu_us;
            (reactor.cpu_us > 0.0).then(|| Ceiling {
                workload: workload.to_owned(),
                tokio_above_loop_us: own,
                knote_above_loop_us: knote.cpu_us - reactor.cpu_us,
                runtime_share: own / tokio.cpu_us.max(f64::MIN_POSITIVE),
                ceiling: tokio.cpu_us / reactor.cpu_us,
            })
        })
        .collect()
}

/// The table's section on the server's CPU, or nothing when no turn measured it.
pub fn render(rows: &[CpuRow], ceilings: &[Ceiling]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "\nserver CPU per operation (median of rounds; CPU from the process's CPU clock, the \
         user/sys split from /proc's 10 ms clock ticks, rough for short turns)\n\
         {:<10} {:<9} {:>9} {:>9} {:>9} {:>11} {:>11}\n",
        "workload", "server", "CPU µs", "user µs", "sys µs", "user share", "sleeps/op"
    );
    for row in rows {
        let csw = row.csw.map_or("n/a".to_owned(), |c| format!("{c:.3}"));
        out += &format!(
            "{:<10} {:<9} {:>9.2} {:>9.2} {:>9.2} {:>10.1}% {:>11}\n",
            row.workload,
            row.contestant,
            row.cpu_us,
            row.user_us,
            row.sys_us,
            100.0 * row.user_share(),
            csw
        );
    }
    for c in ceilings {
        out += &ceiling_line(c);
    }
    out
}

/// What a ceiling says, as a line of the table. A loop that cost as much CPU as tokio or more
/// (it makes the same system calls with next to nothing of its own) means the machine's speed
/// moved between the turns more than the runtimes differ: the line says so instead of a bound.
fn ceiling_line(c: &Ceiling) -> String {
    if c.tokio_above_loop_us <= 0.0 {
        return format!(
            "{:<10} the hand-written loop cost no less CPU than tokio ({:+.2} µs/op above \
             tokio's, {:+.2} above knote's): this run's CPU figures are too noisy to bound what \
             a runtime could gain over tokio\n",
            c.workload, -c.tokio_above_loop_us, -c.knote_above_loop_us
        );
    }
    format!(
        "{:<10} tokio's own cost (its CPU above the hand-written loop's) {:.2} µs/op = {:.1}% \
         of its CPU: no runtime can beat tokio here by more than {:.3}× (knote's own cost \
         {:.2} µs/op)\n",
        c.workload,
        c.tokio_above_loop_us,
        100.0 * c.runtime_share,
        c.ceiling,
        c.knote_above_loop_us
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ceiling_of(knote: f64, tokio: f64, reactor: f64) -> Ceiling {
        let row = |contestant: &str, cpu_us| CpuRow {
            workload: "echo-ct".to_owned(),
            contestant: contestant.to_owned(),
            cpu_us,
            user_us: 0.0,
            sys_us: cpu_us,
            csw: None,
        };
        let rows = [
            row("knote", knote),
            row("tokio", tokio),
            row("reactor", reactor),
        ];
        ceilings(&rows).pop().expect("a ceiling for echo-ct")
    }

    #[test]
    fn a_ceiling_bounds_the_gain_by_tokios_cost_above_the_loop() {
        let c = ceiling_of(5.1, 5.25, 5.0);
        assert!((c.ceiling - 1.05).abs() < 1e-9, "{c:?}");
        assert!((c.tokio_above_loop_us - 0.25).abs() < 1e-9);
        let line = ceiling_line(&c);
        assert!(line.contains("more than 1.050×"), "{line}");
        assert!(line.contains("knote's own cost 0.10 µs/op"), "{line}");
    }

    #[test]
    fn a_loop_no_cheaper_than_tokio_gives_no_bound() {
        // The first full run of 3a705b8: the loop's turns came out slower than tokio's.
        let line = ceiling_line(&ceiling_of(5.07, 5.56, 5.85));
        assert!(line.contains("too noisy to bound"), "{line}");
        assert!(
            line.contains("+0.29 µs/op above tokio's, +0.78 above knote's"),
            "{line}"
        );
        assert!(!line.contains('×'), "{line}");
    }

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (we ird) (name) S 1 4242 4242 0 -1 4194560 120 0 0 0 731 219 0 0 20 0 \
                    3 0 100 1000 200 18446744073709551615";
        assert_eq!(parse_stat_times(stat), Some((731, 219)));
        assert_eq!(parse_stat_times("4242 (cut short) S 1 2"), None);
        assert_eq!(parse_stat_times("no parenthesis at all"), None);
    }

    #[test]
    fn voluntary_switches_from_a_status_text() {
        let status = "Name:\tknote-0\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t15801\n\
                      nonvoluntary_ctxt_switches:\t12\n";
        assert_eq!(parse_voluntary_switches(status), Some(15801));
        assert_eq!(parse_voluntary_switches("Name:\tx\n"), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_process_that_is_not_there_says_why() {
        let why = ProcessCpu::of(u32::MAX).unwrap_err();
        assert!(why.starts_with("/proc/4294967295/stat: "), "{why}");
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn this_process_is_readable_and_per_op_figures_are_differences() {
        let now = ProcessCpu::of(std::process::id()).expect("/proc/self is readable");
        assert!(now.cpu_s > 0.0 && now.user_s >= 0.0 && now.sys_s >= 0.0);
        let before = ProcessCpu {
            cpu_s: 3.0,
            user_s: 1.0,
            sys_s: 2.0,
            vol_csw: 10,
        };
        let after = ProcessCpu {
            cpu_s: 7.5,
            user_s: 1.5,
            sys_s: 6.0,
            vol_csw: 110,
        };
        let mut metrics = Metrics::new();
        after.add_per_op(&before, 500_000, &mut metrics);
        assert_eq!(metrics[CPU], 9.0);
        assert_eq!(metrics[USER], 1.0);
        assert_eq!(metrics[SYS], 8.0);
        assert_eq!(metrics[CSW], 0.0002);
        let mut none = Metrics::new();
        after.add_per_op(&before, 0, &mut none);
        assert!(none.is_empty(), "no operations, no per-op figures");
    }

    fn row(contestant: &str, user_us: f64, sys_us: f64) -> CpuRow {
        CpuRow {
            workload: "echo-ct".to_owned(),
            contestant: contestant.to_owned(),
            cpu_us: user_us + sys_us,
            user_us,
            sys_us,
            csw: Some(0.02),
        }
    }

    #[test]
    fn the_ceiling_is_tokios_cpu_over_the_loops() {
        let rows = [
            row("knote", 0.75, 7.5),
            row("tokio", 0.6, 7.4),
            row("reactor", 0.2, 7.4),
        ];
        let c = &ceilings(&rows)[0];
        assert!((c.tokio_above_loop_us - 0.4).abs() < 1e-12);
        assert!((c.knote_above_loop_us - 0.65).abs() < 1e-12);
        assert!((c.runtime_share - 0.05).abs() < 1e-12);
        assert!((c.ceiling - 8.0 / 7.6).abs() < 1e-12);
        // Without the loop there is nothing to measure a runtime's own cost against.
        assert!(ceilings(&rows[..2]).is_empty());
        let text = render(&rows, std::slice::from_ref(c));
        assert!(text.contains("server CPU per operation"), "{text}");
        assert!(text.contains("1.053×"), "{text}");
        assert!(render(&[], &[]).is_empty());
    }

    #[test]
    fn rows_take_the_median_of_the_rounds_that_measured() {
        let turn = |user: f64, sys: f64| -> Metrics {
            [
                (CPU.to_owned(), user + sys),
                (USER.to_owned(), user),
                (SYS.to_owned(), sys),
            ]
            .into_iter()
            .collect()
        };
        let record = WorkloadRecord {
            name: "echo-ct".to_owned(),
            contestants: vec!["knote".to_owned(), "tokio".to_owned()],
            rounds: vec![
                [("knote".to_owned(), turn(1.0, 7.0))].into_iter().collect(),
                [("knote".to_owned(), turn(3.0, 9.0))].into_iter().collect(),
            ],
            ..WorkloadRecord::default()
        };
        let rows = rows(&[record]);
        assert_eq!(rows.len(), 1, "tokio measured nothing");
        assert_eq!((rows[0].user_us, rows[0].sys_us), (2.0, 8.0));
        assert_eq!(rows[0].cpu_us, 10.0);
        assert_eq!(rows[0].csw, None);
    }
}
