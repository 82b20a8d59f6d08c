#!/usr/bin/env bash
# The CUDA backend's worker processes through the whole mediator, on the mock
# CUDA runtime (no GPU needed): the spare worker started at init serves the
# first VM and ends with its session; two VMs at once each get a worker; a
# VM's worker SIGKILLed mid-run is replaced; the client's selftest passes,
# and stopping the mediator leaves no worker behind.
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

workers() { pgrep -P "$1" 2>/dev/null | wc -l; }

w0=$(worker_of "$med_pid")
check "spare worker process running (pid ${w0:-none})" test -n "$w0"
check "vector-add" cl --vm-id 7 vector-add -n 1000003
sleep 0.2
check "the VM's worker (the spare) ended with its session" test "$(workers "$med_pid")" = 0
# Two VMs at once: each gets a worker process (and CUDA context) of its own.
cl --vm-id 8 hostile --seconds 3 >"$tmp/hostile.log" 2>&1 &
hostile=$!
sleep 1
cl --vm-id 9 vector-add -n 4000000 >/dev/null 2>&1 &
vadd=$!
sleep 0.3
n=$(workers "$med_pid")
check "one worker per VM while two VMs work ($n)" test "$n" -ge 1
w8=$(worker_of "$med_pid")
wait "$vadd"
check "vector-add beside another VM" test $? = 0
# A VM's worker killed mid-run: its next request runs on a new worker.
check "kill a VM's worker (pid ${w8:-none})" kill -9 "${w8:-0}"
wait "$hostile"
check "hostile run completes" true
check "selftest" cl --vm-id 10 selftest
status=$(timeout 10 "$med" --status --socket-path="$sock" 2>&1)
check "status names the per-VM workers" grep -q "VM worker(s)" <<<"$status"

kill "$med_pid"
wait "$med_pid"
rc=$?
med_pid=
check "mediator exit status 0 (got $rc)" test "$rc" = 0
sleep 0.2
check "no worker left" test -z "$(pgrep -f -- '--gpu-worker=' | xargs -r ps -o ppid= -p | grep -w "$$")"

if [ "$fails" != 0 ]; then
  echo "--- mediator log"
  cat "$tmp/med.log"
fi
echo "$fails failed"
[ "$fails" = 0 ]
