#!/usr/bin/env bash
# vgpu-mediator's binary holds none of the CUDA backend's test hooks: they
# exist only in the test executables' own build of the backend
# (-DVGPU_CUDA_TESTING, mediator/cuda/cuda_testing.h). A test binary built
# with them is the control that the check can see a hook at all.
# usage: test-no-test-hooks.sh VGPU_MEDIATOR CONTROL_BINARY
set -uo pipefail

mediator=$1 control=$2
fails=0
ok()     { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; fails=$((fails + 1)); }

# Symbols of the hooks (and of the test requests they replaced).
syms='vgpu_cuda_test_|vgpu_cuda_proxy_(test|stats|set_exe)|vgpu_cuda_engine_test'
# Text only a hook or a test request would carry.
text='unloaded by a test|VGPU_WORKER_TEST|VGPU_FAKE_'

found=$(nm "$mediator" 2>/dev/null | grep -oE "\\b($syms)[A-Za-z0-9_]*" | sort -u | tr '\n' ' ')
[ -z "$found" ] && ok "vgpu-mediator defines no test-hook symbol" ||
    not_ok "vgpu-mediator defines test hooks: $found"
found=$(strings -a "$mediator" | grep -E "$text" | sort -u | tr '\n' ' ')
[ -z "$found" ] && ok "vgpu-mediator carries no test-hook text" ||
    not_ok "vgpu-mediator carries test-hook text: $found"

# The control: the same check sees the hooks where they are compiled in.
grep -qE "\\b($syms)" <<<"$(nm "$control" 2>/dev/null)" && ok "the check sees hooks in $(basename "$control")" ||
    not_ok "no hook symbol found in the control $(basename "$control"): is nm working?"

exit $((fails > 0))
