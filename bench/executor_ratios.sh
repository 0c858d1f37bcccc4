#!/usr/bin/env bash
# Runs the executor benchmarks (rt_current_thread, rt_multi_threaded) and prints knote ÷ tokio
# ratios of criterion's median estimates (target/criterion/**/new/estimates.json) as a table.
#
# usage: bench/executor_ratios.sh [CRITERION ARGS...]    e.g. bench/executor_ratios.sh ping_pong
#        RUNS=5 bench/executor_ratios.sh                  5 runs (default 3); the table shows the
#                                                         median over the runs of each run's ratio
#        BENCHES=rt_current_thread bench/executor_ratios.sh    one of the two benches only
#        KNOTE_BENCH_WORKERS=4 bench/executor_ratios.sh     multi-thread: 4 workers only
#        MEMORY=1 bench/executor_ratios.sh                also print the idle-task memory table
#        CALLGRIND=1 bench/executor_ratios.sh             instead: instructions per operation of
#                                                         the current-thread workloads (valgrind)
#
# Runs alternate which side criterion measures first in every group (KNOTE_BENCH_FIRST), so
# with RUNS >= 2 the two sides are interleaved A B, B A, A B … Ratios below 1 mean knote is
# faster. Only estimates written by this invocation are read, so a filter argument leaves the
# other rows out instead of showing stale data. One run of both benches takes about four and a
# half minutes on 2 cores, so the default RUNS=3 about fourteen.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

RUNS="${RUNS:-3}"
BENCHES="${BENCHES:-rt_current_thread rt_multi_threaded}"
if ! [[ $RUNS =~ ^[1-9][0-9]*$ ]]; then
    echo "RUNS must be a positive integer, not '$RUNS'" >&2
    exit 2
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "executor_ratios.sh needs python3 to read criterion's JSON" >&2
    exit 1
fi

bench_args=(-p knote-bench)
for b in $BENCHES; do
    bench_args+=(--bench "$b")
done

# ------------------------------------------------------------------------------------------
# CALLGRIND=1: instruction counts per operation (stable run to run, unlike times). Each
# workload runs under callgrind twice, for 1 and for 1 + K iterations (KNOTE_BENCH_OP); the
# difference divided by K and by the operations per iteration is what one operation costs,
# with the set-up (runtime, threads) cancelled out.
if [[ ${CALLGRIND:-0} == 1 ]]; then
    if ! command -v valgrind >/dev/null 2>&1; then
        echo "CALLGRIND=1 needs valgrind (apt-get install valgrind)" >&2
        exit 1
    fi
    cargo bench -p knote-bench --bench rt_current_thread --no-run >&2
    exe="$(cargo bench -p knote-bench --bench rt_current_thread --no-run --message-format=json \
        2>/dev/null |
        python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "rt_current_thread" and m.get("executable"):
        print(m["executable"])')"
    K="${K:-2}"
    # workload, operations per iteration (the constants of rt_current_thread.rs)
    workloads=(
        "spawn_many_local 1000"
        "spawn_many_remote_idle 1000"
        "spawn_many_remote_busy 1000"
        "ping_pong 1000"
        "yield_many 200000"
        "chained_spawn 1000"
        "timeout_ready 1000"
    )
    count_ir() { # GROUP/SIDE COUNT -> total instructions
        KNOTE_BENCH_OP="$1:$2" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
            "$exe" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p' | tail -n 1
    }
    printf '\ninstructions per operation (callgrind, current-thread; (Ir(1+%s iters) - Ir(1 iter)) / %s / ops)\n\n' "$K" "$K"
    printf '%-24s %12s %12s %12s\n' workload knote tokio knote/tokio
    printf '%-24s %12s %12s %12s\n' ------------------------ ------------ ------------ ------------
    for w in "${workloads[@]}"; do
        read -r name ops <<<"$w"
        declare -A per_op=()
        for side in knote tokio; do
            one="$(count_ir "ct_$name/$side" 1)"
            more="$(count_ir "ct_$name/$side" $((1 + K)))"
            per_op[$side]="$(python3 -c "print(f'{($more - $one) / $K / $ops:.0f}')")"
        done
        ratio="$(python3 -c "print(f'{${per_op[knote]} / max(${per_op[tokio]}, 1):.2f}')")"
        printf '%-24s %12s %12s %12s\n' "$name" "${per_op[knote]}" "${per_op[tokio]}" "$ratio"
        unset per_op
    done
    exit 0
