#!/usr/bin/env bash
# Issue 11's program set on the GPU host, one command: every program of
# tests/cuda-programs (nvcc's defaults = static cudart, and -cudart shared)
#   native  on the host's NVIDIA driver (LD_LIBRARY_PATH=$CUDA_LIB only),
#   sim     through vgpu's libcuda.so.1 over libvgpu's sim transport to a real
#           vgpu-mediator --backend=cuda started here,
#   isolation  two processes at once as two VMs of that mediator
#           (VGPU_VM_ID 101 and 102): 101 runs oob_kernel (an out-of-bounds
#           kernel, cudaErrorIllegalAddress, reset, again) for ISO_SECONDS
#           while 102 runs the set: the set must pass, and 101 must see the
#           error natively expected every round;
# then the benchmarks, native vs sim: cuBLAS SGEMM 8192^3 GFLOP/s
# (bench/gpu/sgemm-bench) and the empty-kernel launch rate and launch+sync
# latency (bench/gpu/launch-bench).
#
# usage: OUT=/some/dir bench/cuda-programs.sh [BUILD_DIR]     (default build)
#
# Writes:
#   $OUT/cuda-programs.log   every run: mode, program, build, verdict, wall time;
#                            the per-mode lines, the benchmark figures, and last
#                            "cuda programs: N passed, M failed"
#   $OUT/cuda-programs.json  the figures, each with its unit: wall time native
#                            vs sim per program and build, the ratios, SGEMM
#                            GFLOP/s, launch rate and latency
#   $OUT/cuda-programs-mediator.log  the mediator's log (device printf of the
#                            sim runs lands here: the worker's stdout)
#   $OUT/cuda-programs/      each run's own output (MODE-PROGRAM[-shared].out)
#
# Needs in BUILD_DIR (the lead carries these): mediator/vgpu-mediator,
# guest/cuda/libcuda.so.1, tests/cuda-programs/, bench/gpu/{sgemm,launch}-bench,
# and gpu-libs/ when the host lacks the mediator's libraries.
#
# Environment: GPU (CUDA ordinal for the mediator, default 0), CUDA_LIB
# (NVIDIA's libcudart.so.13 and libcublas*.so.13, default /usr/local/cuda/lib64),
# PROGRAM_TIMEOUT (s per program run, default 60), TIME_BUDGET (s for the
# whole run, default 540: what would start later is reported as not run,
# failed, so one command stays under 10 minutes), ISO_SECONDS (default 30),
# SGEMM_N (8192), SGEMM_ITERS (20), LAUNCHES (100000), SYNCS (5000),
# MODES (default "native sim isolation bench": any subset, in that order),
# MEDIATOR (default BUILD_DIR/mediator/vgpu-mediator).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
build=${1:-${BUILD:-build}}
out=${OUT:?set OUT to the directory for results}
gpu=${GPU:-0}
cuda_lib=${CUDA_LIB:-/usr/local/cuda/lib64}
ptimeout=${PROGRAM_TIMEOUT:-60}
budget=${TIME_BUDGET:-540}
iso_secs=${ISO_SECONDS:-30}
sgemm_n=${SGEMM_N:-8192}
sgemm_iters=${SGEMM_ITERS:-20}
launches=${LAUNCHES:-100000}
syncs=${SYNCS:-5000}
modes=" ${MODES:-native sim isolation bench} "
want() { [[ "$modes" == *" $1 "* ]]; }

build=$(cd "$build" 2>/dev/null && pwd) || { echo "cuda-programs: no build dir ${1:-build}" >&2; exit 2; }
progdir=$build/tests/cuda-programs
libcuda_dir=$build/guest/cuda
med=${MEDIATOR:-$build/mediator/vgpu-mediator}
sgemm=$build/bench/gpu/sgemm-bench
launch=$build/bench/gpu/launch-bench

# The set, in run order; oob_kernel is run on its own (isolation) and in the
# native and sim passes (its fault must be the native one).
SET="vector_add matmul_shared streams_events callbacks atomics warp_intrinsics device_printf
     device_assert templates reduction driver_api cublas_gemm"

