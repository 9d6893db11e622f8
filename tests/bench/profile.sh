#!/usr/bin/env bash
# tests/bench/profile.sh - where the time goes in one bench row on ringmq.
#
#   tests/bench/profile.sh [--shards N] [--build-dir DIR] [--out DIR] [--nats]
#                          -- BENCH-ARGS...
#   e.g. tests/bench/profile.sh -- --pubs 1 --subs 1 --size 16 --msgs 2500000
#
# Starts its own ringmqd (--shards N, default 2) on 127.0.0.1:17410 (or,
# with --nats, nats-server on 127.0.0.1:14230 with GOMAXPROCS=2, driven by
# BUILD/nats_bench), then runs the row four times (after one warm-up run):
#   1. perf record -e cpu-clock -g -p <server pid>   the broker alone
#   2. perf record -e cpu-clock -g -a                every process: who uses the
#                                                    CPUs (server, client, kernel)
#   3. strace -c -f -p <server pid>                  the broker's syscalls
#   4. strace -c -f <bench client>                   the client's syscalls
# Hardware counters are not available on this VM; cpu-clock works. The
# strace runs are slowed down by strace and only count calls. Summaries go
# to OUT/summary.txt (default BUILD/bench-profile/), the perf data files
# next to it. Build with frame pointers for better user-space stacks:
#   cmake -S . -B build-prof -DCMAKE_BUILD_TYPE=Release \
#         -DCMAKE_C_FLAGS=-fno-omit-frame-pointer -DBUILD_TESTING=OFF
# and, for --nats, the libnats client (tests/bench/compare.sh builds it too):
#   cc -std=c11 -O2 -D_GNU_SOURCE -fno-omit-frame-pointer tests/bench/nats_bench.c \
#      client/bench_harness.c -Iclient -lnats -lpthread -o build-prof/nats_bench
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD="$ROOT/build-bench"
SHARDS=2
OUTDIR=""
NATS=0
HOST=127.0.0.1

die() {
    echo "profile.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
    --shards)
        [ $# -ge 2 ] || die "--shards needs a value"
        SHARDS=$2
        shift 2
        ;;
    --build-dir)
        [ $# -ge 2 ] || die "--build-dir needs a value"
        BUILD=$2
        shift 2
        ;;
    --out)
        [ $# -ge 2 ] || die "--out needs a value"
        OUTDIR=$2
        shift 2
        ;;
    --nats)
        NATS=1
        shift
        ;;
    --)
        shift
        break
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[ $# -gt 0 ] || die "give the bench arguments after --"
OUTDIR=${OUTDIR:-$BUILD/bench-profile}
mkdir -p "$OUTDIR"
command -v perf >/dev/null || die "perf is missing (Debian: linux-perf)"
command -v strace >/dev/null || die "strace is missing"

PID=""
cleanup() {
    if [ -n "$PID" ]; then
        kill -TERM "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$NATS" -eq 1 ]; then
    PORT=14230
    [ -x "$BUILD/nats_bench" ] || die "$BUILD/nats_bench is missing (see --help to build it)"
    NATS_SERVER=$(command -v nats-server || echo /usr/sbin/nats-server)
    GOMAXPROCS=2 "$NATS_SERVER" -a "$HOST" -p "$PORT" >"$OUTDIR/server.log" 2>&1 &
    PID=$!
    CLIENT=("$BUILD/nats_bench" --server "$HOST:$PORT")
else
    PORT=17410
    "$BUILD/broker/ringmqd" --listen "$HOST:$PORT" --shards "$SHARDS" --log-level warn \
        >"$OUTDIR/server.log" 2>&1 &
    PID=$!
    CLIENT=("$BUILD/client/ringmq" --server "$HOST:$PORT")
fi
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null && break
    sleep 0.1
done

# top N FILE ARGS...: perf report ARGS on FILE, first N lines.
top() {
    local n=$1 f=$2
    shift 2
    perf report -i "$f" --no-children -q --stdio -g none "$@" >"$f.txt" 2>/dev/null || true
    head -n "$n" "$f.txt"
}

bench() {
    timeout -k 5 120 "${CLIENT[@]}" bench prof.x "$@" --timeout 60000
}

SUM="$OUTDIR/summary.txt"
{
    echo "# profile.sh $*  (server pid $PID, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
    echo "## warm-up"
    bench "$@" | grep -E 'sub total|latency|lost' || true

    echo "## 1. perf record -e cpu-clock -g -p $PID (server only)"
    perf record -q -e cpu-clock -g -p "$PID" -o "$OUTDIR/server.perf.data" -- \
        "${CLIENT[@]}" bench prof.x "$@" --timeout 60000 | grep -E 'sub total|latency|lost' || true
    top 30 "$OUTDIR/server.perf.data" --sort dso,sym

    echo "## 2. perf record -e cpu-clock -g -a (all processes)"
    perf record -q -e cpu-clock -g -a -o "$OUTDIR/all.perf.data" -- \
        "${CLIENT[@]}" bench prof.x "$@" --timeout 60000 | grep -E 'sub total|latency|lost' || true
    echo "### by process"
    top 8 "$OUTDIR/all.perf.data" --sort comm
    echo "### by thread"
    top 12 "$OUTDIR/all.perf.data" --sort pid
    echo "### by process and symbol"
    top 30 "$OUTDIR/all.perf.data" --sort comm,dso,sym

    echo "## 3. strace -c -f -p $PID (server syscalls)"
    strace -c -f -p "$PID" -o "$OUTDIR/server.strace" &
    STRACE=$!
    sleep 0.5
    bench "$@" | grep -E 'sub total|lost' || true
    kill -INT "$STRACE" 2>/dev/null || true
    wait "$STRACE" 2>/dev/null || true
    sed -n 1,15p "$OUTDIR/server.strace"

    echo "## 4. strace -c -f (bench client syscalls)"
    strace -c -f -o "$OUTDIR/client.strace" "${CLIENT[@]}" bench prof.x "$@" --timeout 60000 |
        grep -E 'sub total|lost' || true
    sed -n 1,15p "$OUTDIR/client.strace"
} 2>&1 | tee "$SUM"
echo "summary: $SUM" >&2