fi

target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
criterion_dir="$target_dir/criterion"
snapshots="$(mktemp -d)"
trap 'rm -rf "$snapshots"' EXIT

for run in $(seq 1 "$RUNS"); do
    if ((run % 2 == 0)); then first=tokio; else first=knote; fi
    echo "==> run $run of $RUNS ($first first): cargo bench ${bench_args[*]} -- $*" >&2
    started="$(date +%s)"
    KNOTE_BENCH_FIRST="$first" cargo bench "${bench_args[@]}" -- "$@" >&2
    # Keep this run's medians (ns per iteration) and operations per iteration before the next
    # run overwrites them.
    python3 - "$criterion_dir" "$started" >"$snapshots/run$run.json" <<'EOF'
import json, os, sys

root, started = sys.argv[1], float(sys.argv[2])
found = {}
for dirpath, _dirs, files in os.walk(root):
    if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
        continue
    path = os.path.join(dirpath, "estimates.json")
    if os.path.getmtime(path) < started - 1:
        continue  # left over from an earlier invocation
    name = os.path.relpath(os.path.dirname(dirpath), root).replace(os.sep, "/")
    if not name.startswith(("ct_", "mt_")):
        continue
    with open(path) as f:
        median = json.load(f)["median"]["point_estimate"]
    ops = None
    try:
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            ops = (json.load(f).get("throughput") or {}).get("Elements")
    except (OSError, ValueError):
        pass
    found[name] = {"median": median, "ops": ops}
json.dump(found, sys.stdout)
EOF
done

python3 - "$snapshots" <<'EOF'
import glob, json, statistics, sys

runs = [json.load(open(p)) for p in sorted(glob.glob(sys.argv[1] + "/run*.json"))]

def fmt_time(ns):
    if ns is None:
        return "n/a"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"

# Rows: every knote function that has a tokio partner (same group, same worker count).
names = sorted({n for run in runs for n in run})
rows = []
for knote in names:
    parts = knote.split("/")
    if len(parts) < 2 or parts[1] != "knote":
        continue
    tokio = "/".join([parts[0], "tokio"] + parts[2:])
    group = parts[0]
    flavor = "current" if group.startswith("ct_") else f"multi, {parts[2]} workers"
    workload = group[3:]
    ratios, k_per_op, t_per_op = [], [], []
    for run in runs:
        k, t = run.get(knote), run.get(tokio)
        if not k or not t:
            continue
        ratios.append(k["median"] / t["median"])
        ops = k["ops"] or 1
        k_per_op.append(k["median"] / ops)
        t_per_op.append(t["median"] / ops)
    if not ratios:
        continue
    order = 0 if group.startswith("ct_") else 1
    rows.append((order, flavor, workload, ratios, k_per_op, t_per_op))

rows.sort(key=lambda r: (r[0], r[1], r[2]))
header = ("flavor", "workload", "knote/op", "tokio/op", "knote÷tokio", "range", "runs")
table = [header]
for _order, flavor, workload, ratios, k, t in rows:
    table.append((
        flavor,
        workload,
        fmt_time(statistics.median(k)),
        fmt_time(statistics.median(t)),
        f"{statistics.median(ratios):.2f}",
        f"{min(ratios):.2f}-{max(ratios):.2f}" if len(ratios) > 1 else "",
        str(len(ratios)),
    ))

print()
print(f"knote ÷ tokio: median over {len(runs)} run(s) of the ratio of criterion medians; "
      "below 1 = knote faster")
print("(per-op times are medians too, for scale only: quote the ratios)")
print()
widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
for i, row in enumerate(table):
    print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())
    if i == 0:
        print("  ".join("-" * w for w in widths))
EOF

if [[ ${MEMORY:-0} == 1 ]]; then
    echo
    cargo bench -p knote-bench --bench idle_task_memory 2>/dev/null
fi
