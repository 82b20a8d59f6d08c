#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later OR MIT
# Builds the libFuzzer targets with clang (-fsanitize=fuzzer,address,undefined)
# into BUILD (default build-fuzz) and runs each for FUZZ_SECONDS (default 60)
# from its seed corpus. New coverage goes to BUILD/corpus/<target>/ (the
# committed seeds stay untouched); a crash leaves BUILD/crash-<target>-* and
# fails the run. Usage: tests/fuzz/run-fuzz.sh [BUILD] [TARGET...]
set -eu

src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build-fuzz}
[ $# -gt 0 ] && shift
targets=${*:-ops msg ring session}
seconds=${FUZZ_SECONDS:-60}
cc=${FUZZ_CC:-clang}

if ! command -v "$cc" >/dev/null 2>&1; then
    echo "run-fuzz: $cc not found (scripts/deps.sh build installs clang)" >&2
    exit 1
fi
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; return (int)n * 0; }' \
    > "${TMPDIR:-/tmp}/fuzzprobe.$$.c"
if ! "$cc" -fsanitize=fuzzer -o "${TMPDIR:-/tmp}/fuzzprobe.$$" "${TMPDIR:-/tmp}/fuzzprobe.$$.c" 2>/dev/null; then
    rm -f "${TMPDIR:-/tmp}/fuzzprobe.$$.c"
    echo "run-fuzz: $cc has no libFuzzer runtime (Debian: libclang-rt-14-dev)" >&2
    exit 1
fi
rm -f "${TMPDIR:-/tmp}/fuzzprobe.$$" "${TMPDIR:-/tmp}/fuzzprobe.$$.c"

mkdir -p "$build"
cflags="-std=c11 -D_GNU_SOURCE -fno-strict-aliasing -g -O1 -Wall -Wextra -Werror
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
        -I$src/include -I$src"
ops="$src/mediator/ops/range.c $src/mediator/ops/registry.c $src/mediator/ops/nop.c
     $src/mediator/ops/gpu_info.c $src/mediator/ops/vector_add.c $src/mediator/ops/saxpy.c
     $src/mediator/ops/reduce_sum.c $src/mediator/ops/sgemm.c $src/mediator/ops/memcpy.c
     $src/mediator/ops/cu_common.c $src/mediator/ops/cu_context.c
     $src/mediator/ops/cu_memory.c $src/mediator/ops/cu_copy.c $src/mediator/ops/cu_module.c
     $src/mediator/ops/cu_launch.c $src/mediator/ops/cu_stream.c $src/mediator/ops/cu_event.c
     $src/mediator/backend_cpu.c"
lib="$src/libvgpu/vgpu.c $src/libvgpu/transport_sim.c $src/libvgpu/transport_pci.c
     $src/libvgpu/transport_dev.c $src/libvgpu/transport_ivshmem.c"

for t in $targets; do
    case $t in
    ops)  extra=$ops ;;
    msg)  extra=$src/mediator/proto.c ;;
    ring) extra=$lib ;;
    session) extra="$src/mediator/session.c $src/mediator/sched.c $src/mediator/stats.c
                   $src/mediator/log.c $ops" ;;
    *) echo "run-fuzz: unknown target $t" >&2; exit 2 ;;
    esac
    echo "run-fuzz: building $build/fuzz-$t"
    # shellcheck disable=SC2086
    "$cc" $cflags -o "$build/fuzz-$t" "$src/tests/fuzz/fuzz_$t.c" $extra -lm -pthread
done

status=0
for t in $targets; do
    mkdir -p "$build/corpus/$t"
    echo "run-fuzz: fuzz-$t for ${seconds}s"
    # -max_len 4096: the replay runner's limit too; rss limit for the 2-core hosts.
    if ! "$build/fuzz-$t" -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 \
            -timeout=10 -print_final_stats=1 -artifact_prefix="$build/crash-$t-" \
            "$build/corpus/$t" "$src/tests/fuzz/corpus/$t" > "$build/fuzz-$t.log" 2>&1; then
        echo "run-fuzz: fuzz-$t FAILED; see $build/fuzz-$t.log and $build/crash-$t-*" >&2
        tail -40 "$build/fuzz-$t.log" >&2
        status=1
    else
        grep -E '^(Done [0-9]+ runs|stat::new_units_added|stat::peak_rss)' "$build/fuzz-$t.log" |
            sed "s/^/run-fuzz: fuzz-$t: /"
    fi
done
exit $status
