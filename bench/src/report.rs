//! The results: raw figures per round, the summary rows (ratios with their spread), the goals
//! of issue 9, and their three renderings (the table, `--json`, `--svg`).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::Serialize;

use crate::cpu::{self, Ceiling, CpuRow};
use crate::stats::{median, per_round_ratios, ratio_of_medians, spread};
use crate::sys::Machine;

/// Metric name → value, for one contestant in one round.
pub type Metrics = BTreeMap<String, f64>;

/// One workload's raw figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkloadRecord {
    /// Its name (`--only` takes it).
    pub name: String,
    /// What it does, in a line.
    pub description: String,
    /// The contestants in their order (the interleaving's first round).
    pub contestants: Vec<String>,
    /// Per round: contestant → its metrics.
    pub rounds: Vec<BTreeMap<String, Metrics>>,
    /// `wrk`'s requests per second per contestant, where it cross-checked the run.
    pub wrk: BTreeMap<String, f64>,
    /// Why figures are missing or what limited them (no strace, a lower fd limit, ...).
    pub notes: Vec<String>,
}

impl WorkloadRecord {
    /// The values of `metric` for `contestant`, one per round that has it.
    pub fn series(&self, contestant: &str, metric: &str) -> Vec<f64> {
        self.rounds
            .iter()
            .filter_map(|round| round.get(contestant)?.get(metric).copied())
            .collect()
    }
}

/// What a summary row compares: `numerator` ÷ `denominator`, round by round.
#[derive(Clone, Copy, Debug)]
pub struct RowSpec {
    /// The workload.
    pub workload: &'static str,
    /// The numerator's contestant and metric.
    pub numerator: (&'static str, &'static str),
    /// The denominator's contestant and metric.
    pub denominator: (&'static str, &'static str),
}

impl RowSpec {
    /// The row's label, e.g. `msg/s knote÷tokio` or `knote busy msg/s (idle)÷(0 idle)`.
    pub fn label(&self) -> String {
        let (nc, nm) = self.numerator;
        let (dc, dm) = self.denominator;
        if nm == dm {
            format!("{nm} {nc}÷{dc}")
        } else if nc == dc {
            format!("{nc} {nm} ÷ {dm}")
        } else {
            format!("{nc} {nm} ÷ {dc} {dm}")
        }
    }

    /// Whether a larger ratio is better for the numerator: rates (`.../s`) are, costs
    /// (latency, bytes, system calls) are not.
    pub fn higher_is_better(&self) -> bool {
        self.numerator.1.contains("/s")
    }
}

/// One line of the summary.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The workload.
    pub workload: String,
    /// What is compared.
    pub label: String,
    /// The median of the per-round ratios.
    pub median_ratio: Option<f64>,
    /// The smallest and largest per-round ratio.
    pub spread: Option<(f64, f64)>,
    /// The ratio of the two sides' medians.
    pub ratio_of_medians: Option<f64>,
    /// The rounds the ratio is over.
    pub rounds: usize,
    /// Whether a larger ratio is better for the numerator (a rate rather than a cost).
    pub higher_is_better: bool,
    /// The numerator's contestant, metric and median (this machine's absolute figure).
    pub numerator: (String, String, Option<f64>),
    /// The denominator's contestant, metric and median.
    pub denominator: (String, String, Option<f64>),
}

impl Row {
    /// Computes the row `spec` from `record`.
    pub fn compute(spec: &RowSpec, record: &WorkloadRecord) -> Row {
        let num = record.series(spec.numerator.0, spec.numerator.1);
        let den = record.series(spec.denominator.0, spec.denominator.1);
        // Round by round only where both sides have the round.
        let paired: Vec<(f64, f64)> = record
            .rounds
            .iter()
            .filter_map(|round| {
                let n = round.get(spec.numerator.0)?.get(spec.numerator.1)?;
                let d = round.get(spec.denominator.0)?.get(spec.denominator.1)?;
                Some((*n, *d))
            })
            .collect();
        let (pn, pd): (Vec<f64>, Vec<f64>) = paired.into_iter().unzip();
        let ratios = per_round_ratios(&pn, &pd);
        Row {
            workload: spec.workload.to_owned(),
            label: spec.label(),
            median_ratio: median(&ratios),
            spread: spread(&ratios),
            ratio_of_medians: ratio_of_medians(&num, &den),
            rounds: ratios.len(),
            higher_is_better: spec.higher_is_better(),
            numerator: (
                spec.numerator.0.to_owned(),
                spec.numerator.1.to_owned(),
                median(&num),
            ),
            denominator: (
                spec.denominator.0.to_owned(),
                spec.denominator.1.to_owned(),
                median(&den),
            ),
        }
    }
}

