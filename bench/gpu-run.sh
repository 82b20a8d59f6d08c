#!/usr/bin/env bash
# The one command for the GPU host: runs the GPU test suite, the native vs
# mediated benchmark, the plot and the fairness test with the artifacts
# already built in BUILD (default build/), and writes everything to $OUT:
#
#   $OUT/gpu-run.log          every step's output, with timings and exit codes
#   $OUT/summary.txt          one line per step + the key figures
#   $OUT/mediator.log         the mediators' own logs (bench, fairness)
#   $OUT/gpu-<date>.json      benchmark figures (copy to bench/results/); the
#                             mediator runs CUDA in its worker process (default)
#   $OUT/gpu-<date>-nospin.json  the default again with every spin off
#                             (mediator and client --spin-us 0)
#   $OUT/gpu-<date>.png       the plot
#
# Every step has its own time limit and a failing step does not stop the
# independent ones; the whole run stays under 8 minutes.
#
# usage: OUT=/some/dir bench/gpu-run.sh      (from the repository root)
# env:   BUILD=build  GPU=0  QUICK=1 (a short smoke run; figures not reportable)
#        NOSPIN_BENCH=0 (skip the second: the default one with every spin off,
#                        mediator --spin-us=0 and client --spin-us 0)
#        SPIN_US=N (the first: --spin-us N for the mediator and the client
#                   instead of their defaults, 1000 us on >= 8 CPUs)
#        SECTIONS="phase1 phase2" (default both): phase1 = the seven fixed
#                   operations (sections 1-4), phase2 = the driver operations
#                   (test_cuops on PTX and fatbin, cuops-bench: $OUT/cuops-<date>.json)
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
build=${BUILD:-build}
out=${OUT:?set OUT to the directory for results}
gpu=${GPU:-0}
quick=${QUICK:-0}
sections=" ${SECTIONS:-phase1 phase2} "
want() { [[ "$sections" == *" $1 "* ]]; }
nospin_bench=${NOSPIN_BENCH:-1}
spin_med=() spin_cl=()
if [ -n "${SPIN_US:-}" ]; then
  spin_med=(--spin-us="$SPIN_US") spin_cl=(--spin-us "$SPIN_US")
fi
# The GPU host may lack libraries the mediator links (libinih, libmicrohttpd):
# copies carried in $BUILD/gpu-libs (cp -L from this machine's /usr/lib) are used.
if [ -d "$build/gpu-libs" ]; then
  libs=$(cd "$build/gpu-libs" && pwd)
  export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
mkdir -p "$out"
stamp=$(date -u +%Y-%m-%d-%H%M)
log=$out/gpu-run.log
summary=$out/summary.txt
medlog=$out/mediator.log
json=$out/gpu-$stamp.json
png=$out/gpu-$stamp.png
: >"$log"
: >"$summary"
: >"$medlog"

med=$build/mediator/vgpu-mediator
test_cuda=$build/tests/gpu/test_cuda
test_fair=$build/tests/gpu/test_fairness
bench=$build/bench/gpu/vgpu-bench-gpu

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vgpu-gpu-run.XXXXXX")
med_pid=
t_start=$(date +%s)

say() { echo "$*" | tee -a "$log"; }
note() { echo "$*" >>"$summary"; say "$*"; }

