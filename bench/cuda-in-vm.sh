#!/usr/bin/env bash
# Issue 11's program set in two VMs at once on the GPU host, one command:
# builds the CUDA disk here from this host's toolkit (guest/build-cuda-disk.sh:
# our libcuda.so.1, NVIDIA's libcudart/libcublas, the programs), starts a
# real vgpu-mediator --backend=cuda, and boots two TCG VMs of the guest image
# against it, each with the disk at /opt/cuda (guest/run/cuda-programs, as
# the ordinary user "user" on its own /dev/vgpu0 queue):
#   vm-a (vm-id 1)  oob_kernel for ISO_SECONDS (an out-of-bounds kernel:
#                   cudaErrorIllegalAddress, reset, again), then the set
#   vm-b (vm-id 2)  the set from boot (beside vm-a's faults: must pass), then
#                   sgemm-bench and launch-bench in the VM
# and, unless HOST_PASS=0 or this OUT already has them, the same programs
# natively on the host plus the benchmarks native vs sim first
# (bench/cuda-programs.sh MODES="native bench"), for the comparison.
#
# usage: OUT=/some/dir bench/cuda-in-vm.sh [BUILD_DIR]     (default build)
#
# Writes:
#   $OUT/cuda-in-vm.log        per VM and run: program, build, verdict, wall
#                              time; isolation; in-VM vs native figures; last
#                              "cuda programs in VM: N passed, M failed"
#   $OUT/cuda-in-vm.json       the figures with their units
#   $OUT/cuda-in-vm-vm-a.console, ...-vm-b.console   the VMs' whole consoles
#   $OUT/cuda-in-vm-mediator.log  (device printf of the VMs' kernels is here)
#
# Needs (carried): BUILD_DIR/{mediator, guest/cuda/libcuda.so.1,
# guest/vmlinuz, guest/initramfs.img (guest/build-image.sh, made on the
# development machine), tests/cuda-programs, bench/gpu, qemu/carry (the
# self-contained QEMU of scripts/build-qemu.sh), gpu-libs}. The toolkit's
# libraries come from $CUDA_LIB on this host.
#
# Environment: VGPU_QEMU (default BUILD_DIR/qemu/carry/qemu-system-x86_64,
# else BUILD_DIR/qemu/qemu-system-x86_64), VGPU_GUEST_DIR (BUILD_DIR/guest),
# VGPU_ACCEL (tcg), GPU (0), CUDA_LIB (/usr/local/cuda/lib64), VM_MEM (1536M;
# 3G when the CUDA tree has to ride in the initramfs: no mke2fs here),
# VM_SMP (2), VM_SHM (256M), VM_TIMEOUT (s, 400; the guest's own deadline 25 s less), ISO_SECONDS (45), BUILDS
# (static,shared), VM_BENCH (8192,20,20000,2000: SGEMM N, iterations,
# launches, syncs), HOST_PASS (1; at most 150 s), HOST_RESULTS (a directory
# with runs.tsv and figures.tsv of an earlier bench/cuda-programs.sh, used
# instead of the host pass), MEDIATOR. The defaults keep the whole run under
# 10 minutes.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
build=${1:-${BUILD:-build}}
build=$(cd "$build" 2>/dev/null && pwd) || { echo "cuda-in-vm: no build dir ${1:-build}" >&2; exit 2; }
out=${OUT:?set OUT to the directory for results}
mkdir -p "$out" || exit 1
out=$(cd "$out" && pwd)
gpu=${GPU:-0}
cuda_lib=${CUDA_LIB:-/usr/local/cuda/lib64}
if [ -z "${VGPU_QEMU:-}" ]; then
    VGPU_QEMU=$build/qemu/qemu-system-x86_64
    [ -x "$build/qemu/carry/qemu-system-x86_64" ] && VGPU_QEMU=$build/qemu/carry/qemu-system-x86_64
fi
export VGPU_QEMU
export VGPU_GUEST_DIR=${VGPU_GUEST_DIR:-$build/guest}
export VGPU_ACCEL=${VGPU_ACCEL:-tcg}
med=${MEDIATOR:-$build/mediator/vgpu-mediator}
vm_mem=${VM_MEM:-}
vm_smp=${VM_SMP:-2}
vm_shm=${VM_SHM:-256M}
vm_timeout=${VM_TIMEOUT:-400}
iso_secs=${ISO_SECONDS:-45}
builds=${BUILDS:-static,shared}
vm_bench=${VM_BENCH:-8192,20,20000,2000}
host_pass=${HOST_PASS:-1}

