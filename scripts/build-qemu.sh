#!/usr/bin/env bash
# Build QEMU (x86_64 system emulator) with the vgpu-stub device and cache it.
#
# usage: scripts/build-qemu.sh OUT_DIR
#
# Result: OUT_DIR/qemu-system-x86_64 (a symlink into the cache), and
# OUT_DIR/carry/ (a stripped, self-contained copy: binary, the non-glibc
# shared libraries it needs, the firmware; for hosts without Debian's QEMU
# packages: run OUT_DIR/carry/qemu-system-x86_64, a wrapper script).
#
# Environment:
#   VGPU_CACHE_DIR  cache root (default /var/cache/vgpu, or ~/.cache/vgpu when
#                   that is not writable)
#   QEMU_SRC        use this QEMU source tree (copied into the cache) instead
#                   of Debian's `apt-get source qemu`
#   VGPU_QEMU_JOBS  ninja parallelism (default 2)
#
# Cache layout (outside the clone, shared by every clone on the machine):
#   src/qemu-<ver>/            extracted Debian source (dpkg-source -x), patched
#   qemu-build-<ver>/          QEMU's build tree, kept so that a change to the
#                              device recompiles only vgpu-stub.c and relinks
#   qemu-<ver>-<hash>/         finished result for one (device, headers, script)
#                              hash: qemu-system-x86_64, pc-bios/, carry/
# A second run with nothing changed finds qemu-<ver>-<hash>/ and returns at once.
set -euo pipefail

out=${1:?usage: build-qemu.sh OUT_DIR}
top=$(cd "$(dirname "$0")/.." && pwd)
jobs=${VGPU_QEMU_JOBS:-2}

msg() { echo ">> build-qemu: $*" >&2; }
die() { echo "build-qemu: error: $*" >&2; exit 1; }

. "$top/scripts/cache.sh"
cache=$(vgpu_cache_dir "") || exit 1
vgpu_cache_lock "$cache/.qemu.lock"

# The firmware QEMU needs comes from Debian's packages (seabios: bios-256k.bin,
# vgabios; qemu-system-data: kvmvapic.bin, linuxboot_dma.bin; ipxe-qemu: NIC
# option ROMs). Debian's own QEMU searches the same three directories.
fw_dirs=(/usr/share/qemu /usr/share/seabios /usr/lib/ipxe/qemu)
fw_path=$(IFS=:; echo "${fw_dirs[*]}")

