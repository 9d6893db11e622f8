#!/usr/bin/env bash
# tests/bench/compare.sh - ringmq against nats-server: the same workloads,
# driven by equivalent C clients (`ringmq bench` on libringmq, and
# tests/bench/nats_bench.c on libnats: one harness, client/bench_harness.c,
# with two transports).
#
#   tests/bench/compare.sh [--runs R] [--quick] [--out FILE] [--build-dir DIR]
#
# 1. Installs what is missing (Debian packages, as root: the ringmq build
#    dependencies, nats-server, libnats-dev, jq) through scripts/deps.sh.
# 2. Builds ringmq (Release) into the build dir (default build-bench/) and
#    nats_bench next to it:
#      cc -std=c11 -O2 -D_GNU_SOURCE tests/bench/nats_bench.c \
#         client/bench_harness.c -Iclient -lnats -lpthread -o BUILD/nats_bench
# 3. Starts, on loopback only, nats-server (127.0.0.1:14222, GOMAXPROCS=2),
#    ringmqd --shards 2 (127.0.0.1:17400) and ringmqd --shards 1
#    (127.0.0.1:17401, for the scaling rows). A trap stops all three.
# 4. Runs every row R times (default 5), rotating which broker goes first in
#    each round, each run bounded by --timeout and by timeout(1).
# 5. Prints markdown tables of medians and ratios (ringmq/nats; for the
#    scaling rows 2 shards/1 shard) against the targets, and writes them to
#    --out FILE too. Raw JSON of every run goes to BUILD/bench-results/.
#
# A failed run (messages lost, a subscriber disconnected, a timeout) is left
# out of the median and counted in the table. Ports can be moved with
# NATS_PORT, RMQ_PORT and RMQ1_PORT; RUN_TIMEOUT (s, default 30) bounds a run.
set -euo pipefail

RUNS=5
QUICK=0
OUT=""
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD="$ROOT/build-bench"
HOST=127.0.0.1
NATS_PORT=${NATS_PORT:-14222}
RMQ_PORT=${RMQ_PORT:-17400}
RMQ1_PORT=${RMQ1_PORT:-17401}
RUN_TIMEOUT=${RUN_TIMEOUT:-30}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

die() {
    echo "compare.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
    --runs)
        [ $# -ge 2 ] || die "--runs needs a value"
        RUNS=$2
        shift 2
        ;;
    --quick)
        QUICK=1
        RUNS=1
        shift
        ;;
    --out)
        [ $# -ge 2 ] || die "--out needs a file"
        OUT=$2
        shift 2
        ;;
    --build-dir)
        [ $# -ge 2 ] || die "--build-dir needs a directory"
        BUILD=$2
        shift 2
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done
case "$RUNS" in
'' | *[!0-9]*) die "--runs wants a positive integer" ;;
esac
[ "$RUNS" -ge 1 ] || die "--runs wants a positive integer"

# ---- Dependencies and build ----

NATS_SERVER=$(command -v nats-server || echo /usr/sbin/nats-server)
if [ ! -x "$NATS_SERVER" ] || [ ! -f /usr/include/nats/nats.h ] || ! command -v jq >/dev/null ||
    ! command -v cmake >/dev/null; then
    "$ROOT/scripts/deps.sh" nats-server libnats-dev jq
    NATS_SERVER=$(command -v nats-server || echo /usr/sbin/nats-server)
fi
RESULTS="$BUILD/bench-results"
mkdir -p "$RESULTS"
echo "building ringmq (Release) in $BUILD ..." >&2
if ! { cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF &&
    cmake --build "$BUILD" -j"$(nproc)"; } >"$RESULTS/build.log" 2>&1; then
    tail -30 "$RESULTS/build.log" >&2
    die "build failed (log: $RESULTS/build.log)"
