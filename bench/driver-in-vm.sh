#!/usr/bin/env bash
# The guest driver's benchmark: starts its own vgpu-mediator on a private
# socket, boots one VM (9 queue pairs) that runs guest/run/drv-bench, and
# prints its lines: NOP round trip p50/p99 through vgpu.ko (libvgpu "dev"
# transport) beside uio_pci_generic (the "pci" transport, polling and with
# interrupts) in the same VM run, then the aggregate NOP rate of 1, 4 and 8
# user processes on their own vgpu.ko queues. Not a timed test.
#
# usage: bench/driver-in-vm.sh [COUNT [SECONDS]]    (defaults 5000 NOPs, 5 s)
#
# Environment: VGPU_BUILD_DIR (default ./build), VGPU_QEMU, VGPU_GUEST_DIR,
# VGPU_MEDIATOR, VGPU_ACCEL (default kvm:tcg), VGPU_BENCH_BACKEND (default auto).
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
NAME=driver-in-vm
. "$top/bench/vm-bench-lib.sh"
count=${1:-5000}
secs=${2:-5}
[[ "$count" =~ ^[0-9]+$ ]] && [ "$count" -ge 100 ] && [[ "$secs" =~ ^[0-9]+$ ]] && [ "$secs" -ge 1 ] ||
    { echo "usage: driver-in-vm.sh [COUNT >= 100 [SECONDS >= 1]]" >&2; exit 2; }
vmbench_setup
vmbench_start_mediator

echo "# guest driver bench $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
vmbench_host
echo "# qemu: $("$VGPU_QEMU" -version | head -n 1), accel $VGPU_ACCEL, 1 vCPU; guest $(grep -m1 '^kernel ' "$VGPU_GUEST_DIR/manifest.txt" 2>/dev/null | cut -d' ' -f2)"
"$top/scripts/vm.sh" --name vm-drvbench --vm-id 1 --priority 0 --weight 1 --queues 9 \
    --socket "$work/m.sock" --timeout $((120 + 6 * secs)) --run "drv-bench $count $secs" \
    ${VGPU_BENCH_APPEND:+--append "$VGPU_BENCH_APPEND"} \
    >"$work/vm.out" 2>&1
rc=$?
grep -E '^\[vm-drvbench\] drv-(bench|nop)' "$work/vm.out" | sed 's/^\[vm-drvbench\] //'
[ "$rc" -eq 0 ] || { echo "# guest rc $rc"; tail -n 30 "$work/vm.out"; }
exit $rc
