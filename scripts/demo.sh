#!/usr/bin/env bash
# `make demo`: two VMs share the host GPU through vgpu-mediator.
#
#   1. start vgpu-mediator (--backend=auto: CUDA when a GPU is usable, else
#      the CPU backend; the mediator says which) on a private socket;
#   2. boot two VMs at the same time, "vm-a" (vm-id 1, priority 0, weight 3)
#      and "vm-b" (vm-id 2, priority 1, weight 1); each runs
#        Milestone 1: device info + a NOP round trip through the mediator,
#        Milestone 2: vector_add with every element checked, and the
#                     selftest ("Test passed: vector addition successful");
#   3. show the mediator's per-VM statistics (vgpu-mediator --status);
#   4. stop the mediator, print a verdict per VM, exit non-zero on any failure.
#
# Environment: VGPU_QEMU, VGPU_GUEST_DIR, VGPU_BUILD_DIR (set by the Makefile),
# VGPU_MEDIATOR (default BUILD/mediator/vgpu-mediator), VGPU_ACCEL (default tcg,
# which works everywhere; kvm:tcg boots faster on a host with usable KVM),
# VGPU_DEMO_TIMEOUT (seconds per VM, default 240), VGPU_DEMO_HOLD (seconds each
# guest stays attached after its work, default 0).
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${VGPU_BUILD_DIR:-$top/build}
export VGPU_QEMU=${VGPU_QEMU:-$build/qemu/qemu-system-x86_64}
export VGPU_GUEST_DIR=${VGPU_GUEST_DIR:-$build/guest}
export VGPU_ACCEL=${VGPU_ACCEL:-tcg}
mediator=${VGPU_MEDIATOR:-$build/mediator/vgpu-mediator}
vm_timeout=${VGPU_DEMO_TIMEOUT:-240}
hold=${VGPU_DEMO_HOLD:-0}   # seconds each guest stays attached after its work

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
die() { echo "demo: error: $*" >&2; exit 1; }

[ -x "$mediator" ] || die "$mediator missing (make build)"
[ -x "$VGPU_QEMU" ] || die "$VGPU_QEMU missing (make qemu)"
[ -f "$VGPU_GUEST_DIR/vmlinuz" ] && [ -f "$VGPU_GUEST_DIR/initramfs.img" ] ||
    die "guest image missing in $VGPU_GUEST_DIR (make guest)"

work=$(mktemp -d "${TMPDIR:-/tmp}/vgpu-demo.XXXXXX")
sock=$work/mediator.sock
med_pid=""
declare -A vm_pid=()

# Stop what we started, by pid: VMs (vm.sh stops its QEMU), then the mediator.
cleanup() {
    local pid i
    for pid in "${vm_pid[@]}" $med_pid; do
        kill -0 "$pid" 2>/dev/null || continue
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "demo: interrupted"; exit 130' INT TERM

status() { "$mediator" --socket-path "$sock" --status 2>&1; }

# --- 1. mediator -------------------------------------------------------------------
step "1. starting vgpu-mediator --backend=auto on $sock"
"$mediator" --socket-path "$sock" --backend=auto \
    > >(tee "$work/mediator.log" | sed -u 's/^/[mediator] /') 2>&1 &
med_pid=$!
for ((i = 0; i < 100; i++)); do
    [ -S "$sock" ] && status >/dev/null && break
    kill -0 "$med_pid" 2>/dev/null || die "vgpu-mediator exited at start (see above)"
    sleep 0.1
done
[ -S "$sock" ] || die "vgpu-mediator did not open $sock within 10 s"
sleep 0.2   # let its banner (which backend) reach the terminal first

# --- 2. two VMs ----------------------------------------------------------------------
step "2. booting vm-a (vm-id 1, priority 0, weight 3) and vm-b (vm-id 2, priority 1, weight 1), accel $VGPU_ACCEL"
echo "   each guest runs: info, nop (Milestone 1); vector-add -n 65536, selftest (Milestone 2)"
start_vm() {
    local name=$1 id=$2 prio=$3 weight=$4
    "$top/scripts/vm.sh" --name "$name" --vm-id "$id" --priority "$prio" --weight "$weight" \
        --socket "$sock" --timeout "$vm_timeout" --log "$work/$name.console" --run "m1m2 65536 $hold" &
    vm_pid[$name]=$!
}
start_vm vm-a 1 0 3
start_vm vm-b 2 1 1

declare -A rc=()
for name in vm-a vm-b; do
    wait "${vm_pid[$name]}"
    rc[$name]=$?
    unset "vm_pid[$name]"
done

# --- 3. statistics -----------------------------------------------------------------
# Ended sessions keep their rows (the mediator remembers the last 16).
step "3. per-VM statistics after both VMs powered off (vgpu-mediator --status)"
status
echo "   (errors bad-range=1 per VM: the selftest's deliberate out-of-range request, rejected as it must be)"

# --- 4. stop, verdict ------------------------------------------------------------------
step "4. stopping the mediator"
kill -TERM "$med_pid" 2>/dev/null
for ((i = 0; i < 100; i++)); do kill -0 "$med_pid" 2>/dev/null || break; sleep 0.1; done
wait "$med_pid" 2>/dev/null
med_pid=""
sleep 0.2

step "verdict"
backend=$(grep -m1 -oE 'ready: backend [a-z]+' "$work/mediator.log" | awk '{print $3}')
bad=0
for name in vm-a vm-b; do
    c=$work/$name.console
    m1=FAIL m2=FAIL
    grep -qF "== M1-nop: PASS" "$c" && grep -qF "== M1-info: PASS" "$c" && m1=PASS
    grep -qF "== M2-vector-add: PASS" "$c" && grep -qF "Test passed: vector addition successful" "$c" &&
        grep -qF "== M2-selftest: PASS" "$c" && m2=PASS
    printf '%s: Milestone 1 (pathway, NOP) %s; Milestone 2 (vector_add checked) %s; guest rc %s\n' \
        "$name" "$m1" "$m2" "${rc[$name]}"
    [ "$m1" = PASS ] && [ "$m2" = PASS ] && [ "${rc[$name]}" -eq 0 ] || bad=1
done
echo "backend: ${backend:-unknown}"
if [ "$bad" -ne 0 ]; then
    echo "demo: FAILED"
    exit 1
fi
echo "demo: both VMs passed Milestones 1 and 2"
