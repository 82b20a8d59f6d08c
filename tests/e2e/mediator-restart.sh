#!/usr/bin/env bash
# e2e: the mediator crashes (SIGKILL) and is restarted while a VM runs
# checked vector_adds back to back. QEMU reconnects (reconnect=1), re-sends
# the shared memory, the new mediator resumes the ring: every request
# completes, every result is correct, QEMU never stops.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
require

start_mediator "$work/mediator-1.log" || { fail "mediator starts"; finish; }
# 24 s of work: the first iterations before the crash, the rest after.
start_vm vm-r 3 0 1 200 vector-add-loop 24 16384

if wait_console vm-r "loop: iteration 2 ok" 120; then
    pass "guest completed requests before the crash"
else
    fail "guest completed requests before the crash"
fi
say "killing the mediator (SIGKILL, pid $med_pid)"
kill_mediator KILL
sleep 2
check "QEMU stays up while the mediator is away" kill -0 "${vm_pid[vm-r]}"
n_before=$(grep -c 'loop: iteration .* ok' "$work/vm-r.console")
say "restarting the mediator ($n_before iterations done so far)"
start_mediator "$work/mediator-2.log" || fail "mediator restarts"

wait_vm vm-r
rc=$?
c=$work/vm-r.console
n_after=$(grep -c 'loop: iteration .* ok' "$c")
check "guest exit status 0 (got $rc)" [ "$rc" -eq 0 ]
check "no failed iteration" has_re "$c" '^loop: [0-9]+ passed, 0 failed'
check "iterations completed after the restart ($n_before before, $n_after in all)" \
    [ "$n_after" -gt "$n_before" ]
status=$(mediator_status)
echo "$status"
check "the restarted mediator took vm-r's session back" has "$work/mediator-2.log" "vm-r"
# Whether a request was in flight at the crash depends on timing; say which.
if grep -q 'resuming [1-9]' "$work/mediator-2.log"; then
    say "a request was in flight at the crash and was resumed from the ring: $(grep -m1 -o 'resuming.*' "$work/mediator-2.log")"
else
    say "no request was in flight at the crash this time (the client was between requests)"
fi
echo "--- mediator-2.log"; sed 's/^/    /' "$work/mediator-2.log" | tail -n 20
finish
