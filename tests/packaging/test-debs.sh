#!/usr/bin/env bash
# packaging: `make install` (scripts/install.sh) into a DESTDIR, then the
# Debian packages (scripts/build-debs.sh): built, inspected (dpkg-deb -I/-c),
# unpacked into a scratch dpkg root, the mediator started the way its
# systemd unit says and QEMU asked for its device, both from that root; a
# package with a file of ours, and vgpu-guest beside vgpu-mediator, must be
# refused, the installed file left as it was. Ends "N passed, N failed".
set -uo pipefail
# dpkg wants ldconfig and start-stop-daemon on PATH, which a bare environment
# (CI runs with PATH=/usr/local/bin:/usr/bin:/bin) leaves out.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${VGPU_E2E_BUILD_DIR:-${VGPU_BUILD_DIR:-$top/build}}
test_name=debs
passed=0
failed=0
work=$(mktemp -d "${TMPDIR:-/tmp}/vgpu-pkg.XXXXXX")
med_pid=""

say()  { echo "[$test_name] $*"; }
pass() { passed=$((passed + 1)); echo "ok   - $*"; }
fail() { failed=$((failed + 1)); echo "FAIL - $*"; }
check() { local d=$1; shift; if "$@"; then pass "$d"; else fail "$d"; fi; }
finish() {
    echo "$test_name: $passed passed, $failed failed"
    [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
    exit $?
}
cleanup() {
    if [ -n "$med_pid" ]; then kill "$med_pid" 2>/dev/null; wait "$med_pid" 2>/dev/null; fi
    if [ "$failed" -eq 0 ] && [ "${VGPU_E2E_KEEP:-0}" != 1 ]; then rm -rf "$work"; else say "kept $work"; fi
}
trap cleanup EXIT

for f in mediator/vgpu-mediator client/vgpu-client client/vgpu-client-static; do
    [ -x "$build/$f" ] || { fail "$build/$f (make build)"; finish; }
done
[ -x "$build/qemu/qemu-system-x86_64" ] || { fail "$build/qemu/qemu-system-x86_64 (make qemu)"; finish; }

# --- make install ------------------------------------------------------------------
d=$work/destdir
check "make install wires scripts/install.sh host qemu" \
    grep -q 'scripts/install.sh $(BUILD) host qemu' "$top/Makefile"
check "install.sh host qemu (DESTDIR, PREFIX=/usr/local)" \
    env DESTDIR="$d" PREFIX=/usr/local "$top/scripts/install.sh" "$build" host qemu
for f in /usr/local/bin/vgpu-mediator /usr/local/bin/vgpu-client \
         /usr/local/lib/systemd/system/vgpu-mediator.service /etc/vgpu/mediator.conf \
         /usr/local/share/doc/vgpu/operations.md /usr/local/share/doc/vgpu/examples/mediator.conf \
         /usr/local/share/doc/vgpu/examples/libvirt/vgpu-vm1.xml \
         /usr/local/share/doc/vgpu/examples/libvirt/vgpu-ivshmem-vm1.xml \
         /usr/local/share/doc/vgpu/examples/cloudstack/vgpu-extraconfig.xml \
         /usr/local/share/doc/vgpu/examples/grafana/vgpu-mediator.json \
         /usr/local/lib/vgpu/qemu-system-x86_64 /usr/local/share/man/man8/vgpu-mediator.8 \
         /usr/local/share/man/man5/vgpu-mediator.conf.5 /usr/local/share/man/man1/vgpu-smi.1 \
         /usr/local/share/man/man1/vgpu-client.1; do
    check "installed $f" test -f "$d$f"
done
q=$d/usr/local/lib/vgpu/qemu-system-x86_64
check "the installed QEMU is a file of its own, not a link (into the cache)" test ! -L "$q"
check "the installed QEMU has vgpu-stub" bash -c "'$q' -device help | grep -q '\"vgpu-stub\"'"
unit=$d/usr/local/lib/systemd/system/vgpu-mediator.service
exec_path=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit")
doc_path=$(sed -n 's|^Documentation=file://||p' "$unit")
check "the unit's ExecStart ($exec_path) is the installed mediator" test -x "$d$exec_path"
check "the unit's Documentation= ($doc_path) is installed" test -f "$d$doc_path"
echo "# an operator's line" >>"$d/etc/vgpu/mediator.conf"
env DESTDIR="$d" PREFIX=/usr/local "$top/scripts/install.sh" "$build" host >/dev/null 2>&1
check "a second install keeps the operator's /etc/vgpu/mediator.conf" \
    grep -q "an operator's line" "$d/etc/vgpu/mediator.conf"
env DESTDIR="$work/opt" PREFIX=/opt/vgpu "$top/scripts/install.sh" "$build" host >/dev/null 2>&1
check "PREFIX=/opt/vgpu: the unit runs /opt/vgpu/bin/vgpu-mediator" \
    grep -q '^ExecStart=/opt/vgpu/bin/vgpu-mediator ' "$work/opt/opt/vgpu/lib/systemd/system/vgpu-mediator.service"
check "install.sh guest (DESTDIR)" \
    env DESTDIR="$work/guest" PREFIX=/usr "$top/scripts/install.sh" "$build" guest
check "guest: static vgpu-client, udev rule, modules-load entry" \
    test -x "$work/guest/usr/bin/vgpu-client" -a -f "$work/guest/usr/lib/udev/rules.d/60-vgpu.rules" \
         -a -f "$work/guest/usr/lib/modules-load.d/vgpu.conf"
if [ -f "$build/guest/cuda/libcuda.so.1" ]; then
    check "guest: libcuda.so.1 at LIBDIR/vgpu, on the loader's path by ld.so.conf.d" \
        bash -c "test -x '$work/guest/usr/lib/vgpu/libcuda.so.1' &&
                 grep -qx /usr/lib/vgpu '$work/guest/etc/ld.so.conf.d/vgpu-cuda.conf'"
fi
check "install.sh refuses a relative PREFIX" \
    bash -c "! DESTDIR='$work/bad' PREFIX=usr '$top/scripts/install.sh' '$build' host 2>/dev/null"

# --- the packages ------------------------------------------------------------------
t0=$(date +%s)
if ! "$top/scripts/build-debs.sh" "$build" "$work/debs" >"$work/build-debs.out" 2>"$work/build-debs.err"; then
    cat "$work/build-debs.err"
    fail "scripts/build-debs.sh"
    finish
fi
pass "scripts/build-debs.sh ($(($(date +%s) - t0)) s)"
cat "$work/build-debs.out"
deb() { grep "/$1_" "$work/build-debs.out"; }
for p in vgpu-mediator vgpu-qemu vgpu-guest; do
    check "$p .deb written" test -f "$(deb $p)"
done
med=$(deb vgpu-mediator) qemu=$(deb vgpu-qemu) guest=$(deb vgpu-guest)
field() { dpkg-deb -f "$1" "$2"; }
for p in "$med" "$qemu" "$guest"; do dpkg-deb -I "$p" | sed 's/^/    /'; done

check "vgpu-mediator: Depends adduser and libc6" \
    bash -c "grep -q adduser <<<'$(field "$med" Depends)' && grep -q libc6 <<<'$(field "$med" Depends)'"
check "vgpu-mediator: conffile /etc/vgpu/mediator.conf" \
    bash -c "dpkg-deb --ctrl-tarfile '$med' | tar -xO ./conffiles | grep -qx /etc/vgpu/mediator.conf"
check "vgpu-mediator: postinst creates the vgpu-mediator user" \
    bash -c "dpkg-deb --ctrl-tarfile '$med' | tar -xO ./postinst | grep -q 'adduser --system'"
check "vgpu-mediator: postinst is valid sh" \
    bash -c "dpkg-deb --ctrl-tarfile '$med' | tar -xO ./postinst | sh -n"
check "vgpu-qemu: Depends on Debian's firmware (seabios, qemu-system-data, ipxe-qemu) and libglib" \
    bash -c "d='$(field "$qemu" Depends)'; for p in seabios qemu-system-data ipxe-qemu libglib2.0-0; do grep -q \"\$p\" <<<\"\$d\" || exit 1; done"
check "vgpu-guest: Conflicts vgpu-mediator" test "$(field "$guest" Conflicts)" = vgpu-mediator
contents() { dpkg-deb -c "$1" | awk '{print $6}' | sed 's|^\./|/|'; }
contents "$med" >"$work/med.list"; contents "$qemu" >"$work/qemu.list"; contents "$guest" >"$work/guest.list"
for f in /usr/bin/vgpu-mediator /usr/bin/vgpu-client /lib/systemd/system/vgpu-mediator.service \
         /etc/vgpu/mediator.conf /usr/share/doc/vgpu-mediator/operations.md \
         /usr/share/doc/vgpu-mediator/copyright /usr/share/man/man8/vgpu-mediator.8.gz \
         /usr/share/man/man5/vgpu-mediator.conf.5.gz /usr/share/man/man1/vgpu-smi.1.gz \
         /usr/share/man/man1/vgpu-client.1.gz; do
    check "vgpu-mediator contains $f" grep -qx -- "$f" "$work/med.list"
done
check "vgpu-qemu contains /usr/lib/vgpu/qemu-system-x86_64" grep -qx /usr/lib/vgpu/qemu-system-x86_64 "$work/qemu.list"
check "vgpu-qemu has no link (nothing points into a cache)" \
    bash -c "! dpkg-deb -c '$qemu' | grep -q '^l'"
check "no package ships anything under /var/cache" \
    bash -c "! cat '$work'/*.list | grep -q '^/var/cache'"
for f in /usr/bin/vgpu-client /lib/udev/rules.d/60-vgpu.rules /usr/lib/modules-load.d/vgpu.conf \
         /usr/include/vgpu/abi.h /usr/share/vgpu/run/m1m2 /usr/share/man/man1/vgpu-client.1.gz; do
    check "vgpu-guest contains $f" grep -qx -- "$f" "$work/guest.list"
done

# --- a scratch dpkg root -------------------------------------------------------------
newroot() {
    mkdir -p "$1/var/lib/dpkg/info" "$1/var/lib/dpkg/updates" "$1/var/lib/dpkg/triggers"
    : >"$1/var/lib/dpkg/status"
}
# --unpack runs no maintainer script of ours (there is no preinst); any
# script dpkg would run is chrooted into the scratch root, never run on
# this machine.
dpkg_root() { dpkg --root="$1" --log=/dev/null "${@:2}"; }
root=$work/root
newroot "$root"
check "dpkg --unpack vgpu-mediator vgpu-qemu into a scratch root" \
    dpkg_root "$root" --unpack "$med" "$qemu"
unit=$root/lib/systemd/system/vgpu-mediator.service
exec_line=$(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$unit" | sed -n 's/^ExecStart=//p')
exec_path=${exec_line%% *}
check "the packaged unit runs $exec_path, which the package installs" test -x "$root$exec_path"
check "the packaged unit's Documentation= is in the package" \
    grep -qx -- "$(sed -n 's|^Documentation=file://||p' "$unit")" "$work/med.list"
# The mediator as the unit starts it, paths inside the scratch root, a
# private socket.
sockdir=$work/run
mkdir -p "$sockdir"
# Unpacked, not configured: dpkg keeps a conffile as .dpkg-new until it
# configures the package (which runs the postinst: not here).
conf=$(sed -n 's/.*--config=\([^ ]*\).*/\1/p' <<<"$exec_line")
check "the unit's --config ($conf) is the package's conffile (unpacked as .dpkg-new)" \
    test -f "$root$conf.dpkg-new"
cmd=$(sed -e "s|/run/vgpu/mediator.sock|$sockdir/mediator.sock|" -e "s|--config=$conf|--config=$root$conf.dpkg-new|" <<<"$exec_line")
say "starting: $root$cmd"
# shellcheck disable=SC2086
"$root"$cmd >"$work/mediator.log" 2>&1 &
med_pid=$!
for ((i = 0; i < 100; i++)); do
    "$root$exec_path" --socket-path "$sockdir/mediator.sock" --status >/dev/null 2>&1 && break
    kill -0 "$med_pid" 2>/dev/null || break
    sleep 0.1
done
check "the packaged mediator starts with the unit's options and config, --status answers" \
    "$root$exec_path" --socket-path "$sockdir/mediator.sock" --status
kill "$med_pid" 2>/dev/null; wait "$med_pid" 2>/dev/null; med_pid=""
sed 's/^/    /' "$work/mediator.log"
check "the packaged QEMU has vgpu-stub" \
    bash -c "'$root/usr/lib/vgpu/qemu-system-x86_64' -device help | grep -q '\"vgpu-stub\"'"

# A package of someone else's with a file of ours: refused, ours untouched.
x=$work/clobber
mkdir -p "$x/DEBIAN" "$x/usr/bin"
printf 'Package: vgpu-clobber-test\nVersion: 1\nArchitecture: all\nMaintainer: test <root@localhost>\nDescription: test package with a file of vgpu-mediator\n' >"$x/DEBIAN/control"
echo '#!/bin/sh' >"$x/usr/bin/vgpu-mediator"
chmod 0755 "$x/usr/bin/vgpu-mediator"
dpkg-deb --root-owner-group --build "$x" "$work/clobber.deb" >/dev/null
sum=$(sha256sum <"$root/usr/bin/vgpu-mediator")
out=$(dpkg_root "$root" --unpack "$work/clobber.deb" 2>&1); rc=$?
echo "$out" | sed 's/^/    /'
check "dpkg refuses a package overwriting /usr/bin/vgpu-mediator" \
    bash -c "[ $rc -ne 0 ] && grep -q 'trying to overwrite' <<<\"\$1\"" _ "$out"
check "... and /usr/bin/vgpu-mediator is unchanged" test "$(sha256sum <"$root/usr/bin/vgpu-mediator")" = "$sum"
out=$(dpkg_root "$root" --unpack "$guest" 2>&1); rc=$?
echo "$out" | sed 's/^/    /'
check "dpkg refuses vgpu-guest beside vgpu-mediator (Conflicts)" \
    bash -c "[ $rc -ne 0 ] && grep -q 'conflicts with vgpu-mediator' <<<\"\$1\"" _ "$out"
check "... and /usr/bin/vgpu-client is still vgpu-mediator's" \
    cmp -s "$root/usr/bin/vgpu-client" <(dpkg-deb --fsys-tarfile "$med" | tar -xO ./usr/bin/vgpu-client)
g=$work/guestroot
newroot "$g"
check "vgpu-guest unpacks into a root of its own" dpkg_root "$g" --unpack "$guest"
check "... its vgpu-client is static" bash -c "! LC_ALL=C ldd '$g/usr/bin/vgpu-client' >/dev/null 2>&1"
finish
