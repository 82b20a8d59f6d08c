#!/usr/bin/env bash
# vgpu-client's CUDA commands (cu-info, run-ptx) through the whole mediator
# on the mock CUDA driver (tests/gpu/mock_cudadrv.c: its "module image" is a
# text file naming kernels and their parameter sizes, and the kernels run on
# the CPU): buffers made and initialised, parameters packed by the kernel's
# layout, results printed, checked and saved, the exit codes of a wrong
# result, a faulting kernel, a missing kernel and a parameter mismatch.
#
# usage: test-client-cu-mock.sh MEDIATOR CLIENT
set -uo pipefail
med=${1:?usage: test-client-cu-mock.sh MEDIATOR CLIENT}
client=${2:?usage: test-client-cu-mock.sh MEDIATOR CLIENT}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vgpu-client-cu.XXXXXX")
sock=$tmp/med.sock
med_pid=
passed=0 failed=0
cleanup() {
  if [ -n "$med_pid" ]; then kill "$med_pid" 2>/dev/null; wait "$med_pid" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

ok()   { echo "ok   - $1"; passed=$((passed + 1)); }
bad()  { echo "FAIL - $1"; failed=$((failed + 1)); }
expect() {
  local want=$1 name=$2 rc
  shift 2
  timeout 60 "$@" >"$tmp/out" 2>&1
  rc=$?
  if [ "$rc" -eq "$want" ]; then ok "$name (rc $rc)"; else bad "$name (rc $rc, want $want)"; cat "$tmp/out"; fi
}
has() { if grep -qE -- "$2" "$tmp/out"; then ok "$1"; else bad "$1: no /$2/ in output"; cat "$tmp/out"; fi; }

"$med" --backend=cuda --socket-path="$sock" --admin-socket=none --timeout-ms=5000 \
  --log-level=warn >"$tmp/med.log" 2>&1 &
med_pid=$!
for _ in $(seq 100); do
  [ -S "$sock" ] && break
  sleep 0.1
done
if ! [ -S "$sock" ]; then echo "FAIL - mediator did not start"; cat "$tmp/med.log"; exit 1; fi

c=("$client" --transport sim --socket "$sock" --timeout-ms 10000)
img=$tmp/kernels.mock
printf 'VGPU-MOCK-MODULE\nfunc vadd 8,8,8,4\nfunc fill_u32 8,4,8\nfunc mixed 1,8,2,4,8\nfunc fault 8\n' >"$img"
vadd=(run-ptx "$img" --kernel vadd --grid 4 --block 256
      --buf a:4k:iota:f32 --buf b:4k:fill:f32:0.5 --buf c:4k
      --arg ptr:a --arg ptr:b --arg ptr:c --arg i32:1024)

expect 0 "cu-info" "${c[@]}" cu-info
has "cu-info names the GPU" '^device: +vgpu mock GPU'
has "cu-info: compute capability" '^compute cap: +9\.0'
has "cu-info: the quota as memory" '^memory: +[0-9]+ MiB \(the VM.s quota\)'
expect 0 "cu-info --attrs" "${c[@]}" cu-info --attrs
has "cu-info --attrs lists attributes" '^attr\[16\] = 4$'

expect 0 "run-ptx vadd, checked" "${c[@]}" "${vadd[@]}" --expect c:iota:f32:0.5:1 --out c:f32:4
has "run-ptx: the launch line" '^vadd: grid 4,1,1 block 256,1,1 shared 0, 4 parameter\(s\) \(28 bytes\)'
has "run-ptx: the check" '^c: 1024 elements as expected$'
has "run-ptx: the values" '^c\[0\]: 0.5 1.5 2.5 3.5$'
expect 0 "run-ptx vadd --repeat 20 --save" "${c[@]}" "${vadd[@]}" --repeat 20 --save "c:$tmp/c.bin"
if [ "$(stat -c %s "$tmp/c.bin" 2>/dev/null)" = 4096 ]; then ok "--save wrote 4096 bytes"; else bad "--save"; fi
has "run-ptx: 20 launches" '20 launch\(es\) \+ sync'
# The saved bytes as an expectation, and as a buffer's contents.
expect 0 "--expect file:" "${c[@]}" "${vadd[@]}" --expect "c:file:$tmp/c.bin"
expect 0 "--buf ...:file:" "${c[@]}" run-ptx "$img" --kernel vadd --grid 1 --block 1024 \
  --buf a:4k:file:"$tmp/c.bin" --buf b:4k --buf c:4k \
  --arg ptr:a --arg ptr:b --arg ptr:c --arg i32:1024 --expect "c:file:$tmp/c.bin"
expect 1 "a wrong expectation fails the check" "${c[@]}" "${vadd[@]}" --expect c:iota:f32:0:1
has "and says where" '^c: 1024 of 1024 elements wrong; first \[0\]: 0.5, expected 0$'
expect 0 "--tol accepts a near result" "${c[@]}" "${vadd[@]}" --expect c:iota:f32:0.5000001:1 --tol 1e-6

expect 0 "every scalar type packed at its offset" "${c[@]}" run-ptx "$img" --kernel mixed \
  --buf o:16 --arg i8:-3 --arg f64:2.5 --arg i16:-300 --arg i32:70000 --arg ptr:o --out o:f32
has "mixed: the values" '^o\[0\]: -3 2.5 -300 70000$'
expect 0 "ptr:NAME+OFFSET" "${c[@]}" run-ptx "$img" --kernel fill_u32 --buf p:32 \
  --arg ptr:p+8 --arg u32:0xdeadbeef --arg u64:2 --out p:u32
has "fill_u32 wrote at the offset" '^p\[0\]: 0 0 3735928559 3735928559 0 0 0 0$'

expect 1 "a faulting kernel" "${c[@]}" run-ptx "$img" --kernel fault --arg u64:0
has "the fault is reported" 'status (gpu-fault|cuda-error|context-lost)'
expect 0 "the VM runs on after its fault" "${c[@]}" "${vadd[@]}" --expect c:iota:f32:0.5:1
expect 1 "a missing kernel" "${c[@]}" run-ptx "$img" --kernel nope
has "its CUresult" 'cu_module_get_function: the driver refused it \(CUresult 500\)'
expect 2 "too few --arg for the kernel" "${c[@]}" run-ptx "$img" --kernel vadd --arg i32:1
has "says how many" 'vadd takes 4 parameter\(s\), 1 --arg given'
expect 2 "--arg of the wrong size" "${c[@]}" run-ptx "$img" --kernel fill_u32 --buf p:16 \
  --arg ptr:p --arg u64:1 --arg u64:4
has "says which" 'parameter 1 of fill_u32 is 4 bytes, --arg u64 is 8'
printf 'not an image\n' >"$tmp/bad.mock"
expect 1 "an invalid image" "${c[@]}" run-ptx "$tmp/bad.mock" --kernel vadd
has "its CUresult" 'cu_module_load: the driver refused it \(CUresult 200\)'

echo "client-cu-mock: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
