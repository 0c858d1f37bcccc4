#!/usr/bin/env bash
# System calls per operation, knote vs mio, counted with `strace -c -f`.
#
# usage: bench/syscalls.sh [COUNT]     (default 2000 operations per workload)
#
# For each workload of benches/reactor_vs_mio.rs the bench binary runs in its counting mode
# (KNOTE_SYSCALL_OP=NAME:COUNT) twice under strace: once with 0 operations (set-up only) and
# once with COUNT; the difference divided by COUNT is the cost of one operation, by system call.
# Then the reactor_echo example is traced while a client makes round trips of 64 bytes, pausing
# 1 ms after each so that every message finds the server asleep in its wait (a latency-bound
# connection: wait, read, write, and the read that meets EWOULDBLOCK). Without the pauses a
# client on the other core answers faster than the traced server reads, the server's read loop
# never runs dry, and the counts measure strace's slowness. The floor for an echo round trip
# is one read and one write (plus the wait).
# Last, the servers of benches/echo.rs (knote::net and tokio::net on each runtime flavour, and
# the hand-written loop) are traced one by one as processes of their own (`echo --serve SIDE`)
# while `echo --load ADDR ROUNDS` drives their 64 connections with 64-byte messages from
# another process: system calls per echoed message, set-up (64 accepts and closes) subtracted.
#
# Not part of CI: strace needs ptrace, and the numbers are for reading, not asserting.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

COUNT="${1:-2000}"
if ! [[ $COUNT =~ ^[1-9][0-9]*$ ]]; then
    echo "COUNT must be a positive integer, not '$COUNT'" >&2
    exit 2
fi

if ! command -v strace >/dev/null 2>&1; then
    echo "==> installing strace" >&2
    if [[ $(id -u) -eq 0 ]]; then sudo=(); else sudo=(sudo); fi
    "${sudo[@]}" apt-get update
    "${sudo[@]}" apt-get install -y strace
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "syscalls.sh needs python3 to read strace's tables" >&2
    exit 1
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "==> building the bench binary and the example (release)" >&2
bench_bin="$(cargo bench -p knote-bench --bench reactor_vs_mio --no-run --message-format=json \
    2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "reactor_vs_mio" and msg.get("executable"):
        print(msg["executable"])
')"
if [[ -z $bench_bin ]]; then
    echo "could not find the reactor_vs_mio bench executable" >&2
    exit 1
fi
cargo build --release -p knote --example reactor_echo >&2
echo_bench="$(cargo bench -p knote-bench --bench echo --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "echo" and msg.get("executable"):
        print(msg["executable"])
')"
if [[ -z $echo_bench ]]; then
    echo "could not find the echo bench executable" >&2
    exit 1
fi
target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
echo_bin="$target_dir/release/examples/reactor_echo"

# strace -c tables → "syscall calls" lines.
summarize() {
    python3 - "$1" <<'EOF'
import sys
for line in open(sys.argv[1]):
    fields = line.split()
    # Data rows: % time, seconds, usecs/call, calls, [errors,] syscall
    if len(fields) >= 5 and fields[3].isdigit() and fields[-1] != "total":
        print(fields[-1], fields[3])
EOF
}

# Prints the per-operation difference of two summaries.
per_op() { # label base full count
    python3 - "$@" <<'EOF'
import sys
label, base_path, full_path, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def load(path):
    calls = {}
    for line in open(path):
        name, n = line.split()
        calls[name] = calls.get(name, 0) + int(n)
    return calls
base, full = load(base_path), load(full_path)
diff = {name: (full.get(name, 0) - base.get(name, 0)) / count for name in set(base) | set(full)}
diff = {name: d for name, d in diff.items() if d >= 0.005}
total = sum(diff.values())
detail = ", ".join(f"{name} {d:.2f}" for name, d in sorted(diff.items(), key=lambda kv: -kv[1]))
print(f"{label:<34} {total:6.2f}   {detail}")
EOF
}

