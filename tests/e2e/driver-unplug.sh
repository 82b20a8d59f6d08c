#!/usr/bin/env bash
# e2e: hot-unplug of the vgpu device (QMP device_del, machine pc: ACPI
# hotplug) while 3 processes of an ordinary user run on vgpu.ko queues: the
# processes end with errors, /dev/vgpu0 and its sysfs directory go, the guest
# kernel logs no BUG/Oops/WARNING, QEMU and the mediator stay up
# (guest/run/drv-unplug).
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
require

qmp=$work/qmp.sock
# qmp_cmd JSON...: sends each command after the capabilities handshake;
# prints every reply and event for up to 10 s or until DEVICE_DELETED.
qmp_cmd() {
    python3 - "$qmp" "$@" <<'PY'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
print(f.readline().strip())
for cmd in ['{"execute": "qmp_capabilities"}'] + sys.argv[2:]:
    f.write(cmd + "\n"); f.flush()
    print(f.readline().strip())
s.settimeout(1.0)
end = time.time() + 10
while time.time() < end:
    try:
        line = f.readline()
    except socket.timeout:
        continue
    if not line:
        break
    print(line.strip())
    if "DEVICE_DELETED" in line:
        break
PY
}

start_mediator || { fail "mediator starts"; finish; }
VM_ARGS=(--queues 4 --machine pc -- -qmp "unix:$qmp,server=on,wait=off")
start_vm vm-unplug 23 1 1 180 drv-unplug 3
if wait_console vm-unplug "drv-unplug: ready, 3 queues in use" 120; then
    pass "3 user processes hold a queue each"
else
    fail "3 user processes hold a queue each"
fi
sleep 2
say "device_del vgpu0 through QMP"
qmp_cmd '{"execute": "device_del", "arguments": {"id": "vgpu0"}}' >"$work/qmp.log" 2>&1
cat "$work/qmp.log"
check "QEMU accepted device_del" has_re "$work/qmp.log" '^\{"return": \{\}\}$'
grep -q '"DEVICE_DELETED"' "$work/qmp.log" ||
    say "note: no DEVICE_DELETED event from QEMU within 10 s (the guest ejected the device; see below)"
wait_vm vm-unplug
rc=$?
c=$work/vm-unplug.console
check "guest exit status 0 (got $rc)" [ "$rc" -eq 0 ]
check "the driver logged the removal with the queues open" has "$c" "drv-unplug: dmesg: vgpu0: removed with 3 queue(s) open"
check "the device left the guest's PCI bus" has "$c" "drv-unplug: vgpu devices on the PCI bus now: 0"
check "sysfs directory gone" has "$c" "drv-unplug: /sys/class/vgpu/vgpu0 gone"
check "every process ended (with an error); /dev/vgpu0 gone" has "$c" "drv-unplug: 3 of 3 processes ended; /dev/vgpu0 gone"
check "no process reported a wrong result" hasnt "$c" "expected"
check "guest kernel log clean" has "$c" "drv-unplug: kernel log clean"
check "mediator still running" kill -0 "$med_pid"
finish
