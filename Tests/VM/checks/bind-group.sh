#!/bin/sh
# Guest-side check of miniport-bind's IOMMU group rules on two NICs that share a group (two e1000
# behind one PCIe-to-PCI bridge), both on the kernel's e1000 driver at the start:
# binding one alone is refused naming the other member and its driver; --group binds both;
# --force binds one alone with a warning; --unbind restores e1000. Leaves both on e1000.
#   bind-group.sh 0000:07:01.0 0000:07:02.0
set -u
A=$1
BB=$2
B=${MINIPORT_BIND:-udev/miniport-bind}
ERR=${MINIPORT_SCENARIO_DIR:-/tmp}/stderr.txt
fail() { echo "FAIL: $*"; exit 1; }
drv() { basename "$(readlink "/sys/bus/pci/devices/$1/driver")" 2>/dev/null; }
grp() { basename "$(readlink "/sys/bus/pci/devices/$1/iommu_group")"; }

[ "$(grp "$A")" = "$(grp "$BB")" ] || fail "$A (group $(grp "$A")) and $BB (group $(grp "$BB")) do not share a group"
echo "group $(grp "$A"): $(ls /sys/kernel/iommu_groups/$(grp "$A")/devices | tr '\n' ' ')"
[ "$(drv "$A")" = e1000 ] && [ "$(drv "$BB")" = e1000 ] || fail "expected both on e1000: $(drv "$A"), $(drv "$BB")"

if $B "$A" 2>"$ERR"; then fail "bound $A although $BB in its group is on e1000"; fi
cat "$ERR"
grep -q "not viable" "$ERR" && grep -q "$BB (bound to e1000)" "$ERR" || fail "the refusal does not name $BB and e1000"
grep -q -- "--group" "$ERR" || fail "the refusal does not name --group"
[ "$(drv "$A")" = e1000 ] || fail "a refused bind moved $A to '$(drv "$A")'"
echo "ok: refused a group with a member on a host driver"

$B --group "$A" || fail "--group $A exited $?"
[ "$(drv "$A")" = vfio-pci ] && [ "$(drv "$BB")" = vfio-pci ] || fail "--group left $(drv "$A"), $(drv "$BB")"
[ -e "/dev/vfio/$(grp "$A")" ] || fail "no /dev/vfio/$(grp "$A")"
echo "ok: --group bound both"

$B --unbind "$A" "$BB" || fail "--unbind of both exited $?"
[ "$(drv "$A")" = e1000 ] && [ "$(drv "$BB")" = e1000 ] || fail "--unbind left $(drv "$A"), $(drv "$BB")"
echo "ok: --unbind restored e1000 on both"

$B --force "$A" 2>"$ERR" || fail "--force $A exited $?"
cat "$ERR"
grep -q "stays unusable" "$ERR" || fail "--force did not warn that the group stays unusable"
[ "$(drv "$A")" = vfio-pci ] && [ "$(drv "$BB")" = e1000 ] || fail "--force: $(drv "$A"), $(drv "$BB")"
$B --unbind "$A" && [ "$(drv "$A")" = e1000 ] || fail "final --unbind: $(drv "$A")"
echo "all group checks passed"
