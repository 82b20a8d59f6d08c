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
#   VGPU_QEMU_VERSION  which QEMU: 7.2 (default: Debian 12's source package)
#                   or 10.0 (Debian 13's, `apt-get source qemu/trixie`; it
#                   needs meson >= 1.5, taken from bookworm-backports' package
#                   into the cache, the system's meson is left alone)
#   QEMU_SRC        use this QEMU source tree (copied into the cache) instead
#                   of Debian's `apt-get source qemu`
#   VGPU_QEMU_JOBS  ninja parallelism (default 2)
#
# Cache layout (outside the clone, shared by every clone on the machine):
#   src/qemu-<ver>/            extracted Debian source (dpkg-source -x), patched
#                              (7.2; 10.0's under src/v10.0/)
#   tools/meson-<ver>/         10.0 only: meson from bookworm-backports in a venv
#   qemu-build-<ver>/          QEMU's build tree, kept so that a change to the
#                              device recompiles only vgpu-stub.c and relinks
#   qemu-<ver>-<hash>/         finished result for one (device, headers, script)
#                              hash: qemu-system-x86_64, pc-bios/, carry/
# A second run with nothing changed finds qemu-<ver>-<hash>/ and returns at once.
set -euo pipefail

out=${1:?usage: build-qemu.sh OUT_DIR}
top=$(cd "$(dirname "$0")/.." && pwd)
jobs=${VGPU_QEMU_JOBS:-2}
qver=${VGPU_QEMU_VERSION:-7.2}

msg() { echo ">> build-qemu: $*" >&2; }
die() { echo "build-qemu: error: $*" >&2; exit 1; }

. "$top/scripts/cache.sh"

# What differs between the two QEMUs: where apt finds the source, where it
# is kept in the cache, and the meson its configure needs.
case "$qver" in
    7.2)  suite=""; srcsub=src; meson_min="" ;;
    10.0) suite=trixie; srcsub=src/v10.0; meson_min=1.5 ;;
    *)    die "VGPU_QEMU_VERSION=$qver: 7.2 or 10.0" ;;
esac
cache=$(vgpu_cache_dir "") || exit 1
vgpu_cache_lock "$cache/.qemu.lock"

# The firmware QEMU needs comes from Debian's packages (seabios: bios-256k.bin,
# vgabios; qemu-system-data: kvmvapic.bin, linuxboot_dma.bin; ipxe-qemu: NIC
# option ROMs). Debian's own QEMU searches the same three directories.
fw_dirs=(/usr/share/qemu /usr/share/seabios /usr/lib/ipxe/qemu)
fw_path=$(IFS=:; echo "${fw_dirs[*]}")

