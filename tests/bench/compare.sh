#!/usr/bin/env bash
# tests/bench/compare.sh - ringmq against nats-server: the same workloads,
# driven by equivalent C clients (`ringmq bench` on libringmq, and
# tests/bench/nats_bench.c on libnats: one harness, client/bench_harness.c,
# with two transports).
#
#   tests/bench/compare.sh [--runs R] [--quick] [--only core|durable|cluster]
#                          [--out FILE] [--build-dir DIR] [--no-build]
#
# 1. Installs what is missing (Debian packages, as root: the ringmq build
#    dependencies, nats-server, libnats-dev, jq) through scripts/deps.sh.
# 2. Builds ringmq (Release) into the build dir (default build-bench/; with
#    --no-build, uses the ringmq, ringmqd and nats_bench already there) and
#    nats_bench next to it:
#      cc -std=c11 -O2 -D_GNU_SOURCE tests/bench/nats_bench.c \
#         client/bench_harness.c -Iclient -lnats -lpthread -o BUILD/nats_bench
# 3. Starts, on loopback only, nats-server (127.0.0.1:14222, GOMAXPROCS=2),
#    ringmqd --shards 2 (127.0.0.1:17400) and ringmqd --shards 1
#    (127.0.0.1:17401, for the scaling rows), both --storage off. A trap
#    stops all three.
# 4. Runs every row R times (default 5), rotating which broker goes first in
#    each round, each run bounded by --timeout and by timeout(1).
# 5. Prints markdown tables of medians and ratios (ringmq/nats; for the
#    scaling rows 2 shards/1 shard) against the targets, and writes them to
#    --out FILE too. Raw JSON of every run goes to BUILD/bench-results/.
# 6. Durable topics (after the core rows; --only picks one part): acked
#    publishes (`bench SUBJECT --durable TOPIC`, a window of 256 acks per
#    publisher) with 1 and 16 publishers x 128 B and 4 KiB, each run bounded
#    by --msgs and --duration (3 s; 1 s with --quick), against three ringmqd
#    --shards 2 (--fsync always, interval=100 and never; 127.0.0.1:17410-2)
#    and nats-server -js with file storage (127.0.0.1:14223, GOMAXPROCS=2);
#    plus a replay row (a fixed number of messages published, then read back
#    from the first: a START_ALL topic subscription, a JetStream ordered
#    consumer). Every store is under one mktemp -d (on TMPDIR), removed on
#    exit; each run removes its topic (--rm). nats-server 2.9.x has no
#    `sync_interval` (2.10+): the script checks whether `sync_interval:
#    always` is accepted, and if so also runs a JetStream that fsyncs every
#    write for the --fsync always rows; if not, it says so and compares
#    every row with JetStream's default.
# 7. Cluster (last; --only cluster for this part alone): a 3-node ringmq
#    cluster (ringmqd --shards 1 --storage off, clients on
#    127.0.0.1:17420-2, routes on 17430-2, nodes 2 and 3 seeded with node
#    1's route address) against a 3-node nats-server cluster (GOMAXPROCS=1
#    each, clients on 127.0.0.1:14230-2, routes on 14240-2, monitoring on
#    14250-2), each started only after every node reports its 2 routes up
#    (`ringmq cluster --json`, nats /routez; at most 10 s). Rows: 1 publisher
#    on node 1 -> 2 subscribers, one on node 2 and one on node 3 (`bench
#    --sub-servers NODE2,NODE3`), at 16 B, 256 B and 4 KiB; delivered
#    msgs/s, ratio ringmq/nats, lost messages summed over the runs.
#
# A failed run (messages lost, a subscriber disconnected, a timeout, an
# error ack) is left out of the median and counted in the table. Ports can
# be moved with NATS_PORT, RMQ_PORT, RMQ1_PORT, JS_PORT, JS_ALWAYS_PORT,
# RMQD_PORT (the first of three), RMQC_PORT and NATSC_PORT (the first client
# port of each cluster; the route ports are 10 above, nats monitoring 20
# above); RUN_TIMEOUT (s, default 30) bounds a run.
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
JS_PORT=${JS_PORT:-14223}
JS_ALWAYS_PORT=${JS_ALWAYS_PORT:-14224}
RMQD_PORT=${RMQD_PORT:-17410}
RMQC_PORT=${RMQC_PORT:-17420}
NATSC_PORT=${NATSC_PORT:-14230}
ONLY=""
NO_BUILD=0

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
    --only)
        [ $# -ge 2 ] || die "--only needs core, durable or cluster"
        ONLY=$2
        shift 2
        ;;
    --out)
        [ $# -ge 2 ] || die "--out needs a file"
        OUT=$2
        shift 2
        ;;
    --no-build)
        NO_BUILD=1
        shift
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
case "$ONLY" in
'') DO_CORE=1 DO_DURABLE=1 DO_CLUSTER=1 ;;
core) DO_CORE=1 DO_DURABLE=0 DO_CLUSTER=0 ;;
durable) DO_CORE=0 DO_DURABLE=1 DO_CLUSTER=0 ;;
cluster) DO_CORE=0 DO_DURABLE=0 DO_CLUSTER=1 ;;
*) die "--only wants core, durable or cluster" ;;
esac

