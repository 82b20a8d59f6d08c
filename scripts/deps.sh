#!/usr/bin/env bash
# Install the Debian packages a step needs, only those missing.
# usage: scripts/deps.sh build|test|testtools|qemu|stock-qemu|guest|libvirt|debs|all
set -euo pipefail

# libmicrohttpd-dev: the mediator's Prometheus /metrics (--metrics-listen).
# libinih-dev: the settings file (--config, INI).
# libsystemd-dev: sd_notify (Type=notify: READY, STATUS, WATCHDOG, STOPPING).
# scdoc: the man pages (docs/man/*.scd -> roff).
# libxxhash-dev: XXH3-128, the content hash of GPU images the worker keeps
# (header-only use: nothing at run time).
pkgs_build="gcc make meson ninja-build pkg-config libcmocka-dev python3 clang libclang-rt-14-dev \
  libmicrohttpd-dev libsystemd-dev scdoc libinih-dev libxxhash-dev"
pkgs_qemu="dpkg-dev libglib2.0-dev libpixman-1-dev zlib1g-dev flex bison python3-venv \
  libfdt-dev libcap-ng-dev libattr1-dev xz-utils bzip2 seabios qemu-system-data ipxe-qemu"
# Debian's own QEMU, unmodified (tests/e2e/ivshmem.sh: the path with no patched
# QEMU, ivshmem-doorbell served by the mediator); the project's patched QEMU is
# separate (scripts/build-qemu.sh, /var/cache/vgpu) and never replaced by it.
pkgs_stock_qemu="qemu-system-x86"
pkgs_guest="busybox-static cpio gzip kmod xz-utils dpkg apt binutils"
# libvirt's daemon with its QEMU driver and virsh (tests/e2e/libvirt-*.sh
# start the daemon themselves: no systemd, no libvirt-daemon-system);
# setpriv (util-linux) runs it as an unprivileged user.
pkgs_libvirt="libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients util-linux"
# scripts/build-debs.sh: dpkg-deb, dpkg-shlibdeps (dpkg-dev), strip.
# libsystemd-dev: the packaged mediator must have sd_notify (Type=notify unit).
pkgs_debs="dpkg dpkg-dev binutils libsystemd-dev"
# promtool (package prometheus) checks /metrics in tests/functional/test_metrics.c;
# systemd-analyze (package systemd) verifies the unit in tests/packaging.
pkgs_test="prometheus systemd"

want=()
for group in "$@"; do
  case "$group" in
    build) want+=($pkgs_build) ;;
    qemu)  want+=($pkgs_build $pkgs_qemu $pkgs_stock_qemu) ;;
    stock-qemu) want+=($pkgs_stock_qemu) ;;
    guest) want+=($pkgs_guest) ;;
    libvirt) want+=($pkgs_libvirt) ;;
    debs)  want+=($pkgs_debs) ;;
    testtools) want+=($pkgs_test) ;;
    test|all) want+=($pkgs_build $pkgs_qemu $pkgs_stock_qemu $pkgs_guest $pkgs_libvirt $pkgs_debs $pkgs_test) ;;
    *) echo "deps.sh: unknown group '$group' (build|qemu|stock-qemu|guest|libvirt|debs|testtools|test|all)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo ">> installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
stamp=/var/lib/apt/periodic/update-success-stamp
if [ ! -d /var/lib/apt/lists ] || [ -z "$(ls /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
  $SUDO apt-get update -q
fi
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" || {
  $SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"; }
