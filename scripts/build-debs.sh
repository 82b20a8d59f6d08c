#!/usr/bin/env bash
# Debian packages from the tree, with Debian's own tools (dpkg-deb,
# dpkg-shlibdeps): no debhelper, no source package.
#
# usage: scripts/build-debs.sh BUILD_DIR OUT_DIR
#
#   vgpu-mediator  /usr/bin/vgpu-mediator, /usr/bin/vgpu-client (host tools),
#                  /lib/systemd/system/vgpu-mediator.service, the conffile
#                  /etc/vgpu/mediator.conf, docs, man pages and the
#                  libvirt/CloudStack examples; postinst creates the vgpu group and the
#                  vgpu-mediator user, puts libvirt-qemu in the group, and
#                  enables + starts the service where systemd runs
#   vgpu-qemu      /usr/lib/vgpu/qemu-system-x86_64: QEMU (Debian's source)
#                  with vgpu-stub, a copy out of the build cache; firmware
#                  from Debian's seabios, qemu-system-data, ipxe-qemu
#   vgpu-guest     for inside a guest: /usr/bin/vgpu-client (static),
#                  libvgpu.a + <vgpu/*.h>, the uio_pci_generic binding
#                  (modules-load.d, udev rule), /usr/share/vgpu/run/*.
#                  Conflicts with vgpu-mediator (both ship vgpu-client)
#
# Needs `make build qemu` first (make debs does both). The version is
# meson.build's plus git's commit count and hash; VGPU_DEB_VERSION overrides.
# Prints the paths of the .debs it wrote.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
prog="build-debs.sh"
die() { echo "$prog: error: $*" >&2; exit 1; }
msg() { echo ">> $prog: $*" >&2; }

build=${1:?usage: build-debs.sh BUILD_DIR OUT_DIR}
out=${2:?usage: build-debs.sh BUILD_DIR OUT_DIR}
"$top/scripts/deps.sh" debs >&2
mkdir -p "$out"
out=$(cd "$out" && pwd)

arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo "$(uname -m)-linux-gnu")
if [ -n "${VGPU_DEB_VERSION:-}" ]; then
    version=$VGPU_DEB_VERSION
else
    version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$top/meson.build" | head -n1)
    [ -n "$version" ] || die "no version in meson.build"
    if git -C "$top" rev-parse --verify -q HEAD >/dev/null 2>&1; then
        version="$version+git$(git -C "$top" rev-list --count HEAD).$(git -C "$top" rev-parse --short=8 HEAD)"
    fi
fi
maintainer="vgpu maintainers <root@localhost>"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vgpu-debs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# shlibdeps ELF...: the Depends dpkg-shlibdeps derives for these binaries.
shlibdeps() {
    mkdir -p "$tmp/shlibs/debian"
    printf 'Source: vgpu\n\nPackage: vgpu\nArchitecture: any\n' >"$tmp/shlibs/debian/control"
    local args=() f
    for f in "$@"; do args+=(-e"$f"); done
    (cd "$tmp/shlibs" && dpkg-shlibdeps -O "${args[@]}" 2>"$tmp/shlibs/err") |
        sed -n 's/^shlibs:Depends=//p' || { cat "$tmp/shlibs/err" >&2; die "dpkg-shlibdeps failed"; }
}

# copyright PKGROOT PKG
copyright() {
    mkdir -p "$1/usr/share/doc/$2"
    cat >"$1/usr/share/doc/$2/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: vgpu
Comment: built from the vgpu tree by scripts/build-debs.sh

Files: *
License: GPL-2.0-or-later AND MIT
Comment: qemu/ (the vgpu-stub device, compiled into QEMU) is GPL-2.0-or-later
 (/usr/share/common-licenses/GPL-2); the rest is MIT, text below.

License: MIT
$(sed -n '/^MIT License\|^Permission is hereby granted/,$p' "$top/LICENSE" | sed 's/^$/./; s/^/ /')
EOF
}