# ---- Dependencies and build ----

NATS_SERVER=$(command -v nats-server || echo /usr/sbin/nats-server)
if [ ! -x "$NATS_SERVER" ] || [ ! -f /usr/include/nats/nats.h ] || ! command -v jq >/dev/null ||
    ! command -v cmake >/dev/null; then
    "$ROOT/scripts/deps.sh" nats-server libnats-dev jq
    NATS_SERVER=$(command -v nats-server || echo /usr/sbin/nats-server)
fi
RESULTS="$BUILD/bench-results"
mkdir -p "$RESULTS"
if [ "$NO_BUILD" -eq 1 ]; then
    echo "using the binaries in $BUILD (--no-build)" >&2
else
    echo "building ringmq (Release) in $BUILD ..." >&2
    if ! { cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF &&
        cmake --build "$BUILD" -j"$(nproc)"; } >"$RESULTS/build.log" 2>&1; then
        tail -30 "$RESULTS/build.log" >&2
        die "build failed (log: $RESULTS/build.log)"
    fi
fi
cc -std=c11 -O2 -D_GNU_SOURCE -Wall -Wextra "$ROOT/tests/bench/nats_bench.c" \
    "$ROOT/client/bench_harness.c" -I"$ROOT/client" -lnats -lpthread -o "$BUILD/nats_bench"
RINGMQ="$BUILD/client/ringmq"
RINGMQD="$BUILD/broker/ringmqd"
NATS_BENCH="$BUILD/nats_bench"
if [ ! -x "$RINGMQ" ] || [ ! -x "$RINGMQD" ]; then
    die "no $RINGMQ or $RINGMQD"
fi

# ---- Servers ----

