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
build=${VGPU_BUILD_DIR:-$top/build}
export VGPU_QEMU=${VGPU_QEMU:-$build/qemu/qemu-system-x86_64}
export VGPU_GUEST_DIR=${VGPU_GUEST_DIR:-$build/guest}
export VGPU_ACCEL=${VGPU_ACCEL:-kvm:tcg}
mediator=${VGPU_MEDIATOR:-$build/mediator/vgpu-mediator}
backend=${VGPU_BENCH_BACKEND:-auto}
count=${1:-5000}
secs=${2:-5}
[[ "$count" =~ ^[0-9]+$ ]] && [ "$count" -ge 100 ] && [[ "$secs" =~ ^[0-9]+$ ]] && [ "$secs" -ge 1 ] ||
    { echo "usage: driver-in-vm.sh [COUNT >= 100 [SECONDS >= 1]]" >&2; exit 2; }
[ -x "$mediator" ] || { echo "driver-in-vm: $mediator missing (make build)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/vgpu-drvbench.XXXXXX")
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

echo "# guest driver bench $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
echo "# host: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# qemu: $("$VGPU_QEMU" -version | head -n 1), accel $VGPU_ACCEL, 1 vCPU; guest $(grep -m1 '^kernel ' "$VGPU_GUEST_DIR/manifest.txt" 2>/dev/null | cut -d' ' -f2)"
"$top/scripts/vm.sh" --name vm-drvbench --vm-id 1 --priority 0 --weight 1 --queues 9 \
    --socket "$work/m.sock" --timeout $((120 + 6 * secs)) --run "drv-bench $count $secs" \
    ${VGPU_BENCH_APPEND:+--append "$VGPU_BENCH_APPEND"} \
    >"$work/vm.out" 2>&1
rc=$?
grep -E '^\[vm-drvbench\] drv-(bench|nop)' "$work/vm.out" | sed 's/^\[vm-drvbench\] //'
[ "$rc" -eq 0 ] || { echo "# guest rc $rc"; tail -n 30 "$work/vm.out"; }
exit $rc
