#!/usr/bin/env bash
# Build the vgpu guest image: Debian's kernel + busybox + the static guest
# binaries in an initramfs, booted by QEMU with -kernel/-initrd.
#
# usage: guest/build-image.sh OUT_DIR
#
# Result: OUT_DIR/vmlinuz, OUT_DIR/initramfs.img, OUT_DIR/manifest.txt
# (what went in, with versions and checksums).
#
# Inputs, all from Debian packages used the way a Debian user would:
#   kernel    linux-image-amd64's current dependency (linux-image-<abi>-amd64),
#             fetched with `apt-get download` into the cache and unpacked with
#             `dpkg-deb -x`; never installed on the host.
#   busybox   /bin/busybox of the host's busybox-static package (static, so it
#             runs in the guest as it is).
#   modules   uio.ko + uio_pci_generic.ko from that kernel (decompressed when
#             Debian ships them as .ko.xz / .ko.zst: busybox insmod loads
#             plain ELF only); virtio_pci, virtio_blk and ext4 with their
#             dependencies, for the CUDA disk (guest/build-cuda-disk.sh)
#             that init mounts at /opt/cuda when a VM has one; and the guest
#             driver vgpu.ko, built against the kernel's linux-headers package
#             (guest/driver/build-module.sh, cached in the same cache dir).
#   binaries  $VGPU_BUILD_DIR/client/vgpu-client-static -> /bin/vgpu-client
#             (required), and any other *-static in $VGPU_BUILD_DIR/{client,bench};
#             $VGPU_BUILD_DIR/guest/cuda/libcuda.so.1 -> /usr/lib/vgpu/ when
#             built (the CUDA driver API for unmodified CUDA programs);
#             dynamically linked: guest/driver/vgpu-drv-test.
#   runtime   the host's (Debian 12) dynamic loader and shared C/C++ runtime
#             (libc, libm, libdl, libpthread, librt, libgcc_s, libstdc++) at
#             their Debian paths, so ordinary dynamic programs run.
#   users     root; user (1000, in group vgpu: may open /dev/vgpuN); other
#             (1001, not in it).
#   guest/    init (PID 1), lspci, vgpu-bind, run/* (named scenarios for vgpu.run=).
#
# Environment:
#   VGPU_BUILD_DIR        host build dir holding the static binaries (default ./build)
#   VGPU_CACHE_DIR        cache root (default /var/cache/vgpu, or ~/.cache/vgpu
#                         when that is not writable); kernel debs go to <root>/guest/
#   VGPU_GUEST_KERNEL_PKG use this kernel package instead of linux-image-amd64's
#                         dependency (e.g. linux-image-6.1.0-56-amd64)
#
# The image is rebuilt only when an input changed (the hash of all inputs is
# kept in OUT_DIR/.inputs); apt is asked only when the kernel is not cached or
# the package lists name a newer one.
set -euo pipefail

out=${1:?usage: build-image.sh OUT_DIR}
top=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${VGPU_BUILD_DIR:-$top/build}

msg() { echo ">> guest: $*" >&2; }
die() { echo "build-image: error: $*" >&2; exit 1; }

"$top/scripts/deps.sh" guest

. "$top/scripts/cache.sh"
kcache=$(vgpu_cache_dir guest) || exit 1
vgpu_cache_lock "$kcache/.lock"

# --- 1. kernel package -------------------------------------------------------

# Which kernel: the binary package linux-image-amd64 depends on right now.
# Without usable package lists (offline machine), the newest cached one.
kpkg=${VGPU_GUEST_KERNEL_PKG:-}
if [ -z "$kpkg" ]; then
    kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
           awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }') || true
