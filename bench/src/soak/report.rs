//! What a soak run saw ([`SoakReport`]), the rules that decide whether it passed, and how it
//! is printed.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::time::Duration;

/// Resident memory may grow after warm-up by this fraction of the start figure (in percent)...
///
/// Memory that is only reused, not leaked, still moves: glibc's malloc keeps an arena per
/// thread and returns freed memory to the kernel only now and then, so which thread happened to
/// free the last burst of connections or timers decides how much stays resident; the timer
/// heaps, slabs and run queues keep their high-water mark, which a burst after warm-up may
/// raise. Those move with the size of the process, hence a fraction; a steady leak grows
/// without bound and crosses it in a long enough run (one more byte per timer armed, at
/// 100k/s, is 6 MB a minute).
pub(crate) const RSS_GROWTH_PERCENT: u64 = 10;

/// ...plus this many bytes: a small process's fraction is a few pages, less than one more
/// thread stack touched deeper or one more malloc arena chunk (glibc's are 64 MiB reserved,
/// touched a page at a time), so a floor in bytes keeps the rule from failing on those.
pub(crate) const RSS_GROWTH_SLACK: u64 = 2 << 20;

/// The most a process that resided `start` bytes after warm-up may reside later.
pub(crate) fn rss_limit(start: u64) -> u64 {
    start
        .saturating_add(start / 100 * RSS_GROWTH_PERCENT)
        .saturating_add(RSS_GROWTH_SLACK)
}