# control PKGROOT PKG DEPENDS DESCRIPTION... (remaining lines: extra fields)
control() {
    local root=$1 pkg=$2 depends=$3 desc=$4
    shift 4
    mkdir -p "$root/DEBIAN"
    {
        echo "Package: $pkg"
        echo "Version: $version"
        echo "Architecture: $arch"
        echo "Maintainer: $maintainer"
        echo "Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)"
        [ -n "$depends" ] && echo "Depends: $depends"
        local f
        for f in "$@"; do echo "$f"; done
        echo "Section: admin"
        echo "Priority: optional"
        echo "Description: $desc"
    } >"$root/DEBIAN/control"
}

# Debian policy 12.1: man pages compressed with gzip -9n.
gzip_man() {
    find "$1/usr/share/man" -type f -name '*.[0-9]' -exec gzip -9n {} + 2>/dev/null || true
}

strip_elves() {
    local f
    find "$1" -type f -perm -u+x | while read -r f; do
        file_is_elf "$f" && strip --strip-unneeded --remove-section=.comment --remove-section=.note "$f"
    done
    return 0
}
file_is_elf() { [ "$(head -c4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]; }

build_deb() {
    local root=$1
    find "$root" -path "$root/DEBIAN" -prune -o -type f -print0 | sort -z |
        xargs -0 md5sum | sed "s|$root/||" >"$root/DEBIAN/md5sums"
    dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >&2
}

# --- vgpu-mediator -----------------------------------------------------------------
r=$tmp/vgpu-mediator
msg "vgpu-mediator $version"
# The unit is Type=notify: a mediator without sd_notify would never be ready.
readelf -d "$build/mediator/vgpu-mediator" | grep -q 'libsystemd\.so' ||
    die "$build/mediator/vgpu-mediator was built without libsystemd (sd_notify for the" \
        "Type=notify unit): scripts/deps.sh build, then meson setup --reconfigure $build -Dsystemd=enabled"
DESTDIR=$r PREFIX=/usr SYSCONFDIR=/etc DOCDIR=/usr/share/doc/vgpu-mediator \
    UNITDIR=/lib/systemd/system "$top/scripts/install.sh" "$build" host >&2
strip_elves "$r"
gzip_man "$r"
copyright "$r" vgpu-mediator
control "$r" vgpu-mediator "adduser, $(shlibdeps "$r/usr/bin/vgpu-mediator" "$r/usr/bin/vgpu-client")" \
    "host daemon sharing a GPU among VMs (vgpu)
 vgpu-mediator runs on the VM host: every QEMU with a vgpu-stub device
 connects to its socket (/run/vgpu/mediator.sock), and it validates,
 schedules (priority and weight per VM) and runs their GPU requests
 (CUDA when the build had it, else the CPU backend). Also vgpu-client,
 the host-side test client, and a systemd unit (vgpu-mediator.service)." \
    "Recommends: vgpu-qemu" "Conflicts: vgpu-guest"
echo /etc/vgpu/mediator.conf >"$r/DEBIAN/conffiles"
cat >"$r/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    getent group vgpu >/dev/null || addgroup --system --quiet vgpu
    getent passwd vgpu-mediator >/dev/null ||
        adduser --system --quiet --ingroup vgpu --no-create-home \
            --home /nonexistent --shell /usr/sbin/nologin vgpu-mediator
    # The GPU device nodes, where the driver's udev rules use these groups.
    for g in video render; do
        getent group "$g" >/dev/null && adduser --quiet vgpu-mediator "$g" || true
    done
    # libvirt's QEMU reaches the socket (0660, group vgpu) through the group;
    # libvirtd reads its user's groups at start: restart it once.
    if getent passwd libvirt-qemu >/dev/null; then
        adduser --quiet libvirt-qemu vgpu || true
    fi
fi
if [ "$1" = configure ] || [ "$1" = abort-upgrade ] || [ "$1" = abort-deconfigure ] || [ "$1" = abort-remove ]; then
    if command -v deb-systemd-helper >/dev/null; then
        deb-systemd-helper unmask vgpu-mediator.service >/dev/null || true
        # was-enabled is true on a first install: enable then.
        if deb-systemd-helper --quiet was-enabled vgpu-mediator.service; then
            deb-systemd-helper enable vgpu-mediator.service >/dev/null || true
        else
            deb-systemd-helper update-state vgpu-mediator.service >/dev/null || true
        fi
    fi
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
        if [ -n "$2" ]; then action=restart; else action=start; fi
        deb-systemd-invoke "$action" vgpu-mediator.service >/dev/null || true
    fi
fi
exit 0
EOF
cat >"$r/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    deb-systemd-invoke stop vgpu-mediator.service >/dev/null || true
fi
exit 0
EOF
cat >"$r/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = remove ] && command -v deb-systemd-helper >/dev/null; then
    deb-systemd-helper mask vgpu-mediator.service >/dev/null || true
fi
if [ "$1" = purge ] && command -v deb-systemd-helper >/dev/null; then
    deb-systemd-helper purge vgpu-mediator.service >/dev/null || true
    deb-systemd-helper unmask vgpu-mediator.service >/dev/null || true
fi
exit 0
EOF
chmod 0755 "$r/DEBIAN/postinst" "$r/DEBIAN/prerm" "$r/DEBIAN/postrm"
build_deb "$r"

# --- vgpu-qemu ---------------------------------------------------------------------
r=$tmp/vgpu-qemu
msg "vgpu-qemu $version"
DESTDIR=$r PREFIX=/usr LIBDIR=/usr/lib VGPU_INSTALL_STRIP=1 "$top/scripts/install.sh" "$build" qemu >&2
copyright "$r" vgpu-qemu
qver=$("$r/usr/lib/vgpu/qemu-system-x86_64" --version | head -n1)
control "$r" vgpu-qemu "$(shlibdeps "$r/usr/lib/vgpu/qemu-system-x86_64"), seabios, qemu-system-data, ipxe-qemu" \
    "QEMU x86_64 system emulator with the vgpu-stub device (vgpu)
 $qver, built from Debian's QEMU source with the vgpu-stub PCI
 device added, installed as /usr/lib/vgpu/qemu-system-x86_64 beside (not
 over) Debian's qemu-system-x86. Point libvirt's <emulator> at it. Firmware
 comes from Debian's seabios, qemu-system-data and ipxe-qemu."
build_deb "$r"

# --- vgpu-guest --------------------------------------------------------------------
r=$tmp/vgpu-guest
msg "vgpu-guest $version"
DESTDIR=$r PREFIX=/usr LIBDIR="/usr/lib/$multiarch" UDEVDIR=/lib/udev \
    MODLOADDIR=/usr/lib/modules-load.d "$top/scripts/install.sh" "$build" guest >&2
strip_elves "$r"
gzip_man "$r"
copyright "$r" vgpu-guest
if [ -f "$r/etc/ld.so.conf.d/vgpu-cuda.conf" ]; then
    mkdir -p "$r/DEBIAN"
    echo /etc/ld.so.conf.d/vgpu-cuda.conf >"$r/DEBIAN/conffiles"
    echo "activate-noawait ldconfig" >"$r/DEBIAN/triggers"
fi
control "$r" vgpu-guest "" \
    "guest side of vgpu: client, library, device binding
 For inside a VM with the vgpu device (PCI 1b36:10f0): vgpu-client
 (statically linked), libvgpu.a with its headers, and the binding of the
 device to uio_pci_generic (a modules-load.d entry and a udev rule), so
 that programs get the device's interrupts; libcuda.so.1, the CUDA driver
 API on the device, so that unmodified CUDA programs (NVIDIA's runtime and
 libraries beside them) run on the host's GPU. No GPU driver in the guest." \
    "Recommends: udev, kmod" "Conflicts: vgpu-mediator"
build_deb "$r"

ls -1 "$out"/vgpu-mediator_"$version"_"$arch".deb "$out"/vgpu-qemu_"$version"_"$arch".deb \
    "$out"/vgpu-guest_"$version"_"$arch".deb