# Hash of everything our part of the build depends on.
# (The QEMU version is in the result's name, next to the hash.)
hash=$(cat "$top/qemu/vgpu-stub.c" "$top"/include/vgpu/*.h "$top/scripts/build-qemu.sh" |
       sha256sum | cut -c1-16)

# --- 1. QEMU source ----------------------------------------------------------

# Deb-src stanzas derived from the machine's deb stanzas: same URIs, suites,
# components and keyring, only the type changes.
add_deb_src() {
    local list=/etc/apt/sources.list.d/vgpu-deb-src.sources
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    if [ -n "$suite" ]; then
        add_debian_suite deb-src "$suite"
        return
    fi
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

# add_debian_suite TYPE SUITE: a sources list of our own for one suite of
# Debian's archive (deb-src trixie: QEMU 10.0's source), refreshed alone.
add_debian_suite() {
    local type=$1 name=$2 sudo=""
    local list=/etc/apt/sources.list.d/vgpu-$1-$2.sources
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    if [ ! -f "$list" ]; then
        msg "adding $list"
        printf 'Types: %s\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n' \
            "$type" "$(debian_uri)" "$name" /usr/share/keyrings/debian-archive-keyring.gpg |
            $sudo tee "$list" >/dev/null
    fi
    msg "apt-get update ($type $name only)"
    $sudo apt-get update -q \
        -o Dir::Etc::sourcelist="sources.list.d/$(basename "$list")" \
        -o Dir::Etc::sourceparts="-" -o APT::Get::List-Cleanup="0"
}

# QEMU 10.0's configure wants meson >= 1.5, Debian 12 has 1.0. Meson is pure
# Python: bookworm-backports' package is unpacked into a venv of the cache,
# and QEMU is configured with that venv's python (QEMU's own venv then finds
# that meson). The system's meson is not touched, and the backports entry
# lives in the cache, not in the machine's apt sources. Prints the python.
meson_python() {
    local d
    for d in "$cache"/tools/meson-*/; do
        [ -f "$d/.complete" ] && { echo "${d%/}/venv/bin/python3"; return 0; }
    done
    local tmp=$cache/tools/download sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    rm -rf "$tmp" && mkdir -p "$tmp"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' \
        "$(debian_uri)" /usr/share/keyrings/debian-archive-keyring.gpg >"$tmp/bpo.sources"
    local apt_opts=(-o Dir::Etc::sourcelist="$tmp/bpo.sources" -o Dir::Etc::sourceparts="-"
                    -o APT::Get::List-Cleanup="0")
    msg "apt-get download meson/bookworm-backports (for QEMU $qver, once)"
    $sudo apt-get update -q "${apt_opts[@]}" >&2 || die "apt-get update (bookworm-backports) failed"
    (cd "$tmp" && $sudo apt-get download -q "${apt_opts[@]}" meson/bookworm-backports >&2) ||
        die "apt-get download meson/bookworm-backports failed"
    local deb mver
    deb=$(ls "$tmp"/meson_*.deb) || die "no meson package downloaded"
    mver=$(dpkg-deb -f "$deb" Version | sed 's/-[^-]*$//')
    d=$cache/tools/meson-$mver
    rm -rf "$d" && mkdir -p "$d"
    dpkg-deb -x "$deb" "$d/root"
    /usr/bin/python3 -m venv --without-pip "$d/venv" || die "python3 -m venv failed (package python3-venv)"
    local site
    site=$("$d/venv/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    cp -a "$d/root/usr/lib/python3/dist-packages/." "$site/"
    "$d/venv/bin/python3" - "$meson_min" <<'PY' || die "meson $mver from bookworm-backports is older than $meson_min"
import sys, importlib.metadata as m
have = tuple(int(x) for x in m.version("meson").split(".")[:2])
sys.exit(have < tuple(int(x) for x in sys.argv[1].split(".")))
PY
    rm -rf "$tmp"
    touch "$d/.complete"
    echo "$d/venv/bin/python3"
}

# The machine's Debian mirror (its deb stanzas), deb.debian.org when none.
debian_uri() {
    local uri=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        uri=$(awk '$1 == "URIs:" { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
    elif [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

# Prints the extracted source dir; fetches and extracts only when no cached
# extraction of this QEMU version exists.
debian_source() {
    local srcroot=$cache/$srcsub d
    mkdir -p "$srcroot"
    for d in "$srcroot"/qemu-*/; do
        [ -f "$d/.vgpu-extracted" ] && [ "$(cut -d. -f1-2 "$d/VERSION")" = "$qver" ] &&
            { echo "${d%/}"; return 0; }
    done
    # dpkg-source (dpkg-dev) extracts what apt-get source downloads.
    "$top/scripts/deps.sh" qemu >&2
    add_deb_src >&2
    local dl=$srcroot/download
    rm -rf "$dl" && mkdir -p "$dl"
    local pkg=qemu${suite:+/$suite}
    msg "apt-get source $pkg (download + dpkg-source -x, once)"
    (cd "$dl" && apt-get source -q "$pkg" >&2) || die "apt-get source $pkg failed"
    d=$(find "$dl" -mindepth 1 -maxdepth 1 -type d -name 'qemu-*' | head -n1)
    [ -n "$d" ] && [ -f "$d/VERSION" ] || die "apt-get source produced no qemu tree"
    [ "$(cut -d. -f1-2 "$d/VERSION")" = "$qver" ] ||
        die "apt-get source $pkg gave QEMU $(cat "$d/VERSION"), not $qver"
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
    # 8.1 renamed the source set of system emulation softmmu_ss -> system_ss.
    ss=softmmu_ss
    grep -q '^system_ss' "$src/hw/misc/meson.build" && ss=system_ss
    echo "$ss.add(when: 'CONFIG_VGPU_STUB', if_true: files('vgpu-stub.c'))" >>"$src/hw/misc/meson.build"
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
if [ -n "$meson_min" ]; then
    # Offline: the +ds source has no bundled wheels and never downloads.
    configure_args+=(--python="$(meson_python)" --disable-download)
fi
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
