#!/usr/bin/env bash
# e2e: no mediator at all. The VM still boots (QEMU keeps trying to
# connect), the guest sees the link down, the client says so clearly and
# gives up within its timeout; nothing hangs.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
require

# $sock names a socket nobody listens on.
t0=$(date +%s)
start_vm vm-alone 5 0 1 90 nop
wait_vm vm-alone
rc=$?
secs=$(($(date +%s) - t0))
c=$work/vm-alone.console
check "VM booted and the guest reported its exit (rc $rc, not a vm.sh timeout/failure)" \
    has "$c" "VGPU-GUEST-EXIT rc="
check "guest init reports the link down" has "$c" "mediator link DOWN"
check "client says 'mediator not connected (link down)'" has "$c" "mediator not connected (link down)"
check "client exit status 5 (link) (got $rc)" [ "$rc" -eq 5 ]
check "done well within the 90 s timeout (took ${secs}s)" [ "$secs" -lt 80 ]
finish
