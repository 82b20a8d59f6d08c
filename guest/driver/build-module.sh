#!/usr/bin/env bash
# Build vgpu.ko for the guest kernel, cached outside the clone.
#
# usage: guest/driver/build-module.sh KERNEL_PACKAGE KERNEL_VERSION RELEASE CACHE_DIR
#   e.g. linux-image-6.1.0-57-amd64 6.1.192-3 6.1.0-57-amd64 /var/cache/vgpu/guest
# Prints the path of the built vgpu.ko on stdout.
#
# The headers are Debian's linux-headers-<release> at exactly the kernel
# package's version, installed with apt-get when missing (as scripts/deps.sh
# installs everything else). The module is built in a copy of its sources
# under CACHE_DIR/vgpu-ko-<release>-<hash>, the hash covering the sources,
# the ABI headers, the headers package version and the compiler; an
# unchanged input set reuses the cached vgpu.ko.
set -euo pipefail

kpkg=${1:?usage: build-module.sh KERNEL_PACKAGE KERNEL_VERSION RELEASE CACHE_DIR}
kver=${2:?}
krel=${3:?}
cache=${4:?}
top=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$cache"

msg() { echo ">> guest: $*" >&2; }
die() { echo "build-module: error: $*" >&2; exit 1; }

hpkg=${kpkg/linux-image-/linux-headers-}
srcs=(guest/driver/Kbuild guest/driver/vgpu.c guest/driver/compat/stdint.h
      include/vgpu/abi.h include/vgpu/driver.h)
cc_ver=$(gcc --version | head -n 1)
hash=$( {
    for f in "${srcs[@]}"; do echo "$(sha256sum <"$top/$f" | cut -d' ' -f1)  $f"; done
    echo "$hpkg $kver"
    echo "$cc_ver"
} | sha256sum | cut -c1-16)
out="$cache/vgpu-ko-$krel-$hash"
if [ -s "$out/guest/driver/vgpu.ko" ]; then
    echo "$out/guest/driver/vgpu.ko"
    exit 0
fi

have=$(dpkg-query -W -f='${Status} ${Version}' "$hpkg" 2>/dev/null || true)
if [ "$have" != "install ok installed $kver" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    msg "installing $hpkg=$kver (headers to build vgpu.ko)"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -q --no-install-recommends "$hpkg=$kver" >&2 || {
        $SUDO apt-get update -q >&2
        $SUDO apt-get install -y -q --no-install-recommends "$hpkg=$kver" >&2
    } || die "cannot install $hpkg=$kver"
fi
kdir=/usr/src/linux-headers-$krel
[ -f "$kdir/Makefile" ] || die "$kdir missing after installing $hpkg"

msg "building vgpu.ko against $hpkg $kver"
tmp=$(mktemp -d "$cache/.vgpu-ko.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
for f in "${srcs[@]}"; do
    mkdir -p "$tmp/$(dirname "$f")"
    cp "$top/$f" "$tmp/$f"
done
make -s -C "$kdir" M="$tmp/guest/driver" modules >&2 || die "vgpu.ko did not build"
[ -s "$tmp/guest/driver/vgpu.ko" ] || die "no vgpu.ko after the build"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "$out/guest/driver/vgpu.ko"
