#!/bin/sh
# check_cli.sh CLI FAKE_BROKER - exit codes and output of the `ringmq` CLI
# against the in-process fake server (fake_broker), on 127.0.0.1 only.
# Every command runs under `timeout`, the fake broker has a lifetime cap.
set -u
CLI=$1
FAKE=$2
T=$(mktemp -d)
FPID=
cleanup() {
    [ -n "$FPID" ] && kill "$FPID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

"$FAKE" 60 >"$T/port" &
FPID=$!
i=0
while [ ! -s "$T/port" ] && [ $i -lt 100 ]; do
    sleep 0.05
    i=$((i + 1))
done
RINGMQ_SERVER=127.0.0.1:$(cat "$T/port")
export RINGMQ_SERVER
fail=0

# check WANT_RC CMD... : run CMD (bounded), compare its exit code
check() {
    want=$1
    shift
    timeout 30 "$@" >"$T/out" 2>"$T/err"
    rc=$?
    if [ "$rc" -ne "$want" ]; then
        echo "FAIL: '$*' exited $rc, want $want"
        sed 's/^/  stderr: /' "$T/err"
        fail=1
    fi
}

# expect FILE TEXT : FILE must equal TEXT
expect() {
    if [ "$(cat "$1")" != "$2" ]; then
        echo "FAIL: got:"
        sed 's/^/  | /' "$1"
        echo "want:"
        printf '%s\n' "$2" | sed 's/^/  | /'
        fail=1
    fi
}

check 0 "$CLI" --help
grep -q "exit codes" "$T/out" || { echo "FAIL: --help lists no exit codes"; fail=1; }
check 0 "$CLI" --version
check 2 "$CLI"
check 2 "$CLI" frob
check 2 "$CLI" sub a --count x
check 2 "$CLI" --server nonsense pub a b
check 4 "$CLI" pub 'a b' x
check 4 "$CLI" pub 'a.*' x
check 4 "$CLI" sub 'a..b'
check 4 "$CLI" sub a --queue 'q w'
check 5 "$CLI" req svc.none hi --timeout 200
check 0 "$CLI" pub nobody.listens hello

# a port with nothing behind it: the fake, stopped
"$FAKE" 1 >"$T/port2" &
P2=$!
i=0
while [ ! -s "$T/port2" ] && [ $i -lt 100 ]; do
    sleep 0.05
    i=$((i + 1))
done
kill "$P2"
wait "$P2" 2>/dev/null
check 3 "$CLI" --server "127.0.0.1:$(cat "$T/port2")" pub a b

# sub prints '[#n] subject: payload', exits after --count
timeout 30 "$CLI" sub 'demo.>' --count 3 >"$T/sub" 2>"$T/suberr" &
SPID=$!
sleep 0.5
check 0 "$CLI" pub demo.a hello
printf 'line one\nline two\n' >"$T/in"
check 0 sh -c "\"$CLI\" pub demo.b <\"$T/in\""
wait "$SPID"
src=$?
[ "$src" -eq 0 ] || { echo "FAIL: sub exited $src"; cat "$T/suberr"; fail=1; }
expect "$T/sub" "[#1] demo.a: hello
[#2] demo.b: line one
[#3] demo.b: line two"

# --raw prints payloads only; RINGMQ_SERVER can be overridden by --server
timeout 30 "$CLI" --server "$RINGMQ_SERVER" sub raw.x --raw --count 2 >"$T/raw" 2>&1 &
SPID=$!
sleep 0.5
check 0 "$CLI" pub raw.x "first payload"
check 0 "$CLI" pub raw.x "second"
wait "$SPID"
expect "$T/raw" "first payload
second"

# bench: nothing lost on the fake, text and JSON
check 0 "$CLI" bench bench.t --pubs 2 --subs 2 --msgs 2000 --size 32
grep -q "lost: *0 of 4000" "$T/out" || { echo "FAIL: bench text"; cat "$T/out"; fail=1; }
check 0 "$CLI" bench bench.j --pubs 1 --subs 1 --msgs 500 --size 0 --json
grep -q '"lost":0' "$T/out" || { echo "FAIL: bench json"; cat "$T/out"; fail=1; }
check 4 "$CLI" bench 'bench.*'
# --durable takes --sub-servers only for --replay, and one server
check 2 "$CLI" bench bench.d --durable D --sub-servers 127.0.0.1:1
check 2 "$CLI" bench bench.d --durable D --replay --sub-servers 127.0.0.1:1,127.0.0.1:2

# ---- durable topics (the fake keeps topics in memory; no replay) ----
check 2 "$CLI" topic
check 2 "$CLI" topic frob
check 2 "$CLI" topic add dt
check 2 "$CLI" topic add dt --subjects 'dt.>' --max-age 5
check 2 "$CLI" topic add dt --subjects 'dt.>,'
check 4 "$CLI" topic add 'd t' --subjects 'dt.>'
check 4 "$CLI" topic add dt --subjects 'dt..x'
check 4 "$CLI" topic info 'a.b'
check 2 "$CLI" consume dt
check 2 "$CLI" consume dt w --count 0
check 2 "$CLI" consume dt w --ack-wait 10
check 2 "$CLI" consumer
check 2 "$CLI" consumer rm dt
check 2 "$CLI" sub dt.x --start all
check 2 "$CLI" sub dt.x --topic dt --start first
check 2 "$CLI" sub dt.x --topic dt --queue q
check 2 "$CLI" pub --msg-id m1 dt.x hi

check 0 "$CLI" topic add dt --subjects 'dt.>,dx.*' --max-age 7d --max-msgs 100
grep -q "^max age: *7d$" "$T/out" || { echo "FAIL: topic add output"; cat "$T/out"; fail=1; }
check 6 "$CLI" topic add dt --subjects 'other.>'
check 0 "$CLI" pub --ack dt.a first
expect "$T/out" "topic=dt seq=1"
check 0 "$CLI" pub --ack --msg-id m1 dx.b second
expect "$T/out" "topic=dt seq=2"
check 0 "$CLI" pub --ack --msg-id m1 dx.b again
expect "$T/out" "topic=dt seq=2 (duplicate)"
check 5 "$CLI" pub --ack --timeout 200 nowhere.x hi
check 0 "$CLI" topic ls
grep -q "^dt  *2  *11  *2  dt.>,dx.\*$" "$T/out" || { echo "FAIL: topic ls"; cat "$T/out"; fail=1; }
check 0 "$CLI" topic info dt
grep -q "^messages: *2$" "$T/out" || { echo "FAIL: topic info msgs"; cat "$T/out"; fail=1; }
grep -q "^last: *seq 2 at 20[0-9-]*T[0-9:.]*Z$" "$T/out" || { echo "FAIL: topic info last"; cat "$T/out"; fail=1; }
check 6 "$CLI" topic info nosuch

# sub --topic prints seq; consume prints seq and deliveries and acks
timeout 30 "$CLI" sub 'dt.>' --topic dt --start all --count 2 >"$T/tsub" 2>&1 &
SPID=$!
timeout 30 "$CLI" consume dt work --count 2 --max-inflight 10 >"$T/cons" 2>&1 &
CPID=$!
sleep 0.5
check 0 "$CLI" pub dt.x one
check 0 "$CLI" pub dt.y two
wait "$SPID"
wait "$CPID"
expect "$T/tsub" "[#1] dt.x seq=3: one
[#2] dt.y seq=4: two"
expect "$T/cons" "[#1] dt.x seq=3 deliveries=1: one
[#2] dt.y seq=4 deliveries=1: two"
check 0 "$CLI" consumer ls dt
grep -q "^work  *4  *0  *0  *0  *10  *30s  *unlimited$" "$T/out" || { echo "FAIL: consumer ls"; cat "$T/out"; fail=1; }
check 0 "$CLI" consumer rm dt work
check 6 "$CLI" consumer rm dt work
check 0 "$CLI" topic rm dt
check 6 "$CLI" topic rm dt
check 0 "$CLI" topic ls
expect "$T/out" "(no topics)"

[ $fail -eq 0 ] && echo "check_cli: all passed"
exit $fail