fi
cc -std=c11 -O2 -D_GNU_SOURCE -Wall -Wextra "$ROOT/tests/bench/nats_bench.c" \
    "$ROOT/client/bench_harness.c" -I"$ROOT/client" -lnats -lpthread -o "$BUILD/nats_bench"
RINGMQ="$BUILD/client/ringmq"
RINGMQD="$BUILD/broker/ringmqd"
NATS_BENCH="$BUILD/nats_bench"

# ---- Servers ----

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() {
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

wait_port() {
    local i
    for i in $(seq 1 100); do
        port_open "$1" && return 0
        sleep 0.1
    done
    die "nothing listens on $HOST:$1 after 10 s (logs in $RESULTS)"
}

for p in "$NATS_PORT" "$RMQ_PORT" "$RMQ1_PORT"; do
    if port_open "$p"; then
        die "port $HOST:$p is already in use"
    fi
done
GOMAXPROCS=2 "$NATS_SERVER" -a "$HOST" -p "$NATS_PORT" >"$RESULTS/nats-server.log" 2>&1 &
PIDS+=($!)
"$RINGMQD" --listen "$HOST:$RMQ_PORT" --shards 2 --log-level warn >"$RESULTS/ringmqd2.log" 2>&1 &
PIDS+=($!)
"$RINGMQD" --listen "$HOST:$RMQ1_PORT" --shards 1 --log-level warn >"$RESULTS/ringmqd1.log" 2>&1 &
PIDS+=($!)
wait_port "$NATS_PORT"
wait_port "$RMQ_PORT"
wait_port "$RMQ1_PORT"
echo "servers: nats-server pid ${PIDS[0]} ($HOST:$NATS_PORT), ringmqd --shards 2 pid" \
    "${PIDS[1]} ($HOST:$RMQ_PORT), ringmqd --shards 1 pid ${PIDS[2]} ($HOST:$RMQ1_PORT)" >&2

# ---- Workloads ----

# id | label | bench arguments (same for every broker) | kind
#   kind: tput (delivered msgs/s), lat (latency p50/p99), scale (also ringmq 1 shard)
# --msgs is chosen so that one run takes about 1-3 s here (2 vCPUs).
ROWS_ALL=(
    "1x1_16|1 pub -> 1 sub, 16 B|--pubs 1 --subs 1 --size 16 --msgs 2500000|tput"
    "1x1_256|1 pub -> 1 sub, 256 B|--pubs 1 --subs 1 --size 256 --msgs 1000000|tput"
    "1x1_4k|1 pub -> 1 sub, 4 KiB|--pubs 1 --subs 1 --size 4096 --msgs 300000|tput"
    "1x4_16|1 pub -> 4 subs, 16 B|--pubs 1 --subs 4 --size 16 --msgs 1000000|tput"
    "1x4_256|1 pub -> 4 subs, 256 B|--pubs 1 --subs 4 --size 256 --msgs 600000|tput"
    "1x4_4k|1 pub -> 4 subs, 4 KiB|--pubs 1 --subs 4 --size 4096 --msgs 70000|tput"
    "1x16_16|1 pub -> 16 subs, 16 B|--pubs 1 --subs 16 --size 16 --msgs 200000|tput"
    "1x16_256|1 pub -> 16 subs, 256 B|--pubs 1 --subs 16 --size 256 --msgs 150000|tput"
    "1x16_4k|1 pub -> 16 subs, 4 KiB|--pubs 1 --subs 16 --size 4096 --msgs 20000|tput"
    "4x4_16|4 pubs -> 4 subs, 16 B|--pubs 4 --subs 4 --size 16 --msgs 1000000|scale"
    "4x4_256|4 pubs -> 4 subs, 256 B|--pubs 4 --subs 4 --size 256 --msgs 700000|scale"
    "lat_256|latency 1 -> 1, 256 B at 20000 msgs/s|--pubs 1 --subs 1 --size 256 --msgs 40000 \
        --latency --rate 20000|lat"
)
ROWS=()
for r in "${ROWS_ALL[@]}"; do
    id=${r%%|*}
    if [ "$QUICK" -eq 0 ] || [[ " 1x1_16 1x4_256 1x16_4k 4x4_16 lat_256 " == *" $id "* ]]; then
        ROWS+=("$r")
    fi
done

declare -A VALS FAILS
RAW="$RESULTS/raw.jsonl"
: >"$RAW"

# run_one BROKER ID RUN ARGS...: one bench run; records its values or a
# failure. Each run has its own subject, so that nothing a broker still holds
# from an earlier (failed) run can reach this run's subscribers.
run_one() {
    local broker=$1 id=$2 run=$3 cmd rc json err
    shift 3
    case "$broker" in
    nats) cmd=("$NATS_BENCH" --server "$HOST:$NATS_PORT") ;;
    ringmq) cmd=("$RINGMQ" --server "$HOST:$RMQ_PORT") ;;
    ringmq1) cmd=("$RINGMQ" --server "$HOST:$RMQ1_PORT") ;;
    esac
    rc=0
    json=$(timeout -k 5 $((RUN_TIMEOUT + 20)) "${cmd[@]}" bench "bench.$id.r$run.$broker" "$@" \
        --json --timeout $((RUN_TIMEOUT * 1000)) 2>"$RESULTS/last.err") || rc=$?
    err=$(tr '\n' ' ' <"$RESULTS/last.err")
    printf '{"row":"%s","server":"%s","rc":%d,"result":%s}\n' "$id" "$broker" "$rc" \
        "${json:-null}" >>"$RAW"
    if [ "$rc" -ne 0 ] || [ -z "$json" ]; then
        FAILS["$id|$broker"]=$((${FAILS["$id|$broker"]:-0} + 1))
        echo "  $broker $id: FAILED (exit $rc) $err" >&2
        return 0
    fi
    local tput p50 p99 p999
    read -r tput p50 p99 p999 < <(jq -r '[.sub_aggregate.msgs_per_sec,
        (.latency_us.p50 // 0), (.latency_us.p99 // 0), (.latency_us.p99_9 // 0)] | @tsv' \
        <<<"$json")
    VALS["$id|$broker|tput"]+="$tput "
    VALS["$id|$broker|p50"]+="$p50 "
    VALS["$id|$broker|p99"]+="$p99 "
    VALS["$id|$broker|p999"]+="$p999 "
    if [ "$p50" != 0 ]; then
        echo "  $broker $id: p50 $p50 us, p99 $p99 us" >&2
    else
        printf '  %s %s: %.0f msgs/s\n' "$broker" "$id" "$tput" >&2
    fi
}

