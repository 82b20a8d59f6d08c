#!/usr/bin/env bash
# Install vgpu from a build tree, the way `make install` and the Debian
# packages (scripts/build-debs.sh) do.
#
# usage: scripts/install.sh BUILD_DIR COMPONENT...
#   host    vgpu-mediator, vgpu-client (host tools), the systemd unit, the
#           config file (kept when it exists), the documentation and the
#           man pages
#   qemu    QEMU with vgpu-stub, copied out of BUILD_DIR/qemu (never a link
#           into the build cache) to LIBDIR/vgpu/qemu-system-x86_64
#   guest   what a guest needs: the static vgpu-client (and its man page), libvgpu + headers,
#           the uio_pci_generic binding (modules-load.d + udev rule),
#           the smoke-test scenarios, and when built our libcuda.so.1 (the
#           CUDA driver API for unmodified CUDA programs) at LIBDIR/vgpu/
#           with SYSCONFDIR/ld.so.conf.d/vgpu-cuda.conf putting it on the
#           loader's path (a guest has no NVIDIA driver it could shadow;
#           never install this part on a host)
#
# Environment (make passes its variables of the same names):
#   DESTDIR     staging root (default empty: the real system)
#   PREFIX      default /usr/local
#   BINDIR      default PREFIX/bin
#   LIBDIR      default PREFIX/lib          (QEMU: LIBDIR/vgpu/)
#   DATADIR     default PREFIX/share
#   DOCDIR      default DATADIR/doc/vgpu
#   MANDIR      default DATADIR/man (man pages, built from docs/man/*.scd)
#   INCLUDEDIR  default PREFIX/include
#   SYSCONFDIR  default /etc whatever PREFIX is (the unit reads
#               SYSCONFDIR/vgpu/mediator.conf)
#   UNITDIR     default PREFIX/lib/systemd/system (systemd looks in
#               /usr/local/lib/systemd/system and /lib/systemd/system)
#   UDEVDIR     default PREFIX/lib/udev (guest; /usr/local/lib/udev is not
#               read by udev: set UDEVDIR=/etc/udev for a /usr/local guest)
#   MODLOADDIR  default PREFIX/lib/modules-load.d (same remark: /etc/modules-load.d)
#
# The unit file in the tree names /usr/local/bin/vgpu-mediator and
# /usr/local/share/doc/vgpu/operations.md; both are rewritten to BINDIR and
# DOCDIR on the way in.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
prog=install.sh
die() { echo "$prog: error: $*" >&2; exit 1; }
msg() { echo ">> $prog: $*" >&2; }

