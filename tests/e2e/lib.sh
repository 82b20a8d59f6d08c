# Shared helpers of the end-to-end tests (sourced, bash).
# shellcheck shell=bash
#
# Each test boots real VMs (scripts/vm.sh: QEMU with vgpu-stub, the guest
# image) against a real vgpu-mediator on a private socket, checks what the
# guests print, and ends with "N passed, N failed". Missing QEMU, image or
# mediator is a failure, never a skip.
#
# Environment (the Makefile exports the first two):
#   VGPU_QEMU       QEMU with vgpu-stub   (default BUILD/qemu/qemu-system-x86_64)
#   VGPU_GUEST_DIR  vmlinuz+initramfs.img (default BUILD/guest)
#   VGPU_MEDIATOR   vgpu-mediator         (default BUILD/mediator/vgpu-mediator)
#   VGPU_ACCEL      QEMU accelerator      (default tcg: nested KVM is unreliable on CI)
#   VGPU_E2E_BACKEND  mediator backend    (default auto)
#   VGPU_E2E_KEEP=1 keep the work dir (logs, consoles) even when all passed
# BUILD is $VGPU_E2E_BUILD_DIR (set by meson), else $VGPU_BUILD_DIR, else ./build.

set -uo pipefail

e2e_top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
e2e_build=${VGPU_E2E_BUILD_DIR:-${VGPU_BUILD_DIR:-$e2e_top/build}}
export VGPU_QEMU=${VGPU_QEMU:-$e2e_build/qemu/qemu-system-x86_64}
export VGPU_GUEST_DIR=${VGPU_GUEST_DIR:-$e2e_build/guest}
export VGPU_ACCEL=${VGPU_ACCEL:-tcg}
MEDIATOR=${VGPU_MEDIATOR:-$e2e_build/mediator/vgpu-mediator}
BACKEND=${VGPU_E2E_BACKEND:-auto}
VM_SH=$e2e_top/scripts/vm.sh

test_name=$(basename "$0" .sh)
passed=0
failed=0
bg_pids=()          # vm.sh and mediator processes we started
declare -A vm_pid   # NAME -> pid of its vm.sh
med_pid=""

work=$(mktemp -d "${TMPDIR:-/tmp}/vgpu-e2e-$test_name.XXXXXX")
sock=$work/mediator.sock

say() { echo "[$test_name] $*"; }

pass() { passed=$((passed + 1)); echo "ok   - $*"; }
fail() { failed=$((failed + 1)); echo "FAIL - $*"; }

# check DESCRIPTION COMMAND...: one counted check.
check() {
    local desc=$1
    shift
    if "$@"; then pass "$desc"; else fail "$desc"; fi
}

# Grep helpers for console/log files (fixed strings).
has()    { grep -qF -- "$2" "$1"; }
hasnt()  { ! grep -qF -- "$2" "$1"; }
has_re() { grep -qE -- "$2" "$1"; }