/// How a goal is checked.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// The value must be at least this.
    AtLeast(f64),
    /// The value must be at most this.
    AtMost(f64),
}

/// What a goal looks at.
#[derive(Clone, Copy, Debug)]
pub enum Subject {
    /// The median ratio of a summary row.
    Ratio(RowSpec),
    /// The median of one contestant's metric in a workload.
    Absolute(&'static str, &'static str, &'static str),
}

/// One goal of issue 9.
#[derive(Clone, Copy, Debug)]
pub struct GoalSpec {
    /// What the goal says.
    pub text: &'static str,
    /// What it looks at.
    pub subject: Subject,
    /// What it must be.
    pub target: Target,
}

/// A goal and whether this run met it.
#[derive(Clone, Debug, Serialize)]
pub struct Goal {
    /// What the goal says.
    pub goal: String,
    /// The figure this run measured for it.
    pub value: Option<f64>,
    /// Met (`None` when the run did not measure it).
    pub met: Option<bool>,
}

impl Goal {
    /// Checks `spec` against `records`.
    pub fn check(spec: &GoalSpec, records: &[WorkloadRecord]) -> Goal {
        let find = |name: &str| records.iter().find(|r| r.name == name);
        let value = match spec.subject {
            Subject::Ratio(row) => {
                find(row.workload).and_then(|r| Row::compute(&row, r).median_ratio)
            }
            Subject::Absolute(workload, contestant, metric) => {
                find(workload).and_then(|r| median(&r.series(contestant, metric)))
            }
        };
        let met = value.map(|v| match spec.target {
            Target::AtLeast(min) => v >= min,
            Target::AtMost(max) => v <= max,
        });
        Goal {
            goal: spec.text.to_owned(),
            value,
            met,
        }
    }
}

/// Versions of what was compared.
#[derive(Clone, Debug, Serialize)]
pub struct Versions {
    /// knote's.
    pub knote: String,
    /// tokio's (from the workspace's Cargo.lock).
    pub tokio: Option<String>,
    /// hyper's (from the workspace's Cargo.lock).
    pub hyper: Option<String>,
    /// `rustc --version`, where rustc is on PATH.
    pub rustc: Option<String>,
}

/// Everything one run produced: what `--json` writes.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// What it compared.
    pub versions: Versions,
    /// `quick`, `full` or `smoke`.
    pub mode: String,
    /// The run's parameters.
    pub settings: BTreeMap<String, String>,
    /// Which CPUs the servers and the load ran on.
    pub pinning: Vec<String>,
    /// The raw figures.
    pub workloads: Vec<WorkloadRecord>,
    /// The summary rows.
    pub rows: Vec<Row>,
    /// The goals of issue 9.
    pub goals: Vec<Goal>,
    /// Where the servers' CPU went, per workload and contestant (medians of the rounds).
    pub cpu: Vec<CpuRow>,
    /// What the hand-written loop says about the room for runtime work (`cpu.rs`).
    pub ceilings: Vec<Ceiling>,
}

/// The version of `package` recorded in a Cargo.lock text.
pub fn locked_version(lock: &str, package: &str) -> Option<String> {
    let wanted = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted {
            let version = lines.next()?.trim().strip_prefix("version = ")?;
            return Some(version.trim_matches('"').to_owned());
        }
    }
    None
}

/// A figure with its unit, or `n/a`.
fn figure(value: Option<f64>, metric: &str) -> String {
    match value {
        None => "n/a".to_owned(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0} {metric}"),
        Some(v) => format!("{v:.2} {metric}"),
    }
}

/// Appends `args` and a newline to `out`.
fn push_line(out: &mut String, args: std::fmt::Arguments<'_>) {
    out.push_str(&args.to_string());
    out.push('\n');
}

