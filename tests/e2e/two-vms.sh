#!/usr/bin/env bash
# e2e: two VMs at once with different priorities and weights; each checks
# its own results (every element of its vector_add) and sees its own
# identity; the mediator's stats list both.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
require

start_mediator || { fail "mediator starts"; finish; }
# Each guest stays attached 6 s after its summary line, so that both rows
# are in the mediator's table (it lists live sessions) at the same time.
start_vm vm-a 1 0 3 180 m1m2 262144 6
start_vm vm-b 2 1 1 180 m1m2 131072 6
if wait_console vm-a "m1m2: " 150 && wait_console vm-b "m1m2: " 150; then
    live=$(mediator_status)
    echo "$live"
    # columns: sess vm name prio weight infl requests ok errors ...
    row() { awk -v id="$1" -v n="$2" '$2 == id && $3 == n' <<<"$live"; }
    check "mediator sees vm-a as vm 1, priority 0, weight 3" \
        test "$(row 1 vm-a | awk '{print $4 "/" $5}')" = 0/3
    check "mediator sees vm-b as vm 2, priority 1, weight 1" \
        test "$(row 2 vm-b | awk '{print $4 "/" $5}')" = 1/1
    check "both VMs' requests completed (vm-a $(row 1 vm-a | awk '{print $7}'), vm-b $(row 2 vm-b | awk '{print $7}'))" \
        test "$(row 1 vm-a | awk '{print ($7 > 0 && $6 == 0)}')$(row 2 vm-b | awk '{print ($7 > 0 && $6 == 0)}')" = 11
else
    fail "both VMs finished their milestones while attached"
fi
wait_vm vm-a; rc_a=$?
wait_vm vm-b; rc_b=$?
check_m1m2 vm-a 1 0 3 "$rc_a"
check_m1m2 vm-b 2 1 1 "$rc_b"
check "vm-a and vm-b had different sessions" \
    test "$(grep -m1 '^session:' "$work/vm-a.console")" != "$(grep -m1 '^session:' "$work/vm-b.console")"

status=$(mediator_status)
echo "$status"
check "mediator --status answers" grep -q "^sess" <<<"$status"
check "mediator log shows the vm-a session" has "$work/mediator.log" "vm-a"
check "mediator log shows the vm-b session" has "$work/mediator.log" "vm-b"
check "mediator still running" kill -0 "$med_pid"
finish