echo "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); $RUNS run(s) of ${#ROWS[@]} rows" >&2
for run in $(seq 1 "$RUNS"); do
    echo "round $run/$RUNS" >&2
    for r in "${ROWS[@]}"; do
        IFS='|' read -r id _label args kind <<<"$r"
        brokers=(nats ringmq)
        [ "$kind" = scale ] && brokers=(nats ringmq ringmq1)
        # rotate the order by the round, so no broker always runs first
        n=${#brokers[@]}
        order=()
        for i in $(seq 0 $((n - 1))); do
            order+=("${brokers[$(((i + run - 1) % n))]}")
        done
        for b in "${order[@]}"; do
            # shellcheck disable=SC2086 # args is a list of words on purpose
            run_one "$b" "$id" "$run" $args
        done
    done
done

# ---- Report ----

median() {
    tr ' ' '\n' | grep -v '^$' | sort -g |
        awk '{a[NR] = $1} END {
            if (NR == 0) print "-";
            else if (NR % 2) print a[(NR + 1) / 2];
            else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-";
        else printf "%.2f", a / b }'
}

# verdict RATIO OP TARGET: "yes" when RATIO OP TARGET holds.
verdict() {
    awk -v r="$1" -v op="$2" -v t="$3" 'BEGIN { if (r == "-") print "n/a";
        else if ((op == ">=" && r + 0 >= t) || (op == "<=" && r + 0 <= t)) print "yes";
        else print "no" }'
}