workloads=(
    register/knote
    register/mio
    wait_ready/knote_rearm/64
    wait_ready/mio_rearm/64
    wait_ready/knote_level/64
    wait_ready/knote_level_exact/64
    timer/knote_timer_1ms
    timer/knote_timeout_1ms
    timer/mio_timeout_1ms
    timer/knote_timer_20us
)

printf '\nsystem calls per operation (strace -c -f, %s operations, set-up subtracted)\n\n' "$COUNT"
printf '%-34s %6s   %s\n' "workload" "total" "by system call"
printf '%-34s %6s   %s\n' "--------" "-----" "--------------"
for workload in "${workloads[@]}"; do
    # Timer workloads sleep a millisecond per operation: fewer of them keep the run short.
    n="$COUNT"
    if [[ $workload == timer/* ]] && ((n > 500)); then n=500; fi
    KNOTE_SYSCALL_OP="$workload:0" strace -c -f -o "$work/base.raw" "$bench_bin" >/dev/null
    KNOTE_SYSCALL_OP="$workload:$n" strace -c -f -o "$work/full.raw" "$bench_bin" >/dev/null
    summarize "$work/base.raw" >"$work/base"
    summarize "$work/full.raw" >"$work/full"
    per_op "$workload" "$work/base" "$work/full" "$n"
done

# The echo example: the server under strace, a Python client outside it.
echo_run() { # round_trips → summary file
    local trips="$1" out="$work/echo$1"
    : >"$work/echo.log"
    strace -c -f -o "$out.raw" "$echo_bin" 127.0.0.1:0 1 2>"$work/echo.log" &
    server_pid=$!
    local addr=""
    for _ in $(seq 1 200); do
        addr="$(sed -n 's/^reactor_echo: listening on //p' "$work/echo.log")"
        [[ -n $addr ]] && break
        sleep 0.05
    done
    if [[ -z $addr ]]; then
        echo "the echo server did not start:" >&2
        cat "$work/echo.log" >&2
        exit 1
    fi
    python3 - "$addr" "$trips" <<'EOF'
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
trips = int(sys.argv[2])
message = b"x" * 64
with socket.create_connection((host, int(port)), timeout=10) as s:
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for _ in range(trips):
        time.sleep(0.001)
        s.sendall(message)
        got = b""
        while len(got) < len(message):
            chunk = s.recv(len(message) - len(got))
            if not chunk:
                sys.exit("the echo server closed the connection early")
            got += chunk
EOF
    wait "$server_pid"
    server_pid=""
    summarize "$out.raw" >"$out"
}
trips=$((COUNT > 1000 ? 1000 : COUNT))
echo_run 0
echo_run "$trips"
per_op "echo round trip (reactor_echo)" "$work/echo0" "$work/echo$trips" "$trips"
# The echo bench's servers: one traced process each, the load outside it.
echo_bench_run() { # side rounds → summary file
    local side="$1" rounds="$2" out="$work/bench-$1-$2"
    : >"$work/bench.log"
    strace -c -f -o "$out.raw" "$echo_bench" --serve "$side" 2>"$work/bench.log" &
    server_pid=$!
    local addr=""
    for _ in $(seq 1 200); do
        addr="$(sed -n 's/^listening on //p' "$work/bench.log")"
        [[ -n $addr ]] && break
        sleep 0.05
    done
    if [[ -z $addr ]]; then
        echo "the $side echo server did not start:" >&2
        cat "$work/bench.log" >&2
        exit 1
    fi
    "$echo_bench" --load "$addr" "$rounds" >/dev/null
    wait "$server_pid"
    server_pid=""
    summarize "$out.raw" >"$out"
}
rounds=$(((COUNT + 63) / 64))
for side in knote tokio reactor knote-multi tokio-multi; do
    echo_bench_run "$side" 0
    echo_bench_run "$side" "$rounds"
    per_op "echo message (bench, $side)" "$work/bench-$side-0" "$work/bench-$side-$rounds" \
        "$((rounds * 64))"
done

printf '\n(on Linux the reactor is the epoll shim: a knote wait or change list shows up as the\n epoll_wait/epoll_pwait2/epoll_ctl calls it makes; on native kqueue it is one kevent each)\n'
