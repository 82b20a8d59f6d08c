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
NAME=bench-in-vm
. "$top/bench/vm-bench-lib.sh"
secs=${1:-3}
[[ "$secs" =~ ^[0-9]+$ ]] && [ "$secs" -ge 1 ] && [ "$secs" -le 60 ] ||
    { echo "usage: bench-in-vm.sh [SECONDS_PER_CASE 1..60]" >&2; exit 2; }
vmbench_setup
vmbench_start_mediator

echo "# in-VM bench $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
vmbench_host
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
