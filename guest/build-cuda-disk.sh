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
# Where mke2fs is missing (e2fsprogs), or CUDA_DISK_FORMAT=cpio, the same
# tree is written instead as an uncompressed cpio archive of opt/cuda/ (by
# python3): appended to the image's initramfs.img (cat) it unpacks at
# /opt/cuda in the guest's RAM (give the VM 3 GiB). The first line of
# OUT.img.format says which ("ext4" or "cpio").
#
# Environment: CUDA_LIB (default /usr/local/cuda/lib64), CUDA_DISK_LIBS
# (library name patterns, default "libcudart.so.* libcublas.so.* libcublasLt.so.*"),
# CUDA_DISK_FORMAT (ext4 or cpio; default ext4 where mke2fs is found).
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
format=${CUDA_DISK_FORMAT:-}
if [ -z "$format" ]; then
    format=ext4
    [ -n "$mke2fs" ] || { format=cpio; msg "mke2fs not found (package e2fsprogs): writing a cpio archive instead"; }
fi
case "$format" in
    ext4) [ -n "$mke2fs" ] || die "mke2fs not found (package e2fsprogs)" ;;
    cpio) command -v python3 >/dev/null || die "neither mke2fs nor python3: cannot write the disk" ;;
    *) die "CUDA_DISK_FORMAT=$format: ext4 or cpio" ;;
esac
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

if [ "$format" = cpio ]; then
    # newc, uncompressed (nothing to gain on these libraries; no tool
    # needed in the guest), everything under opt/cuda/, owned by root.
    rm -f "$img.tmp"
    python3 - "$stage" "$img.tmp" <<'PY'
import os, stat, sys
src, out = sys.argv[1], sys.argv[2]
ino = [1000]
def entry(f, name, mode, data=b"", mtime=0):
    ino[0] += 1
    nb = name.encode() + b"\0"
    hdr = "070701" + "".join("%08x" % v for v in (ino[0], mode, 0, 0, 1, mtime, len(data),
                                                    0, 0, 0, 0, len(nb), 0))
    f.write(hdr.encode() + nb)
    f.write(b"\0" * ((4 - (110 + len(nb)) % 4) % 4))
    f.write(data)
    f.write(b"\0" * ((4 - len(data) % 4) % 4))
with open(out, "wb") as f:
    entry(f, "opt", stat.S_IFDIR | 0o755)
    entry(f, "opt/cuda", stat.S_IFDIR | 0o755)
    for dirpath, dirs, files in os.walk(src):
        dirs.sort()
        rel = os.path.relpath(dirpath, src)
        base = "opt/cuda" if rel == "." else "opt/cuda/" + rel
        for d in dirs:
            entry(f, base + "/" + d, stat.S_IFDIR | 0o755)
        for n in sorted(files):
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                entry(f, base + "/" + n, stat.S_IFLNK | 0o777, os.readlink(p).encode())
            else:
                with open(p, "rb") as g:
                    entry(f, base + "/" + n, stat.S_IFREG | (st.st_mode & 0o777), g.read(),
                          int(st.st_mtime))
    entry(f, "TRAILER!!!", 0)
PY
    mv "$img.tmp" "$img"
    echo cpio >"$img.format"
    msg "wrote $img (cpio, $(du -sm "$img" | cut -f1) MiB): $(head -n 1 "$stage/.vgpu-cuda-disk")"
    exit 0
fi

# Room for the files, their inodes and ext4's own metadata.
mib=$(du -sm "$stage" | cut -f1)
size=$((mib + mib / 10 + 32))
rm -f "$img.tmp"
# No journal, no metadata checksums: mounted read-only, and the guest then
# needs no crc32c at mount time.
"$mke2fs" -q -F -t ext4 -O ^has_journal,^metadata_csum -m 0 -L vgpu-cuda \
    -d "$stage" "$img.tmp" "${size}M"
mv "$img.tmp" "$img"
echo ext4 >"$img.format"
msg "wrote $img (${size} MiB): $(head -n 1 "$stage/.vgpu-cuda-disk")"
