#!/usr/bin/env bash
# tests/bench/relay_replay.sh - what a replay costs when the client is on a
# node that does not store the topic (the replay is relayed from the owner,
# broker/rproxy.c), against the same replay read on the owner itself.
#
#   tests/bench/relay_replay.sh [--runs R] [--msgs N] [--size BYTES] [--build-dir DIR]
#
# Starts two ringmqd (--shards 2, --fsync interval=100) as one cluster on
# loopback (clients 127.0.0.1:17460-1, routes 17470-1; node n1 owns the
# topic), each store under one mktemp -d removed on exit. Each run: `ringmq
# bench SUBJ --durable TOPIC --msgs N --size BYTES --replay --rm` against
# n1, once replaying from n1 (local) and once from n2 (`--sub-servers`,
# relayed), alternating which goes first. Prints replay msgs/s of each run
# and the medians, and relayed/local. Not a peer comparison: nats-server
# 2.9 has no comparable single-owner stream placement here; see
# docs/PERFORMANCE.md. Every run is bounded by --timeout and timeout(1).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD="$ROOT/build-bench"
RUNS=3
MSGS=200000
SIZE=128
while [ $# -gt 0 ]; do
    case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --msgs) MSGS=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --build-dir) BUILD=$2; shift 2 ;;
    *) echo "usage: $0 [--runs R] [--msgs N] [--size BYTES] [--build-dir DIR]" >&2; exit 2 ;;
    esac
done
RINGMQD="$BUILD/broker/ringmqd"
RINGMQ="$BUILD/client/ringmq"
[ -x "$RINGMQD" ] && [ -x "$RINGMQ" ] || {
    echo "build first: cmake -S . -B $BUILD -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF &&" \
        "cmake --build $BUILD -j" >&2
    exit 2
}
command -v jq >/dev/null || { echo "needs jq" >&2; exit 2; }

HOST=127.0.0.1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ringmq-relay.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

for i in 0 1; do
    routes=()
    [ "$i" -eq 1 ] && routes=(--routes "$HOST:17470")
    mkdir -p "$WORK/n$i"
    "$RINGMQD" --listen "$HOST:$((17460 + i))" --cluster-listen "$HOST:$((17470 + i))" \
        --node-name "n$((i + 1))" --data-dir "$WORK/n$i" --fsync interval=100 --shards 2 \
        "${routes[@]}" --log-level warn >"$WORK/n$i.log" 2>&1 &
    PIDS+=($!)
done
for _ in $(seq 100); do
    n=$(timeout 5 "$RINGMQ" --server "$HOST:17461" cluster --json 2>/dev/null |
        jq '[.routes[] | select(.state == "up")] | length' 2>/dev/null || echo 0)
    [ "$n" = 1 ] && break
    sleep 0.1
done
[ "$n" = 1 ] || { echo "the route n1-n2 is not up after 10 s (logs in $WORK)" >&2; exit 1; }

one() { # where: local|relayed -> prints replay msgs/s
    local extra=()
    [ "$1" = relayed ] && extra=(--sub-servers "$HOST:17461")
    timeout 120 "$RINGMQ" --server "$HOST:17460" bench relay.x --durable RELAY --msgs "$MSGS" \
        --size "$SIZE" --replay --rm --timeout 60000 --json "${extra[@]}" |
        jq -r 'if .replay.msgs == .replay.expected and .replay.expected > 0 then .replay.msgs_per_sec else "F" end'
}

declare -A got=([local]="" [relayed]="")
for r in $(seq "$RUNS"); do
    if [ $((r % 2)) -eq 1 ]; then order="local relayed"; else order="relayed local"; fi
    for w in $order; do
        v=$(one "$w")
        got[$w]="${got[$w]} $v"
        echo "run $r $w: $v replay msgs/s" >&2
    done
done
median() { tr ' ' '\n' | grep -v '^$' | grep -v F | sort -g | awk '{a[NR]=$1} END {print (NR ? a[int((NR + 1) / 2)] : 0)}'; }
ml=$(echo "${got[local]}" | median)
mr=$(echo "${got[relayed]}" | median)
echo "replay of $MSGS x $SIZE B, medians of $RUNS: local (owner) $ml msgs/s, relayed (other node)" \
    "$mr msgs/s, relayed/local $(awk -v a="$mr" -v b="$ml" 'BEGIN {printf "%.2f", b ? a / b : 0}')"
echo "runs: local${got[local]}; relayed${got[relayed]}"
