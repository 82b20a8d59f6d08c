#!/usr/bin/env bash
# e2e: the guest driver vgpu.ko in one VM with 9 queue pairs (guest/run/
# drv-e2e): 8 processes of an ordinary user at once, a queue each, checked
# vector_adds; EACCES for a user outside group vgpu; only the queue region and
# the window map; a process SIGKILLed with requests in flight while 7 others
# run, its queue quarantined until the mediator is done and handed out again
# clean; a hostile process's bad ioctls refused and its corrupt ring rewound;
# rmmod refused while open, unload and reload.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
require

start_mediator || { fail "mediator starts"; finish; }
# 128 MiB of BAR2: 8 windows of ~16 MiB, room for the selftest's 12 MiB.
# VGPU_E2E_DRIVER_APPEND adds guest kernel arguments: pci=nomsi runs the
# same checks on INTx (20/20 when last run so).
VM_ARGS=(--queues 9 --shm 128M ${VGPU_E2E_DRIVER_APPEND:+--append "$VGPU_E2E_DRIVER_APPEND"})
start_vm vm-drv 21 1 3 220 drv-e2e 8 16384
wait_vm vm-drv
rc=$?
c=$work/vm-drv.console
check "guest exit status 0 (got $rc)" [ "$rc" -eq 0 ]
check "probe line in dmesg: identity, 9 queue pairs, 8 for processes" \
    has_re "$c" 'vgpu vgpu0: 0000:[0-9a-f:.]+: vm 21 "vm-drv", priority 1, weight 3, ABI 1\.2, 9 queue pair\(s\), 8 for processes'
check "/dev/vgpu0 is root:vgpu 0660" has "$c" "bound to vgpu (/dev/vgpu0 crw-rw---- root:vgpu)"
for what in "identity and health in sysfs without root" \
            "a user outside group vgpu gets EACCES" \
            "mmap: only the queue region and the window" \
            "vgpu-client as user: info, vector-add, selftest" \
            "vgpu-client hostile as user on its queue: 0 violations" \
            "8 processes at once as user, each on its own queue (8 distinct)" \
            "the 7 other processes were unaffected by the SIGKILL" \
            "the killed process's queue is quarantined while the mediator finishes its requests" \
            "bad ioctls/read/lseek refused; a process left its ring corrupt and exited" \
            "every queue handed out again clean" \
            "the corrupt ring was rewound" \
            "rmmod refused while a process has /dev/vgpu0 open" \
            "rmmod vgpu: /dev/vgpu0" \
            "insmod again" \
            "no BUG, Oops or WARNING in the kernel log"; do
    check "guest: $what" has "$c" "drv: PASS $what"
done
check "guest summary: 0 failed" has_re "$c" '^drv-e2e: [0-9]+ passed, 0 failed'
check "the mediator saw the VM's queues" has "$work/mediator.log" "vm-drv"
check "mediator still running" kill -0 "$med_pid"
finish