mkdir -p "$out/cuda-programs" || exit 1
log=$out/cuda-programs.log
json=$out/cuda-programs.json
medlog=$out/cuda-programs-mediator.log
runs=$out/cuda-programs/runs.tsv        # mode prog kind verdict wall_ms
figs=$out/cuda-programs/figures.tsv     # key value unit
: >"$log"
: >"$medlog"
: >"$runs"
: >"$figs"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vgpu-cuda-programs.XXXXXX")
sock=$tmp/mediator.sock
med_pid=
bg_pid=

say() { echo "$*" | tee -a "$log"; }
fig() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$figs"; }

workers=
stop_mediator() {
    [ -n "$med_pid" ] || return 0
    # Its GPU workers (one per VM) must end with it.
    workers=$(pgrep -P "$med_pid" | tr '\n' ' ')
    kill "$med_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$med_pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$med_pid" 2>/dev/null
    wait "$med_pid" 2>/dev/null
    med_pid=
}
cleanup() {
    [ -n "$bg_pid" ] && kill "$bg_pid" 2>/dev/null
    stop_mediator
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

start_mediator() {
    local libs=
    # The GPU host may lack libraries the mediator links (libinih,
    # libmicrohttpd): copies carried in $BUILD/gpu-libs, for it alone.
    [ -d "$build/gpu-libs" ] && libs=$build/gpu-libs
    say "starting $med --backend=cuda --gpu=$gpu --socket-path=$sock"
    LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        "$med" --backend=cuda --gpu="$gpu" --socket-path="$sock" --admin-socket=none \
        --log-level=info >>"$medlog" 2>&1 &
    med_pid=$!
    for _ in $(seq 150); do
        [ -S "$sock" ] && { say "mediator up (pid $med_pid)"; return 0; }
        kill -0 "$med_pid" 2>/dev/null || { say "mediator exited early:"; tail -n 20 "$medlog" | tee -a "$log"; med_pid=; return 1; }
        sleep 0.2
    done
    say "mediator socket did not appear in 30 s"
    return 1
}

# The environment of a mode: native = NVIDIA's driver from the system
# path; sim = our libcuda.so.1 first, NVIDIA's runtime libraries after it.
mode_env() {
    case "$1" in
        native) echo "env -u VGPU_SOCKET -u VGPU_TRANSPORT -u VGPU_VM_ID LD_LIBRARY_PATH=$cuda_lib" ;;
        sim)    echo "env VGPU_TRANSPORT=sim VGPU_SOCKET=$sock LD_LIBRARY_PATH=$libcuda_dir:$cuda_lib" ;;
    esac
}