PIDS=()
WORK=""
CWORK=""
stop_servers() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
cleanup() {
    stop_servers
    if [ -n "$WORK" ]; then
        rm -rf "$WORK"
    fi
    if [ -n "$CWORK" ]; then
        rm -rf "$CWORK"
    fi
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

for p in "$NATS_PORT" "$RMQ_PORT" "$RMQ1_PORT" "$JS_PORT" "$JS_ALWAYS_PORT" "$RMQD_PORT" \
    $((RMQD_PORT + 1)) $((RMQD_PORT + 2)); do
    if port_open "$p"; then
        die "port $HOST:$p is already in use"
    fi
done
if [ "$DO_CLUSTER" -eq 1 ]; then
    for i in 0 1 2; do
        for p in $((RMQC_PORT + i)) $((RMQC_PORT + 10 + i)) $((NATSC_PORT + i)) \
            $((NATSC_PORT + 10 + i)) $((NATSC_PORT + 20 + i)); do
            if port_open "$p"; then
                die "port $HOST:$p is already in use"
            fi
        done
    done
fi
declare -A LOST
declare -A VALS FAILS
RAW="$RESULTS/raw.jsonl"
: >"$RAW"

if [ "$DO_CORE" -eq 1 ]; then
    GOMAXPROCS=2 "$NATS_SERVER" -a "$HOST" -p "$NATS_PORT" >"$RESULTS/nats-server.log" 2>&1 &
    PIDS+=($!)
    # the core rows need no store (and two brokers must not share ./data)
    "$RINGMQD" --listen "$HOST:$RMQ_PORT" --shards 2 --storage off --log-level warn \
        >"$RESULTS/ringmqd2.log" 2>&1 &
    PIDS+=($!)
    "$RINGMQD" --listen "$HOST:$RMQ1_PORT" --shards 1 --storage off --log-level warn \
        >"$RESULTS/ringmqd1.log" 2>&1 &
    PIDS+=($!)
    wait_port "$NATS_PORT"
    wait_port "$RMQ_PORT"
    wait_port "$RMQ1_PORT"
    echo "servers: nats-server pid ${PIDS[0]} ($HOST:$NATS_PORT), ringmqd --shards 2 pid" \
        "${PIDS[1]} ($HOST:$RMQ_PORT), ringmqd --shards 1 pid ${PIDS[2]} ($HOST:$RMQ1_PORT)" >&2
fi

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
    # the clusters: publishers on node 1, subscribers on nodes 2 and 3
    cnats) cmd=("$NATS_BENCH" --server "$HOST:$NATSC_PORT") ;;
    cringmq) cmd=("$RINGMQ" --server "$HOST:$RMQC_PORT") ;;
    esac
    local extra=()
    case "$broker" in
    cnats) extra=(--sub-servers "$HOST:$((NATSC_PORT + 1)),$HOST:$((NATSC_PORT + 2))") ;;
    cringmq) extra=(--sub-servers "$HOST:$((RMQC_PORT + 1)),$HOST:$((RMQC_PORT + 2))") ;;
    esac
    rc=0
    json=$(timeout -k 5 $((RUN_TIMEOUT + 20)) "${cmd[@]}" bench "bench.$id.r$run.$broker" "$@" \
        "${extra[@]}" --json --timeout $((RUN_TIMEOUT * 1000)) 2>"$RESULTS/last.err") || rc=$?
    err=$(tr '\n' ' ' <"$RESULTS/last.err")
    printf '{"row":"%s","server":"%s","rc":%d,"result":%s}\n' "$id" "$broker" "$rc" \
        "${json:-null}" >>"$RAW"
    if [ -n "$json" ]; then
        LOST["$id|$broker"]=$((${LOST["$id|$broker"]:-0} + $(jq -r '.lost // 0' <<<"$json")))
    fi
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

if [ "$DO_CORE" -eq 1 ]; then
    echo "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); $RUNS run(s) of ${#ROWS[@]} rows" >&2
fi
for run in $(seq 1 "$((RUNS * DO_CORE))"); do
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

# ---- Durable topics: servers and runs ----

# Durable rows: id | label | bench arguments (same for every broker).
# Publish rows end after --duration ms (or --msgs); --msgs also bounds the
# disk each run writes (its topic is removed afterwards).
DUR_MS=3000
REPLAY_MSGS=200000
if [ "$QUICK" -eq 1 ]; then
    DUR_MS=1000
    REPLAY_MSGS=100000
fi
DROWS=(
    "d1_128|1 pub, 128 B|--pubs 1 --size 128 --msgs 1000000"
    "d16_128|16 pubs, 128 B|--pubs 16 --size 128 --msgs 1000000"
    "d1_4k|1 pub, 4 KiB|--pubs 1 --size 4096 --msgs 150000"
    "d16_4k|16 pubs, 4 KiB|--pubs 16 --size 4096 --msgs 150000"
)
FSYNC_MODES=(always interval=100 never)
JS_ALWAYS=0
JS_NOTE=""
FSTYPE=""

