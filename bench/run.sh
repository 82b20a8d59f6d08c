#!/usr/bin/env bash
# Host benchmarks in one run on this machine (make bench):
#   (a) raw Unix-socket ping-pong vs NOP round trip through the mediator,
#       the doorbell as an eventfd (the default) and as KICK messages
#   (b) NOP throughput, 1/4/16 clients x queue depth 1/32
#   (c) vector_add 2^10..2^24 floats through the mediator (cpu backend) vs
#       the same loop in-process
# Starts its own vgpu-mediator (cpu backend) on a temporary socket, prints one
# table and writes bench/results/<host>-<date>.json (every figure with its unit).
#
# usage: bench/run.sh BUILD_DIR
# env:   VGPU_BENCH_SECONDS  seconds per throughput case (default 2)
#        VGPU_BENCH_ROUNDS   round trips for the latency figures (default 100000)
#        VGPU_BENCH_QUICK=1  a short run (CI smoke test; figures not reportable)
set -euo pipefail

build=$(cd "${1:?usage: bench/run.sh BUILD_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
med=$build/mediator/vgpu-mediator
vb=$build/bench/vgpu-bench
pp=$build/bench/bench-pingpong
secs=${VGPU_BENCH_SECONDS:-2}
rounds=${VGPU_BENCH_ROUNDS:-100000}
vadd_secs=1
sizes="10 12 14 16 18 20 22 24"
iso_gemm=${VGPU_BENCH_ISO_GEMM:-4096} iso_secs=5
if [ "${VGPU_BENCH_QUICK:-0}" = 1 ]; then
  secs=0.2 rounds=2000 vadd_secs=0.05 sizes="10 16 20" iso_gemm=1024 iso_secs=0.5
fi

for b in "$med" "$vb" "$pp"; do
  [ -x "$b" ] || { echo "bench: $b missing; build first (ninja -C $build)" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vgpu-bench.XXXXXX")
sock=$tmp/mediator.sock
med_pid=
cleanup() {
  if [ -n "$med_pid" ]; then
    kill "$med_pid" 2>/dev/null || true
    wait "$med_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# /metrics for (e), where the mediator has it (built with libmicrohttpd).
mport=$((20000 + $$ % 20000))
metrics=()
if ldd "$med" 2>/dev/null | grep -q libmicrohttpd; then
  metrics=(--metrics-listen "127.0.0.1:$mport")
fi
"$med" --socket-path "$sock" --backend cpu --log-level warn "${metrics[@]}" >"$tmp/mediator.log" 2>&1 &
med_pid=$!
for _ in $(seq 100); do
  [ -S "$sock" ] && break
  if ! kill -0 "$med_pid" 2>/dev/null; then
    echo "bench: vgpu-mediator exited:" >&2; cat "$tmp/mediator.log" >&2; exit 1
  fi
  sleep 0.1
done
[ -S "$sock" ] || { echo "bench: mediator socket did not appear in 10 s" >&2; exit 1; }

res=$tmp/results.tsv
: >"$res"
run() {
  if ! "$@" >>"$res"; then
    echo "bench: failed: $*" >&2
    echo "--- mediator log:" >&2; tail -20 "$tmp/mediator.log" >&2
    exit 1
  fi
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench: running (about $((6 * ${secs%.*} + 30)) s) ..." >&2
run "$pp" "$rounds"
run "$vb" lat --socket "$sock" --rounds "$rounds" --doorbell eventfd
run "$vb" lat --socket "$sock" --rounds "$rounds" --doorbell socket
for c in 1 4 16; do
  for d in 1 32; do
    run "$vb" tput --socket "$sock" --clients "$c" --depth "$d" --seconds "$secs"
  done
done
for k in $sizes; do
  run "$vb" vadd --socket "$sock" --log2 "$k" --seconds "$vadd_secs"
done
# (e) monitoring beside the VMs: NOP round trips quiet, then while four
# clients scrape /metrics as fast as they can (a scrape storm).
if [ ${#metrics[@]} -gt 0 ]; then
  storm_secs=6 storm_rounds=$rounds
  [ "${VGPU_BENCH_QUICK:-0}" = 1 ] && storm_secs=1 storm_rounds=2000
  run "$vb" lat --socket "$sock" --rounds "$storm_rounds" --key nop_quiet
  python3 - "$mport" "$storm_secs" >"$tmp/storm.out" 2>/dev/null <<'PY' &
import http.client, sys, threading, time
port, secs = int(sys.argv[1]), float(sys.argv[2])
end, counts = time.time() + secs, []
def scrape():
    n, c = 0, http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    while time.time() < end:
        try:
            c.request("GET", "/metrics")
            c.getresponse().read()
            n += 1
        except Exception:
            c.close()
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    counts.append(n)
ts = [threading.Thread(target=scrape) for _ in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print(sum(counts) / secs)
PY
  storm=$!
  sleep 0.5
  run "$vb" lat --socket "$sock" --rounds "$storm_rounds" --key nop_storm
  wait "$storm" || true
  printf 'scrapes_per_s\t%s\t1/s\n' "$(cat "$tmp/storm.out" 2>/dev/null || echo 0)" >>"$res"
fi

# (d) bounded waits: a small VM alone, then beside two VMs each running two
# SGEMMs of iso_gemm^3 (mediators of its own; 1 and 2 executors). The
# program is the functional test's; here it only reports.
iso=$build/tests/functional/test_isolation
if [ -x "$iso" ]; then
  echo "bench: bounded waits (two VMs x two SGEMM ${iso_gemm}^3 beside a small VM)..." >&2
  VGPU_MEDIATOR=$med ISOLATION_GEMM=$iso_gemm ISOLATION_SECONDS=$iso_secs \
    ISOLATION_BOUND_MS=50 ISOLATION_TSV=$res "$iso" >"$tmp/isolation.log" 2>&1 ||
    echo "bench: bounded waits: some checks failed (p99 target 50 ms); see below" >&2
fi

host=$(hostname -s 2>/dev/null || echo host)
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
ncpu=$(nproc)
kernel=$(uname -r)
commit=$(git -C "$here/.." rev-parse --short HEAD 2>/dev/null || echo unknown)

val() { awk -F'\t' -v k="$1" '$1 == k { print $2 }' "$res"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

{
  echo "vgpu host benchmarks: $host, $ncpu CPUs ($cpu), kernel $kernel, commit $commit, $stamp"
  echo "mediator: --backend cpu, defaults otherwise; client: libvgpu sim transport"
  echo "load average before the run: $load_before (other work on the machine shows in p99s)"
  echo
  echo "(a) round trip at queue depth 1, $rounds rounds"
  printf "  %-34s %10s %10s %10s\n" "" "p50 us" "p99 us" "mean us"
  printf "  %-34s %10.2f %10.2f %10.2f\n" "raw Unix socket ping-pong (24 B)" \
    "$(val pingpong_p50)" "$(val pingpong_p99)" "$(val pingpong_mean)"
  # nop_*: the doorbell as an eventfd (default); nop_kick_*: KICK messages
  for m in "nop|NOP through the mediator|ratio|   (target p50 <= 2x)" \
           "nop_kick|  same, doorbell as KICK messages|  ratio to the ping-pong|"; do
    IFS='|' read -r k label rlabel note <<<"$m"
    printf "  %-34s %10.2f %10.2f %10.2f\n" "$label" \
      "$(val ${k}_p50)" "$(val ${k}_p99)" "$(val ${k}_mean)"
    printf "  %-34s %9sx %9sx %9sx%s\n" "$rlabel" \
      "$(ratio "$(val ${k}_p50)" "$(val pingpong_p50)")" \
      "$(ratio "$(val ${k}_p99)" "$(val pingpong_p99)")" \
      "$(ratio "$(val ${k}_mean)" "$(val pingpong_mean)")" "$note"
  done
  echo
  echo "(b) NOP throughput, requests/s ($secs s per case; one session per client)"
  printf "  %-10s %14s %14s\n" "clients" "depth 1" "depth 32"
  for c in 1 4 16; do
    printf "  %-10s %14.0f %14.0f\n" "$c" "$(val nop_tput_c${c}_d1)" "$(val nop_tput_c${c}_d32)"
  done
  echo
  echo "(c) vector_add, median time per request (depth 1; in-process: same loop, same buffers;"
  echo "    exec/queue: medians of what the mediator's completions report)"
  printf "  %-10s %14s %14s %8s %10s %10s\n" "floats" "mediator us" "in-process us" "ratio" \
    "exec us" "queue us"
  for k in $sizes; do
    printf "  %-10s %14.1f %14.1f %7.2fx %10.0f %10.0f\n" "2^$k" "$(val "vadd_2^${k}_mediator")" \
      "$(val "vadd_2^${k}_inprocess")" "$(val "vadd_2^${k}_ratio")" \
      "$(val "vadd_2^${k}_exec")" "$(val "vadd_2^${k}_queue")"
  done
  if [ -n "$(val iso_e1_alone_p50)" ]; then
    echo
    echo "(d) bounded waits: vector_add 2^12, one at a time, from a small VM alone and beside"
    echo "    two VMs each running two SGEMM $(val iso_e1_sgemm_dim)^3 (target beside: p99 <= 50 ms, 0 failed)"
    printf "  %-12s %10s %10s %11s %11s %11s %8s %7s\n" "executors" "alone p50" "alone p99" \
      "beside p50" "beside p99" "beside max" "p99 x" "failed"
    for e in 1 d; do
      label=1
      [ "$e" = d ] && label="default (2)"
      printf "  %-12s %8.3fms %8.3fms %9.3fms %9.3fms %9.3fms %7sx %7s\n" "$label" \
        "$(val iso_e${e}_alone_p50)" "$(val iso_e${e}_alone_p99)" "$(val iso_e${e}_beside_p50)" \
        "$(val iso_e${e}_beside_p99)" "$(val iso_e${e}_beside_max)" \
        "$(ratio "$(val iso_e${e}_beside_p99)" "$(val iso_e${e}_alone_p99)")" \
        "$(val iso_e${e}_beside_failed)"
    done
    echo "  (what bounds the wait: one part of a long request, --slice-us 5000 by default,"
    echo "   plus the CPU the heavy VMs' executors leave to the small VM's client)"
  fi
  if [ -n "$(val nop_storm_p50)" ]; then
    echo
    echo "(e) a VM's NOP round trip while /metrics is scraped as fast as 4 clients can"
    echo "    ($(val scrapes_per_s | cut -d. -f1) scrapes/s; the VMs' path must not notice)"
    printf "  %-34s %10s %10s %10s\n" "" "p50 us" "p99 us" "mean us"
    for m in "nop_quiet|no scrapes" "nop_storm|during the scrape storm"; do
      IFS='|' read -r k label <<<"$m"
      printf "  %-34s %10.2f %10.2f %10.2f\n" "$label" "$(val ${k}_p50)" "$(val ${k}_p99)" \
        "$(val ${k}_mean)"
    done
    printf "  %-34s %9sx %9sx %9sx\n" "ratio" \
      "$(ratio "$(val nop_storm_p50)" "$(val nop_quiet_p50)")" \
      "$(ratio "$(val nop_storm_p99)" "$(val nop_quiet_p99)")" \
      "$(ratio "$(val nop_storm_mean)" "$(val nop_quiet_mean)")"
  fi
} | tee "$tmp/table.txt"

mkdir -p "$here/results"
out=$here/results/$host-$(date -u +%Y-%m-%d-%H%M%S).json
if [ "${VGPU_BENCH_QUICK:-0}" = 1 ]; then
  out=$tmp/quick.json
fi
{
  printf '{\n  "host": "%s",\n  "date": "%s",\n  "nproc": %s,\n' "$host" "$stamp" "$ncpu"
  printf '  "cpu": "%s",\n  "kernel": "%s",\n  "commit": "%s",\n' "$cpu" "$kernel" "$commit"
  printf '  "mediator": "--backend cpu",\n  "rounds": %s,\n  "seconds_per_tput_case": %s,\n' \
    "$rounds" "$secs"
  printf '  "loadavg_before": "%s",\n' "$load_before"
  printf '  "metrics": {\n'
  awk -F'\t' '{ printf "%s    \"%s\": {\"value\": %s, \"unit\": \"%s\"}", (NR > 1 ? ",\n" : ""), $1, $2, $3 }
              END { printf "\n" }' "$res"
  printf '  }\n}\n'
} >"$out"
[ "${VGPU_BENCH_QUICK:-0}" = 1 ] || echo "bench: results written to ${out#"$here/../"}"
