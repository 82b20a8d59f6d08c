# Sourced by the benchmarks that boot one VM against their own mediator
# (guest/bench-in-vm.sh, bench/driver-in-vm.sh, bench/ivshmem-in-vm.sh):
# the build's artifacts, a private work directory, the mediator on
# $work/m.sock, and the header lines of a result. The caller sets top and
# NAME (for messages) before sourcing, and ends with the work dir removed and
# the mediator stopped by the EXIT trap.

build=${VGPU_BUILD_DIR:-$top/build}
export VGPU_QEMU=${VGPU_QEMU:-$build/qemu/qemu-system-x86_64}
export VGPU_GUEST_DIR=${VGPU_GUEST_DIR:-$build/guest}
export VGPU_ACCEL=${VGPU_ACCEL:-kvm:tcg}
mediator=${VGPU_MEDIATOR:-$build/mediator/vgpu-mediator}
backend=${VGPU_BENCH_BACKEND:-auto}

vmbench_cleanup() {
    local i
    if [ -n "$med_pid" ] && kill -0 "$med_pid" 2>/dev/null; then
        kill -TERM "$med_pid"
        for ((i = 0; i < 100; i++)); do kill -0 "$med_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$med_pid" 2>/dev/null
        wait "$med_pid" 2>/dev/null
    fi
    rm -rf "$work"
}

# vmbench_setup: the mediator must exist; makes $work, arms the traps.
vmbench_setup() {
    [ -x "$mediator" ] || { echo "$NAME: $mediator missing (make build)" >&2; exit 1; }
    work=$(mktemp -d "${TMPDIR:-/tmp}/vgpu-$NAME.XXXXXX")
    med_pid=""
    trap vmbench_cleanup EXIT
    trap 'exit 130' INT TERM
}

# vmbench_start_mediator [SOCKET...] -- [MEDIATOR ARGS...]: starts it on
# $work/m.sock and waits until that socket and every SOCKET named exist.
vmbench_start_mediator() {
    local socks=("$work/m.sock") s i ready
    while [ $# -gt 0 ] && [ "$1" != -- ]; do socks+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    "$mediator" --socket-path "$work/m.sock" --backend "$backend" --log-level warn "$@" \
        >"$work/mediator.log" 2>&1 &
    med_pid=$!
    for ((i = 0; i < 100; i++)); do
        ready=1
        for s in "${socks[@]}"; do [ -S "$s" ] || ready=0; done
        [ "$ready" = 1 ] && return 0
        kill -0 "$med_pid" 2>/dev/null || { cat "$work/mediator.log"; exit 1; }
        sleep 0.1
    done
}

# vmbench_host: the "# host:" line of a result.
vmbench_host() {
    echo "# host: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
}
