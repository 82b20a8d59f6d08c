#!/usr/bin/env bash
# What the path with no patched QEMU costs: NOP round trips from inside one
# VM through vgpu-stub (libvgpu "pci" transport: BAR0 doorbell register,
# polling; the device bound to uio_pci_generic) and through QEMU's stock
# ivshmem-doorbell device served by vgpu-mediator ("ivshmem" transport:
# ivshmem's DOORBELL register, polling), side by side in the same guest run,
# alternating, ROUNDS times. Both devices sit in one QEMU (the project's
# build, which has ivshmem-doorbell like any QEMU), so guest, accelerator and
# mediator are the same for both. Not a timed test.
#
# usage: bench/ivshmem-in-vm.sh [COUNT [ROUNDS]]    (defaults 5000 NOPs, 3 rounds)
#
# Environment: VGPU_BUILD_DIR (default ./build), VGPU_QEMU, VGPU_GUEST_DIR,
# VGPU_MEDIATOR, VGPU_ACCEL (default kvm:tcg), VGPU_BENCH_BACKEND (default auto).
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
NAME=ivshmem-in-vm
. "$top/bench/vm-bench-lib.sh"
count=${1:-5000}
rounds=${2:-3}
[[ "$count" =~ ^[0-9]+$ ]] && [ "$count" -ge 100 ] && [[ "$rounds" =~ ^[0-9]+$ ]] &&
    [ "$rounds" -ge 1 ] && [ "$rounds" -le 10 ] ||
    { echo "usage: ivshmem-in-vm.sh [COUNT >= 100 [ROUNDS 1..10]]" >&2; exit 2; }
vmbench_setup

cat >"$work/vgpu.ini" <<EOF
[vm ivs-bench]
vm-id = 2
ivshmem-socket = $work/ivs.sock
shm-size = 64M
EOF
vmbench_start_mediator "$work/ivs.sock" -- --config "$work/vgpu.ini"

loop="for r in \$(seq $rounds); do echo round \$r; vgpu-client --transport pci nop -c $count;"
loop+=" vgpu-client --transport ivshmem nop -c $count; done"

echo "# ivshmem vs vgpu-stub bench $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
vmbench_host
echo "# qemu: $("$VGPU_QEMU" -version | head -n 1), accel $VGPU_ACCEL, 1 vCPU; $count NOPs per case, $rounds rounds"
"$top/scripts/vm.sh" --name vm-ivbench --vm-id 1 --priority 0 --weight 1 \
    --socket "$work/m.sock" --timeout $((90 + rounds * count / 100)) \
    --append vgpu.bind=uio --run "sh -c '$loop'" -- \
    -chardev "socket,path=$work/ivs.sock,id=ivs" -device "ivshmem-doorbell,chardev=ivs,vectors=1" \
    >"$work/vm.out" 2>&1
rc=$?
# "round N", then per case the client's summary line, labelled by transport.
awk '
    /\] round [0-9]+$/ { r = $NF; n = 0; next }
    /\] nop: [0-9]+ round trips/ {
        sub(/^\[[^]]*\] /, "")
        printf "round %s %-8s %s\n", r, (n++ == 0 ? "pci" : "ivshmem"), $0
    }' "$work/vm.out"
if [ "$rc" -ne 0 ]; then
    echo "ivshmem-in-vm: the VM ended with rc=$rc; its console:" >&2
    tail -n 40 "$work/vm.out" >&2
    exit 1
fi