fi
kdeb=""
if [ -n "$kpkg" ]; then
    kver=$(apt-cache show --no-all-versions "$kpkg" 2>/dev/null |
           awk '$1 == "Version:" { print $2; exit }') || true
    if [ -n "$kver" ]; then
        # apt-get download names files pkg_ver_arch.deb with ':' quoted as %3a.
        kdeb="$kcache/${kpkg}_${kver//:/%3a}_amd64.deb"
        if [ ! -s "$kdeb" ]; then
            msg "downloading $kpkg $kver (apt-get download)"
            # apt's sandbox user may not write the cache: download into a
            # private temp dir it owns, then move into place.
            tmpd=$(mktemp -d "$kcache/.dl.XXXXXX")
            chmod 755 "$tmpd"
            chown _apt "$tmpd" 2>/dev/null || true
            if ! (cd "$tmpd" && apt-get download -q "$kpkg=$kver" >&2); then
                rm -rf "$tmpd"
                die "apt-get download $kpkg=$kver failed (run 'apt-get update'?)"
            fi
            mv "$tmpd"/*.deb "$kdeb"
            rm -rf "$tmpd"
        fi
    fi
fi
if [ -z "$kdeb" ]; then
    kdeb=$(ls -1 "$kcache"/linux-image-*-amd64_*_amd64.deb 2>/dev/null | sort -V | tail -n 1) || true
    [ -n "$kdeb" ] || die "no kernel package: apt-cache knows no linux-image-amd64 and the cache $kcache has none"
    msg "package lists unavailable; using cached $(basename "$kdeb")"
fi

kdir="$kcache/$(basename "$kdeb" .deb)"
if [ ! -f "$kdir/.unpacked" ]; then
    msg "unpacking $(basename "$kdeb") (dpkg-deb -x)"
    rm -rf "$kdir"
    mkdir -p "$kdir"
    dpkg-deb -x "$kdeb" "$kdir"
    touch "$kdir/.unpacked"
fi
vmlinuz=$(ls -1 "$kdir"/boot/vmlinuz-* 2>/dev/null | head -n 1) || true
[ -n "$vmlinuz" ] || die "$(basename "$kdeb") has no /boot/vmlinuz-*"
krel=${vmlinuz##*/vmlinuz-}
moddir="$kdir/lib/modules/$krel"
[ -d "$moddir" ] || die "$(basename "$kdeb") has no /lib/modules/$krel"