/// The summary table and the goals, as printed at the end of a run.
pub fn render_table(report: &Report) -> String {
    let mut out = String::new();
    let m = &report.machine;
    push_line(
        &mut out,
        format_args!(
            "\nknote-bench {} on {} ({}, {} CPUs{})",
            report.mode,
            m.hostname,
            m.kernel,
            m.cpus,
            m.cpu_model
                .as_deref()
                .map(|c| format!(", {c}"))
                .unwrap_or_default()
        ),
    );
    for line in &report.pinning {
        push_line(&mut out, format_args!("  {line}"));
    }
    push_line(
        &mut out,
        format_args!(
            "\n{:<10} {:<46} {:>7} {:>11}   {:<32} {:<32}",
            "workload",
            "comparison",
            "median",
            "spread",
            "numerator (this machine)",
            "denominator (this machine)"
        ),
    );
    for row in &report.rows {
        let ratio = row
            .median_ratio
            .map_or("n/a".to_owned(), |r| format!("{r:.3}"));
        let spread = row
            .spread
            .map_or("n/a".to_owned(), |(lo, hi)| format!("{lo:.2}–{hi:.2}"));
        push_line(
            &mut out,
            format_args!(
                "{:<10} {:<46} {:>7} {:>11}   {:<32} {:<32}",
                row.workload,
                row.label,
                ratio,
                spread,
                format!(
                    "{} {}",
                    row.numerator.0,
                    figure(row.numerator.2, &row.numerator.1)
                ),
                format!(
                    "{} {}",
                    row.denominator.0,
                    figure(row.denominator.2, &row.denominator.1)
                ),
            ),
        );
    }
    for record in &report.workloads {
        if !record.wrk.is_empty() {
            let wrk: Vec<String> = record
                .wrk
                .iter()
                .map(|(c, r)| format!("{c} {r:.0} req/s"))
                .collect();
            push_line(
                &mut out,
                format_args!("{:<10} wrk cross-check: {}", record.name, wrk.join(", ")),
            );
        }
        for note in &record.notes {
            push_line(&mut out, format_args!("{:<10} note: {note}", record.name));
        }
    }
    out += &cpu::render(&report.cpu, &report.ceilings);
    push_line(&mut out, format_args!("\ngoals (issue 9)"));
    for goal in &report.goals {
        let verdict = match goal.met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "not measured",
        };
        let value = goal.value.map_or("n/a".to_owned(), |v| format!("{v:.3}"));
        push_line(
            &mut out,
            format_args!("  {:<58} {:>8}  {verdict}", goal.goal, value),
        );
    }
    out
}

/// Writes `report` as pretty JSON to `path`.
pub fn write_json(report: &Report, path: &Path) -> io::Result<()> {
    let text = serde_json::to_string_pretty(report).map_err(io::Error::other)?;
    std::fs::write(path, text + "\n")
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Draws the ratios as an SVG chart at `path`: one horizontal bar per summary row at its
/// median ratio, a whisker over its spread, and a line at 1.0.
pub fn write_svg(report: &Report, path: &Path) -> io::Result<()> {
    use plotters::prelude::*;

    let rows: Vec<&Row> = report
        .rows
        .iter()
        .filter(|r| r.median_ratio.is_some())
        .collect();
    let labels: Vec<String> = rows
        .iter()
        .map(|r| format!("{}: {}", r.workload, r.label))
        .collect();
    let max = rows
        .iter()
        .filter_map(|r| r.spread.map(|(_, hi)| hi).or(r.median_ratio))
        .fold(1.0f64, f64::max)
        * 1.1;
    let n = rows.len().max(1);
    let height = 120 + 34 * n as u32;
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    let draw_err =
        |e: DrawingAreaErrorKind<_>| io::Error::other(format!("{}: {e}", path.display()));
    root.fill(&WHITE).map_err(draw_err)?;
    let m = &report.machine;
    let title = format!(
        "knote-bench {}: knote ÷ other (median, min–max of {} round(s)) on {}, {} CPUs{}",
        report.mode,
        report.settings.get("rounds").map_or("?", String::as_str),
        m.hostname,
        m.cpus,
        m.cpu_model
            .as_deref()
            .map(|c| format!(", {c}"))
            .unwrap_or_default()
    );
    // Row 0 at the top: segment `n - 1 - i` holds row `i`.
    let slot = |i: usize| n - 1 - i;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(400)
        // `0..n - 1` holds n values (a discrete range's end is included): one segment a row,
        // and no empty segment (with a tick of its own) above the first.
        .build_cartesian_2d(0f64..max, (0..n - 1).into_segmented())
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(WHITE)
        .x_desc(
            "ratio knote ÷ other (blue: better for knote, orange: worse, grey: about tokio \
             alone; line: parity)",
        )
        .y_desc("workload: comparison")
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) if *i < n => {
                labels.get(slot(*i)).cloned().unwrap_or_default()
            }
            _ => String::new(),
        })
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(draw_err)?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, row)| {
            let ratio = row.median_ratio.unwrap_or(0.0);
            let color = bar_color(row, ratio);
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(slot(i))),
                    (ratio, SegmentValue::Exact(slot(i) + 1)),
                ],
                color.filled(),
            );
            bar.set_margin(6, 6, 0, 0);
            bar
        }))
        .map_err(draw_err)?;
    chart
        .draw_series(rows.iter().enumerate().filter_map(|(i, row)| {
            let (lo, hi) = row.spread?;
            Some(ErrorBar::new_horizontal(
                SegmentValue::CenterOf(slot(i)),
                lo,
                row.median_ratio?,
                hi,
                BLACK.stroke_width(2),
                12,
            ))
        }))
        .map_err(draw_err)?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(1.0, SegmentValue::Exact(0)), (1.0, SegmentValue::Exact(n))],
            BLACK.stroke_width(2),
        )))
        .map_err(draw_err)?;
    root.present().map_err(draw_err)?;
    Ok(())
}

