# libvirt helpers of the e2e tests (sourced after lib.sh, bash).
# shellcheck shell=bash
#
# A private libvirtd in session mode: no systemd, nothing of the machine's
# own libvirt touched (config, sockets, domains, logs all under $work/lv).
# As root it runs as the unprivileged user nobody:nogroup (a privileged
# libvirtd would use /etc/libvirt and /run/libvirt, shared with the
# machine's); QEMU then runs as nobody:nogroup too, like libvirt-qemu on a
# Debian host, and reaches the mediator's socket (0660) through its group,
# as docs/operations.md tells operators to do with the vgpu group.
# qemu.conf: stdio_handler "file" (no virtlogd), no security driver (session
# mode has none to offer).
#
# libvirt comes from Debian's packages (scripts/deps.sh libvirt), installed
# when missing. The test is skipped (exit 77) only when libvirt cannot run
# here: the packages cannot be installed, or there is no unprivileged user
# to run it as; the message says which.

lv=$work/lv
lv_pid=""
lv_user=""
lv_domains=()     # domains we defined, undefined on exit

lv_skip() {
    echo "SKIP: $*"
    echo "$test_name: skipped"
    exit 77
}

# Runs a command as the libvirt user with the session environment.
lv_as() {
    local envs=(HOME="$lv/home" XDG_CONFIG_HOME="$lv/config" XDG_CACHE_HOME="$lv/cache"
                XDG_RUNTIME_DIR="$lv/run" XDG_DATA_HOME="$lv/data" PATH="/usr/sbin:/usr/bin:/sbin:/bin"
                LC_ALL=C)
    if [ -n "$lv_user" ]; then
        setpriv --reuid="$lv_user" --regid="$lv_group" --clear-groups -- env -i "${envs[@]}" "$@"
    else
        env -i "${envs[@]}" "$@"
    fi
}

# virsh against our daemon, bounded in time.
vsh() { lv_as timeout 60 virsh --quiet -c qemu:///session "$@"; }

lv_setup() {
    local pkgs
    pkgs=$(sed -n 's/^pkgs_libvirt="\(.*\)"/\1/p' "$e2e_top/scripts/deps.sh")
    if ! command -v libvirtd >/dev/null || ! command -v virsh >/dev/null; then
        [ -x /usr/sbin/libvirtd ] || {
            say "installing Debian's libvirt: $pkgs"
            "$e2e_top/scripts/deps.sh" libvirt || true
        }
    fi
    export PATH=$PATH:/usr/sbin
    command -v libvirtd >/dev/null && command -v virsh >/dev/null ||
        lv_skip "libvirt is not installed and could not be installed (Debian packages: $pkgs; scripts/deps.sh libvirt as root)"
    dpkg-query -W -f='${Status}' libvirt-daemon-driver-qemu 2>/dev/null | grep -q "ok installed" ||
        lv_skip "libvirt's QEMU driver is missing (Debian package libvirt-daemon-driver-qemu)"
    say "libvirt $(libvirtd --version | awk '{print $NF}')"

    if [ "$(id -u)" -eq 0 ]; then
        command -v setpriv >/dev/null || lv_skip "setpriv (util-linux) missing: cannot run libvirtd unprivileged"
        lv_user=$(id -u nobody 2>/dev/null) || lv_skip "no user 'nobody' to run an unprivileged libvirtd as"
        lv_group=$(getent group nogroup | cut -d: -f3)
        [ -n "$lv_group" ] || lv_group=$(id -g nobody)
    fi

    # Everything libvirt and its QEMU touch, owned by that user. $work is
    # 0700 root's: let the user through (not list).
    chmod 0711 "$work"
    mkdir -p "$lv"/{home,config/libvirt,cache,run,data,bin,guest,log}
    chmod 0700 "$lv/run"
    cat >"$lv/config/libvirt/qemu.conf" <<EOF
# test instance (tests/e2e/libvirt-lib.sh)
stdio_handler = "file"
security_driver = "none"
EOF
    cat >"$lv/config/libvirt/libvirtd.conf" <<EOF
log_outputs = "3:file:$lv/libvirtd.log"
EOF
    # Copies, so that the user needs no access to the build tree or cache.
    cp "$(readlink -f "$VGPU_QEMU")" "$lv/bin/qemu-system-x86_64"
    cp "$VGPU_GUEST_DIR/vmlinuz" "$VGPU_GUEST_DIR/initramfs.img" "$lv/guest/"
    [ -n "$lv_user" ] && chown -R "$lv_user:$lv_group" "$lv"
    return 0
}

# Starts libvirtd (session) and waits (<= 30 s) until virsh gets through.
lv_start() {
    local i
    lv_as libvirtd --pid-file "$lv/run/libvirtd.pid" >"$lv/libvirtd.out" 2>&1 &
    lv_pid=$!
    bg_pids+=("$lv_pid")
    for ((i = 0; i < 300; i++)); do
        if [ -S "$lv/run/libvirt/libvirt-sock" ] && vsh uri >/dev/null 2>&1; then
            say "libvirtd pid $lv_pid (session, uid $(stat -c %u "$lv/run/libvirt/libvirt-sock")) up: $(vsh uri)"
            return 0
        fi
        kill -0 "$lv_pid" 2>/dev/null || break
        sleep 0.1
    done
    say "libvirtd did not come up; its output and log:"
    sed 's/^/    /' "$lv/libvirtd.out" "$lv/libvirtd.log" 2>/dev/null
    return 1
}

# What every libvirt test starts with: the machine checked and set up, the
# mediator with its socket reachable by QEMU's group, libvirtd.
lv_begin() {
    require
    lv_setup
    start_mediator || { fail "mediator starts"; finish; }
    lv_share_socket
    lv_start || { fail "libvirtd starts"; finish; }
}

# check that docs/operations.md quotes FILE whole (its XML comments left out).
lv_check_quoted() {
    check "docs/operations.md quotes $(basename "$1")" \
        python3 - "$1" "$e2e_top/docs/operations.md" <<'PY'
import re, sys
xml = open(sys.argv[1]).read()
xml = re.sub(r"<!--.*?-->\n", "", xml, flags=re.S)
sys.exit(0 if xml.strip() in open(sys.argv[2]).read() else 1)
PY
}

# The mediator's socket, reachable by QEMU's group (as the vgpu group would
# make it on a host).
lv_share_socket() {
    [ -n "$lv_user" ] && chgrp "$lv_group" "$sock"
    return 0
}

# lv_adapt IN OUT: the documented XML with this machine's paths: emulator,
# guest image, serial log and socket under $work; type='qemu' and the
# default CPU where KVM is not used (VGPU_ACCEL without kvm, or no
# usable /dev/kvm). Prints the differences.
lv_adapt() {
    local in=$1 out=$2
    local sedargs=(
        -e '/^<!--/,/-->$/d'
        -e "s|/usr/lib/vgpu/qemu-system-x86_64|$lv/bin/qemu-system-x86_64|"
        -e "s|/usr/bin/qemu-system-x86_64|$lv/bin/qemu-system-x86_64|"
        -e "s|/var/lib/vgpu/guest/|$lv/guest/|"
        -e "s|/var/log/libvirt/qemu/|$lv/log/|"
        -e "s|/run/vgpu/mediator.sock|$sock|"
    )
    if ! lv_use_kvm; then
        sedargs+=(-e "s|<domain type='kvm'|<domain type='qemu'|"
                  -e "\|<cpu mode='host-passthrough'/>|d")
    fi
    sed "${sedargs[@]}" "$in" >"$out"
    say "$(basename "$out") = $(realpath --relative-to="$e2e_top" "$in") with:"
    diff <(sed '/^<!--/,/-->$/d' "$in") "$out" | sed -n 's/^> /    + /p; s/^< /    - /p'
    [ -n "$lv_user" ] && chown "$lv_user:$lv_group" "$out"
    return 0
}

lv_use_kvm() {
    case "$VGPU_ACCEL" in *kvm*) [ -r /dev/kvm ] && [ -w /dev/kvm ] ;; *) return 1 ;; esac
}

