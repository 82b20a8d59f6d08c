#!/usr/bin/env bash
# Launch one VM with a vgpu-stub device and run one command in it.
#
# usage: scripts/vm.sh --name NAME --vm-id N --priority P --weight W
#                      --socket PATH --run "CMD" [--shm 64M] [--timeout S]
#                      [--accel kvm:tcg|kvm|tcg] [--machine q35|pc]
#                      [--log FILE] [--append "KERNEL ARGS"] [--no-device]
#                      [--ioeventfd on|off] [--queues N]
#                      [-- EXTRA QEMU ARGS...]
#
#   --name      VM name: the device's vm-name, and the "[NAME] " prefix of
#               every console line this script prints
#   --vm-id, --priority, --weight
#               device properties vm-id, priority (0 = highest class), weight
#   --socket    the mediator's Unix socket (QEMU connects as a client and
#               reconnects every second while the mediator is away)
#   --run       command for the guest's init (kernel arg vgpu.run): a scenario
#               of guest/run/ (m1m2, vector-add-loop), a vgpu-client
#               subcommand (info, nop, vector-add -n N, selftest, bench ...,
#               hostile) or any command in the image
#   --shm       size of the shared memory (BAR2), default 64M
#   --ioeventfd the device's doorbell: on (default, or $VGPU_IOEVENTFD) hands
#               the mediator an eventfd signalled by the doorbell register
#               (under KVM the write never leaves the kernel); off sends a
#               KICK message through QEMU for each doorbell
#   --queues    queue pairs of the device (property queues, ABI 1.2; default
#               1): the guest driver vgpu.ko hands queues 1..N-1 to processes
#   --timeout   seconds before QEMU is killed, default 120 (the guest gets a
#               deadline a little shorter, so it can still report)
#   --accel     default $VGPU_ACCEL or kvm:tcg (KVM when usable, else TCG)
#   --log       also write the raw console (no prefix) to FILE
#   --no-device boot without the vgpu device (checks the image alone)
#
# Environment: VGPU_QEMU (QEMU with vgpu-stub; default build/qemu/qemu-system-x86_64),
# VGPU_GUEST_DIR (vmlinuz + initramfs.img; default build/guest), VGPU_ACCEL.
#
# Exit status: the guest command's exit status, taken from the guest's
# "VGPU-GUEST-EXIT rc=N" console line; 124 if the timeout killed QEMU;
# 125 if QEMU ended without that line (failed to start, guest crashed);
# 2 for a usage error.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
prog=vm.sh

usage() { sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; }
die_usage() { echo "$prog: $*" >&2; echo "try: $prog --help" >&2; exit 2; }

name="" vm_id="" prio="" weight="" sock="" run="" shm=64M timeout=120 queues=1
ioeventfd=${VGPU_IOEVENTFD:-on}
accel=${VGPU_ACCEL:-kvm:tcg} machine=q35 logfile="" append="" with_device=1
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --name)      name=${2-};     shift 2 || die_usage "--name needs a value" ;;
        --vm-id)     vm_id=${2-};    shift 2 || die_usage "--vm-id needs a value" ;;
        --priority)  prio=${2-};     shift 2 || die_usage "--priority needs a value" ;;
        --weight)    weight=${2-};   shift 2 || die_usage "--weight needs a value" ;;
        --socket)    sock=${2-};     shift 2 || die_usage "--socket needs a value" ;;
        --run)       run=${2-};      shift 2 || die_usage "--run needs a value" ;;
        --shm)       shm=${2-};      shift 2 || die_usage "--shm needs a value" ;;
        --ioeventfd) ioeventfd=${2-}; shift 2 || die_usage "--ioeventfd needs on or off" ;;
        --queues)    queues=${2-};   shift 2 || die_usage "--queues needs a value" ;;
        --timeout)   timeout=${2-};  shift 2 || die_usage "--timeout needs a value" ;;
        --accel)     accel=${2-};    shift 2 || die_usage "--accel needs a value" ;;
        --machine)   machine=${2-};  shift 2 || die_usage "--machine needs a value" ;;
        --log)       logfile=${2-};  shift 2 || die_usage "--log needs a value" ;;
        --append)    append=${2-};   shift 2 || die_usage "--append needs a value" ;;
        --no-device) with_device=0;  shift ;;
        -h|--help)   usage; exit 0 ;;
        --)          shift; extra=("$@"); break ;;
        *)           die_usage "unknown argument '$1'" ;;
    esac