log=$out/cuda-in-vm.log
json=$out/cuda-in-vm.json
medlog=$out/cuda-in-vm-mediator.log
: >"$log"
: >"$medlog"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vgpu-cuda-in-vm.XXXXXX")
sock=$tmp/mediator.sock
med_pid=
vm_pids=()

say() { echo "$*" | tee -a "$log"; }

stop_mediator() {
    [ -n "$med_pid" ] || return 0
    kill "$med_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$med_pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$med_pid" 2>/dev/null
    wait "$med_pid" 2>/dev/null
    med_pid=
}
cleanup() {
    local p
    for p in ${vm_pids[@]+"${vm_pids[@]}"}; do kill "$p" 2>/dev/null; done
    for p in ${vm_pids[@]+"${vm_pids[@]}"}; do wait "$p" 2>/dev/null; done
    stop_mediator
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

say "vgpu CUDA programs in VMs $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname) ($(uname -r)), $(nproc) cpus, build $build"
say "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_mode --format=csv,noheader -i "$gpu" 2>/dev/null || echo "nvidia-smi failed")"
missing=0
for f in "$VGPU_QEMU" "$VGPU_GUEST_DIR/vmlinuz" "$VGPU_GUEST_DIR/initramfs.img" "$med" \
         "$build/guest/cuda/libcuda.so.1" "$build/tests/cuda-programs/vector_add"; do
    if [ -e "$f" ]; then say "artifact $f"; else say "artifact $f: MISSING"; missing=1; fi
done
[ -x "$VGPU_QEMU" ] && say "qemu: $("$VGPU_QEMU" -version 2>&1 | head -n 1), accel $VGPU_ACCEL, $vm_smp vCPU, BAR2 $vm_shm"
say "guest image: $(grep -m1 '^# vgpu guest image' "$VGPU_GUEST_DIR/manifest.txt" 2>/dev/null); libcuda.so.1 in the image: $(grep -c 'usr/lib/vgpu/libcuda.so.1' "$VGPU_GUEST_DIR/manifest.txt" 2>/dev/null)"
if [ "$missing" = 1 ]; then
    say "cuda programs in VM: 0 passed, 1 failed"
    exit 1
fi

# ---- 1. the host's own figures (native, and the benchmarks native vs sim) -----
host_dir=$out/cuda-programs
if [ -n "${HOST_RESULTS:-}" ]; then
    host_dir=$HOST_RESULTS
    say "host figures from $host_dir (runs.tsv, figures.tsv of an earlier bench/cuda-programs.sh)"
elif [ "$host_pass" = 1 ] && [ ! -s "$host_dir/runs.tsv" ]; then
    say ""
    say "=== host pass: bench/cuda-programs.sh MODES=\"native bench\" ($(date -u +%H:%M:%S)); its log: cuda-programs.log"
    OUT=$out MODES="native bench" MEDIATOR=$med GPU=$gpu CUDA_LIB=$cuda_lib \
        timeout -k 10 150 bench/cuda-programs.sh "$build" >/dev/null 2>&1
    say "host pass: $(tail -n 1 "$out/cuda-programs.log" 2>/dev/null)"
fi

# ---- 2. the CUDA disk, from this host's toolkit ----------------------------------
say ""
say "=== CUDA disk ($(date -u +%H:%M:%S))"
disk=$tmp/cuda-disk.img
if ! CUDA_LIB=$cuda_lib guest/build-cuda-disk.sh "$disk" "$build" 2>&1 | tee -a "$log"; then
    say "the CUDA disk could not be built"
    say "cuda programs in VM: 0 passed, 1 failed"
    exit 1
fi

# ---- 3. the mediator and two VMs at once -------------------------------------------
say ""
libs=
[ -d "$build/gpu-libs" ] && libs=$build/gpu-libs
say "starting $med --backend=cuda --gpu=$gpu --socket-path=$sock"
LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    "$med" --backend=cuda --gpu="$gpu" --socket-path="$sock" --admin-socket=none \
    --log-level=info >>"$medlog" 2>&1 &
med_pid=$!
for _ in $(seq 150); do
    [ -S "$sock" ] && break
    kill -0 "$med_pid" 2>/dev/null || break
    sleep 0.2
done
if [ ! -S "$sock" ]; then
    say "the mediator did not start:"
    tail -n 20 "$medlog" | tee -a "$log"
    say "cuda programs in VM: 0 passed, 1 failed"
    exit 1
fi

# The disk as a virtio disk (ext4), or where this host has no mke2fs its
# cpio twin appended to the initramfs (unpacked into the guest's RAM).
vm_args=()
if [ "$(cat "$disk.format" 2>/dev/null)" = cpio ]; then
    gdir=$tmp/guest
    mkdir -p "$gdir"
    ln -s "$VGPU_GUEST_DIR/vmlinuz" "$gdir/vmlinuz"
    cp "$VGPU_GUEST_DIR/initramfs.img" "$gdir/initramfs.img"
    # the kernel takes the next archive at a 4-byte boundary
    pad=$(( (512 - $(stat -c %s "$gdir/initramfs.img") % 512) % 512 ))
    head -c "$pad" /dev/zero >>"$gdir/initramfs.img"
    cat "$disk" >>"$gdir/initramfs.img"
    rm -f "$disk"
    export VGPU_GUEST_DIR=$gdir
    vm_mem=${vm_mem:-3G}
    say "no ext4 disk: the CUDA tree rides in the initramfs ($(du -sm "$gdir/initramfs.img" | cut -f1) MiB), VM memory $vm_mem"
else
    vm_mem=${vm_mem:-1536M}
    vm_args+=(-drive "file=$disk,format=raw,if=virtio,readonly=on")
fi

boot() {
    local name=$1 id=$2 run=$3
    scripts/vm.sh --name "$name" --vm-id "$id" --priority 1 --weight 1 --queues 3 \
        --shm "$vm_shm" --socket "$sock" --timeout "$vm_timeout" --run "$run" \
        --append "vgpu.timeout=$((vm_timeout - 25))" \
        -- -m "$vm_mem" -smp "$vm_smp" ${vm_args[@]+"${vm_args[@]}"} \
        >"$out/cuda-in-vm-$name.console" 2>&1
}
say "=== booting vm-a and vm-b ($(date -u +%H:%M:%S)), timeout ${vm_timeout}s each"
say "  vm-a (vm-id 1): cuda-programs --oob $iso_secs --builds $builds"
say "  vm-b (vm-id 2): cuda-programs --builds $builds --bench $vm_bench"
t0=$(date +%s)
boot vm-a 1 "cuda-programs --oob $iso_secs --builds $builds" &
vm_pids+=($!)
boot vm-b 2 "cuda-programs --builds $builds --bench $vm_bench" &
vm_pids+=($!)
wait "${vm_pids[0]}"; rc_a=$?
wait "${vm_pids[1]}"; rc_b=$?
vm_pids=()
say "VMs done after $(( $(date +%s) - t0 )) s: vm-a rc $rc_a, vm-b rc $rc_b"
stop_mediator

# ---- 4. results -----------------------------------------------------------------------
runs=$tmp/vm-runs.tsv   # vm prog build verdict ms
: >"$runs"
for vm in vm-a vm-b; do
    sed -n "s/^\[$vm\] cuda-vm-run \([^ ]*\) \([^ ]*\) \([A-Z]*\) \([0-9]*\) ms.*/$vm\t\1\t\2\t\3\t\4/p" \
        "$out/cuda-in-vm-$vm.console" >>"$runs"
done
say ""
say "per run (VM, program, build, verdict, wall time in the VM):"
awk -F'\t' '{ printf "  %-5s %-16s %-7s %-4s %8s ms\n", $1, $2, $3, $4, $5 }' "$runs" | tee -a "$log"
grep -h '^\[vm-.\] FAIL ' "$out"/cuda-in-vm-vm-?.console | sed 's/^/  /' | tee -a "$log"
for vm in vm-a vm-b; do
    c=$out/cuda-in-vm-$vm.console
    if ! grep -q 'cuda programs in VM:' "$c"; then
        say "  $vm: no summary line from the guest; its console ends:"
        tail -n 15 "$c" | sed 's/^/    /' | tee -a "$log"
    fi
    say "$vm: $(awk -F'\t' -v v="$vm" '$1 == v && $4 == "PASS"' "$runs" | wc -l) passed, $(awk -F'\t' -v v="$vm" '$1 == v && $4 != "PASS"' "$runs" | wc -l) failed"
done

oob=$(awk -F'\t' '$1 == "vm-a" && $2 == "oob_kernel" { print $4 }' "$runs")
rounds=$(grep -m1 -o 'PASS oob_kernel ([0-9]* round' "$out/cuda-in-vm-vm-a.console" | grep -o '[0-9]*')
b_fail=$(awk -F'\t' '$1 == "vm-b" && $4 != "PASS"' "$runs" | wc -l)
b_all=$(awk -F'\t' '$1 == "vm-b"' "$runs" | wc -l)
say "isolation: vm-a oob_kernel ${oob:-did not run} (${rounds:-0} faults in ${iso_secs} s) while vm-b ran the set: vm-b $((b_all - b_fail)) of $b_all passed"
say "device printf lines in the mediator's log (the VMs' kernels print there): $(grep -c 'vgpu-device-printf block' "$medlog")"

# In-VM figures vs the host's (native; sim) from the host pass.
hostruns=$host_dir/runs.tsv
hostfigs=$host_dir/figures.tsv
figs=$tmp/vm-figs.tsv
: >"$figs"
bline() { grep -h -m1 "^\[vm-b\] cuda-vm-bench: $1" "$out/cuda-in-vm-vm-b.console" | sed 's/^\[vm-b\] cuda-vm-bench: //'; }
s_line=$(bline 'sgemm N=')
l_line=$(bline 'launch async')
p_line=$(bline 'launch+sync')
say ""
grep -h '^\[vm-b\] cuda-vm-bench: ' "$out/cuda-in-vm-vm-b.console" | sed 's/^\[vm-b\] cuda-vm-bench: /  vm-b bench: /' |
    tee -a "$log"
say "in vm-b: ${s_line:-sgemm: no result}"
say "in vm-b: ${l_line:-launch async: no result}"
say "in vm-b: ${p_line:-launch+sync: no result}"
sn=$(echo "$s_line" | sed -n 's/^sgemm N=\([0-9]*\):.*/\1/p')
g=$(echo "$s_line" | grep -o '[0-9.]* GFLOP/s' | cut -d' ' -f1)
r=$(echo "$l_line" | grep -o '[0-9.]* launches/s' | head -n 1 | cut -d' ' -f1)
p50=$(echo "$p_line" | sed -n 's/.*p50 \([0-9.]*\) us.*/\1/p')
p99=$(echo "$p_line" | sed -n 's/.*p99 \([0-9.]*\) us.*/\1/p')
[ -n "$g" ] && printf 'sgemm_%s_gflops_vm\t%s\tGFLOP/s\n' "$sn" "$g" >>"$figs"
[ -n "$r" ] && printf 'launch_async_rate_vm\t%s\tlaunches/s\n' "$r" >>"$figs"
[ -n "$p50" ] && printf 'launch_sync_p50_vm\t%s\tus\nlaunch_sync_p99_vm\t%s\tus\n' "$p50" "$p99" >>"$figs"
hv() { [ -f "$hostfigs" ] && awk -F'\t' -v k="$1" '$1 == k { print $2 }' "$hostfigs"; }
gn=$(hv "sgemm_${sn}_gflops_native")
rn=$(hv launch_async_rate_native)
ln=$(hv launch_sync_p50_native)
[ -n "$g" ] && [ -n "$gn" ] &&
    say "sgemm $sn in a TCG VM: $(awk -v a="$g" -v b="$gn" 'BEGIN { printf "%.1f", 100 * a / b }') % of native ($g vs $gn GFLOP/s; target >= 95 %)"
[ -n "$r" ] && [ -n "$rn" ] &&
    say "async launch rate in a TCG VM: $(awk -v a="$r" -v b="$rn" 'BEGIN { printf "%.1f", 100 * a / b }') % of native ($r vs $rn launches/s; target >= 25 %)"
[ -n "$p50" ] && [ -n "$ln" ] &&
    say "launch+sync p50 in a TCG VM: $(awk -v a="$p50" -v b="$ln" 'BEGIN { printf "%.2f", a / b }') x native ($p50 vs $ln us)"

say ""
say "wall time per program (ms): native on the host | sim on the host | vm-b (TCG)"
cat "$hostruns" 2>/dev/null >"$tmp/all.tsv"
awk -F'\t' '$1 == "vm-b" { printf "vm\t%s\t%s\t%s\t%s\n", $2, $3, $4, $5 }' "$runs" >>"$tmp/all.tsv"
awk -F'\t' '($1 == "native" || $1 == "sim" || $1 == "vm") { t[$2 "\t" $3 "\t" $1] = $5; k[$2 "\t" $3] = 1 }
     END { for (x in k) { split(x, a, "\t"); n = t[x "\tnative"]; s = t[x "\tsim"]; v = t[x "\tvm"];
                          printf "  %-16s %-7s %9s | %9s | %9s   vm/native %s\n", a[1], a[2], n == "" ? "-" : n,
                                 s == "" ? "-" : s, v == "" ? "-" : v, (n > 0 && v > 0) ? sprintf("%.1f", v / n) : "-" } }' \
    "$tmp/all.tsv" | sort | tee -a "$log"

{
    printf '{\n  "date": "%s",\n  "host": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(hostname)"
    printf '  "gpu": "%s",\n' "$(nvidia-smi --query-gpu=name --format=csv,noheader -i "$gpu" 2>/dev/null | head -n 1)"
    printf '  "commit": "%s",\n' "$(git rev-parse --short HEAD 2>/dev/null)"
    printf '  "vm": {"accel": "%s", "vcpus": %s, "memory": "%s", "bar2": "%s", "cuda_tree": "%s"},\n' \
        "$VGPU_ACCEL" "$vm_smp" "$vm_mem" "$vm_shm" "$( [ ${#vm_args[@]} -gt 0 ] && echo 'ext4 virtio disk' || echo 'initramfs')"
    printf '  "builds": {"static": "nvcc defaults (cudart linked statically)", "shared": "-cudart shared"},\n'
    printf '  "runs": [\n'
    awk -F'\t' '{ printf "%s    {\"vm\": \"%s\", \"program\": \"%s\", \"build\": \"%s\", \"verdict\": \"%s\", \"wall_time\": {\"value\": %s, \"unit\": \"ms\"}}",
                  (NR > 1 ? ",\n" : ""), $1, $2, $3, $4, $5 + 0 } END { printf "\n" }' "$runs"
    printf '  ],\n  "native_sim_vm": [\n'
    awk -F'\t' '($1 == "native" || $1 == "sim" || $1 == "vm") { t[$2 "\t" $3 "\t" $1] = $5; k[$2 "\t" $3] = 1 }
         END { m = 0; for (x in k) { split(x, a, "\t"); n = t[x "\tnative"] + 0; s = t[x "\tsim"] + 0; v = t[x "\tvm"] + 0;
                 printf "%s    {\"program\": \"%s\", \"build\": \"%s\", \"native\": {\"value\": %s, \"unit\": \"ms\"}, \"sim\": {\"value\": %s, \"unit\": \"ms\"}, \"vm\": {\"value\": %s, \"unit\": \"ms\"}, \"ratio_vm_to_native\": {\"value\": %s, \"unit\": \"x\"}}",
                        (m++ ? ",\n" : ""), a[1], a[2], (n > 0 ? n : "null"), (s > 0 ? s : "null"), (v > 0 ? v : "null"),
                        (n > 0 && v > 0) ? sprintf("%.3f", v / n) : "null" }
               printf "\n" }' "$tmp/all.tsv"
    printf '  ],\n  "figures": {\n'
    cat "$figs" "$hostfigs" 2>/dev/null |
        awk -F'\t' '{ printf "%s    \"%s\": {\"value\": %s, \"unit\": \"%s\"}", (NR > 1 ? ",\n" : ""), $1, $2, $3 } END { printf "\n" }'
    printf '  },\n'
    printf '  "isolation": {"vm_a_oob_kernel": "%s", "vm_a_faults": {"value": %s, "unit": "faults"}, "vm_b_passed": %s, "vm_b_failed": %s},\n' \
        "${oob:-none}" "${rounds:-0}" "$((b_all - b_fail))" "$b_fail"
    printf '  "totals": {"passed": %s, "failed": %s}\n}\n' \
        "$(awk -F'\t' '$4 == "PASS"' "$runs" | wc -l)" "$(awk -F'\t' '$4 != "PASS"' "$runs" | wc -l)"
} >"$json"

p=$(awk -F'\t' '$4 == "PASS"' "$runs" | wc -l)
f=$(awk -F'\t' '$4 != "PASS"' "$runs" | wc -l)
# A VM that never reported counts as one failure.
for vm in vm-a vm-b; do
    grep -q 'cuda programs in VM:' "$out/cuda-in-vm-$vm.console" || f=$((f + 1))
done
say ""
say "cuda programs in VM: $p passed, $f failed"
[ "$f" = 0 ]