fmt_rate() {
    awk -v v="$1" 'BEGIN { if (v == "-") print "-"; else printf "%.0f", v }'
}

# met VERDICT FAILS: a row whose ringmq runs failed (lost messages) is not met.
met() {
    if [ "$2" -gt 0 ]; then
        echo "no (runs failed)"
    else
        echo "$1"
    fi
}

cell() {
    local v=$1 fails=$2
    if [ "$fails" -gt 0 ]; then
        echo "$v ($fails/$RUNS failed)"
    else
        echo "$v"
    fi
}

report() {
    local r id label kind
    echo "### ringmq vs nats-server (medians of $RUNS run(s))"
    echo
    echo "| workload | metric | ringmq | nats | ringmq/nats | target | met |"
    echo "|---|---|---:|---:|---:|---|---|"
    for r in "${ROWS[@]}"; do
        IFS='|' read -r id label _args kind <<<"$r"
        local fr=${FAILS["$id|ringmq"]:-0} fn=${FAILS["$id|nats"]:-0}
        if [ "$kind" = lat ]; then
            local m
            for m in p50 p99 p999; do
                local a b q
                a=$(median <<<"${VALS["$id|ringmq|$m"]:-}")
                b=$(median <<<"${VALS["$id|nats|$m"]:-}")
                q=$(ratio "$a" "$b")
                local name=${m/p999/p99.9}
                if [ "$m" = p99 ]; then
                    echo "| $label | $name us | $(cell "$a" "$fr") | $(cell "$b" "$fn") | $q |" \
                        "<= 1.00 | $(met "$(verdict "$q" "<=" 1.00)" "$fr") |"
                else
                    echo "| $label | $name us | $(cell "$a" "$fr") | $(cell "$b" "$fn") | $q |" \
                        "- | - |"
                fi
            done
        else
            local a b q
            a=$(fmt_rate "$(median <<<"${VALS["$id|ringmq|tput"]:-}")")
            b=$(fmt_rate "$(median <<<"${VALS["$id|nats|tput"]:-}")")
            q=$(ratio "$a" "$b")
            echo "| $label | delivered msgs/s | $(cell "$a" "$fr") | $(cell "$b" "$fn") | $q |" \
                ">= 1.50 | $(met "$(verdict "$q" ">=" 1.50)" "$fr") |"
        fi
    done
    echo
    echo "### ringmq scaling: --shards 2 vs --shards 1 (medians of $RUNS run(s))"
    echo
    echo "| workload | metric | 2 shards | 1 shard | 2/1 | target | met |"
    echo "|---|---|---:|---:|---:|---|---|"
    for r in "${ROWS[@]}"; do
        IFS='|' read -r id label _args kind <<<"$r"
        [ "$kind" = scale ] || continue
        local f2=${FAILS["$id|ringmq"]:-0} f1=${FAILS["$id|ringmq1"]:-0} a b q
        a=$(fmt_rate "$(median <<<"${VALS["$id|ringmq|tput"]:-}")")
        b=$(fmt_rate "$(median <<<"${VALS["$id|ringmq1|tput"]:-}")")
        q=$(ratio "$a" "$b")
        echo "| $label | delivered msgs/s | $(cell "$a" "$f2") | $(cell "$b" "$f1") | $q |" \
            ">= 1.60 | $(met "$(verdict "$q" ">=" 1.60)" $((f1 + f2))) |"
    done
    echo
    echo "Medians are over the runs that succeeded; a failed run lost messages (a"
    echo "subscriber disconnected as a slow consumer) or timed out. Raw results: $RAW"
}

echo >&2
report | tee "$RESULTS/report.md"
if [ -n "$OUT" ]; then
    cp "$RESULTS/report.md" "$OUT"
    echo "written to $OUT" >&2
fi
