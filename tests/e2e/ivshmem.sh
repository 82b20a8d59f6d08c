#!/usr/bin/env bash
# e2e: no patched QEMU. Debian's own, unmodified qemu-system-x86 package
# boots the test guest with QEMU's stock ivshmem-doorbell device, served by
# vgpu-mediator's ivshmem server mode (one socket per VM, identity from the
# mediator's config); the guest runs Milestones 1 and 2 (info, NOP,
# vector_add checked element by element, selftest) with the unchanged
# vgpu-client, which picks the ivshmem transport by itself. A second QEMU
# on the live VM's socket is refused and stops with an error.
#
# Environment (besides lib.sh's): VGPU_STOCK_QEMU, the distribution's QEMU
# (default /usr/bin/qemu-system-x86_64, Debian package qemu-system-x86,
# installed by scripts/deps.sh stock-qemu when missing and we are root).
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

stock=${VGPU_STOCK_QEMU:-/usr/bin/qemu-system-x86_64}
if [ ! -x "$stock" ] && [ -z "${VGPU_STOCK_QEMU:-}" ] && [ "$(id -u)" = 0 ]; then
    say "installing Debian's qemu-system-x86 (scripts/deps.sh stock-qemu)"
    "$e2e_top/scripts/deps.sh" stock-qemu >"$work/deps.log" 2>&1 || cat "$work/deps.log"
fi
if [ ! -x "$stock" ]; then
    fail "stock QEMU at $stock: install the Debian package qemu-system-x86 (scripts/deps.sh stock-qemu as root), or set VGPU_STOCK_QEMU"
    finish
fi
if [ ! -f "$VGPU_GUEST_DIR/vmlinuz" ] || [ ! -f "$VGPU_GUEST_DIR/initramfs.img" ]; then
    fail "guest image in $VGPU_GUEST_DIR (make guest, or set VGPU_GUEST_DIR)"
    finish
fi
[ -x "$MEDIATOR" ] || { fail "vgpu-mediator at $MEDIATOR (make build)"; finish; }
say "stock qemu $stock, image $VGPU_GUEST_DIR, mediator $MEDIATOR, accel $VGPU_ACCEL, work $work"

# The distribution's QEMU as shipped: not the project's build, files as the
# package installed them, no vgpu-stub in it.
if [ -z "${VGPU_STOCK_QEMU:-}" ]; then
    pkg=$(dpkg -S "$stock" 2>/dev/null | cut -d: -f1)
    check "$stock belongs to Debian's package qemu-system-x86 (got '${pkg:-none}')" \
        [ "$pkg" = qemu-system-x86 ]
    check "qemu-system-x86's files are unmodified (dpkg --verify)" \
        test -z "$(dpkg --verify qemu-system-x86 2>&1)"
fi
devices=$("$stock" -device help 2>&1)
check "stock QEMU has ivshmem-doorbell" grep -q '"ivshmem-doorbell"' <<<"$devices"
check "stock QEMU has no vgpu-stub" bash -c '! grep -q vgpu-stub <<<"$1"' _ "$devices"

ivsock=$work/ivshmem-ivs1.sock
cfg=$work/vgpu-mediator.ini
# The config the docs quote (docs/operations.md, "Stock QEMU + ivshmem").
cat >"$cfg" <<EOF
[vm ivs1]
vm-id = 11
priority = 1
weight = 2
ivshmem-socket = $ivsock
shm-size = 64M
EOF

"$MEDIATOR" --socket-path "$sock" --backend "$BACKEND" --config "$cfg" >>"$work/mediator.log" 2>&1 &
med_pid=$!
bg_pids+=("$med_pid")
for ((i = 0; i < 100; i++)); do
    [ -S "$ivsock" ] && "$MEDIATOR" --socket-path "$sock" --status >/dev/null 2>&1 && break
    sleep 0.1
done
check "mediator serves the ivshmem socket" has "$work/mediator.log" "serving QEMU's ivshmem-doorbell on $ivsock"
check "ivshmem socket is a socket, mode 0660" \
    test "$(stat -c %F:%a "$ivsock" 2>/dev/null)" = "socket:660"

# The VM: scripts/vm.sh with the stock QEMU, no vgpu-stub, the QEMU options
# the docs quote.
VGPU_QEMU=$stock "$VM_SH" --no-device --name ivs1 --timeout 150 --log "$work/ivs1.console" \
    --run "m1m2 65536 8" -- \
    -chardev "socket,path=$ivsock,id=ivs1" -device "ivshmem-doorbell,chardev=ivs1,vectors=1" \
    >"$work/ivs1.out" 2>&1 &
vm_pid[ivs1]=$!
bg_pids+=("$!")
say "VM ivs1 booting on stock QEMU with ivshmem-doorbell"

if wait_console ivs1 "m1m2: " 140; then
    live=$(mediator_status)
    echo "$live"
    row=$(awk '$3 == "ivs1"' <<<"$live")
    check "status row: vm 11 'ivs1' priority 1 weight 2 from the config" \
        test "$(awk '{print $2 "/" $4 "/" $5}' <<<"$row")" = 11/1/2
    # A second QEMU on the live VM's socket: refused, it stops with an error.
    timeout 30 "$stock" -machine q35,accel=tcg -nodefaults -display none -S \
        -chardev "socket,path=$ivsock,id=iv2" -device "ivshmem-doorbell,chardev=iv2,vectors=1" \
        >"$work/second.out" 2>&1
    rc=$?
    cat "$work/second.out"
    check "second QEMU on the live socket stops with an error (rc $rc, not the timeout)" \
        bash -c '[ "$1" -ne 0 ] && [ "$1" -ne 124 ]' _ "$rc"
    check "  ... saying the server refused it (version 99)" has "$work/second.out" "server sent version 99"
    check "  ... and the mediator logs the refusal" has "$work/mediator.log" "refusing a second connection"
else
    fail "ivs1 reached the m1m2 summary"
fi

wait_vm ivs1
rc=$?
c=$work/ivs1.console
check "ivs1: guest exit status 0 (got $rc)" [ "$rc" -eq 0 ]
check "ivs1: lspci shows Red Hat's ivshmem 1af4:1110" has "$c" "[1af4:1110]"
check "ivs1: no vgpu-stub, no NVIDIA vendor id in the guest" \
    bash -c '! grep -qF -e "[1b36:10f0]" -e "[10de:" "$1"' _ "$c"
check "ivs1: client on the ivshmem transport" has_re "$c" '^transport: +ivshmem '
check "ivs1: identity from the mediator's config (id 11, prio 1, weight 2)" \
    has "$c" 'vm:           id 11, name "ivs1", priority 1, weight 2'
check "ivs1: link up" has_re "$c" '^link: +up'
check "ivs1: M1 nop passed" has "$c" "== M1-nop: PASS"
check "ivs1: M2 vector-add checked" has "$c" "== M2-vector-add: PASS"
check "ivs1: 'Test passed: vector addition successful'" has "$c" "Test passed: vector addition successful"
check "ivs1: m1m2 summary 4 passed, 0 failed" has "$c" "m1m2: 4 passed, 0 failed"
check "mediator: session attached through ivshmem" has "$work/mediator.log" "attached through ivshmem"
check "mediator: session closed when QEMU left" has "$work/mediator.log" "QEMU closed the ivshmem connection"
check "mediator still running" kill -0 "$med_pid"
finish
