#!/usr/bin/env bash
# e2e: one VM runs Milestone 1 (info, NOP) and Milestone 2 (vector_add with
# every element checked, selftest) through QEMU's vgpu-stub and the mediator.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
require

start_mediator || { fail "mediator starts"; finish; }
start_vm vm-one 7 1 2 150 m1m2
wait_vm vm-one
rc=$?
check_m1m2 vm-one 7 1 2 "$rc"

status=$(mediator_status)
echo "$status"
check "mediator --status answers" grep -q "^sess" <<<"$status"
check "mediator log shows the vm-one session" has "$work/mediator.log" "vm-one"
check "mediator still running" kill -0 "$med_pid"
finish
