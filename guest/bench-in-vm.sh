#!/usr/bin/env bash
# Guest-observed round trips: starts its own vgpu-mediator (--backend=auto,
# or $VGPU_BENCH_BACKEND) on a private socket, boots one VM that runs
# `vgpu-client bench` at queue depth 1 (doorbell eventfd, then KICK
# messages) and then 16, prints both tables with
# the machine, accelerator and backend, and stops everything it started.
#
# usage: guest/bench-in-vm.sh [SECONDS_PER_CASE]        (default 3)
#
# On the GPU host (bare metal, KVM usable):
#   make build qemu guest && VGPU_ACCEL=kvm guest/bench-in-vm.sh 3 | tee vm-bench.txt
# Here (no GPU, nested KVM unusable): VGPU_ACCEL=tcg guest/bench-in-vm.sh
#
# Environment: VGPU_BUILD_DIR (default ./build), VGPU_QEMU, VGPU_GUEST_DIR,
# VGPU_MEDIATOR, VGPU_ACCEL (default kvm:tcg), VGPU_BENCH_BACKEND (default auto).
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${VGPU_BUILD_DIR:-$top/build}
export VGPU_QEMU=${VGPU_QEMU:-$build/qemu/qemu-system-x86_64}
export VGPU_GUEST_DIR=${VGPU_GUEST_DIR:-$build/guest}
export VGPU_ACCEL=${VGPU_ACCEL:-kvm:tcg}
mediator=${VGPU_MEDIATOR:-$build/mediator/vgpu-mediator}
backend=${VGPU_BENCH_BACKEND:-auto}
secs=${1:-3}
[[ "$secs" =~ ^[0-9]+$ ]] && [ "$secs" -ge 1 ] && [ "$secs" -le 60 ] ||
    { echo "usage: bench-in-vm.sh [SECONDS_PER_CASE 1..60]" >&2; exit 2; }
[ -x "$mediator" ] || { echo "bench-in-vm: $mediator missing (make build)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/vgpu-vmbench.XXXXXX")
med_pid=""
cleanup() {
    local i
    if [ -n "$med_pid" ] && kill -0 "$med_pid" 2>/dev/null; then
        kill -TERM "$med_pid"
        for ((i = 0; i < 100; i++)); do kill -0 "$med_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$med_pid" 2>/dev/null
        wait "$med_pid" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$mediator" --socket-path "$work/m.sock" --backend "$backend" --log-level warn \
    >"$work/mediator.log" 2>&1 &
med_pid=$!
for ((i = 0; i < 100; i++)); do
    [ -S "$work/m.sock" ] && break
    kill -0 "$med_pid" 2>/dev/null || { cat "$work/mediator.log"; exit 1; }
    sleep 0.1
done

echo "# in-VM bench $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
echo "# host: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# qemu: $("$VGPU_QEMU" -version | head -n 1), accel $VGPU_ACCEL; guest $(grep -m1 '^kernel ' "$VGPU_GUEST_DIR/manifest.txt" 2>/dev/null | cut -d' ' -f2)"
rc=0
# Depth 1 twice, the doorbell as the ioeventfd (default) and as KICK messages
# through QEMU, so that the two paths stand side by side; then depth 16.
for run in "1 on" "1 off" "16 on"; do
    set -- $run
    depth=$1 ioeventfd=$2
    echo "# depth $depth, doorbell $( [ "$ioeventfd" = on ] && echo 'eventfd (ioeventfd=on)' || echo 'KICK messages (ioeventfd=off)')"
    "$top/scripts/vm.sh" --name vm-bench --vm-id 1 --priority 0 --weight 1 \
        --socket "$work/m.sock" --timeout $((60 + 8 * secs)) --ioeventfd "$ioeventfd" \
        --run "bench --seconds $secs --depth $depth" >"$work/vm.out" 2>&1
    r=$?
    grep -E '^\[vm-bench\] (bench:|case|nop|vector_add|vgpu-client:)' "$work/vm.out" | sed 's/^\[vm-bench\] //'
    [ "$r" -eq 0 ] || { echo "# depth $depth: guest rc $r"; tail -n 20 "$work/vm.out"; rc=1; }
done
grep -q 'FALLING BACK' "$work/mediator.log" &&
    echo "# mediator: $(grep -m1 -o 'backend auto:.*' "$work/mediator.log")"
exit $rc