done

# --- validate --------------------------------------------------------------------
[ -n "$name" ] || die_usage "--name is required"
[ -n "$run" ]  || die_usage "--run is required"
# The name goes into a QEMU option list and the console prefix: keep it plain.
[[ "$name" =~ ^[A-Za-z0-9._-]{1,63}$ ]] || die_usage "--name: 1-63 of [A-Za-z0-9._-]"
# vgpu.run="..." is one kernel parameter: no double quotes, and the x86 kernel
# command line is at most 2048 bytes.
[[ "$run" != *'"'* ]] || die_usage "--run: double quotes cannot pass the kernel command line"
[ ${#run} -le 1024 ] || die_usage "--run: longer than 1024 bytes"
[[ "$timeout" =~ ^[0-9]+$ ]] && [ "$timeout" -ge 5 ] || die_usage "--timeout: whole seconds >= 5"
[[ "$shm" =~ ^[0-9]+[KMG]?$ ]] || die_usage "--shm: a size like 64M"
case "$accel" in kvm|tcg|kvm:tcg|tcg:kvm) ;; *) die_usage "--accel: kvm, tcg or kvm:tcg" ;; esac
case "$machine" in q35|pc) ;; *) die_usage "--machine: q35 or pc" ;; esac
case "$ioeventfd" in on|off) ;; *) die_usage "--ioeventfd: on or off" ;; esac
[[ "$queues" =~ ^[0-9]+$ ]] && [ "$queues" -ge 1 ] && [ "$queues" -le 64 ] ||
    die_usage "--queues: 1..64"
if [ "$with_device" = 1 ]; then
    [ -n "$sock" ] || die_usage "--socket is required (or --no-device)"
    [[ "$sock" != *,* ]] || die_usage "--socket: a path with ',' cannot go into -chardev"
    for v in vm_id prio weight; do
        [[ "${!v}" =~ ^[0-9]+$ ]] || die_usage "--${v/prio/priority}: a number is required"
    done
fi

qemu=${VGPU_QEMU:-$top/build/qemu/qemu-system-x86_64}
guest_dir=${VGPU_GUEST_DIR:-$top/build/guest}
# Missing pieces are failures with a hint, never a silent skip.
[ -x "$qemu" ] || { echo "$prog: QEMU not found at $qemu (make qemu, or set VGPU_QEMU)" >&2; exit 125; }
for f in vmlinuz initramfs.img; do
    [ -f "$guest_dir/$f" ] || { echo "$prog: $guest_dir/$f missing (make guest, or set VGPU_GUEST_DIR)" >&2; exit 125; }
done

# TCG boots in ~10-20 s on a slow host; leave the guest most of the time but
# enough margin to print its exit line before QEMU is killed.
margin=$((timeout / 4))
[ "$margin" -lt 10 ] && margin=10
guest_deadline=$((timeout - margin))
[ "$guest_deadline" -lt 3 ] && guest_deadline=3

cpu=max
[ "$accel" = kvm ] && cpu=host

kargs="console=ttyS0 panic=-1 quiet loglevel=4 vgpu.timeout=$guest_deadline vgpu.run=\"$run\""
[ -n "$append" ] && kargs="$kargs $append"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vgpu-vm-$name.XXXXXX") || exit 125