/// A bar's colour: blue where the ratio favours knote, orange where it does not, grey where the
/// row is not about knote (a contestant compared with itself, such as tokio with and without
/// idle connections).
fn bar_color(row: &Row, ratio: f64) -> plotters::style::RGBColor {
    if row.numerator.0 != "knote" {
        GREY
    } else if (ratio >= 1.0) == row.higher_is_better {
        BLUE
    } else {
        ORANGE
    }
}

/// A bar that favours knote.
const BLUE: plotters::style::RGBColor = plotters::style::RGBColor(70, 130, 180);
/// A bar that does not.
const ORANGE: plotters::style::RGBColor = plotters::style::RGBColor(205, 120, 80);
/// A bar about a contestant compared with itself.
const GREY: plotters::style::RGBColor = plotters::style::RGBColor(150, 150, 150);

#[cfg(test)]
mod tests {
    use super::*;

    const ECHO: RowSpec = RowSpec {
        workload: "echo-ct",
        numerator: ("knote", "msg/s"),
        denominator: ("tokio", "msg/s"),
    };
    const P99: RowSpec = RowSpec {
        workload: "echo-ct",
        numerator: ("knote", "p99 µs"),
        denominator: ("tokio", "p99 µs"),
    };

    fn metrics(pairs: &[(&str, f64)]) -> Metrics {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    /// Three rounds of echo-ct; the second lacks tokio's figures.
    fn record() -> WorkloadRecord {
        let round = |k: f64, t: Option<f64>| {
            let mut r = BTreeMap::new();
            r.insert(
                "knote".to_owned(),
                metrics(&[("msg/s", k), ("p99 µs", 100.0)]),
            );
            if let Some(t) = t {
                r.insert(
                    "tokio".to_owned(),
                    metrics(&[("msg/s", t), ("p99 µs", 200.0)]),
                );
            }
            r
        };
        WorkloadRecord {
            name: "echo-ct".to_owned(),
            description: "echo".to_owned(),
            contestants: vec!["knote".to_owned(), "tokio".to_owned()],
            rounds: vec![
                round(110.0, Some(100.0)),
                round(500.0, None),
                round(90.0, Some(100.0)),
            ],
            wrk: BTreeMap::new(),
            notes: vec![],
        }
    }

    fn sample_report() -> Report {
        let records = vec![record()];
        let specs = [ECHO, P99];
        Report {
            machine: Machine {
                hostname: "testhost".to_owned(),
                kernel: "Linux 6 x86_64".to_owned(),
                cpus: 2,
                cpu_model: Some("Test CPU".to_owned()),
            },
            versions: Versions {
                knote: "0.1.0".to_owned(),
                tokio: Some("1.0.0".to_owned()),
                hyper: None,
                rustc: None,
            },
            mode: "quick".to_owned(),
            settings: [("rounds".to_owned(), "3".to_owned())]
                .into_iter()
                .collect(),
            pinning: vec!["server on CPU 0".to_owned()],
            rows: specs.iter().map(|s| Row::compute(s, &records[0])).collect(),
            goals: vec![Goal::check(
                &GoalSpec {
                    text: "echo ≥ 1.05",
                    subject: Subject::Ratio(ECHO),
                    target: Target::AtLeast(1.05),
                },
                &records,
            )],
            cpu: vec![],
            ceilings: vec![],
            workloads: records,
        }
    }

    #[test]
    fn rows_pair_rounds() {
        let row = Row::compute(&ECHO, &record());
        // Rounds 1 and 3 pair up: 1.1 and 0.9.
        assert_eq!(row.rounds, 2);
        assert!((row.median_ratio.unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(row.spread, Some((0.9, 1.1)));
        // Medians of all rounds: knote 110, tokio 100.
        assert_eq!(row.ratio_of_medians, Some(1.1));
        assert_eq!(row.numerator.2, Some(110.0));
        assert!(row.higher_is_better);
        assert!(!Row::compute(&P99, &record()).higher_is_better);
        assert_eq!(ECHO.label(), "msg/s knote÷tokio");
    }

    #[test]
    fn goals_check_their_target() {
        let report = sample_report();
        assert_eq!(report.goals[0].met, Some(false));
        let latency = Goal::check(
            &GoalSpec {
                text: "p99",
                subject: Subject::Ratio(P99),
                target: Target::AtMost(1.0),
            },
            &report.workloads,
        );
        assert_eq!((latency.value, latency.met), (Some(0.5), Some(true)));
        let missing = Goal::check(
            &GoalSpec {
                text: "syscalls",
                subject: Subject::Absolute("syscalls", "knote", "syscalls/msg"),
                target: Target::AtMost(2.0),
            },
            &report.workloads,
        );
        assert_eq!((missing.value, missing.met), (None, None));
    }

    /// Writes with `write` to a temporary file with extension `ext` and returns its text.
    fn written(ext: &str, write: impl FnOnce(&Path) -> io::Result<()>) -> String {
        let path =
            std::env::temp_dir().join(format!("knote-bench-test-{}.{ext}", std::process::id()));
        write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        text
    }

    #[test]
    fn json_round_trips() {
        let report = sample_report();
        let text = written("json", |path| write_json(&report, path));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["machine"]["hostname"], "testhost");
        assert_eq!(value["versions"]["tokio"], "1.0.0");
        assert_eq!(value["mode"], "quick");
        assert_eq!(value["workloads"][0]["rounds"][0]["knote"]["msg/s"], 110.0);
        assert_eq!(value["rows"][0]["spread"][1], 1.1);
        assert_eq!(value["goals"][0]["met"], false);
    }

    #[test]
    fn svg_has_every_row() {
        let report = sample_report();
        let text = written("svg", |path| write_svg(&report, path));
        assert!(text.starts_with("<svg"), "{}", &text[..40]);
        for row in &report.rows {
            assert!(
                text.contains(&format!("{}: {}", row.workload, row.label)),
                "no {}",
                row.label
            );
        }
        assert!(text.contains("testhost"));
    }

    #[test]
    fn bars_are_coloured_by_whom_the_row_is_about() {
        let row = |contestant: &str, higher_is_better: bool| {
            let mut row = Row::compute(&ECHO, &record());
            row.numerator.0 = contestant.to_owned();
            row.higher_is_better = higher_is_better;
            row
        };
        // (numerator, higher is better, ratio) → colour.
        let cases = [
            ("knote", true, 1.2, BLUE, "a faster knote"),
            ("knote", true, 0.8, ORANGE, "a slower knote"),
            ("knote", false, 0.8, BLUE, "a cheaper knote"),
            ("knote", false, 1.2, ORANGE, "a costlier knote"),
            ("tokio", true, 0.8, GREY, "tokio against itself, slower"),
            ("tokio", true, 1.2, GREY, "tokio against itself, faster"),
        ];
        for (who, higher, ratio, colour, what) in cases {
            assert_eq!(bar_color(&row(who, higher), ratio), colour, "{what}");
        }
    }

    #[test]
    fn one_y_tick_per_row() {
        let report = sample_report();
        let text = written("svg", |path| write_svg(&report, path));
        // plotters draws each y tick as a short horizontal polyline left of the axis: one per
        // row, none for an empty segment above the first row.
        let ticks = text
            .lines()
            .filter_map(|l| l.split("points=\"").nth(1)?.split('"').next())
            .filter(|points| {
                let p: Vec<(f64, f64)> = points
                    .split_whitespace()
                    .filter_map(|xy| {
                        let (x, y) = xy.split_once(',')?;
                        Some((x.parse().ok()?, y.parse().ok()?))
                    })
                    .collect();
                p.len() == 2 && p[0].1 == p[1].1 && (p[1].0 - p[0].0).abs() <= 10.0
            })
            .count();
        assert_eq!(ticks, report.rows.len());
    }

    #[test]
    fn table_and_lock_versions() {
        let table = render_table(&sample_report());
        assert!(table.contains("msg/s knote÷tokio"));
        assert!(table.contains("NOT met"));
        let lock = "[[package]]\nname = \"tokio\"\nversion = \"1.54.1\"\n\n[[package]]\nname = \"tokio-util\"\nversion = \"0.7.0\"\n";
        assert_eq!(locked_version(lock, "tokio").as_deref(), Some("1.54.1"));
        assert_eq!(locked_version(lock, "tokio-util").as_deref(), Some("0.7.0"));
        assert_eq!(locked_version(lock, "hyper"), None);
    }
}