build=${1:?usage: install.sh BUILD_DIR host|qemu|guest...}
shift
[ $# -gt 0 ] || die "no component (host, qemu, guest)"
build=$(cd "$build" 2>/dev/null && pwd) || die "build dir $1 not found (make build)"

DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
BINDIR=${BINDIR:-$PREFIX/bin}
LIBDIR=${LIBDIR:-$PREFIX/lib}
DATADIR=${DATADIR:-$PREFIX/share}
DOCDIR=${DOCDIR:-$DATADIR/doc/vgpu}
MANDIR=${MANDIR:-$DATADIR/man}
INCLUDEDIR=${INCLUDEDIR:-$PREFIX/include}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-$PREFIX/lib/systemd/system}
UDEVDIR=${UDEVDIR:-$PREFIX/lib/udev}
MODLOADDIR=${MODLOADDIR:-$PREFIX/lib/modules-load.d}
for v in PREFIX BINDIR LIBDIR DATADIR DOCDIR MANDIR INCLUDEDIR SYSCONFDIR UNITDIR UDEVDIR MODLOADDIR; do
    case ${!v} in /*) ;; *) die "$v=${!v} is not an absolute path" ;; esac
done
D=$DESTDIR

need() { [ -f "$1" ] || die "$1 missing ($2)"; }

inst() {  # inst MODE SRC DEST_FILE
    install -D -m "$1" "$2" "$D$3"
    echo "  $D$3"
}

inst_man() {  # inst_man PAGE...: roff built by meson from docs/man/PAGE.scd
    local p
    for p in "$@"; do
        need "$build/docs/man/$p" "make build, with scdoc (scripts/deps.sh build)"
        inst 0644 "$build/docs/man/$p" "$MANDIR/man${p##*.}/$p"
    done
}

install_host() {
    need "$build/mediator/vgpu-mediator" "make build"
    need "$build/client/vgpu-client" "make build"
    need "$build/client/vgpu-smi" "make build"
    inst 0755 "$build/mediator/vgpu-mediator" "$BINDIR/vgpu-mediator"
    inst 0755 "$build/client/vgpu-client" "$BINDIR/vgpu-client"
    inst 0755 "$build/client/vgpu-smi" "$BINDIR/vgpu-smi"
    inst_man vgpu-mediator.8 vgpu-mediator.conf.5 vgpu-smi.1 vgpu-client.1
    local unit
    unit=$(mktemp)
    sed -e "s|/usr/local/share/doc/vgpu/|$DOCDIR/|g" \
        -e "s|/usr/local/bin/|$BINDIR/|g" \
        -e "s|/etc/vgpu/|$SYSCONFDIR/vgpu/|g" \
        "$top/deploy/systemd/vgpu-mediator.service" >"$unit"
    inst 0644 "$unit" "$UNITDIR/vgpu-mediator.service"
    rm -f "$unit"
    # The config file is the operator's: never overwritten.
    if [ -e "$D$SYSCONFDIR/vgpu/mediator.conf" ]; then
        echo "  $D$SYSCONFDIR/vgpu/mediator.conf exists, kept"
    else
        inst 0644 "$top/deploy/vgpu-mediator.conf" "$SYSCONFDIR/vgpu/mediator.conf"
    fi
    inst 0644 "$top/deploy/vgpu-mediator.conf" "$DOCDIR/examples/mediator.conf"
    inst 0644 "$top/docs/operations.md" "$DOCDIR/operations.md"
    inst 0644 "$top/README.md" "$DOCDIR/README.md"
    local f
    for f in "$top"/deploy/libvirt/*.xml "$top"/deploy/cloudstack/*.xml "$top"/deploy/grafana/*.json; do
        [ -f "$f" ] && inst 0644 "$f" "$DOCDIR/examples/$(basename "$(dirname "$f")")/$(basename "$f")"
    done
    return 0
}

install_qemu() {
    local q=$build/qemu/qemu-system-x86_64
    [ -e "$q" ] || die "$q missing (make qemu)"
    # Resolve the link into the cache and copy the file itself: the cache
    # prunes old results, an installed emulator must not depend on it.
    local real
    real=$(readlink -f "$q")
    [ -x "$real" ] || die "$q points to $real, which is gone (make qemu)"
    "$real" -device help 2>/dev/null | grep -q '"vgpu-stub"' ||
        die "$real has no vgpu-stub device"
    inst 0755 "$real" "$LIBDIR/vgpu/qemu-system-x86_64"
    if [ -n "${VGPU_INSTALL_STRIP:-}" ]; then
        strip --strip-unneeded "$D$LIBDIR/vgpu/qemu-system-x86_64"
    fi
}

install_guest() {
    need "$build/client/vgpu-client-static" "make build with -Dstatic_guest=true"
    inst 0755 "$build/client/vgpu-client-static" "$BINDIR/vgpu-client"
    inst_man vgpu-client.1
    if [ -f "$build/libvgpu/libvgpu.a" ]; then
        inst 0644 "$build/libvgpu/libvgpu.a" "$LIBDIR/libvgpu.a"
        local h
        for h in "$top"/include/vgpu/*.h; do
            inst 0644 "$h" "$INCLUDEDIR/vgpu/$(basename "$h")"
        done
    fi
    inst 0644 "$top/deploy/guest/modules-load.conf" "$MODLOADDIR/vgpu.conf"
    inst 0644 "$top/deploy/guest/60-vgpu.rules" "$UDEVDIR/rules.d/60-vgpu.rules"
    local s
    for s in "$top"/guest/run/*; do
        inst 0755 "$s" "$DATADIR/vgpu/run/$(basename "$s")"
    done
    if [ -f "$build/guest/cuda/libcuda.so.1" ]; then
        inst 0755 "$build/guest/cuda/libcuda.so.1" "$LIBDIR/vgpu/libcuda.so.1"
        ln -sf libcuda.so.1 "$D$LIBDIR/vgpu/libcuda.so"
        echo "  $D$LIBDIR/vgpu/libcuda.so -> libcuda.so.1"
        local conf
        conf=$(mktemp)
        printf '# vgpu: the CUDA driver API on the vgpu device (guest only)\n%s\n' \
            "$LIBDIR/vgpu" >"$conf"
        inst 0644 "$conf" "$SYSCONFDIR/ld.so.conf.d/vgpu-cuda.conf"
        rm -f "$conf"
        if [ -z "$D" ] && [ "$(id -u)" = 0 ]; then
            ldconfig
        fi
    else
        echo "  (no $build/guest/cuda/libcuda.so.1: built where the CUDA toolkit's cuda.h is found)"
    fi
}

for c in "$@"; do
    case "$c" in
        host)  msg "host pieces -> ${D:-/}"; install_host ;;
        qemu)  msg "QEMU with vgpu-stub -> $D$LIBDIR/vgpu/"; install_qemu ;;
        guest) msg "guest pieces -> ${D:-/}"; install_guest ;;
        *) die "unknown component '$c' (host, qemu, guest)" ;;
    esac
done