# lv_define XML: defines the domain, remembers its name for cleanup.
lv_define() {
    local name
    name=$(sed -n 's|.*<name>\(.*\)</name>.*|\1|p' "$1" | head -n1)
    vsh define "$1" >"$lv/define-$name.out" 2>&1 || { cat "$lv/define-$name.out"; return 1; }
    lv_domains+=("$name")
    return 0
}

lv_state() { vsh domstate "$1" 2>/dev/null | head -n1; }

# lv_wait_off NAME SECONDS: waits until the domain is shut off.
lv_wait_off() {
    local i
    for ((i = 0; i < $2 * 2; i++)); do
        [ "$(lv_state "$1")" = "shut off" ] && return 0
        sleep 0.5
    done
    return 1
}

# wait_serial FILE STRING SECONDS
wait_serial() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -qF -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# On failure: libvirt's per-domain logs (QEMU's command line and stderr)
# and the daemon's log.
lv_show_logs() {
    local f
    for f in "$lv"/cache/libvirt/qemu/log/*.log "$lv/libvirtd.log" "$lv/libvirtd.out"; do
        [ -s "$f" ] || continue
        echo "--- $f (last 40 lines)"
        tail -n 40 "$f"
    done
}

lv_cleanup() {
    local d pidf pid
    [ "$failed" -eq 0 ] || lv_show_logs
    if [ -n "$lv_pid" ] && kill -0 "$lv_pid" 2>/dev/null; then
        for d in "${lv_domains[@]}"; do
            [ "$(lv_state "$d")" = "shut off" ] || vsh destroy "$d" >/dev/null 2>&1
            vsh undefine "$d" >/dev/null 2>&1
        done
    fi
    # A QEMU libvirt could not stop (or started before libvirtd died).
    for pidf in "$lv"/run/libvirt/qemu/run/*.pid; do
        [ -f "$pidf" ] || continue
        pid=$(cat "$pidf" 2>/dev/null)
        [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    done
    [ -n "$lv_pid" ] && stop_pid "$lv_pid" 10
    lv_pid=""
    cleanup
}
trap lv_cleanup EXIT