finish() {
    echo "$test_name: $passed passed, $failed failed"
    [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
    exit $?
}

# Stop one of our processes: TERM, up to $2 s (default 10), then KILL.
stop_pid() {
    local pid=$1 grace=${2:-10} i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

cleanup() {
    local pid
    # VMs first (vm.sh kills its own QEMU), then the mediator.
    for pid in "${bg_pids[@]}"; do
        [ "$pid" = "$med_pid" ] && continue
        stop_pid "$pid" 15
    done
    [ -n "$med_pid" ] && stop_pid "$med_pid" 10
    if [ "$failed" -eq 0 ] && [ "${VGPU_E2E_KEEP:-0}" != 1 ]; then
        rm -rf "$work"
    else
        echo "[$test_name] logs kept in $work"
    fi
}
trap cleanup EXIT
trap 'fail "interrupted"; exit 1' INT TERM

# Fail (not skip) when a piece is missing; the message says how to get it.
require() {
    local ok=1
    if [ ! -x "$VGPU_QEMU" ]; then
        fail "QEMU with vgpu-stub at $VGPU_QEMU (make qemu, or set VGPU_QEMU)"; ok=0
    fi
    if [ ! -f "$VGPU_GUEST_DIR/vmlinuz" ] || [ ! -f "$VGPU_GUEST_DIR/initramfs.img" ]; then
        fail "guest image in $VGPU_GUEST_DIR (make guest, or set VGPU_GUEST_DIR)"; ok=0
    fi
    if [ ! -x "$MEDIATOR" ]; then
        fail "vgpu-mediator at $MEDIATOR (make build, or set VGPU_MEDIATOR)"; ok=0
    fi
    [ "$ok" = 1 ] || finish
    say "qemu $VGPU_QEMU, image $VGPU_GUEST_DIR, mediator $MEDIATOR, accel $VGPU_ACCEL, work $work"
}

# start_mediator [LOGFILE]: starts vgpu-mediator on $sock; waits (<= 10 s)
# until it accepts connections.
start_mediator() {
    local log=${1:-$work/mediator.log} i
    "$MEDIATOR" --socket-path "$sock" --backend "$BACKEND" >>"$log" 2>&1 &
    med_pid=$!
    bg_pids+=("$med_pid")
    for ((i = 0; i < 100; i++)); do
        if [ -S "$sock" ] && "$MEDIATOR" --socket-path "$sock" --status >/dev/null 2>&1; then
            say "mediator pid $med_pid up on $sock ($(grep -m1 -oE 'ready: backend [a-z]+' "$log" || echo 'backend ?'))"
            return 0
        fi
        kill -0 "$med_pid" 2>/dev/null || break
        sleep 0.1
    done
    say "mediator did not come up; its log:"
    sed 's/^/    /' "$log"
    return 1
}

# kill_mediator SIGNAL: ends the mediator the hard way (a crash), reaps it.
kill_mediator() {
    kill -"${1:-KILL}" "$med_pid" 2>/dev/null
    wait "$med_pid" 2>/dev/null
    med_pid=""
}

mediator_status() { "$MEDIATOR" --socket-path "$sock" --status 2>&1; }

# start_vm NAME VM_ID PRIO WEIGHT TIMEOUT RUN...: boots a VM in the background;
# console (prefixed) in $work/NAME.out, raw in $work/NAME.console.
# VM_ARGS (an array, empty by default) adds vm.sh options, e.g.
# (--queues 9 --append vgpu.bind=uio -- -qmp unix:...).
VM_ARGS=()
start_vm() {
    local name=$1 id=$2 prio=$3 weight=$4 timeout=$5
    shift 5
    "$VM_SH" --name "$name" --vm-id "$id" --priority "$prio" --weight "$weight" \
        --socket "$sock" --timeout "$timeout" --log "$work/$name.console" --run "$*" \
        "${VM_ARGS[@]}" >"$work/$name.out" 2>&1 &
    vm_pid[$name]=$!
    bg_pids+=("$!")
    say "VM $name (vm-id $id, priority $prio, weight $weight) booting: $*"
}

# wait_vm NAME: waits for its vm.sh (which has its own timeout), shows the
# console, returns vm.sh's exit status (the guest command's rc).
wait_vm() {
    local name=$1 rc
    wait "${vm_pid[$name]}"
    rc=$?
    cat "$work/$name.out"
    return $rc
}

# wait_console NAME STRING SECONDS: waits until the VM's console shows STRING.
wait_console() {
    local name=$1 str=$2 secs=$3 i
    for ((i = 0; i < secs * 10; i++)); do
        grep -qF -- "$str" "$work/$name.console" 2>/dev/null && return 0
        kill -0 "${vm_pid[$name]}" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# Checks every VM running the m1m2 scenario must pass.
check_m1m2() {
    local name=$1 id=$2 prio=$3 weight=$4 rc=$5 c=$work/$1.console
    check "$name: guest exit status 0 (got $rc)" [ "$rc" -eq 0 ]
    check "$name: lspci shows 1b36:10f0 class ff00" \
        has "$c" "Unclassified device [ff00]: Red Hat, Inc. Device [1b36:10f0]"
    check "$name: no NVIDIA vendor id in the guest" hasnt "$c" "[10de:"
    check "$name: device driven by vgpu.ko (/dev/vgpu0, group vgpu, mode 0660)" \
        has "$c" "bound to vgpu (/dev/vgpu0 crw-rw---- root:vgpu)"
    check "$name: client on the dev transport" has_re "$c" '^transport: +dev \(/dev/vgpu0 queue 0'
    check "$name: identity seen by the guest (id $id, prio $prio, weight $weight)" \
        has "$c" "vm:           id $id, name \"$name\", priority $prio, weight $weight"
    check "$name: link up" has_re "$c" '^link: +up'
    check "$name: M1 nop passed" has "$c" "== M1-nop: PASS"
    check "$name: M2 vector-add checked" has "$c" "== M2-vector-add: PASS"
    check "$name: M2 'Test passed: vector addition successful'" \
        has "$c" "Test passed: vector addition successful"
    check "$name: m1m2 summary 4 passed, 0 failed" has "$c" "m1m2: 4 passed, 0 failed"
}
