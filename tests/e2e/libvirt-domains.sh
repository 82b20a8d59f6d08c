#!/usr/bin/env bash
# e2e: two libvirt domains from the documented XML (deploy/libvirt/vgpu-vm1.xml,
# quoted in docs/operations.md), started at once by a libvirtd of Debian's
# packages (started here, no systemd); both guests print the success line
# on their serial console, the mediator lists both with the identity the
# XML gave them, then both are undefined.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/libvirt-lib.sh
. "$(dirname "$0")/libvirt-lib.sh"
lv_begin

doc=$e2e_top/deploy/libvirt/vgpu-vm1.xml
lv_check_quoted "$doc"

lv_adapt "$doc" "$lv/vm1.xml"
# The second VM as the XML's comment says: name, vm-id, vm-name, serial log.
sed -e 's/vm1/vm2/g' -e 's/vm-id=1,/vm-id=2,/' -e 's/priority=1,weight=1/priority=0,weight=3/' \
    "$lv/vm1.xml" >"$lv/vm2.xml"
[ -n "$lv_user" ] && chown "$lv_user:$lv_group" "$lv/vm2.xml"

check "virsh define vm1" lv_define "$lv/vm1.xml"
check "virsh define vm2" lv_define "$lv/vm2.xml"
check "vm1's definition keeps <qemu:commandline>" grep -q "qemu:commandline" <(vsh dumpxml vm1)
check "vm1's definition has <acpi/> and <apic/>" \
    test "$(vsh dumpxml vm1 | grep -cE '<acpi/>|<apic/>')" = 2

# Both at once.
vsh start vm1 >"$lv/start-vm1.out" 2>&1 &
s1=$!
vsh start vm2 >"$lv/start-vm2.out" 2>&1 &
s2=$!
wait $s1; r1=$?
wait $s2; r2=$?
cat "$lv/start-vm1.out" "$lv/start-vm2.out"
check "virsh start vm1" [ "$r1" -eq 0 ]
check "virsh start vm2" [ "$r2" -eq 0 ]
check "both running at once" \
    test "$(lv_state vm1)/$(lv_state vm2)" = "running/running"

if wait_serial "$lv/log/vm1-serial.log" "m1m2: " 150 &&
   wait_serial "$lv/log/vm2-serial.log" "m1m2: " 150; then
    live=$(mediator_status)
    echo "$live"
    row() { awk -v id="$1" -v n="$2" '$2 == id && $3 == n' <<<"$live"; }
    check "mediator lists vm1 as vm 1, priority 1, weight 1" \
        test "$(row 1 vm1 | awk '{print $4 "/" $5}')" = 1/1
    check "mediator lists vm2 as vm 2, priority 0, weight 3" \
        test "$(row 2 vm2 | awk '{print $4 "/" $5}')" = 0/3
    check "both VMs' requests completed" \
        test "$(row 1 vm1 | awk '{print ($7 > 0 && $6 == 0)}')$(row 2 vm2 | awk '{print ($7 > 0 && $6 == 0)}')" = 11
else
    fail "both guests finished their milestones while attached"
fi
for vm in vm1 vm2; do
    check "$vm powered off (domain shut off)" lv_wait_off "$vm" 60
    c=$lv/log/$vm-serial.log
    sed "s/^/[$vm] /" "$c"
    check "$vm: lspci shows 1b36:10f0 class ff00" \
        has "$c" "Unclassified device [ff00]: Red Hat, Inc. Device [1b36:10f0]"
    check "$vm: link up" has "$c" "mediator link UP"
    check "$vm: 'Test passed: vector addition successful'" \
        has "$c" "Test passed: vector addition successful"
    check "$vm: m1m2 4 passed, 0 failed" has "$c" "m1m2: 4 passed, 0 failed"
    check "$vm: no PCI IRQ routing errors (ACPI on)" hasnt "$c" "can't derive routing"
done
check "virsh undefine vm1" vsh undefine vm1
check "virsh undefine vm2" vsh undefine vm2
lv_domains=()
check "no domain left defined" test -z "$(vsh list --all --name | tr -d '[:space:]')"
check "mediator still running" kill -0 "$med_pid"
finish