/// Declares the counters of a run twice from one list: [`Counters`] (atomics the workloads
/// add to as they go) and [`Totals`] (the plain figures read back from them).
macro_rules! counters {
    ($($(#[doc = $doc:literal])* $field:ident,)*) => {
        /// The running counts of a soak, shared by every workload (relaxed atomics: each is a
        /// tally read only for progress lines and at the end).
        #[derive(Debug, Default)]
        pub(crate) struct Counters {
            $($(#[doc = $doc])* pub(crate) $field: std::sync::atomic::AtomicU64,)*
        }

        /// The counts of a soak run at one moment.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Totals {
            $($(#[doc = $doc])* pub $field: u64,)*
        }

        impl Counters {
            /// The counts now.
            pub(crate) fn snapshot(&self) -> Totals {
                Totals {
                    $($field: self.$field.load(std::sync::atomic::Ordering::Relaxed),)*
                }
            }
        }
    };
}

counters! {
    /// Connections that echoed every message intact and closed cleanly.
    connections,
    /// Connections accepted by the echo server on the multi-thread runtime.
    accepted_multi_thread,
    /// Connections accepted by the echo server on the current-thread runtime.
    accepted_current_thread,
    /// Messages written by the clients.
    messages_sent,
    /// Messages that came back whole and intact.
    messages_echoed,
    /// Messages written whose echo never came back whole (the connection failed first).
    messages_lost,
    /// Messages that came back different from what was sent.
    messages_corrupted,
    /// Bytes that came back intact.
    bytes_echoed,
    /// Wake-ups sent (a `Notify` permit, a channel message, a oneshot send).
    wakes_sent,
    /// Wake-ups whose task saw them.
    wakes_received,
    /// Wake-ups that never reached their task, or arrived out of order.
    wakes_lost,
    /// Bursts of wake-ups completed.
    wake_bursts,
    /// Sleeps armed (polled once, so that their timer went into a heap).
    timers_armed,
    /// Sleeps awaited until they fired.
    timers_fired,
    /// Sleeps that completed before their deadline.
    timers_early,
    /// `timeout`s around a future that never completes, which elapsed as they should.
    timeouts_elapsed,
    /// `timeout`s around a future that completes in time, which let it finish.
    timeouts_completed,
    /// `timeout`s that did the other thing.
    timeouts_wrong,
    /// Child processes spawned.
    children_spawned,
    /// Children reaped with a successful exit and the expected output.
    children_checked,
    /// Children reaped with a failed exit or unexpected output.
    children_bad,
}

/// Errors of a run by what failed and its kind, each with the first message seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorTally {
    by_kind: BTreeMap<String, (u64, String)>,
}

impl ErrorTally {
    /// Counts `err`, which happened doing `what` (e.g. "churn connect").
    pub fn record(&mut self, what: &str, err: &io::Error) {
        let entry = self
            .by_kind
            .entry(format!("{what}: {:?}", err.kind()))
            .or_insert_with(|| (0, err.to_string()));
        entry.0 += 1;
    }

    /// Errors counted, all kinds together.
    pub fn total(&self) -> u64 {
        self.by_kind.values().map(|(n, _)| n).sum()
    }

    /// Each kind ("what: ErrorKind"), its count and the first message seen, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64, &str)> {
        self.by_kind
            .iter()
            .map(|(kind, (n, first))| (kind.as_str(), *n, first.as_str()))
    }
}

/// Resident memory of the process at three moments, in bytes (`None`: unknown here).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RssSamples {
    /// After warm-up.
    pub start: Option<u64>,
    /// Half-way through the run.
    pub middle: Option<u64>,
    /// At the deadline, before the load stopped.
    pub end: Option<u64>,
}

/// One rule of the report and whether it held: `Some(true)`, `Some(false)`, or `None` when
/// it could not be checked here (no `/proc`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// Whether it held.
    pub held: Option<bool>,
    /// The figures behind it.
    pub detail: String,
}

/// What a soak run saw; `Display` prints the report, [`passed`](SoakReport::passed) says
/// whether every check held.
#[derive(Clone, Debug, Default)]
pub struct SoakReport {
    /// How long the load was asked to run.
    pub planned: Duration,
    /// How long it ran, from start to everything stopped and dropped.
    pub elapsed: Duration,
    /// Worker threads of the multi-thread runtime.
    pub workers: usize,
    /// The counts at the end.
    pub totals: Totals,
    /// Open fds before anything started and after everything was dropped.
    pub fds: (Option<usize>, Option<usize>),
    /// The fds open at the end that were not at the start: number and what it is.
    pub new_fds: Vec<String>,
    /// Resident memory after warm-up, half-way and at the end.
    pub rss: RssSamples,
    /// Child processes (zombies included) still there after everything was dropped.
    pub children_left: Option<usize>,
    /// Errors by kind.
    pub errors: ErrorTally,
    /// Things that went wrong that are no single error (a server that stopped, a burst of
    /// wake-ups that never arrived, tasks that did not stop): each says what and when.
    pub incidents: Vec<String>,
}

impl SoakReport {
    /// Every rule of the run and whether it held.
    pub fn checks(&self) -> Vec<Check> {
        let t = &self.totals;
        let check = |name, held, detail: String| Check { name, held, detail };
        let mut checks = vec![
            check(
                "messages",
                Some(t.messages_lost == 0 && t.messages_corrupted == 0 && t.messages_echoed > 0),
                format!(
                    "{} echoed, {} lost, {} corrupted",
                    t.messages_echoed, t.messages_lost, t.messages_corrupted
                ),
            ),
            check(
                "wake-ups",
                Some(t.wakes_lost == 0 && t.wakes_received > 0),
                format!("{} received, {} lost", t.wakes_received, t.wakes_lost),
            ),
            check(
                "timers",
                Some(
                    t.timers_early == 0
                        && t.timeouts_wrong == 0
                        && t.timers_fired > 0
                        && t.timeouts_elapsed > 0,
                ),
                format!(
                    "{} fired early, {} timeouts wrong",
                    t.timers_early, t.timeouts_wrong
                ),
            ),
            check(
                "children",
                Some(t.children_bad == 0 && t.children_checked > 0),
                format!(
                    "{} checked, {} bad exit or output",
                    t.children_checked, t.children_bad
                ),
            ),
        ];
        checks.push(check(
            "fds",
            match self.fds {
                (Some(start), Some(end)) => Some(start == end),
                _ => None,
            },
            format!(
                "{} at the start, {} at the end{}",
                or_unknown(self.fds.0),
                or_unknown(self.fds.1),
                if self.new_fds.is_empty() {
                    String::new()
                } else {
                    format!("; new: {}", self.new_fds.join(", "))
                }
            ),
        ));
        checks.push(self.rss_check());
        checks.push(check(
            "zombies",
            self.children_left.map(|n| n == 0),
            format!("{} child processes left", or_unknown(self.children_left)),
        ));
        checks.push(check(
            "errors",
            Some(self.errors.total() == 0),
            format!("{}", self.errors.total()),
        ));
        checks.push(check(
            "incidents",
            Some(self.incidents.is_empty()),
            format!("{}", self.incidents.len()),
        ));
        checks
    }

    /// The resident-memory rule: half-way and at the end, at most [`rss_limit`] of the
    /// figure after warm-up.
    fn rss_check(&self) -> Check {
        let RssSamples { start, middle, end } = self.rss;
        let held = start.map(|start| {
            let limit = rss_limit(start);
            middle.map_or(true, |m| m <= limit) && end.map_or(true, |e| e <= limit)
        });
        let detail = match start {
            Some(start) => format!(
                "{} after warm-up, {} half-way, {} at the end (limit {} = start + {}% + {})",
                mib(Some(start)),
                mib(middle),
                mib(end),
                mib(Some(rss_limit(start))),
                RSS_GROWTH_PERCENT,
                mib(Some(RSS_GROWTH_SLACK)),
            ),
            None => "unknown".to_owned(),
        };
        Check {
            name: "memory",
            held,
            detail,
        }
    }

    /// Whether every check held (one that could not be made here does not fail the run).
    pub fn passed(&self) -> bool {
        self.checks().iter().all(|c| c.held != Some(false))
    }
}

impl fmt::Display for SoakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.totals;
        let secs = self.planned.as_secs_f64().max(1e-3);
        writeln!(
            f,
            "knote soak: {:.1} s of load, {:.1} s in all (multi-thread runtime with {} workers \
             + current-thread runtime)",
            self.planned.as_secs_f64(),
            self.elapsed.as_secs_f64(),
            self.workers
        )?;
        writeln!(
            f,
            "  connection churn  {} connections ({:.0}/min; servers accepted {} multi-thread, \
             {} current-thread), {} messages sent, {} echoed ({})",
            t.connections,
            t.connections as f64 * 60.0 / secs,
            t.accepted_multi_thread,
            t.accepted_current_thread,
            t.messages_sent,
            t.messages_echoed,
            mib(Some(t.bytes_echoed)),
        )?;
        writeln!(
            f,
            "  wake storms       {} wake-ups sent in {} bursts, {} received",
            t.wakes_sent, t.wake_bursts, t.wakes_received
        )?;
        writeln!(
            f,
            "  timer storms      {} sleeps armed ({:.0}/s), {} dropped unfired, {} fired; \
             timeouts: {} elapsed, {} completed",
            t.timers_armed,
            t.timers_armed as f64 / secs,
            t.timers_armed.saturating_sub(t.timers_fired),
            t.timers_fired,
            t.timeouts_elapsed,
            t.timeouts_completed
        )?;
        writeln!(
            f,
            "  child processes   {} spawned and reaped",
            t.children_spawned
        )?;
        for (kind, n, first) in self.errors.iter() {
            writeln!(f, "  error             {kind}: {n} (first: {first})")?;
        }
        for incident in &self.incidents {
            writeln!(f, "  incident          {incident}")?;
        }
        for c in self.checks() {
            let verdict = match c.held {
                Some(true) => "ok",
                Some(false) => "FAILED",
                None => "unknown",
            };
            writeln!(f, "  check {:<11} {verdict:<7} {}", c.name, c.detail)?;
        }
        write!(f, "result: {}", if self.passed() { "PASS" } else { "FAIL" })
    }
}