stop_mediator() {
  if [ -n "$med_pid" ]; then
    kill "$med_pid" 2>/dev/null
    for _ in $(seq 50); do
      kill -0 "$med_pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -9 "$med_pid" 2>/dev/null
    wait "$med_pid" 2>/dev/null
    med_pid=
  fi
}
cleanup() { stop_mediator; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# step NAME LIMIT_S CMD...: runs CMD with a time limit, output to stdout and
# the log, and records the verdict in the summary.
step() {
  local name=$1 limit=$2; shift 2
  local t0 rc
  say ""
  say "=== $name ($(date -u +%H:%M:%S), limit ${limit}s): $*"
  t0=$(date +%s%N)
  timeout --kill-after=5 "$limit" "$@" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  local el
  el=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
  if [ "$rc" = 0 ]; then
    note "step $name: ok (${el}s)"
  elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    note "step $name: TIMED OUT after ${limit}s (rc $rc)"
  else
    note "step $name: FAILED rc $rc (${el}s)"
  fi
  return "$rc"
}

say "vgpu GPU run $stamp on $(hostname) ($(uname -r)), build dir $build, out $out"
say "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

# ---- 0. the machine and the artifacts --------------------------------------
step nvidia-smi 15 nvidia-smi
step nvidia-smi-query 15 nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.max.sm,pcie.link.gen.current,pcie.link.width.current,persistence_mode --format=csv
missing=0
for f in "$med" "$test_cuda" "$test_fair" "$bench"; do
  if [ -x "$f" ]; then
    say "artifact $f: $(stat -c %s "$f") bytes"
  else
    note "artifact $f: MISSING (build with nvcc present: ninja -C $build)"
    missing=1
  fi
done
for lib in /usr/local/cuda/lib64/libcublas.so.13 /usr/local/cuda/lib64/libcublasLt.so.13; do
  if [ -e "$lib" ]; then
    say "found $lib"
  else
    say "not found: $lib (SGEMM will report not-supported)"
  fi
done
[ -x "$med" ] && { ldd "$med" 2>&1 | tee -a "$log"; }
[ "$missing" = 1 ] && say "some artifacts are missing; the steps that need them will fail"

start_mediator() {
  local sock=$1
  shift
  say "starting $med --backend=cuda --socket-path=$sock --gpu=$gpu $*"
  echo "=== mediator for $* ($(date -u +%H:%M:%S))" >>"$medlog"
  "$med" --backend=cuda --socket-path="$sock" --gpu="$gpu" "$@" >>"$medlog" 2>&1 &
  med_pid=$!
  for _ in $(seq 150); do
    [ -S "$sock" ] && return 0
    kill -0 "$med_pid" 2>/dev/null || { say "mediator exited early; see mediator.log"; med_pid=; return 1; }
    sleep 0.2
  done
  say "mediator socket did not appear in 30 s"
  return 1
}

if want phase1; then
# ---- 1. the engine in process against the CPU backend; recovery through ---
# ----    the proxy and its worker process (test_cuda re-execs itself), ------
# ----    from its own faulting and spinning kernels (the cuops PTX) ---------
step test_cuda 150 env CUOPS_IMAGE="$build/tests/gpu/cuops_kernels.ptx" "$test_cuda"

# ---- 1b. the functional kill loop and the bounded-wait figures on cuda -----
# (mediator SIGKILLed 32 times under checked in-place load: 0 wrong-ok; a
# small VM beside two VMs running SGEMM 8192^3, asserting the 50 ms p99)
step killloop-cuda 180 env FH_BACKEND=cuda VGPU_MEDIATOR="$med" \
  "$build/tests/functional/test_killloop"
step isolation-cuda 200 env FH_BACKEND=cuda VGPU_MEDIATOR="$med" ISOLATION_GEMM=8192 \
  ISOLATION_SECONDS=5 ISOLATION_BOUND_MS=50 ISOLATION_TSV="$out/isolation-$stamp.tsv" \
  "$build/tests/functional/test_isolation"
# The same figures as JSON (each with its unit) beside the TSV.
if [ -s "$out/isolation-$stamp.tsv" ]; then
  awk -F'\t' 'BEGIN { printf "{\n  \"gpu_isolation\": {\n" }
       { printf "%s    \"%s\": {\"value\": %s, \"unit\": \"%s\"}", (NR > 1 ? ",\n" : ""), $1, $2, $3 }
       END { printf "\n  }\n}\n" }' "$out/isolation-$stamp.tsv" >"$out/isolation-$stamp.json"
fi

# ---- 2. native vs mediated -------------------------------------------------

bench_args=(--socket "$tmp/bench.sock" --json "$json" --gpu "$gpu" ${spin_cl[@]+"${spin_cl[@]}"})
[ "$quick" = 1 ] && bench_args+=(--quick)
if start_mediator "$tmp/bench.sock" --log-level=info ${spin_med[@]+"${spin_med[@]}"}; then
  step bench 150 "$bench" "${bench_args[@]}"
  step mediator-status 10 "$med" --status --socket-path="$tmp/bench.sock"
else
  note "step bench: SKIPPED, the mediator did not start"
fi
stop_mediator
if [ -f "$json" ]; then
  mkdir -p bench/results && cp "$json" bench/results/ 2>/dev/null
fi

# The default configuration with every spin off: what the spins buy.
if [ "$nospin_bench" = 1 ]; then
  json_nospin=$out/gpu-$stamp-nospin.json
  nospin_args=(--socket "$tmp/bench-nospin.sock" --json "$json_nospin" --gpu "$gpu" --spin-us 0)
  [ "$quick" = 1 ] && nospin_args+=(--quick)
  if start_mediator "$tmp/bench-nospin.sock" --log-level=info --spin-us=0; then
    step bench-nospin 150 "$bench" "${nospin_args[@]}"
  else
    note "step bench-nospin: SKIPPED, the mediator did not start"
  fi
  stop_mediator
  [ -f "$json_nospin" ] && cp "$json_nospin" bench/results/ 2>/dev/null
fi
# The mediator's worker must have ended with it.
left=$(pgrep -f -- '--gpu-worker=' | wc -l)
note "gpu workers left after the mediators stopped: $left (want 0)"

# ---- 3. plot ---------------------------------------------------------------
py=
for cand in python3 /usr/bin/python3; do
  if "$cand" -c 'import matplotlib' 2>/dev/null; then py=$cand; break; fi
done
if [ -f "$json" ] && [ -n "$py" ]; then
  step plot 30 "$py" bench/gpu/plot.py "$json" "$png"
elif [ -f "$json" ]; then
  note "step plot: SKIPPED, no python3 with matplotlib"
else
  note "step plot: SKIPPED, no benchmark JSON"
fi

# ---- 4. fairness through the real mediator ---------------------------------
fair_secs=5
[ "$quick" = 1 ] && fair_secs=1
step fairness 70 "$test_fair" "$med" --backend cuda --seconds "$fair_secs" --log "$medlog"

fi # phase1

# ---- 5. the driver operations (Phase 2): two VMs' own kernels, isolation ---
if want phase2; then
  cuops=$build/tests/gpu/test_cuops
  for img in cuops_kernels.ptx cuops_kernels.fatbin; do
    step "cuops-${img##*.}" 120 env FH_BACKEND=cuda VGPU_MEDIATOR="$med" \
      CUOPS_IMAGE="$build/tests/gpu/$img" "$cuops"
  done
  cjson=$out/cuops-$stamp.json
  cbench=(--socket "$tmp/cuops.sock" --image "$build/tests/gpu/cuops_kernels.fatbin"
          --json "$cjson" --gpu "$gpu")
  [ "$quick" = 1 ] && cbench+=(--quick)
  if start_mediator "$tmp/cuops.sock" --log-level=info; then
    step cuops-bench 200 "$build/bench/gpu/cuops-bench" "${cbench[@]}"
  else
    note "step cuops-bench: SKIPPED, the mediator did not start"
  fi
  stop_mediator
  [ -f "$cjson" ] && mkdir -p bench/results && cp "$cjson" bench/results/ 2>/dev/null
fi

# ---- summary ---------------------------------------------------------------
{
  echo ""
  echo "key figures:"
  grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | sed 's/^/  tests: /'
  grep -E '^(vector_add|sgemm|memcpy_h2d|memcpy_roundtrip) +[0-9]' "$log" | sed 's/^/  bench: /'
  grep -E 'recovery: |worker restarts' "$log" | sed 's/^/  /'
  grep -E 'restarting the GPU worker|GPU worker restart failed' "$medlog" | sed 's/^/  mediator: /'
  grep -E 'fairness (sgemm|vector_add):' "$log" | sed 's/^/  /'
  grep -E '^(async launches|launch\+sync|H2D 256|isolation:)' "$log" | sed 's/^/  cuops: /'
  grep -E '^FAIL ' "$log" | sed 's/^/  failed: /'
  echo "elapsed $(( $(date +%s) - t_start )) s"
} >>"$summary"
say ""
say "=== summary"
tee -a "$log" <"$summary"
find "$out" -maxdepth 1 -type f -printf '%s\t%p\n' | tee -a "$log"
