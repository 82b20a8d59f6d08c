#!/usr/bin/env bash
# Runs the meson test suites (all, or the ones named) and ends with one
# summary line "N passed, N failed".
# usage: scripts/run-tests.sh BUILD_DIR [suite...]
set -uo pipefail
build=${1:?usage: run-tests.sh BUILD_DIR [suite...]}; shift
suites=("$@")
# VGPU_TEST_QEMU10=1 (`make test` sets it unless QEMU10=0): the qtests
# against QEMU 10.0 as well, suite qtest-10.0.
if [ ${#suites[@]} -eq 0 ]; then
  suites=(unit functional qtest packaging e2e)
  [ "${VGPU_TEST_QEMU10:-0}" = 1 ] && suites+=(qtest-10.0)
fi

args=()
for s in "${suites[@]}"; do args+=(--suite "$s"); done
meson test -C "$build" --print-errorlogs --num-processes 2 "${args[@]}"
rc=$?

log="$build/meson-logs/testlog.json"
if [ -f "$log" ]; then
  python3 - "$log" <<'PY'
import json, sys
ok = bad = skip = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"): ok += 1
    elif r == "SKIP": skip += 1
    else: bad += 1
print(f"tests: {ok} passed, {bad} failed" + (f", {skip} skipped" if skip else ""))
PY
fi
exit $rc
