#!/usr/bin/env bash
# Build the guest's CUDA disk: an ext4 image that guest/init mounts read-only
# at /opt/cuda when a VM has it as a virtio disk. NVIDIA's runtime libraries
# (cuBLAS alone is ~570 MiB) are far too large for the initramfs and cannot
# be carried to another machine, so this is built on the machine that runs
# the VMs, from its own toolkit; no root needed (mke2fs -d).
#
# usage: guest/build-cuda-disk.sh OUT.img [BUILD_DIR] [-- FILE|DIR ...]
#
# /opt/cuda in the guest:
#   lib/        our libcuda.so.1 (BUILD_DIR/guest/cuda) and, from $CUDA_LIB,
#               libcudart.so.13, libcublas.so.13, libcublasLt.so.13 (whatever
#               versions are there), with their libX.so.N names
#   programs/   BUILD_DIR/tests/cuda-programs (the program set, both builds,
#               driver_api_kernels.fatbin) when built
#   bench/      BUILD_DIR/bench/gpu/{sgemm-bench,launch-bench} when built
#   user/       the FILEs and DIRs after "--" (your own CUDA binaries)
#   .vgpu-cuda-disk  what went in (first line: a one-line summary)
#
# In the guest: LD_LIBRARY_PATH=/opt/cuda/lib ./program (guest/run/cuda-programs
# sets it).
#
# Environment: CUDA_LIB (default /usr/local/cuda/lib64), CUDA_DISK_LIBS
# (library name patterns, default "libcudart.so.* libcublas.so.* libcublasLt.so.*").
set -euo pipefail

img=${1:?usage: build-cuda-disk.sh OUT.img [BUILD_DIR] [-- FILE|DIR ...]}
shift
build=build
if [ $# -gt 0 ] && [ "$1" != -- ]; then
    build=$1
    shift
fi
[ "${1:-}" = -- ] && shift
extra=("$@")
top=$(cd "$(dirname "$0")/.." && pwd)
case "$build" in /*) ;; *) build=$PWD/$build ;; esac
cuda_lib=${CUDA_LIB:-/usr/local/cuda/lib64}
patterns=${CUDA_DISK_LIBS:-libcudart.so.* libcublas.so.* libcublasLt.so.*}

msg() { echo ">> cuda-disk: $*" >&2; }
die() { echo "build-cuda-disk: error: $*" >&2; exit 1; }

mke2fs=$(command -v mke2fs || true)
for c in /usr/sbin/mke2fs /sbin/mke2fs; do
    [ -n "$mke2fs" ] || { [ -x "$c" ] && mke2fs=$c; }
done
[ -n "$mke2fs" ] || die "mke2fs not found (package e2fsprogs)"
[ -f "$build/guest/cuda/libcuda.so.1" ] || die "$build/guest/cuda/libcuda.so.1 missing (ninja -C $build)"
[ -d "$cuda_lib" ] || die "CUDA_LIB $cuda_lib is not a directory"

stage=$(mktemp -d "$(dirname "$img")/.cuda-disk.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/lib" "$stage/programs" "$stage/bench" "$stage/user"

cp -L "$build/guest/cuda/libcuda.so.1" "$stage/lib/"
ln -s libcuda.so.1 "$stage/lib/libcuda.so"
# Each library under its soname (libcublas.so.13 -> libcublas.so.13.x.y: copy
# the file, once): the names a program's DT_NEEDED asks for.
for pat in $patterns; do
    for f in "$cuda_lib"/$pat; do
        [ -e "$f" ] || continue
        b=$(basename "$f")
        # only libX.so.N (the soname), not libX.so.N.M.K
        [[ "$b" =~ ^lib[A-Za-z]+\.so\.[0-9]+$ ]] || continue
        cp -L "$f" "$stage/lib/$b"
    done
done
ls "$stage"/lib/libcudart.so.* >/dev/null 2>&1 || msg "warning: no libcudart.so.N in $cuda_lib (-cudart shared programs will not start)"
ls "$stage"/lib/libcublas.so.* >/dev/null 2>&1 || msg "warning: no libcublas.so.N in $cuda_lib (cublas_gemm will not start)"

if [ -d "$build/tests/cuda-programs" ]; then
    find "$build/tests/cuda-programs" -maxdepth 1 -type f \( -perm -u+x -o -name '*.fatbin' \) \
        ! -name '*.o' -exec cp {} "$stage/programs/" \;
else
    msg "warning: $build/tests/cuda-programs missing: no program set on the disk"
fi
for b in sgemm-bench launch-bench; do
    [ -x "$build/bench/gpu/$b" ] && cp "$build/bench/gpu/$b" "$stage/bench/"
done
for e in ${extra[@]+"${extra[@]}"}; do
    [ -e "$e" ] || die "$e: no such file or directory"
    cp -rL "$e" "$stage/user/"
done
chmod -R a+rX "$stage"

{
    echo "vgpu CUDA disk $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname): $(ls "$stage/lib" | tr '\n' ' ')"
    echo "libcuda.so.1 sha256 $(sha256sum <"$stage/lib/libcuda.so.1" | cut -c1-16) from $build/guest/cuda"
    echo "toolkit libraries from $cuda_lib"
    (cd "$stage" && find . -type f ! -name .vgpu-cuda-disk | LC_ALL=C sort | xargs -r du -k | awk '{ print $2 "  " $1 " KiB" }')
} >"$stage/.vgpu-cuda-disk"

# Room for the files, their inodes and ext4's own metadata.
mib=$(du -sm "$stage" | cut -f1)
size=$((mib + mib / 10 + 32))
rm -f "$img.tmp"
# No journal, no metadata checksums: mounted read-only, and the guest then
# needs no crc32c at mount time.
"$mke2fs" -q -F -t ext4 -O ^has_journal,^metadata_csum -m 0 -L vgpu-cuda \
    -d "$stage" "$img.tmp" "${size}M"
mv "$img.tmp" "$img"
msg "wrote $img (${size} MiB): $(head -n 1 "$stage/.vgpu-cuda-disk")"
