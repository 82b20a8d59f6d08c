#!/usr/bin/env bash
# The kernel's own style check on the guest driver: scripts/checkpatch.pl of
# Debian's linux-source-<series> package (the guest kernel's series), fetched
# once with apt-get download and cached (only checkpatch.pl and its two data
# files are kept) under $VGPU_CACHE_DIR/guest (default /var/cache/vgpu).
#
# usage: guest/driver/checkpatch.sh [FILES...]   (default: the driver's C
#        sources and include/vgpu/driver.h). Exit status 1 on any ERROR;
#        WARNINGs are printed (the LINUX_VERSION_CODE ones are deliberate:
#        docs/guest-driver.md).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
msg() { echo ">> checkpatch: $*" >&2; }
die() { echo "checkpatch: error: $*" >&2; exit 2; }
. "$top/scripts/cache.sh"
cache=$(vgpu_cache_dir guest)

spkg=$(apt-cache depends linux-source 2>/dev/null |
       awk '$1 == "Depends:" && $2 ~ /^linux-source-/ { print $2; exit }') || true
[ -n "$spkg" ] || spkg=linux-source-6.1
sver=$(apt-cache show --no-all-versions "$spkg" 2>/dev/null | awk '$1 == "Version:" { print $2; exit }') || true
dir=$(ls -d "$cache"/checkpatch-"$spkg"-* 2>/dev/null | sort -V | tail -n 1) || true
if [ -n "$sver" ] && [ "$dir" != "$cache/checkpatch-$spkg-$sver" ]; then
    dir="$cache/checkpatch-$spkg-$sver"
    if [ ! -f "$dir/scripts/checkpatch.pl" ]; then
        vgpu_cache_lock "$cache/.lock"
        msg "fetching $spkg $sver (apt-get download, once)"
        tmp=$(mktemp -d "$cache/.cp.XXXXXX")
        chmod 755 "$tmp"; chown _apt "$tmp" 2>/dev/null || true
        (cd "$tmp" && apt-get download -q "$spkg=$sver" >&2) || { rm -rf "$tmp"; die "apt-get download $spkg failed"; }
        mkdir -p "$tmp/x"
        dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -x -C "$tmp/x" --wildcards './usr/src/linux-source-*.tar.*'
        tar -x -C "$tmp/x" -f "$tmp"/x/usr/src/linux-source-*.tar.* --wildcards --strip-components=1 \
            '*/scripts/checkpatch.pl' '*/scripts/spelling.txt' '*/scripts/const_structs.checkpatch'
        mkdir -p "$dir/scripts"
        mv "$tmp"/x/scripts/{checkpatch.pl,spelling.txt,const_structs.checkpatch} "$dir/scripts/"
        rm -rf "$tmp"
    fi
fi
[ -n "$dir" ] && [ -f "$dir/scripts/checkpatch.pl" ] || die "no checkpatch.pl (no package lists and nothing cached)"

files=("$@")
[ ${#files[@]} -gt 0 ] || files=("$top/guest/driver/vgpu.c" "$top/guest/driver/compat/stdint.h"
                                 "$top/include/vgpu/driver.h")
out=$(cd "$dir" && perl scripts/checkpatch.pl --no-tree --strict --terse -f "${files[@]}" 2>&1) || true
echo "$out"
msg "$(basename "$dir"): $(grep -c ': ERROR:' <<<"$out" || true) errors, $(grep -c ': WARNING:' <<<"$out" || true) warnings, $(grep -c ': CHECK:' <<<"$out" || true) checks"
! grep -q ': ERROR:' <<<"$out"
