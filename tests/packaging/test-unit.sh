#!/usr/bin/env bash
# The systemd unit as installed: `systemd-analyze verify` (with ExecStart
# pointed at this build's vgpu-mediator, as scripts/install.sh rewrites it)
# must say nothing about it; Type=notify needs a mediator with sd_notify.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${VGPU_E2E_BUILD_DIR:?VGPU_E2E_BUILD_DIR is not set}
unit=$top/deploy/systemd/vgpu-mediator.service
fails=0
ok()     { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; fails=$((fails + 1)); }

grep -q '^Type=notify$' "$unit" && ok "Type=notify" || not_ok "Type=notify in $unit"
grep -q '^WatchdogSec=' "$unit" && ok "WatchdogSec= set" || not_ok "WatchdogSec= in $unit"
if readelf -d "$build/mediator/vgpu-mediator" | grep -q 'libsystemd\.so'; then
    ok "vgpu-mediator links libsystemd (sd_notify)"
else
    not_ok "vgpu-mediator is built without libsystemd: it cannot say READY=1 to its Type=notify unit"
fi

if ! command -v systemd-analyze >/dev/null; then
    echo "# SKIP systemd-analyze verify: systemd-analyze not installed (Debian package systemd, scripts/deps.sh testtools)"
else
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/vgpu-unit.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    sed -e "s|/usr/local/bin/|$build/mediator/|g" "$unit" >"$tmp/vgpu-mediator.service"
    # --man=no: the man page named by Documentation= is not installed here.
    out=$(systemd-analyze verify --man=no "$tmp/vgpu-mediator.service" 2>&1)
    rc=$?
    # Only what concerns our unit (a container may lack units it refers to).
    ours=$(printf '%s\n' "$out" | grep -F 'vgpu-mediator.service' || true)
    if [ $rc -eq 0 ] && [ -z "$ours" ]; then
        ok "systemd-analyze verify: clean"
    else
        printf '%s\n' "$out" | sed 's/^/# /'
        not_ok "systemd-analyze verify (rc $rc)"
    fi
fi
echo "$fails failed"
[ $fails -eq 0 ]