now_ns() { date +%s%N; }
# Seconds left of the budget, at most $1.
left() { local l=$((budget - SECONDS)); [ "$l" -gt "$1" ] && l=$1; echo "$l"; }
ms_since() { awk -v a="$1" -v b="$(now_ns)" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'; }

# run_prog MODE LABEL PROG KIND [ENV...] -- [ARGS...]: one run, its verdict
# (PASS: exit 0 and its "PASS NAME" line) and wall time into the log and runs.tsv.
run_prog() {
    local mode=$1 label=$2 prog=$3 kind=$4; shift 4
    local envs=() args=() bin name outf t0 rc ms verdict why lim
    while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
    [ "${1:-}" = -- ] && shift
    args=("$@")
    name=$prog
    [ "$kind" = shared ] && name=$prog-shared
    bin=$progdir/$name
    outf=$out/cuda-programs/$label-$name.out
    if [ ! -x "$bin" ]; then
        printf '%-10s %-16s %-7s MISSING  %s not built\n' "$label" "$prog" "$kind" "$bin" | tee -a "$log"
        printf '%s\t%s\t%s\tFAIL\t0\n' "$label" "$prog" "$kind" >>"$runs"
        return 1
    fi
    lim=$(left "$ptimeout")
    if [ "$lim" -lt 5 ]; then
        printf '%-10s %-16s %-7s FAIL  not run: the time budget (%s s) is spent\n' "$label" "$prog" "$kind" "$budget" | tee -a "$log"
        printf '%s\t%s\t%s\tFAIL\t0\n' "$label" "$prog" "$kind" >>"$runs"
        return 1
    fi
    t0=$(now_ns)
    # shellcheck disable=SC2046
    timeout -k 5 "$lim" $(mode_env "$mode") "${envs[@]}" "$bin" "${args[@]}" >"$outf" 2>&1
    rc=$?
    ms=$(ms_since "$t0")
    if [ "$rc" = 0 ] && grep -q "^PASS $prog\b" "$outf"; then
        verdict=PASS
        why=$(grep -m1 "^PASS $prog" "$outf" | sed "s/^PASS $prog *//")
    else
        verdict=FAIL
        why=$(grep -m1 "^FAIL $prog" "$outf" | sed "s/^FAIL $prog: *//")
        [ -n "$why" ] || why=$(tail -n 3 "$outf" | tr '\n' ' ' | cut -c1-200)
        [ "$rc" = 124 ] || [ "$rc" = 137 ] && why="timed out after ${lim}s; $why"
        why="rc $rc: $why"
    fi
    printf '%-10s %-16s %-7s %-5s %9s ms  %s\n' "$label" "$prog" "$kind" "$verdict" "$ms" "$why" | tee -a "$log"
    printf '%s\t%s\t%s\t%s\t%s\n' "$label" "$prog" "$kind" "$verdict" "$ms" >>"$runs"
    [ "$verdict" = PASS ]
}

# Which libcuda.so.1 a mode really loads (the runtime dlopens it).
which_libcuda() {
    local bin=$progdir/vector_add
    [ -x "$bin" ] || return 0
    # shellcheck disable=SC2046
    timeout 60 $(mode_env "$1") LD_DEBUG=libs "$bin" 2>&1 >/dev/null |
        grep -m1 -o 'calling init: [^ ]*libcuda\.so[^ ]*' | sed "s/^/  $1: libcuda loaded: /" | tee -a "$log"
}

mode_set() {
    local mode=$1 p k
    say ""
    say "=== $mode ($(date -u +%H:%M:%S)): $(mode_env "$mode")"
    which_libcuda "$mode"
    for p in $SET oob_kernel; do
        for k in static shared; do
            run_prog "$mode" "$mode" "$p" "$k"
        done
    done
}

say "vgpu CUDA program set $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname) ($(uname -r)), build $build"
say "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_mode --format=csv,noheader -i "$gpu" 2>/dev/null || echo "nvidia-smi failed")"
say "toolkit libraries: $cuda_lib ($(ls "$cuda_lib"/libcudart.so.* "$cuda_lib"/libcublas.so.* 2>/dev/null | xargs -n1 basename 2>/dev/null | tr '\n' ' '))"
for f in "$med" "$libcuda_dir/libcuda.so.1" "$progdir" "$sgemm" "$launch"; do
    [ -e "$f" ] && say "artifact $f" || say "artifact $f: MISSING"
done

want native && mode_set native

if want sim || want isolation || want bench; then
    say ""
    start_mediator || say "the mediator did not start: every sim run below fails"
fi

want sim && mode_set sim

if want isolation; then
    say ""
    say "=== isolation ($(date -u +%H:%M:%S)): VGPU_VM_ID=101 runs oob_kernel $iso_secs while VGPU_VM_ID=102 runs the set"
    # oob_kernel must end while the run has time left
    [ "$(left "$iso_secs")" -lt "$iso_secs" ] && iso_secs=$(( $(left "$iso_secs") / 2 ))
    run_prog sim isolation-a oob_kernel static VGPU_VM_ID=101 -- "$iso_secs" &
    bg_pid=$!
    sleep 1
    for p in $SET; do
        run_prog sim isolation-b "$p" static VGPU_VM_ID=102
    done
    wait "$bg_pid"
    bg_pid=
    rounds=$(grep -m1 -o '[0-9]* round(s)' "$out/cuda-programs/isolation-a-oob_kernel.out" 2>/dev/null | cut -d' ' -f1)
    say "isolation: oob_kernel faulted ${rounds:-0} time(s) beside the set"
    fig isolation_oob_rounds "${rounds:-0}" rounds
fi

if want bench; then
    say ""
    say "=== benchmarks ($(date -u +%H:%M:%S))"
    for mode in native sim; do
        f=$out/cuda-programs/bench-$mode-sgemm.out
        if [ "$(left 120)" -lt 10 ]; then
            say "benchmarks $mode: not run, the time budget ($budget s) is spent"
            continue
        fi
        if [ -x "$sgemm" ]; then
            # shellcheck disable=SC2046
            timeout -k 5 "$(left 120)" $(mode_env "$mode") "$sgemm" "$sgemm_n" "$sgemm_iters" >"$f" 2>&1
            rc=$?
            g=$(grep -m1 -o '[0-9.]* GFLOP/s' "$f" | cut -d' ' -f1)
            say "sgemm $sgemm_n $mode: ${g:-FAILED (rc $rc: $(tail -n 1 "$f"))}${g:+ GFLOP/s}"
            [ -n "$g" ] && fig "sgemm_${sgemm_n}_gflops_$mode" "$g" GFLOP/s
        else
            say "sgemm $mode: $sgemm missing"
        fi
        f=$out/cuda-programs/bench-$mode-launch.out
        if [ -x "$launch" ] && [ "$(left 120)" -ge 10 ]; then
            # shellcheck disable=SC2046
            timeout -k 5 "$(left 120)" $(mode_env "$mode") "$launch" "$launches" "$syncs" >"$f" 2>&1
            rc=$?
            rate=$(grep -m1 '^launch async' "$f" | grep -o '[0-9.]* launches/s' | cut -d' ' -f1)
            p50=$(grep -m1 '^launch+sync' "$f" | sed -n 's/.*p50 \([0-9.]*\) us.*/\1/p')
            p99=$(grep -m1 '^launch+sync' "$f" | sed -n 's/.*p99 \([0-9.]*\) us.*/\1/p')
            if [ -n "$rate" ] && [ -n "$p50" ]; then
                say "launch $mode: async $rate launches/s; launch+sync p50 $p50 us, p99 $p99 us"
                fig "launch_async_rate_$mode" "$rate" launches/s
                fig "launch_sync_p50_$mode" "$p50" us
                fig "launch_sync_p99_$mode" "$p99" us
            else
                say "launch $mode: FAILED (rc $rc: $(tail -n 1 "$f"))"
            fi
        else
            say "launch $mode: $launch missing"
        fi
    done
fi
stop_mediator

# ---- summary -------------------------------------------------------------------
printf_lines=$(grep -c 'vgpu-device-printf block' "$medlog" 2>/dev/null)
say ""
say "device printf lines in the mediator's log (the sim runs' kernels print there): ${printf_lines:-0}"
left=0
for w in $workers; do kill -0 "$w" 2>/dev/null && left=$((left + 1)); done
say "mediator children left after it stopped: $left of $(echo $workers | wc -w) (want 0)"

# Ratios sim/native per program and build, for the JSON and the log.
say ""
say "wall time native vs sim (ms; ratio sim/native):"
awk -F'\t' '$1 == "native" || $1 == "sim" { t[$2 "\t" $3 "\t" $1] = $5; v[$2 "\t" $3 "\t" $1] = $4; k[$2 "\t" $3] = 1 }
     END { for (x in k) { n = t[x "\tnative"]; s = t[x "\tsim"];
                          split(x, a, "\t");
                          printf "  %-16s %-7s native %9s (%s)  sim %9s (%s)  ratio %s\n", a[1], a[2],
                                 n == "" ? "-" : n, v[x "\tnative"], s == "" ? "-" : s, v[x "\tsim"],
                                 (n > 0 && s > 0) ? sprintf("%.2f", s / n) : "-" } }' "$runs" |
    sort | tee -a "$log"

g_n=$(awk -F'\t' -v k="sgemm_${sgemm_n}_gflops_native" '$1 == k { print $2 }' "$figs")
g_s=$(awk -F'\t' -v k="sgemm_${sgemm_n}_gflops_sim" '$1 == k { print $2 }' "$figs")
[ -n "$g_n" ] && [ -n "$g_s" ] &&
    say "sgemm $sgemm_n through libcuda (sim): $(awk -v a="$g_s" -v b="$g_n" 'BEGIN { printf "%.1f", 100 * a / b }') % of native (target >= 95 %)"
r_n=$(awk -F'\t' '$1 == "launch_async_rate_native" { print $2 }' "$figs")
r_s=$(awk -F'\t' '$1 == "launch_async_rate_sim" { print $2 }' "$figs")
[ -n "$r_n" ] && [ -n "$r_s" ] &&
    say "async launch rate through libcuda (sim): $(awk -v a="$r_s" -v b="$r_n" 'BEGIN { printf "%.1f", 100 * a / b }') % of native (target >= 50 %)"
l_n=$(awk -F'\t' '$1 == "launch_sync_p50_native" { print $2 }' "$figs")
l_s=$(awk -F'\t' '$1 == "launch_sync_p50_sim" { print $2 }' "$figs")
[ -n "$l_n" ] && [ -n "$l_s" ] &&
    say "launch+sync p50 through libcuda (sim): $(awk -v a="$l_s" -v b="$l_n" 'BEGIN { printf "%.2f", a / b }') x native (target <= 2)"

# JSON: every figure with its unit.
{
    printf '{\n  "date": "%s",\n  "host": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(hostname)"
    printf '  "gpu": "%s",\n' "$(nvidia-smi --query-gpu=name --format=csv,noheader -i "$gpu" 2>/dev/null | head -n 1)"
    printf '  "commit": "%s",\n' "$(git rev-parse --short HEAD 2>/dev/null)"
    printf '  "builds": {"static": "nvcc defaults (cudart linked statically)", "shared": "-cudart shared"},\n'
    printf '  "runs": [\n'
    awk -F'\t' '{ printf "%s    {\"mode\": \"%s\", \"program\": \"%s\", \"build\": \"%s\", \"verdict\": \"%s\", \"wall_time\": {\"value\": %s, \"unit\": \"ms\"}}",
                  (NR > 1 ? ",\n" : ""), $1, $2, $3, $4, $5 + 0 }
         END { printf "\n" }' "$runs"
    printf '  ],\n  "native_vs_sim": [\n'
    awk -F'\t' '$1 == "native" || $1 == "sim" { t[$2 "\t" $3 "\t" $1] = $5; k[$2 "\t" $3] = 1 }
         END { m = 0; for (x in k) { n = t[x "\tnative"] + 0; s = t[x "\tsim"] + 0; split(x, a, "\t");
                 printf "%s    {\"program\": \"%s\", \"build\": \"%s\", \"native\": {\"value\": %s, \"unit\": \"ms\"}, \"sim\": {\"value\": %s, \"unit\": \"ms\"}, \"ratio_sim_to_native\": {\"value\": %s, \"unit\": \"x\"}}",
                        m++ ? ",\n" : "", a[1], a[2], n, s, (n > 0 && s > 0) ? sprintf("%.3f", s / n) : "null" }
               printf "\n" }' "$runs"
    printf '  ],\n  "figures": {\n'
    awk -F'\t' '{ printf "%s    \"%s\": {\"value\": %s, \"unit\": \"%s\"}", (NR > 1 ? ",\n" : ""), $1, $2, $3 } END { printf "\n" }' "$figs"
    printf '  },\n  "totals": {\n'
    awk -F'\t' '{ m = $1; sub(/-.*/, "", m); if ($4 == "PASS") p[m]++; else f[m]++; all[m] = 1; if ($4 == "PASS") tp++; else tf++ }
         END { for (m in all) printf "    \"%s\": {\"passed\": %d, \"failed\": %d},\n", m, p[m], f[m];
               printf "    \"all\": {\"passed\": %d, \"failed\": %d}\n", tp, tf }' "$runs"
    printf '  }\n}\n'
} >"$json"

say ""
for m in native sim isolation; do
    grep -q "^$m" "$runs" || continue
    p=$(awk -F'\t' -v m="$m" 'index($1, m) == 1 && $4 == "PASS"' "$runs" | wc -l)
    f=$(awk -F'\t' -v m="$m" 'index($1, m) == 1 && $4 != "PASS"' "$runs" | wc -l)
    say "cuda programs $m: $p passed, $f failed"
done
awk -F'\t' '$4 != "PASS"' "$runs" | awk -F'\t' '{ printf "  failed: %s %s (%s)\n", $1, $2, $3 }' | tee -a "$log"
p=$(awk -F'\t' '$4 == "PASS"' "$runs" | wc -l)
f=$(awk -F'\t' '$4 != "PASS"' "$runs" | wc -l)
say "cuda programs: $p passed, $f failed"
[ "$f" = 0 ]