# start_durable: the ringmqd per --fsync mode and nats-server -js, stores
# under WORK.
start_durable() {
    local i mode conf
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/ringmq-bench.XXXXXX")
    FSTYPE=$(df -PT "$WORK" | awk 'NR == 2 { print $2 }')
    echo "durable stores under $WORK ($FSTYPE)" >&2
    if [ "$FSTYPE" = tmpfs ]; then
        echo "compare.sh: warning: $WORK is on tmpfs, where fsync costs nothing;" \
            "set TMPDIR to a directory on a disk" >&2
    fi
    for i in "${!FSYNC_MODES[@]}"; do
        mode=${FSYNC_MODES[$i]}
        mkdir -p "$WORK/rmq$i"
        "$RINGMQD" --listen "$HOST:$((RMQD_PORT + i))" --shards 2 --data-dir "$WORK/rmq$i" \
            --fsync "$mode" --log-level warn >"$RESULTS/ringmqd-fsync$i.log" 2>&1 &
        PIDS+=($!)
    done
    # JetStream with file storage; sync_interval exists in 2.10+ only
    conf="$WORK/js-always.conf"
    printf 'listen: "%s:%s"\njetstream { store_dir: "%s", sync_interval: always }\n' \
        "$HOST" "$JS_ALWAYS_PORT" "$WORK/js-always" >"$conf"
    if "$NATS_SERVER" -c "$conf" -t >"$RESULTS/nats-js-always-check.log" 2>&1; then
        JS_ALWAYS=1
        JS_NOTE="JetStream rows: file storage; the --fsync always rows are compared with"
        JS_NOTE+=" \`sync_interval: always\` (fsync on every write), the others with the default."
        GOMAXPROCS=2 "$NATS_SERVER" -c "$conf" >"$RESULTS/nats-js-always.log" 2>&1 &
        PIDS+=($!)
    else
        JS_NOTE="JetStream rows: file storage with the default sync; $("$NATS_SERVER" --version)"
        JS_NOTE+=" has no \`sync_interval\` setting (\`sync_interval: always\` is rejected:"
        JS_NOTE+=" $(head -1 "$RESULTS/nats-js-always-check.log" | sed 's/.*: //')), so it cannot"
        JS_NOTE+=" fsync every write: every ringmq row, --fsync always included, is compared"
        JS_NOTE+=" with JetStream's default, which acknowledges without waiting for an fsync."
    fi
    conf="$WORK/js.conf"
    printf 'listen: "%s:%s"\njetstream { store_dir: "%s" }\n' "$HOST" "$JS_PORT" "$WORK/js" \
        >"$conf"
    GOMAXPROCS=2 "$NATS_SERVER" -c "$conf" >"$RESULTS/nats-js.log" 2>&1 &
    PIDS+=($!)
    for i in "${!FSYNC_MODES[@]}"; do
        wait_port $((RMQD_PORT + i))
    done
    wait_port "$JS_PORT"
    [ "$JS_ALWAYS" -eq 0 ] || wait_port "$JS_ALWAYS_PORT"
    echo "durable servers: ringmqd --fsync ${FSYNC_MODES[*]} on $HOST:$RMQD_PORT-$((RMQD_PORT + 2))," \
        "nats-server -js on $HOST:$JS_PORT" >&2
    echo "$JS_NOTE" >&2
}

