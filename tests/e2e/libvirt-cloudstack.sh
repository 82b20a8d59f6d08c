#!/usr/bin/env bash
# e2e: the CloudStack shape. The agent writes <domain type='kvm'> with no
# xmlns:qemu and appends the VM's extraconfig inside <domain>; the documented
# snippet (deploy/cloudstack/vgpu-extraconfig.xml) declares the namespace on
# its own <qemu:commandline>, so libvirt keeps it and the guest gets the
# device. The same snippet without that declaration is dropped by libvirt
# without an error (the defect this guards against): checked first.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/libvirt-lib.sh
. "$(dirname "$0")/libvirt-lib.sh"
lv_begin

agent=$e2e_top/deploy/cloudstack/agent-domain.xml
snippet=$e2e_top/deploy/cloudstack/vgpu-extraconfig.xml
name='i-2-42-VM'

lv_check_quoted "$snippet"
# CloudStack stores KVM extraconfig as blocks split at blank lines.
check "the snippet has no blank line" test "$(grep -c '^[[:space:]]*$' "$snippet")" = 0
check "the agent's root element declares no qemu namespace" \
    grep -q "^<domain type='kvm'>$" "$agent"

# append SNIPPET OUT: the agent's domain with SNIPPET inside <domain>, last.
append() {
    lv_adapt "$agent" "$lv/agent.xml"
    sed -e '/^<\/domain>/d' "$lv/agent.xml" >"$2"
    sed "s|/run/vgpu/mediator.sock|$sock|" "$1" >>"$2"
    echo "</domain>" >>"$2"
    [ -n "$lv_user" ] && chown "$lv_user:$lv_group" "$2"
    return 0
}

# 1. Without the declaration on the snippet: accepted, and silently lost.
sed "s| xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'||" "$snippet" >"$lv/old-snippet.xml"
append "$lv/old-snippet.xml" "$lv/old.xml"
if lv_define "$lv/old.xml"; then
    pass "libvirt accepts the old snippet (no error)"
    check "... and drops its <qemu:commandline> (why the namespace is on the snippet)" \
        bash -c "! grep -q 'commandline' <<<\"\$1\"" _ "$(vsh dumpxml "$name")"
    vsh undefine "$name" >/dev/null && lv_domains=()
else
    pass "libvirt refuses the old snippet (no silent loss)"
fi

# 2. The documented snippet.
append "$snippet" "$lv/$name.xml"
echo "--- the domain as CloudStack's agent would hand it to libvirt:"
cat "$lv/$name.xml"
echo "---"
check "virsh define $name" lv_define "$lv/$name.xml"
check "$name's definition keeps <qemu:commandline> with the vgpu-stub device" \
    grep -q "vgpu-stub,chardev=vgpumed" <(vsh dumpxml "$name")
check "virsh start $name" vsh start "$name"
c=$lv/log/$name-serial.log
if wait_serial "$c" "m1m2: " 150; then
    live=$(mediator_status)
    echo "$live"
    check "mediator lists $name as vm 42, priority 1, weight 1" \
        test "$(awk -v n="$name" '$2 == 42 && $3 == n {print $4 "/" $5}' <<<"$live")" = 1/1
else
    fail "the guest finished its milestones while attached"
fi
check "$name powered off (domain shut off)" lv_wait_off "$name" 60
sed "s/^/[$name] /" "$c"
check "$name: lspci shows 1b36:10f0 class ff00" \
    has "$c" "Unclassified device [ff00]: Red Hat, Inc. Device [1b36:10f0]"
check "$name: link up" has "$c" "mediator link UP"
check "$name: 'Test passed: vector addition successful'" \
    has "$c" "Test passed: vector addition successful"
check "$name: m1m2 4 passed, 0 failed" has "$c" "m1m2: 4 passed, 0 failed"
check "virsh undefine $name" vsh undefine "$name"
lv_domains=()
check "no domain left defined" test -z "$(vsh list --all --name | tr -d '[:space:]')"
finish