# Modules to reach the device, in load order (dependencies first).
find_module() {
    local name=$1 f
    f=$(find "$moddir/kernel" \( -name "$name.ko" -o -name "$name.ko.xz" -o -name "$name.ko.zst" \
        -o -name "$name.ko.gz" \) -print -quit)
    [ -n "$f" ] || die "kernel $krel has no module $name (CONFIG_${name^^}=m expected)"
    echo "$f"
}
modules=()
add_module() {
    local name=$1 f dep m
    for m in "${modules[@]}"; do [ "$(basename "${m%%.ko*}")" = "$name" ] && return 0; done
    f=$(find_module "$name")
    for dep in $(modinfo -F depends "$f" 2>/dev/null | tr ',' ' '); do
        add_module "$dep"
    done
    modules+=("$f")
}
add_module uio
add_module uio_pci_generic
# The CUDA disk: loaded by init in this order whether or not a vgpu device
# is there (lib/modules/load-order-disk).
mods_device=${#modules[@]}
add_module virtio_pci
add_module virtio_blk
add_module crc32c_generic
add_module ext4

# vgpu.ko (guest/driver/) built against this kernel's headers, cached.
kver_deb=$(dpkg-deb -f "$kdeb" Version)
vgpu_ko=$("$top/guest/driver/build-module.sh" "$(dpkg-deb -f "$kdeb" Package)" "$kver_deb" \
          "$krel" "$kcache") || die "vgpu.ko: build failed"

# The dynamic loader and the shared C/C++ runtime of the host (Debian 12,
# as the guest's kernel), so ordinary dynamically linked programs run.
runtime_libs=()
for f in /lib64/ld-linux-x86-64.so.2 /lib/x86_64-linux-gnu/libc.so.6 \
         /lib/x86_64-linux-gnu/libm.so.6 /lib/x86_64-linux-gnu/libdl.so.2 \
         /lib/x86_64-linux-gnu/libpthread.so.0 /lib/x86_64-linux-gnu/librt.so.1 \
         /lib/x86_64-linux-gnu/libgcc_s.so.1 /lib/x86_64-linux-gnu/libstdc++.so.6; do
    [ -e "$f" ] || die "$f missing (Debian packages libc6, libgcc-s1, libstdc++6)"
    runtime_libs+=("$f")
done

# --- 2. binaries ---------------------------------------------------------------

busybox=$(command -v busybox || true)
[ -n "$busybox" ] || die "busybox not found (Debian package busybox-static)"
is_static() { ! LC_ALL=C readelf -lW "$1" 2>/dev/null | grep -q 'INTERP'; }
is_static "$busybox" || die "$busybox is dynamically linked; install busybox-static"

client="$build_dir/client/vgpu-client-static"
[ -x "$client" ] || die "$client missing: build it first (make build / ninja -C $build_dir)"
is_static "$client" || die "$client is dynamically linked (meson option static_guest=true expected)"
extra_bins=()
for f in "$build_dir"/client/*-static "$build_dir"/bench/*-static; do
    [ -x "$f" ] && [ -f "$f" ] || continue
    [ "$f" = "$client" ] && continue
    is_static "$f" || { msg "skipping $f: not static"; continue; }
    extra_bins+=("$f")
done

# Dynamically linked programs, to run on the image's loader and libraries.
dyn_bins=()
for f in "$build_dir"/guest/driver/vgpu-drv-test; do
    [ -x "$f" ] && [ -f "$f" ] || die "$f missing: build it first (ninja -C $build_dir)"
    dyn_bins+=("$f")
done

# Our libcuda.so.1, when this build has it (meson builds it where the
# toolkit's cuda.h is found).
libcuda=""
[ -f "$build_dir/guest/cuda/libcuda.so.1" ] && libcuda=$build_dir/guest/cuda/libcuda.so.1

# --- 3. up to date? ------------------------------------------------------------

guest_files=("$top/guest/init" "$top/guest/lspci" "$top/guest/build-image.sh"
             "$top/guest/vgpu-bind")
for f in "$top"/guest/run/*; do [ -f "$f" ] && guest_files+=("$f"); done

# Named by where they land in the image, so the hash (and the image) does
# not depend on the build or cache directory.
sum() { echo "$(sha256sum <"$1" | cut -d' ' -f1)  $2"; }
inputs=$( {
    echo "kernel $(basename "$kdeb")"
    sum "$busybox" /bin/busybox
    sum "$client" /bin/vgpu-client
    for f in "${extra_bins[@]}"; do sum "$f" "/bin/$(basename "$f" -static)"; done
    for f in "${dyn_bins[@]}"; do sum "$f" "/bin/$(basename "$f")"; done
    for f in "${modules[@]}"; do sum "$f" "/lib/modules/$(basename "$f")"; done
    sum "$vgpu_ko" /lib/modules/vgpu.ko
    [ -n "$libcuda" ] && sum "$libcuda" /usr/lib/vgpu/libcuda.so.1
    for f in "${runtime_libs[@]}"; do sum "$f" "$f"; done
    for f in "${guest_files[@]}"; do sum "$f" "${f#"$top"/}"; done
} )
inputs_hash=$(echo "$inputs" | sha256sum | cut -c1-16)

mkdir -p "$out"
if [ -f "$out/vmlinuz" ] && [ -f "$out/initramfs.img" ] && [ -f "$out/.inputs" ] &&
   [ "$(cat "$out/.inputs")" = "$inputs_hash" ]; then
    msg "image up to date ($out, kernel $krel, inputs $inputs_hash)"
    exit 0
fi

# --- 4. assemble the initramfs ------------------------------------------------

msg "assembling initramfs (kernel $krel, busybox $($busybox | head -n 1 | awk '{print $2}'))"
root=$(mktemp -d "${TMPDIR:-/tmp}/vgpu-guest-root.XXXXXX")
trap 'rm -rf "$root"' EXIT

mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,root,etc,lib/modules,usr/share/vgpu/run,opt/cuda}
chmod 1777 "$root/tmp"
install -m 0755 "$busybox" "$root/bin/busybox"
# Applet links for everything this busybox build offers.
for applet in $("$busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done

install -m 0755 "$top/guest/init" "$root/init"
install -m 0755 "$top/guest/lspci" "$root/bin/lspci"   # busybox has no lspci here
install -m 0755 "$top/guest/vgpu-bind" "$root/bin/vgpu-bind"
for f in "$top"/guest/run/*; do
    [ -f "$f" ] && install -m 0755 "$f" "$root/usr/share/vgpu/run/$(basename "$f")"
done

install -m 0755 "$client" "$root/bin/vgpu-client"
msg "  /bin/vgpu-client <- ${client#"$top"/}"
for f in "${extra_bins[@]}"; do
    b=$(basename "$f" -static)
    install -m 0755 "$f" "$root/bin/$b"
    msg "  /bin/$b <- ${f#"$top"/}"
done
for f in "${dyn_bins[@]}"; do
    install -m 0755 "$f" "$root/bin/$(basename "$f")"
    msg "  /bin/$(basename "$f") <- ${f#"$top"/} (dynamic)"
done

for f in "${modules[@]}"; do
    name=$(basename "$f")
    case "$name" in
        *.ko.xz)  xz -dc "$f"   >"$root/lib/modules/${name%.xz}" ;;
        *.ko.zst) zstd -qdc "$f" >"$root/lib/modules/${name%.zst}" ;;
        *.ko.gz)  gzip -dc "$f" >"$root/lib/modules/${name%.gz}" ;;
        *)        cp "$f" "$root/lib/modules/$name" ;;
    esac
    msg "  /lib/modules/${name%.ko*}.ko"
done
# init loads the modules in this order: the device's, then the disk's.
for f in "${modules[@]:0:mods_device}"; do b=$(basename "$f"); echo "${b%%.ko*}"; done >"$root/lib/modules/load-order"
for f in "${modules[@]:mods_device}"; do b=$(basename "$f"); echo "${b%%.ko*}"; done >"$root/lib/modules/load-order-disk"
install -m 0644 "$vgpu_ko" "$root/lib/modules/vgpu.ko"
msg "  /lib/modules/vgpu.ko <- $vgpu_ko"
echo vgpu >>"$root/lib/modules/load-order"

# Shared libraries at their Debian paths (the loader's own search path).
mkdir -p "$root/lib64" "$root/lib/x86_64-linux-gnu"
for f in "${runtime_libs[@]}"; do
    cp -L "$f" "$root$f"
    chmod 0755 "$root$f"
done

if [ -n "$libcuda" ]; then
    mkdir -p "$root/usr/lib/vgpu"
    install -m 0755 "$libcuda" "$root/usr/lib/vgpu/libcuda.so.1"
    ln -s libcuda.so.1 "$root/usr/lib/vgpu/libcuda.so"
    msg "  /usr/lib/vgpu/libcuda.so.1 <- ${libcuda#"$top"/}"
fi

cat >"$root/etc/vgpu-image" <<EOF
kernel=$krel
kernel_package=$(basename "$kdeb")
inputs=$inputs_hash
EOF
# user (1000) is in group vgpu and may use /dev/vgpuN; other (1001) is not.
cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:vgpu user:/home/user:/bin/sh
other:x:1001:1001:not in vgpu:/home/other:/bin/sh
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
user:x:1000:
other:x:1001:
vgpu:x:990:user
GROUP
mkdir -p "$root/home/user" "$root/home/other"

# No /dev/console node in the archive (creating one needs root): init mounts
# devtmpfs first and reopens its stdio on /dev/console.
# Reproducible: fixed mtimes, sorted names, root-owned.
find "$root" -exec touch -h -d @0 {} +
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
    cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -n -6 >"$out/initramfs.img.tmp"
mv "$out/initramfs.img.tmp" "$out/initramfs.img"
cp "$vmlinuz" "$out/vmlinuz.tmp" && mv "$out/vmlinuz.tmp" "$out/vmlinuz"

{
    echo "# vgpu guest image, inputs $inputs_hash"
    echo "$inputs"
} >"$out/manifest.txt"
echo "$inputs_hash" >"$out/.inputs"
msg "wrote $out/vmlinuz ($(du -h "$out/vmlinuz" | cut -f1)), $out/initramfs.img ($(du -h "$out/initramfs.img" | cut -f1))"
