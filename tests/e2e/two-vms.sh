#!/usr/bin/env bash
# e2e: two VMs at once with different priorities and weights; each checks
# its own results (every element of its vector_add) and sees its own
# identity; the mediator's stats list both.
. "$(dirname "$0")/lib.sh"
require

start_mediator || { fail "mediator starts"; finish; }
start_vm vm-a 1 0 3 180 m1m2 262144
start_vm vm-b 2 1 1 180 m1m2 131072
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