args=(
    -name "$name"
    -machine "$machine,accel=$accel" -cpu "$cpu" -smp 1 -m 256M
    -nodefaults -display none -vga none -nic none -no-reboot
    -serial stdio -monitor none
    -pidfile "$tmp/qemu.pid"
    -kernel "$guest_dir/vmlinuz" -initrd "$guest_dir/initramfs.img"
    -append "$kargs"
)
if [ "$with_device" = 1 ]; then
    args+=(
        -object "memory-backend-memfd,id=shm,size=$shm,share=on"
        -chardev "socket,id=med,path=$sock,reconnect=1"
        -device "vgpu-stub,id=vgpu0,chardev=med,memdev=shm,vm-id=$vm_id,vm-name=$name,priority=$prio,weight=$weight,ioeventfd=$ioeventfd$([ "$queues" -gt 1 ] && echo ",queues=$queues")"
    )
fi
args+=("${extra[@]}")

# Console filter: prefix every line, keep the raw log, catch the exit marker.
filter() {
    local line rc seen=""
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line%$'\r'}
        printf '[%s] %s\n' "$name" "$line"
        # Anything not from QEMU itself means the guest got as far as the console.
        [ -n "$seen" ] || [[ "$line" == qemu-system* ]] || { seen=1; : >"$tmp/console-seen"; }
        [ -n "$logfile" ] && printf '%s\n' "$line" >>"$logfile"
        case "$line" in
            *"VGPU-GUEST-EXIT rc="*)
                rc=${line##*VGPU-GUEST-EXIT rc=}
                rc=${rc%%[!0-9]*}
                [ -n "$rc" ] && echo "$rc" >"$tmp/guest.rc"
                ;;
        esac
    done
}

qemu_pid() { [ -s "$tmp/qemu.pid" ] && cat "$tmp/qemu.pid"; }

stopping=0
on_signal() {
    # Our own QEMU only (by pid); `timeout` and the filter end with it.
    stopping=1
    local pid
    pid=$(qemu_pid) && kill -TERM "$pid" 2>/dev/null
}
trap on_signal TERM INT HUP

[ -n "$logfile" ] && : >"$logfile"
echo "[$name] vm.sh: starting VM (accel $accel, machine $machine, timeout ${timeout}s)" \
     "$([ "$with_device" = 1 ] && echo "vm-id $vm_id prio $prio weight $weight socket $sock" || echo "no vgpu device")"
echo "[$name] vm.sh: run: $run"
start=$(date +%s%N)

# Backgrounded so that `wait` returns on a signal (a foreground pipeline
# would defer the trap until QEMU exits).
{
    timeout -k 5 "$timeout" "$qemu" "${args[@]}" </dev/null 2>&1
    echo $? >"$tmp/qemu.rc"
} | filter &
pipe=$!
while :; do
    wait "$pipe"
    st=$?
    # wait returns >128 when interrupted by a trapped signal; keep waiting
    # for QEMU to go (bounded by timeout -k).
    [ "$st" -gt 128 ] && kill -0 "$pipe" 2>/dev/null && continue
    break
done

elapsed_ms=$((($(date +%s%N) - start) / 1000000))
qrc=$(cat "$tmp/qemu.rc" 2>/dev/null || echo 125)
grc=$(cat "$tmp/guest.rc" 2>/dev/null || true)
console_seen=0
[ -e "$tmp/console-seen" ] && console_seen=1
rm -rf "$tmp"

secs=$(printf '%d.%03d' $((elapsed_ms / 1000)) $((elapsed_ms % 1000)))
if [ -n "$grc" ]; then
    echo "[$name] vm.sh: guest exited rc=$grc after ${secs}s"
    exit "$grc"
fi
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
    echo "[$name] vm.sh: TIMEOUT: no guest exit after ${timeout}s; QEMU killed"
    if [[ "$accel" == kvm* ]] && [ "$console_seen" = 0 ]; then
        echo "[$name] vm.sh: hint: the guest printed nothing under KVM; on a host that is itself a VM" \
             "nested KVM can hang at boot: try --accel tcg (or VGPU_ACCEL=tcg)"
    fi
    exit 124
fi
if [ "$stopping" = 1 ]; then
    echo "[$name] vm.sh: stopped by a signal after ${secs}s"
    exit 125
fi
echo "[$name] vm.sh: QEMU exited (rc=$qrc) after ${secs}s without the guest's exit line"
exit 125