# run_durable BROKER ID RUN ARGS...: one durable run (BROKER: rmq0..2 for
# the --fsync modes, js, js_always); records its values or a failure. Each
# run has its own topic and subject, removed at the end of the run.
run_durable() {
    local broker=$1 id=$2 run=$3 cmd rc json err tput p50 p99 replay
    shift 3
    case "$broker" in
    rmq*) cmd=("$RINGMQ" --server "$HOST:$((RMQD_PORT + ${broker#rmq}))") ;;
    js) cmd=("$NATS_BENCH" --server "$HOST:$JS_PORT") ;;
    js_always) cmd=("$NATS_BENCH" --server "$HOST:$JS_ALWAYS_PORT") ;;
    esac
    rc=0
    json=$(timeout -k 5 $((RUN_TIMEOUT + 30)) "${cmd[@]}" bench "dur.$id.r$run.$broker" \
        --durable "d_${id}_r${run}_$broker" "$@" --rm --json --timeout $((RUN_TIMEOUT * 1000)) \
        2>"$RESULTS/last.err") || rc=$?
    err=$(tr '\n' ' ' <"$RESULTS/last.err")
    printf '{"row":"%s","server":"%s","rc":%d,"result":%s}\n' "$id" "$broker" "$rc" \
        "${json:-null}" >>"$RAW"
    if [ "$rc" -ne 0 ] || [ -z "$json" ]; then
        FAILS["$id|$broker"]=$((${FAILS["$id|$broker"]:-0} + 1))
        echo "  $broker $id: FAILED (exit $rc) $err" >&2
        return 0
    fi
    read -r tput p50 p99 replay < <(jq -r '[.pub.msgs_per_sec, .ack_latency_us.p50,
        .ack_latency_us.p99, (.replay.msgs_per_sec // 0)] | @tsv' <<<"$json")
    VALS["$id|$broker|tput"]+="$tput "
    VALS["$id|$broker|p50"]+="$p50 "
    VALS["$id|$broker|p99"]+="$p99 "
    VALS["$id|$broker|replay"]+="$replay "
    if [ "$replay" != 0 ]; then
        printf '  %s %s: acked %.0f msgs/s, replay %.0f msgs/s\n' "$broker" "$id" "$tput" \
            "$replay" >&2
    else
        printf '  %s %s: acked %.0f msgs/s, ack p50 %.0f us, p99 %.0f us\n' "$broker" "$id" \
            "$tput" "$p50" "$p99" >&2
    fi
}

if [ "$DO_DURABLE" -eq 1 ]; then
    stop_servers # the core rows' servers, if any
    start_durable
    DBROKERS=(rmq0 rmq1 rmq2 js)
    [ "$JS_ALWAYS" -eq 0 ] || DBROKERS+=(js_always)
    echo "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); durable: $RUNS run(s) of" \
        "${#DROWS[@]} rows x ${#DBROKERS[@]} servers + replay, ${DUR_MS} ms each" >&2
    for run in $(seq 1 "$RUNS"); do
        echo "durable round $run/$RUNS" >&2
        for r in "${DROWS[@]}"; do
            IFS='|' read -r id _label args <<<"$r"
            n=${#DBROKERS[@]}
            for i in $(seq 0 $((n - 1))); do
                # shellcheck disable=SC2086 # args is a list of words on purpose
                run_durable "${DBROKERS[$(((i + run - 1) % n))]}" "$id" "$run" $args \
                    --duration "$DUR_MS"
            done
        done
        # replay: a fixed number of messages, then everything read back
        order=(rmq1 js)
        [ $((run % 2)) -eq 1 ] || order=(js rmq1)
        for b in "${order[@]}"; do
            run_durable "$b" replay "$run" --pubs 16 --size 128 --msgs "$REPLAY_MSGS" --replay
        done
    done
fi

# ---- Cluster: servers and runs ----

# Cluster rows: id | label | bench arguments (the same for both clusters;
# run_one adds --sub-servers). --msgs: about 1-3 s a run here.
CROWS=(
    "c1x2_16|1 pub (node 1) -> 2 subs (nodes 2, 3), 16 B|--pubs 1 --subs 2 --size 16 --msgs 600000"
    "c1x2_256|1 pub (node 1) -> 2 subs (nodes 2, 3), 256 B|--pubs 1 --subs 2 --size 256 --msgs 400000"
    "c1x2_4k|1 pub (node 1) -> 2 subs (nodes 2, 3), 4 KiB|--pubs 1 --subs 2 --size 4096 --msgs 100000"
)

# rmq_routes_up PORT: the number of routes in state up of the ringmq node
# whose clients listen on PORT.
rmq_routes_up() {
    timeout 5 "$RINGMQ" --server "$HOST:$1" cluster --json 2>/dev/null |
        jq '[.routes[]? | select(.state == "up")] | length' 2>/dev/null || echo 0
}

# nats_routes_up PORT: the number of routes of the nats node whose
# monitoring listens on PORT (/routez).
nats_routes_up() {
    curl -s --max-time 2 "http://$HOST:$1/routez" 2>/dev/null | jq '.num_routes // 0' \
        2>/dev/null || echo 0
}

# start_cluster: three ringmqd and three nats-server nodes, then wait (at
# most 10 s) until each node has its 2 routes up.
start_cluster() {
    local i routes conf up n
    CWORK=$(mktemp -d "${TMPDIR:-/tmp}/ringmq-cluster.XXXXXX")
    for i in 0 1 2; do
        routes=()
        [ "$i" -eq 0 ] || routes=(--routes "$HOST:$((RMQC_PORT + 10))")
        "$RINGMQD" --storage off --shards 1 --listen "$HOST:$((RMQC_PORT + i))" \
            --cluster-listen "$HOST:$((RMQC_PORT + 10 + i))" --node-name "n$((i + 1))" \
            "${routes[@]}" --log-level warn >"$RESULTS/ringmqd-cluster$i.log" 2>&1 &
        PIDS+=($!)
        conf="$CWORK/nats$i.conf"
        {
            printf 'listen: "%s:%s"\nhttp: "%s:%s"\n' "$HOST" $((NATSC_PORT + i)) "$HOST" \
                $((NATSC_PORT + 20 + i))
            printf 'cluster {\n  name: bench\n  listen: "%s:%s"\n' "$HOST" $((NATSC_PORT + 10 + i))
            [ "$i" -eq 0 ] || printf '  routes: [nats-route://%s:%s]\n' "$HOST" $((NATSC_PORT + 10))
            printf '}\n'
        } >"$conf"
        GOMAXPROCS=1 "$NATS_SERVER" -c "$conf" >"$RESULTS/nats-cluster$i.log" 2>&1 &
        PIDS+=($!)
    done
    for i in 0 1 2; do
        wait_port $((RMQC_PORT + i))
        wait_port $((NATSC_PORT + i))
    done
    HAVE_CURL=1
    if ! command -v curl >/dev/null; then
        # no /routez check: a bounded 2 s, and the bench's probe messages
        # check that the subscribers' interest crosses the routes
        HAVE_CURL=0
        echo "compare.sh: no curl: waiting 2 s for the nats routes instead of /routez" >&2
        sleep 2
    fi
    for n in $(seq 1 100); do
        up=1
        for i in 0 1 2; do
            [ "$(rmq_routes_up $((RMQC_PORT + i)))" = 2 ] || up=0
            [ "$HAVE_CURL" -eq 0 ] || [ "$(nats_routes_up $((NATSC_PORT + 20 + i)))" = 2 ] ||
                up=0
        done
        [ "$up" -eq 0 ] || break
        sleep 0.1
    done
    [ "$up" -eq 1 ] || die "the clusters' routes are not all up after 10 s (logs in $RESULTS)"
    echo "clusters: ringmqd n1-n3 on $HOST:$RMQC_PORT-$((RMQC_PORT + 2)) (routes" \
        "$((RMQC_PORT + 10))-$((RMQC_PORT + 12))), nats-server on" \
        "$HOST:$NATSC_PORT-$((NATSC_PORT + 2)) (routes $((NATSC_PORT + 10))-$((NATSC_PORT + 12))):" \
        "every node has 2 routes up (after $(((n - 1) * 100)) ms of polling)" >&2
}

if [ "$DO_CLUSTER" -eq 1 ]; then
    stop_servers # the durable rows' servers, if any
    start_cluster
    echo "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); cluster: $RUNS run(s) of" \
        "${#CROWS[@]} rows" >&2
    for run in $(seq 1 "$RUNS"); do
        echo "cluster round $run/$RUNS" >&2
        for r in "${CROWS[@]}"; do
            IFS='|' read -r id _label args <<<"$r"
            order=(cnats cringmq)
            [ $((run % 2)) -eq 1 ] || order=(cringmq cnats)
            for b in "${order[@]}"; do
                # shellcheck disable=SC2086 # args is a list of words on purpose
                run_one "$b" "$id" "$run" $args
            done
        done
    done
fi

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

core_report() {
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

ms() {
    awk -v v="$1" 'BEGIN { if (v == "-") print "-"; else printf "%.2f", v / 1000 }'
}

# dcell ID BROKER: "msgs/s" median (with failures), and p50 / p99 ms.
dcell() {
    local f=${FAILS["$1|$2"]:-0}
    cell "$(fmt_rate "$(median <<<"${VALS["$1|$2|tput"]:-}")")" "$f"
}

dlat() {
    echo "$(ms "$(median <<<"${VALS["$1|$2|p50"]:-}")") / $(ms "$(median <<<"${VALS["$1|$2|p99"]:-}")")"
}

durable_report() {
    local r id label i js jsname a b
    echo "### Durable topics: acked publishes, ringmq vs JetStream (medians of $RUNS run(s))"
    echo
    echo "Each run: \`bench SUBJECT --durable TOPIC --window 256 --duration $DUR_MS\` (plus the"
    echo "row's arguments); ack latency = publish call to ack, at a window of 256 per publisher."
    echo "Stores on $FSTYPE under TMPDIR; ringmqd --shards 2, nats-server GOMAXPROCS=2."
    echo "$JS_NOTE"
    echo
    echo "| workload | ringmq --fsync | ringmq acked msgs/s | ringmq ack p50 / p99 ms |" \
        "JetStream | JetStream acked msgs/s | JetStream ack p50 / p99 ms | ringmq/JetStream |"
    echo "|---|---|---:|---:|---|---:|---:|---:|"
    for r in "${DROWS[@]}"; do
        IFS='|' read -r id label _args <<<"$r"
        for i in "${!FSYNC_MODES[@]}"; do
            js=js
            jsname=default
            if [ "$i" -eq 0 ] && [ "$JS_ALWAYS" -eq 1 ]; then
                js=js_always
                jsname="sync always"
            fi
            a=$(fmt_rate "$(median <<<"${VALS["$id|rmq$i|tput"]:-}")")
            b=$(fmt_rate "$(median <<<"${VALS["$id|$js|tput"]:-}")")
            echo "| $label | ${FSYNC_MODES[$i]} | $(dcell "$id" "rmq$i") | $(dlat "$id" "rmq$i") |" \
                "$jsname | $(dcell "$id" "$js") | $(dlat "$id" "$js") | $(ratio "$a" "$b") |"
        done
    done
    echo
    echo "### Durable topics: replay (medians of $RUNS run(s))"
    echo
    echo "$REPLAY_MSGS messages of 128 B published by 16 publishers, then read back from the"
    echo "first on a new connection (ringmq: START_ALL topic subscription, ringmqd --fsync"
    echo "interval=100; JetStream: ordered push consumer, DeliverAll)."
    echo
    echo "| workload | ringmq replay msgs/s | JetStream replay msgs/s | ringmq/JetStream |"
    echo "|---|---:|---:|---:|"
    a=$(fmt_rate "$(median <<<"${VALS["replay|rmq1|replay"]:-}")")
    b=$(fmt_rate "$(median <<<"${VALS["replay|js|replay"]:-}")")
    echo "| replay $REPLAY_MSGS x 128 B | $(cell "$a" "${FAILS["replay|rmq1"]:-0}") |" \
        "$(cell "$b" "${FAILS["replay|js"]:-0}") | $(ratio "$a" "$b") |"
    echo
    echo "A failed run (an error ack, a timeout, a replay short of what the topic stored) is"
    echo "left out of the median and counted. Raw results: $RAW"
}

cluster_report() {
    local r id label a b q fr fn
    echo "### Cluster: 3 ringmq nodes vs 3 nats-server nodes (medians of $RUNS run(s))"
    echo
    echo "Publisher on node 1, one subscriber on node 2 and one on node 3 (\`bench"
    echo "--sub-servers\`); every message crosses a route. ringmqd --shards 1 --storage off"
    echo "per node, nats-server GOMAXPROCS=1 per node; six servers and the bench clients"
    echo "share $(nproc) CPUs."
    echo
    echo "| workload | metric | ringmq | nats | ringmq/nats | lost msgs ringmq / nats | target | met |"
    echo "|---|---|---:|---:|---:|---:|---|---|"
    for r in "${CROWS[@]}"; do
        IFS='|' read -r id label _args <<<"$r"
        fr=${FAILS["$id|cringmq"]:-0}
        fn=${FAILS["$id|cnats"]:-0}
        a=$(fmt_rate "$(median <<<"${VALS["$id|cringmq|tput"]:-}")")
        b=$(fmt_rate "$(median <<<"${VALS["$id|cnats|tput"]:-}")")
        q=$(ratio "$a" "$b")
        echo "| $label | delivered msgs/s | $(cell "$a" "$fr") | $(cell "$b" "$fn") | $q |" \
            "${LOST["$id|cringmq"]:-0} / ${LOST["$id|cnats"]:-0} | >= 1.50 |" \
            "$(met "$(verdict "$q" ">=" 1.50)" "$fr") |"
    done
    echo
    echo "Lost: summed over all runs of the row (a run that lost any is a failed run and"
    echo "left out of the median). Raw results: $RAW"
}

report() {
    local sep=""
    if [ "$DO_CORE" -eq 1 ]; then
        core_report
        sep=1
    fi
    if [ "$DO_DURABLE" -eq 1 ]; then
        [ -z "$sep" ] || echo
        durable_report
        sep=1
    fi
    if [ "$DO_CLUSTER" -eq 1 ]; then
        [ -z "$sep" ] || echo
        cluster_report
    fi
}

echo >&2
report | tee "$RESULTS/report.md"
if [ -n "$OUT" ]; then
    cp "$RESULTS/report.md" "$OUT"
    echo "written to $OUT" >&2
fi
