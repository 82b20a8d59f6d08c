#!/bin/sh
# SPDX-License-Identifier: MIT
# usage: test-libcuda-sim.sh MEDIATOR BACKEND WANT_RC PROGRAM
# Starts MEDIATOR with --backend=BACKEND on a private socket and runs
# PROGRAM against it with the product libcuda.so.1 (LD_LIBRARY_PATH from
# the test's environment) over libvgpu's sim transport; PROGRAM must exit
# with WANT_RC.
set -eu
med=$1 backend=$2 want=$3 prog=$4
tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || :; wait "$pid" 2>/dev/null || :; rm -rf "$tmp"' EXIT
sock=$tmp/med.sock
"$med" --backend="$backend" --socket-path="$sock" --timeout-ms=5000 >"$tmp/med.log" 2>&1 &
pid=$!
i=0
while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
rc=0
VGPU_TRANSPORT=sim VGPU_SOCKET=$sock timeout 60 "$prog" || rc=$?
if [ "$rc" -eq "$want" ]; then
    exit 0
fi
echo "exit status $rc, want $want"
echo "--- mediator log"; cat "$tmp/med.log"
exit 1
