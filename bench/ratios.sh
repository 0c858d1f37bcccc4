#!/usr/bin/env bash
# Runs the reactor_vs_mio benchmark and prints knote ÷ mio ratios of criterion's median
# estimates (target/criterion/**/new/estimates.json) as a table.
#
# usage: bench/ratios.sh [CRITERION ARGS...]      e.g. bench/ratios.sh --quick
#        RUNS=3 bench/ratios.sh                    3 runs, each measuring knote and mio in turn;
#                                                  the table shows medians over the runs
#
# Ratios below 1 mean knote is faster. Only estimates written by this invocation are read, so a
# filter argument (e.g. `register`) leaves the other rows as n/a instead of showing stale data.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

RUNS="${RUNS:-1}"
if ! [[ $RUNS =~ ^[1-9][0-9]*$ ]]; then
    echo "RUNS must be a positive integer, not '$RUNS'" >&2
    exit 2
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "ratios.sh needs python3 to read criterion's JSON" >&2
    exit 1
fi

target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
criterion_dir="$target_dir/criterion"
snapshots="$(mktemp -d)"
trap 'rm -rf "$snapshots"' EXIT

for run in $(seq 1 "$RUNS"); do
    echo "==> run $run of $RUNS: cargo bench -p knote-bench --bench reactor_vs_mio -- $*" >&2
    started="$(date +%s)"
    cargo bench -p knote-bench --bench reactor_vs_mio -- "$@" >&2
    # Keep this run's medians (ns per iteration) before the next run overwrites them.
    python3 - "$criterion_dir" "$started" >"$snapshots/run$run.json" <<'EOF'
import json, os, sys

root, started = sys.argv[1], float(sys.argv[2])
medians = {}
for dirpath, _dirs, files in os.walk(root):
    if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
        continue
    path = os.path.join(dirpath, "estimates.json")
    if os.path.getmtime(path) < started - 1:
        continue  # left over from an earlier invocation
    name = os.path.relpath(os.path.dirname(dirpath), root).replace(os.sep, "/")
    with open(path) as f:
        medians[name] = json.load(f)["median"]["point_estimate"]
json.dump(medians, sys.stdout)
EOF
done

python3 - "$snapshots" <<'EOF'
import glob, json, statistics, sys

runs = [json.load(open(p)) for p in sorted(glob.glob(sys.argv[1] + "/run*.json"))]
PERIOD_NS = 1_000_000  # the 1 ms of the timer comparisons

# (workload, knote function, mio function, what the pair compares)
rows = [("register", "register/knote", "register/mio", "like for like")]
for n in (1, 64, 512):
    rows += [
        (f"wait_ready N={n}", f"wait_ready/knote_rearm/{n}", f"wait_ready/mio_rearm/{n}", "like for like"),
        (f"wait_ready N={n}", f"wait_ready/knote_level/{n}", f"wait_ready/mio_rearm/{n}", "idioms"),
        (f"wait_ready N={n}", f"wait_ready/knote_level_exact/{n}", f"wait_ready/mio_rearm/{n}", "idioms, exact data"),
    ]
rows += [
    ("timer 1 ms", "timer/knote_timer_1ms", "timer/mio_timeout_1ms", "timer vs timeout"),
    ("timer 1 ms", "timer/knote_timeout_1ms", "timer/mio_timeout_1ms", "like for like"),
]

def fmt_time(ns):
    if ns is None:
        return "n/a"
    sign, ns = ("-" if ns < 0 else ""), abs(ns)
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{sign}{ns / scale:.3g} {unit}"
    return f"{sign}{ns:.3g} ns"

def median_of(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None

def per_run(name):
    return [run.get(name) for run in runs]

header = ("workload", "knote", "mio", "compares", "knote time", "mio time", "knote/mio", "range")
table = [header]
for workload, knote, mio, compares in rows:
    k_runs, m_runs = per_run(knote), per_run(mio)
    ratios = [k / m for k, m in zip(k_runs, m_runs) if k is not None and m is not None and m > 0]
    ratio = median_of(ratios)
    spread = f"{min(ratios):.2f}-{max(ratios):.2f}" if len(ratios) > 1 else ""
    table.append((
        workload,
        knote.split("/")[1],
        mio.split("/")[1],
        compares,
        fmt_time(median_of(k_runs)),
        fmt_time(median_of(m_runs)),
        f"{ratio:.2f}" if ratio is not None else "n/a",
        spread,
    ))

widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
print()
print(f"knote ÷ mio, median of criterion medians over {len(runs)} run(s); below 1 = knote faster")
print()
for i, row in enumerate(table):
    print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())
    if i == 0:
        print("  ".join("-" * w for w in widths))

# The timer rows are mostly the 1 ms itself; what the reactors add is the excess over it.
print()
print("timers, excess over the 1 ms period (what each side adds to the wait):")
mio_excess = median_of([m - PERIOD_NS if m is not None else None for m in per_run("timer/mio_timeout_1ms")])
for name in ("timer/knote_timer_1ms", "timer/knote_timeout_1ms", "timer/mio_timeout_1ms"):
    excess = median_of([t - PERIOD_NS if t is not None else None for t in per_run(name)])
    ratio = ""
    if excess is not None and mio_excess and name != "timer/mio_timeout_1ms":
        ratio = f"  ({excess / mio_excess:.2f} x mio's)"
    print(f"  {name.split('/')[1]:<20} {fmt_time(excess) if excess is not None else 'n/a'}{ratio}")
sub_ms = median_of(per_run("timer/knote_timer_20us"))
print(f"  {'knote_timer_20us':<20} {fmt_time(sub_ms)} per 20 µs timer (mio cannot wait less than 1 ms)")
EOF