# Hash of everything our part of the build depends on.
hash=$(cat "$top/qemu/vgpu-stub.c" "$top"/include/vgpu/*.h "$top/scripts/build-qemu.sh" |
       sha256sum | cut -c1-16)

# --- 1. QEMU source ----------------------------------------------------------

# Deb-src stanzas derived from the machine's deb stanzas: same URIs, suites,
# components and keyring, only the type changes.
add_deb_src() {
    local list=/etc/apt/sources.list.d/vgpu-deb-src.sources
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    if [ ! -f "$list" ]; then
        local tmp
        tmp=$(mktemp)
        if [ -f /etc/apt/sources.list.d/debian.sources ]; then
            sed -e 's/^Types:[[:space:]]*deb[[:space:]]*$/Types: deb-src/' \
                /etc/apt/sources.list.d/debian.sources >"$tmp"
        elif [ -f /etc/apt/sources.list ]; then
            # One-line format: turn each "deb ..." line into a deb822 stanza.
            awk '$1 == "deb" {
                    opts = ""; i = 2
                    if ($2 ~ /^\[/) {
                        while ($i !~ /\]$/) { opts = opts " " $i; i++ }
                        opts = opts " " $i; i++
                    }
                    uri = $i; suite = $(i + 1); comps = ""
                    for (j = i + 2; j <= NF; j++) comps = comps " " $j
                    print "Types: deb-src"; print "URIs: " uri
                    print "Suites: " suite; print "Components:" comps
                    if (match(opts, /signed-by=[^] ]+/))
                        print "Signed-By: " substr(opts, RSTART + 10, RLENGTH - 10)
                    print ""
                 }' /etc/apt/sources.list >"$tmp"
        else
            rm -f "$tmp"
            die "no /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list to derive deb-src from"
        fi
        grep -q '^Types: deb-src' "$tmp" || { rm -f "$tmp"; die "no Debian deb entries found"; }
        msg "adding $list"
        $sudo install -m 0644 "$tmp" "$list"
        rm -f "$tmp"
    fi
    # Refresh only our deb-src list: other configured sources may be unreachable.
    msg "apt-get update (deb-src only)"
    $sudo apt-get update -q \
        -o Dir::Etc::sourcelist="sources.list.d/vgpu-deb-src.sources" \
        -o Dir::Etc::sourceparts="-" -o APT::Get::List-Cleanup="0"
}

# Prints the extracted source dir; fetches and extracts only when no cached
# extraction exists.
debian_source() {
    local srcroot=$cache/src d
    mkdir -p "$srcroot"
    for d in "$srcroot"/qemu-*/; do
        [ -f "$d/.vgpu-extracted" ] && { echo "${d%/}"; return 0; }
    done
    # dpkg-source (dpkg-dev) extracts what apt-get source downloads.
    "$top/scripts/deps.sh" qemu >&2
    add_deb_src >&2
    local dl=$srcroot/download
    rm -rf "$dl" && mkdir -p "$dl"
    msg "apt-get source qemu (download + dpkg-source -x, once)"
    (cd "$dl" && apt-get source -q qemu >&2) || die "apt-get source qemu failed"
    d=$(find "$dl" -mindepth 1 -maxdepth 1 -type d -name 'qemu-*' | head -n1)
    [ -n "$d" ] && [ -f "$d/VERSION" ] || die "apt-get source produced no qemu tree"
    local name
    name=$(basename "$d")
    rm -rf "${srcroot:?}/$name"
    mv "$d" "$srcroot/$name"
    # Keep the .dsc/.orig tarballs: a later `dpkg-source -x` needs no network.
    mkdir -p "$srcroot/pool"
    mv "$dl"/* "$srcroot/pool/" 2>/dev/null || true
    rm -rf "$dl"
    touch "$srcroot/$name/.vgpu-extracted"
    echo "$srcroot/$name"
}

if [ -n "${QEMU_SRC:-}" ]; then
    [ -f "$QEMU_SRC/VERSION" ] && [ -f "$QEMU_SRC/configure" ] || die "QEMU_SRC=$QEMU_SRC is not a QEMU tree"
    real=$(cd "$QEMU_SRC" && pwd -P)
    # Never patch the user's tree: work on a cached copy, refreshed when the
    # user's tree has anything newer than the copy.
    src=$cache/src/local-$(echo "$real" | sha256sum | cut -c1-12)
    if [ ! -f "$src/.vgpu-extracted" ] || [ -n "$(find "$real" -newer "$src/.vgpu-extracted" -type f -print -quit)" ]; then
        msg "copying $real -> $src"
        mkdir -p "$src"
        cp -a "$real/." "$src/"
        touch "$src/.vgpu-extracted"
    fi
    ver=$(cat "$src/VERSION")-local-$(echo "$real" | sha256sum | cut -c1-8)
else
    src=$(debian_source)
    ver=$(cat "$src/VERSION")
    if [ -f "$src/debian/changelog" ]; then
        ver=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version | sed 's/^[0-9]*://; s/[^A-Za-z0-9.+~-]/_/g')
    fi
fi

result=$cache/qemu-$ver-$hash
build=$cache/qemu-build-$ver

link_out() {
    mkdir -p "$out"
    ln -sfn "$result/qemu-system-x86_64" "$out/qemu-system-x86_64"
    ln -sfn "$result/pc-bios" "$out/pc-bios"
    # carry/ must be real files (it travels to other hosts), but is only
    # re-copied when it came from another result.
    if [ "$(cat "$out/carry/.vgpu-result" 2>/dev/null)" != "$result" ]; then
        rm -rf "$out/carry"
        cp -a "$result/carry" "$out/carry"
        echo "$result" >"$out/carry/.vgpu-result"
    fi
    msg "ready: $out/qemu-system-x86_64 -> $result/qemu-system-x86_64"
}

if [ -x "$result/qemu-system-x86_64" ] && [ -f "$result/.complete" ]; then
    link_out
    exit 0
fi

"$top/scripts/deps.sh" qemu

# --- 2. Patch the device in ----------------------------------------------------

# Copy only when the content differs, so that ninja's mtime check does not
# rebuild anything that did not change.
install_if_changed() {
    if ! cmp -s "$1" "$2"; then
        mkdir -p "$(dirname "$2")"
        cp "$1" "$2"
    fi
}

install_if_changed "$top/qemu/vgpu-stub.c" "$src/hw/misc/vgpu-stub.c"
# Our public headers, under QEMU's include/ as <vgpu/...>: one definition.
for h in "$top"/include/vgpu/*.h; do
    install_if_changed "$h" "$src/include/vgpu/$(basename "$h")"
done
if ! grep -q '^config VGPU_STUB' "$src/hw/misc/Kconfig"; then
    cat >>"$src/hw/misc/Kconfig" <<'EOF'

config VGPU_STUB
    bool
    default y if PCI_DEVICES
    depends on PCI
EOF
fi
if ! grep -q 'CONFIG_VGPU_STUB' "$src/hw/misc/meson.build"; then
    echo "softmmu_ss.add(when: 'CONFIG_VGPU_STUB', if_true: files('vgpu-stub.c'))" >>"$src/hw/misc/meson.build"
fi

# --- 3. Configure (once) and build ---------------------------------------------

# A minimal x86_64 system emulator: pc/q35 with their default devices, tcg,
# kvm, qtest, socket chardevs, memory-backend-memfd. No UI, no network
# backends, no tools, no docs.
configure_args=(
    --target-list=x86_64-softmmu
    --without-default-features
    --enable-kvm --enable-tcg
    --disable-werror --disable-docs --disable-tools --disable-guest-agent
    --disable-gtk --disable-sdl --disable-vnc --disable-spice --disable-curl
    --disable-slirp --disable-opengl --disable-curses --disable-xen
    --disable-install-blobs
    --firmwarepath="$fw_path"
)
cfg_stamp=$(printf '%s\n' "${configure_args[@]}" | sha256sum | cut -c1-16)
if [ ! -f "$build/build.ninja" ] || [ "$(cat "$build/.vgpu-configure" 2>/dev/null)" != "$cfg_stamp" ]; then
    msg "configuring QEMU $ver in $build"
    rm -rf "$build" && mkdir -p "$build"
    (cd "$build" && "$src/configure" "${configure_args[@]}") || die "configure failed"
    echo "$cfg_stamp" >"$build/.vgpu-configure"
fi

msg "building QEMU $ver (ninja -j$jobs) in $build"
# ninja's own progress ([n/N]) goes straight to the terminal.
ninja -C "$build" -j"$jobs" qemu-system-x86_64 || die "QEMU build failed"

# --- 4. Result ------------------------------------------------------------------

tmp=$result.tmp.$$
rm -rf "$tmp" && mkdir -p "$tmp/pc-bios" "$tmp/carry/bin/pc-bios" "$tmp/carry/lib"
cp "$build/qemu-system-x86_64" "$tmp/qemu-system-x86_64"

# The firmware a pc/q35 guest needs at start-up. QEMU finds it through the
# configured --firmwarepath, and also through pc-bios/ next to its executable
# (that is the copy carry/ relies on).
fw_files=(bios-256k.bin bios.bin kvmvapic.bin linuxboot.bin linuxboot_dma.bin
          multiboot.bin multiboot_dma.bin pvh.bin vgabios-stdvga.bin vgabios.bin
          efi-e1000.rom efi-e1000e.rom efi-virtio.rom)
find_fw() {
    local d
    for d in "${fw_dirs[@]}"; do
        [ -e "$d/$1" ] && { readlink -f "$d/$1"; return 0; }
    done
    return 1
}
for f in "${fw_files[@]}"; do
    p=$(find_fw "$f") || die "firmware $f not found in ${fw_dirs[*]} (packages seabios, qemu-system-data, ipxe-qemu)"
    ln -s "$p" "$tmp/pc-bios/$f"
    cp "$p" "$tmp/carry/bin/pc-bios/$f"
done

strip -o "$tmp/carry/bin/qemu-system-x86_64" "$build/qemu-system-x86_64"
# Every shared library except glibc's own (those must match the host's loader).
ldd "$build/qemu-system-x86_64" | awk '/=> \// { print $3 }' | while read -r lib; do
    case "$(basename "$lib")" in
        libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|ld-linux*|libresolv.so.*) ;;
        *) cp -L "$lib" "$tmp/carry/lib/" ;;
    esac
done
cat >"$tmp/carry/qemu-system-x86_64" <<'EOF'
#!/bin/sh
# Self-contained vgpu QEMU: the libraries and firmware travel with it.
here=$(dirname "$(readlink -f "$0")")
LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/bin/qemu-system-x86_64" -L "$here/bin/pc-bios" "$@"
EOF
chmod +x "$tmp/carry/qemu-system-x86_64"
size=$(du -sm "$tmp/carry" | cut -f1)
[ "$size" -lt 40 ] || die "carry/ is ${size} MiB (limit 40)"

touch "$tmp/.complete"
rm -rf "$result" && mv "$tmp" "$result"
# Keep the three newest results of this QEMU version (other clones may
# still point at theirs); the build tree stays.
ls -dt "$cache"/qemu-"$ver"-*/ 2>/dev/null | tail -n +4 | while read -r old; do
    rm -rf "${old%/}"
done
link_out
