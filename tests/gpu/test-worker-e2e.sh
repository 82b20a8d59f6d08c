#!/usr/bin/env bash
# The CUDA backend's worker process through the whole mediator, on the mock
# CUDA runtime (no GPU needed): a guest (vgpu-client, sim transport) works,
# its GPU worker is SIGKILLed between requests, the next requests still
# succeed on a new worker (restarts 1 in --status), the client's selftest and
# hostile runs pass, and stopping the mediator leaves no worker behind.
#
# usage: test-worker-e2e.sh MEDIATOR CLIENT
set -uo pipefail

med=${1:?mediator}
client=${2:?client}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vgpu-worker-e2e.XXXXXX")
sock=$tmp/med.sock
med_pid=
fails=0

cleanup() {
  if [ -n "$med_pid" ]; then
    kill "$med_pid" 2>/dev/null
    wait "$med_pid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

check() {
  local name=$1; shift
  if "$@"; then
    echo "PASS  $name"
  else
    echo "FAIL  $name"
    fails=$((fails + 1))
  fi
}

cl() { timeout 60 "$client" --transport sim --socket "$sock" --timeout-ms 10000 "$@"; }

worker_of() { pgrep -P "$1" 2>/dev/null | head -1; }

"$med" --backend=cuda --socket-path="$sock" --timeout-ms=5000 >"$tmp/med.log" 2>&1 &
med_pid=$!
for _ in $(seq 100); do
  [ -S "$sock" ] && break
  sleep 0.1
done
if ! [ -S "$sock" ]; then
  echo "FAIL  mediator did not start"; cat "$tmp/med.log"; exit 1
fi

w1=$(worker_of "$med_pid")
check "worker process running" test -n "$w1"
check "vector-add before" cl --vm-id 7 vector-add -n 1000003
check "kill the worker (pid ${w1:-none})" kill -9 "${w1:-0}"
sleep 0.2
check "vector-add after the kill" cl --vm-id 7 vector-add -n 1048576
w2=$(worker_of "$med_pid")
check "a new worker (pid ${w2:-none})" test -n "$w2" -a "$w2" != "$w1"
check "selftest" cl --vm-id 8 selftest
check "hostile" cl --vm-id 9 hostile --seconds 2
status=$(timeout 10 "$med" --status --socket-path="$sock" 2>&1)
check "status: worker pid $w2, restarts 1" grep -q "worker pid $w2, restarts 1" <<<"$status"

kill "$med_pid"
wait "$med_pid"
rc=$?
med_pid=
check "mediator exit status 0 (got $rc)" test "$rc" = 0
sleep 0.2
check "no worker left" test -z "$(ps -o pid= -p "$w2" 2>/dev/null)"

if [ "$fails" != 0 ]; then
  echo "--- mediator log"
  cat "$tmp/med.log"
fi
echo "$fails failed"
[ "$fails" = 0 ]