/// A count, or "unknown".
fn or_unknown(n: Option<usize>) -> String {
    n.map_or_else(|| "unknown".to_owned(), |n| n.to_string())
}

/// Bytes as MiB with one decimal, or "unknown".
pub(crate) fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(
        || "unknown".to_owned(),
        |b| format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report of a run in which everything went right.
    fn healthy() -> SoakReport {
        SoakReport {
            planned: Duration::from_secs(60),
            elapsed: Duration::from_secs(61),
            workers: 2,
            totals: Totals {
                connections: 10,
                messages_sent: 40,
                messages_echoed: 40,
                wakes_sent: 100,
                wakes_received: 100,
                timers_armed: 1000,
                timers_fired: 10,
                timeouts_elapsed: 5,
                timeouts_completed: 5,
                children_spawned: 3,
                children_checked: 3,
                ..Totals::default()
            },
            fds: (Some(12), Some(12)),
            rss: RssSamples {
                start: Some(10 << 20),
                middle: Some(11 << 20),
                end: Some(12 << 20),
            },
            children_left: Some(0),
            ..SoakReport::default()
        }
    }

    /// Asserts that the printed report contains `needle`.
    fn says(report: &SoakReport, needle: &str) {
        let text = report.to_string();
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }

    fn failed_checks(report: &SoakReport) -> Vec<&'static str> {
        report
            .checks()
            .into_iter()
            .filter(|c| c.held == Some(false))
            .map(|c| c.name)
            .collect()
    }

    #[test]
    fn a_healthy_run_passes() {
        let report = healthy();
        assert_eq!(failed_checks(&report), Vec::<&str>::new());
        assert!(report.passed());
    }

    #[test]
    fn rss_limit_is_ten_percent_plus_two_mib() {
        assert_eq!(rss_limit(0), 2 << 20);
        assert_eq!(rss_limit(100 << 20), (110 << 20) + (2 << 20));
        assert_eq!(rss_limit(u64::MAX), u64::MAX);
    }

    #[test]
    fn rss_growth_beyond_the_limit_fails_at_the_middle_or_the_end() {
        let start = 10 << 20;
        let limit = rss_limit(start);
        for (middle, end, ok) in [
            (limit, limit, true),
            (limit + 1, start, false),
            (start, limit + 1, false),
            (start / 2, start / 2, true),
        ] {
            let mut report = healthy();
            report.rss = RssSamples {
                start: Some(start),
                middle: Some(middle),
                end: Some(end),
            };
            assert_eq!(report.passed(), ok, "middle {middle}, end {end}");
        }
    }

    #[test]
    fn unknown_memory_and_fds_do_not_fail_but_say_so() {
        let mut report = healthy();
        report.rss = RssSamples::default();
        report.fds = (None, None);
        report.children_left = None;
        assert!(report.passed());
        says(&report, "check memory      unknown");
        says(&report, "check fds         unknown");
    }

    #[test]
    fn fds_must_come_back_to_the_start_count() {
        for (end, ok) in [(12, true), (13, false), (11, false)] {
            let mut report = healthy();
            report.fds = (Some(12), Some(end));
            assert_eq!(report.passed(), ok, "end {end}");
        }
        let mut report = healthy();
        report.fds = (Some(12), Some(13));
        report.new_fds = vec!["9 anon_inode:[eventpoll]".to_owned()];
        says(
            &report,
            "12 at the start, 13 at the end; new: 9 anon_inode:[eventpoll]",
        );
    }

    #[test]
    fn any_lost_or_corrupted_message_fails() {
        let mut report = healthy();
        report.totals.messages_lost = 1;
        assert_eq!(failed_checks(&report), ["messages"]);
        let mut report = healthy();
        report.totals.messages_corrupted = 1;
        assert_eq!(failed_checks(&report), ["messages"]);
    }

    #[test]
    fn a_workload_that_did_nothing_fails() {
        let mut report = healthy();
        report.totals.messages_echoed = 0;
        report.totals.wakes_received = 0;
        report.totals.timers_fired = 0;
        report.totals.children_checked = 0;
        assert_eq!(
            failed_checks(&report),
            ["messages", "wake-ups", "timers", "children"]
        );
    }

    #[test]
    fn errors_are_tallied_by_what_and_kind() {
        let mut tally = ErrorTally::default();
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        tally.record("churn connect", &refused);
        tally.record("churn connect", &refused);
        tally.record("churn read", &io::Error::other("odd"));
        tally.record(
            "churn connect",
            &io::Error::new(io::ErrorKind::TimedOut, "slow"),
        );
        let rows: Vec<_> = tally.iter().collect();
        assert_eq!(
            rows,
            [
                ("churn connect: ConnectionRefused", 2, "connection refused"),
                ("churn connect: TimedOut", 1, "slow"),
                ("churn read: Other", 1, "odd"),
            ]
        );
        assert_eq!(tally.total(), 4);

        let mut report = healthy();
        report.errors = tally;
        assert_eq!(failed_checks(&report), ["errors"]);
        says(
            &report,
            "churn connect: ConnectionRefused: 2 (first: connection refused)",
        );
    }

    #[test]
    fn display_prints_every_figure_and_the_verdict() {
        let mut report = healthy();
        for needle in [
            "10 connections",
            "40 echoed",
            "1000 sleeps armed",
            "990 dropped unfired",
            "check messages    ok",
            "check fds         ok      12 at the start, 12 at the end",
            "10.0 MiB after warm-up, 11.0 MiB half-way, 12.0 MiB at the end (limit 13.0 MiB",
            "result: PASS",
        ] {
            says(&report, needle);
        }
        report
            .incidents
            .push("the echo server on the multi-thread runtime stopped".to_owned());
        says(&report, "incident          the echo server");
        says(&report, "check incidents   FAILED");
        assert!(report.to_string().ends_with("result: FAIL"));
    }
}
