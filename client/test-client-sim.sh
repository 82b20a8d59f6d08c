#!/usr/bin/env bash
# Functional test of vgpu-client over the sim transport against a real
# vgpu-mediator (cpu backend): every command, the documented exit codes, and
# link loss while requests are in flight. Every step has a deadline.
# usage: test-client-sim.sh MEDIATOR CLIENT
set -uo pipefail
med=${1:?usage: test-client-sim.sh MEDIATOR CLIENT}
client=${2:?usage: test-client-sim.sh MEDIATOR CLIENT}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vgpu-client-test.XXXXXX")
sock=$tmp/mediator.sock
med_pid=
passed=0 failed=0
cleanup() {
  if [ -n "$med_pid" ]; then kill "$med_pid" 2>/dev/null; wait "$med_pid" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

ok()   { echo "ok   - $1"; passed=$((passed + 1)); }
bad()  { echo "FAIL - $1"; failed=$((failed + 1)); }
# expect RC NAME CMD...: runs CMD (60 s deadline), output to $tmp/out
expect() {
  local want=$1 name=$2 rc
  shift 2
  timeout 60 "$@" >"$tmp/out" 2>&1
  rc=$?
  if [ "$rc" -eq "$want" ]; then ok "$name (rc $rc)"; else bad "$name (rc $rc, want $want)"; cat "$tmp/out"; fi
}
has() { if grep -qE -- "$2" "$tmp/out"; then ok "$1"; else bad "$1: no /$2/ in output"; cat "$tmp/out"; fi; }

start_mediator() {
  rm -f "$sock"
  "$med" --socket-path "$sock" --backend cpu --log-level warn >>"$tmp/mediator.log" 2>&1 &
  med_pid=$!
  for _ in $(seq 100); do
    [ -S "$sock" ] && return 0
    kill -0 "$med_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "mediator did not start:"; cat "$tmp/mediator.log"
  exit 1
}

start_mediator
c=("$client" --transport sim --socket "$sock" --timeout-ms 5000)

expect 0 "info" "${c[@]}" info
has "info shows the link up" "^link: +up"
has "info shows the cpu backend" "^backend: +cpu"
expect 0 "nop -c 200" "${c[@]}" nop -c 200
has "nop prints round-trip times" 'nop: 200 round trips, .*p50 [0-9.]+ us'
expect 0 "vector-add -n 1000000" "${c[@]}" --vm-id 3 --priority 1 --weight 5 --name t vector-add -n 1000000
has "vector-add checked" 'vector_add n=1000000: ok'
expect 0 "selftest" "${c[@]}" selftest
has "selftest vector_add line" '^Test passed: vector addition successful$'
has "selftest summary" '^selftest: [0-9]+ passed, 0 failed$'
expect 0 "selftest, doorbell as KICK messages" "${c[@]}" --doorbell socket selftest
has "selftest (KICK) vector_add line" '^Test passed: vector addition successful$'
expect 0 "bench --depth 4 --json" "${c[@]}" bench --seconds 0.2 --depth 4 --json "$tmp/b.json"
if grep -q '"requests_per_s"' "$tmp/b.json" 2>/dev/null; then ok "bench json written"; else bad "bench json"; fi
expect 0 "hostile --seconds 1" "${c[@]}" hostile --seconds 1
has "hostile reports no violations" 'hostile: [0-9]+ requests .*, 0 violations'
has "hostile final vector_add" 'hostile: final vector_add passed'

# The CUDA commands on the cpu backend: a clear "not supported", exit 1;
# their argument language's mistakes are usage errors (2).
printf '.version 8.0\n.target sm_90\n' >"$tmp/k.ptx"
expect 1 "cu-info on the cpu backend" "${c[@]}" cu-info
has "cu-info: not supported, and why" 'cu_device_info: not supported .*backend is cpu'
expect 1 "run-ptx on the cpu backend" "${c[@]}" run-ptx "$tmp/k.ptx" --kernel k \
  --buf x:4k:iota:f32 --arg ptr:x --arg u32:1024 --grid 4 --block 256 --expect x:iota:f32
has "run-ptx: not supported, and why" 'cu_module_load: not supported'
expect 2 "run-ptx without --kernel" "${c[@]}" run-ptx "$tmp/k.ptx"
expect 2 "run-ptx without a file" "${c[@]}" run-ptx --kernel k
expect 2 "run-ptx: a missing file" "${c[@]}" run-ptx "$tmp/none.ptx" --kernel k
expect 2 "run-ptx: bad --buf size" "${c[@]}" run-ptx "$tmp/k.ptx" --kernel k --buf x:0
expect 2 "run-ptx: bad --buf init" "${c[@]}" run-ptx "$tmp/k.ptx" --kernel k --buf x:16:iota:f16
expect 2 "run-ptx: --arg of an unknown buffer" "${c[@]}" run-ptx "$tmp/k.ptx" --kernel k --arg ptr:y
expect 2 "run-ptx: --arg value out of range" "${c[@]}" run-ptx "$tmp/k.ptx" --kernel k --arg u8:256
expect 2 "run-ptx: --grid 0" "${c[@]}" run-ptx "$tmp/k.ptx" --kernel k --grid 1,0
expect 2 "run-ptx: --out of an unknown buffer" "${c[@]}" run-ptx "$tmp/k.ptx" --kernel k --out z
has "run-ptx usage errors name the option" 'no such --buf'

# Exit codes documented in --help.
expect 0 "--help" "$client" --help
has "--help documents exit codes" 'Exit codes: 0 success'
expect 2 "unknown command is a usage error" "${c[@]}" frobnicate
expect 2 "vector-add without -n is a usage error" "${c[@]}" vector-add
expect 2 "--doorbell other than eventfd/socket is a usage error" "${c[@]}" --doorbell pipe info
expect 5 "no mediator listening: link exit code" \
  "$client" --transport sim --socket "$tmp/nobody.sock" --timeout-ms 200 nop
has "no mediator: clear message" 'mediator not running'
expect 3 "no PCI device: no-device exit code" \
  env VGPU_PCI_SYSFS="$tmp/empty" "$client" --transport pci --timeout-ms 200 info
has "no PCI device: clear message" 'no vgpu device found'

# Link loss while requests are in flight: the client must stop with the
# link exit code, promptly, not hang.
"${c[@]}" bench --seconds 20 --depth 8 >"$tmp/out" 2>&1 &
cpid=$!
sleep 1
kill "$med_pid"; wait "$med_pid" 2>/dev/null; med_pid=
for _ in $(seq 50); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$cpid" 2>/dev/null; then
  bad "client exits within 5 s of the mediator dying"; kill "$cpid"; wait "$cpid"
else
  wait "$cpid"; rc=$?
  if [ "$rc" -eq 5 ]; then ok "mediator killed mid-bench: rc 5"; else bad "mediator killed mid-bench: rc $rc, want 5"; fi
  has "mediator killed: clear message" 'mediator not connected \(link down\)'
fi

echo "client-sim: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
