#!/usr/bin/env bash
# e2e: a hostile guest (bad ranges, unknown ops, rewritten descriptors,
# corrupt ring indexes, doorbell storms) beside a good VM. The good VM's
# results stay correct; QEMU and the mediator stay up.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
require

start_mediator || { fail "mediator starts"; finish; }
# The hostile client scribbles on queue 0's ring through the raw BARs: the
# Phase 1 "pci" transport (uio_pci_generic), not the guest driver.
VM_ARGS=(--append vgpu.bind=uio)
start_vm vm-bad 66 0 1 180 hostile --seconds 15
VM_ARGS=()
start_vm vm-good 1 0 1 180 vector-add-loop 25 16384
wait_vm vm-bad; rc_bad=$?
wait_vm vm-good; rc_good=$?
cg=$work/vm-good.console cb=$work/vm-bad.console

check "hostile guest ran to its end and reported (QEMU stayed up; rc $rc_bad)" has "$cb" "VGPU-GUEST-EXIT rc="
check "device stayed correct for the hostile guest (hostile rc 0)" [ "$rc_bad" -eq 0 ]
check "good VM exit status 0 (got $rc_good)" [ "$rc_good" -eq 0 ]
check "good VM: every vector_add correct" has_re "$cg" '^loop: [1-9][0-9]* passed, 0 failed'
check "mediator still running" kill -0 "$med_pid"
status=$(mediator_status)
echo "$status"
check "mediator answers --status after the attack" grep -q "^sess" <<<"$status"
finish
