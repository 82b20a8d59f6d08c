#!/usr/bin/env bash
# e2e: libvirt's native <shmem> element on Debian's own QEMU, no patched
# QEMU anywhere: the documented domain (deploy/libvirt/vgpu-ivshmem-vm1.xml,
# quoted in docs/operations.md) with <model type='ivshmem-doorbell'/> and
# <server path=.../>, served by vgpu-mediator on the socket of a [vm]
# section with ivshmem-socket; a libvirtd of Debian's packages (started
# here, no systemd) defines and starts it, the guest passes Milestones 1
# and 2 on the ivshmem transport with the identity the mediator's config
# gave that socket, then the domain is undefined.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/libvirt-lib.sh
. "$(dirname "$0")/libvirt-lib.sh"

stock=${VGPU_STOCK_QEMU:-/usr/bin/qemu-system-x86_64}
if [ ! -x "$stock" ] && [ -z "${VGPU_STOCK_QEMU:-}" ] && [ "$(id -u)" = 0 ]; then
    "$e2e_top/scripts/deps.sh" stock-qemu >"$work/deps.log" 2>&1 || cat "$work/deps.log"
fi
[ -x "$stock" ] || {
    fail "stock QEMU at $stock: install the Debian package qemu-system-x86 (scripts/deps.sh stock-qemu as root), or set VGPU_STOCK_QEMU"
    finish
}
export VGPU_QEMU=$stock     # for require and lv_setup: the stock QEMU is the emulator
require
lv_setup

ivsock=$work/ivshmem-ivs-vm1.sock
cfg=$work/vgpu-mediator.ini
cat >"$cfg" <<EOF
[vm ivs-vm1]
vm-id = 21
ivshmem-socket = $ivsock
shm-size = 64M
priority = 1
weight = 2
EOF
"$MEDIATOR" --socket-path "$sock" --backend "$BACKEND" --config "$cfg" >>"$work/mediator.log" 2>&1 &
med_pid=$!
bg_pids+=("$med_pid")
for ((i = 0; i < 100; i++)); do
    [ -S "$ivsock" ] && "$MEDIATOR" --socket-path "$sock" --status >/dev/null 2>&1 && break
    sleep 0.1
done
check "mediator serves the ivshmem socket" has "$work/mediator.log" "serving QEMU's ivshmem-doorbell"
# QEMU (libvirt's user) reaches the VM's socket (0660) through its group,
# as the vgpu group does on a host.
[ -n "$lv_user" ] && chgrp "$lv_group" "$ivsock" "$sock"
lv_start || { fail "libvirtd starts"; finish; }

doc=$e2e_top/deploy/libvirt/vgpu-ivshmem-vm1.xml
lv_check_quoted "$doc"
lv_adapt "$doc" "$lv/ivs-vm1.xml"
# Debian's QEMU where the package put it (not a copy), the socket under $work.
sed -i -e "s|$lv/bin/qemu-system-x86_64|$stock|" \
       -e "s|/run/vgpu/ivshmem-ivs-vm1.sock|$ivsock|" "$lv/ivs-vm1.xml"
say "  emulator $stock, server path $ivsock"

check "virsh define ivs-vm1" lv_define "$lv/ivs-vm1.xml"
check "the definition keeps <shmem> with ivshmem-doorbell and the server path" \
    bash -c 'grep -q "ivshmem-doorbell" <<<"$1" && grep -qF "$2" <<<"$1"' _ \
    "$(vsh dumpxml ivs-vm1)" "$ivsock"
check "virsh start ivs-vm1" vsh start ivs-vm1
qlog=$(ls "$lv"/cache/libvirt/qemu/log/ivs-vm1.log 2>/dev/null)
check "libvirt ran QEMU with -device ivshmem-doorbell (its log)" \
    bash -c '[ -n "$1" ] && grep -q "ivshmem-doorbell" "$1"' _ "$qlog"

c=$lv/log/ivs-vm1-serial.log
if wait_serial "$c" "m1m2: " 150; then
    live=$(mediator_status)
    echo "$live"
    row=$(awk '$3 == "ivs-vm1"' <<<"$live")
    check "mediator lists ivs-vm1 as vm 21, priority 1, weight 2 (from its socket's section)" \
        test "$(awk '{print $2 "/" $4 "/" $5}' <<<"$row")" = 21/1/2
else
    fail "the guest finished its milestones while attached"
fi
check "ivs-vm1 powered off (domain shut off)" lv_wait_off ivs-vm1 60
sed "s/^/[ivs-vm1] /" "$c"
check "ivs-vm1: lspci shows Red Hat's ivshmem 1af4:1110" has "$c" "[1af4:1110]"
check "ivs-vm1: client on the ivshmem transport" has_re "$c" '^transport: +ivshmem '
check "ivs-vm1: identity from the mediator's config" \
    has "$c" 'vm:           id 21, name "ivs-vm1", priority 1, weight 2'
check "ivs-vm1: 'Test passed: vector addition successful'" \
    has "$c" "Test passed: vector addition successful"
check "ivs-vm1: m1m2 4 passed, 0 failed" has "$c" "m1m2: 4 passed, 0 failed"
check "virsh undefine ivs-vm1" vsh undefine ivs-vm1
lv_domains=()
check "mediator: session closed when QEMU left" has "$work/mediator.log" "QEMU closed the ivshmem connection"
check "mediator still running" kill -0 "$med_pid"
finish
