#!/usr/bin/env bash
# e2e: the mediator is SIGKILLed and restarted while 4 processes of an
# ordinary user hold queues of vgpu.ko and run checked vector_adds: the
# driver sees the link go down and come back, every queue resumes, every
# process finishes with every result correct; a process SIGKILLed while the
# link is down leaves its queue quarantined, with a dmesg line, until the
# new mediator has completed its requests (guest/run/drv-restart).
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
require

start_mediator "$work/mediator-1.log" || { fail "mediator starts"; finish; }
VM_ARGS=(--queues 6)
start_vm vm-dr 22 0 1 200 drv-restart 4 30 4096
if wait_console vm-dr "drv-restart: running, 4 loops" 120; then
    pass "4 user processes hold a queue each"
else
    fail "4 user processes hold a queue each"
fi
sleep 4
say "killing the mediator (SIGKILL, pid $med_pid)"
kill_mediator KILL
check "the guest driver saw the link go down" wait_console vm-dr "drv-restart: link down" 20
check "a process SIGKILLed while the link is down" wait_console vm-dr "drv-restart: link down: SIGKILLed" 30
# Long enough for the driver's note about a queue quarantined by a down link.
sleep 7
start_mediator "$work/mediator-2.log" || fail "mediator restarts"
wait_vm vm-dr
rc=$?
c=$work/vm-dr.console
check "guest exit status 0 (got $rc)" [ "$rc" -eq 0 ]
check "the link came back up in the guest" has_re "$c" '^drv-restart: link up .*'
check "every process finished, every vector_add checked" has "$c" "drv-restart: 4 of 4 processes passed, 0 failed"
check "the restarted mediator took vm-dr back" has "$work/mediator-2.log" "vm-dr"
check "dmesg: the killed process's queue quarantined while the link was down" \
    has_re "$c" '^drv-restart: dmesg: queue [0-9]+: link down with [1-9][0-9]* request\(s\) of a closed file outstanding'
check "dmesg: released once the new mediator completed them" \
    has_re "$c" '^drv-restart: dmesg: queue [0-9]+: released after [0-9]+ s of quarantine'
check "no queue left quarantined" has "$c" "drv-restart: quarantined now 0"
finish
