#!/usr/bin/env bash
# Broker RSS under a steady fan-out load (issue 3: RSS stays flat over 60 s).
# Usage: tests/bench/rss_flat.sh [SECONDS] [RATE]   (defaults: 60 s, 50000 msgs/s)
# Starts its own ringmqd (--shards 2) on an ephemeral loopback port, runs one
# publisher at RATE to 4 subscribers with 256-byte payloads for SECONDS, and
# prints the broker's VmRSS every 5 s. Needs a Release build in build-bench/
# (tests/bench/compare.sh makes one) or RINGMQ_BUILD=dir.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
rate=${2:-50000}
build=${RINGMQ_BUILD:-build-bench}
[ -x "$build/broker/ringmqd" ] || { echo "no $build/broker/ringmqd (run compare.sh first)" >&2; exit 2; }
dir=$(mktemp -d)
"$build/broker/ringmqd" --listen 127.0.0.1:0 --port-file "$dir/port" --shards 2 \
  --log-level warn 2>"$dir/log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.05; done
port=$(cat "$dir/port")
"$build/client/ringmq" --server "127.0.0.1:$port" bench rss.load --pubs 1 --subs 4 \
  --size 256 --rate "$rate" --msgs $((secs * rate)) --timeout $(((secs + 30) * 1000)) \
  >"$dir/bench" 2>&1 &
bench=$!
echo "t(s) VmRSS(KiB)"
for t in $(seq 0 5 "$secs"); do
  echo "$t $(awk '/VmRSS/ {print $2}' "/proc/$pid/status")"
  [ "$t" -lt "$secs" ] && sleep 5
done
wait $bench || true
tail -3 "$dir/bench"
