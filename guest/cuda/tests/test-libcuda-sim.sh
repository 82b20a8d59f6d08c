#!/bin/sh
# SPDX-License-Identifier: MIT
# usage: test-libcuda-sim.sh MEDIATOR PROGRAM
# Starts MEDIATOR (vgpu-mediator-cuda-mock) on a private socket and runs
# PROGRAM against it with the product libcuda.so.1 (LD_LIBRARY_PATH from
# the test's environment) over libvgpu's sim transport.
set -eu
med=$1 prog=$2
tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || :; wait "$pid" 2>/dev/null || :; rm -rf "$tmp"' EXIT
sock=$tmp/med.sock
"$med" --backend=cuda --socket-path="$sock" --timeout-ms=5000 >"$tmp/med.log" 2>&1 &
pid=$!
i=0
while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if VGPU_TRANSPORT=sim VGPU_SOCKET=$sock timeout 60 "$prog"; then
    exit 0
fi
echo "--- mediator log"; cat "$tmp/med.log"
exit 1
