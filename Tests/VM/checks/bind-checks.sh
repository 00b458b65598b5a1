#!/bin/sh
# Guest-side check of udev/miniport-bind on a real NIC (run by the test bed on the e1000e and virtio):
# --unbind restores the kernel driver; a live interface (up, with an address) is refused with a
# message naming the fix; --force and interface names work; --status shows the recorded driver;
# re-binding an already bound NIC and bad names behave. Leaves the NIC bound to vfio-pci.
#   bind-refusals.sh 0000:02:00.0 EXPECTED_KERNEL_DRIVER
set -u
DEV=$1
KDRV=$2
B=${MINIPORT_BIND:-udev/miniport-bind}
ERR=${MINIPORT_SCENARIO_DIR:-/tmp}/stderr.txt
fail() { echo "FAIL: $*"; exit 1; }
drv() { basename "$(readlink "/sys/bus/pci/devices/$DEV/driver")" 2>/dev/null; }
# the interface: in the PCI function's net/, or its virtio child's (virtio-net)
ifname() { for d in /sys/bus/pci/devices/$DEV/net /sys/bus/pci/devices/$DEV/virtio*/net; do [ -d "$d" ] && ls "$d"; done; }

$B --unbind "$DEV" || fail "--unbind $DEV exited $?"
[ "$(drv)" = "$KDRV" ] || fail "after --unbind $DEV is on '$(drv)', expected $KDRV"
IF=$(ifname)
[ -n "$IF" ] || fail "$KDRV gave $DEV no interface"
echo "ok: --unbind gave $DEV back to $KDRV as $IF"

sysctl -qw "net.ipv6.conf.$IF.disable_ipv6=1"
ip link set "$IF" up && ip addr add 169.254.77.1/16 dev "$IF" || fail "could not configure $IF"
if $B "$DEV" 2>"$ERR"; then fail "bound $DEV although $IF is up with an address"; fi
cat "$ERR"
grep -q "interface $IF is up with 169.254.77.1/16" "$ERR" || fail "the refusal does not name the interface and its address"
grep -q -- "--force" "$ERR" || fail "the refusal does not name --force"
[ "$(drv)" = "$KDRV" ] || fail "a refused bind still moved $DEV to '$(drv)'"
echo "ok: refused a live interface"

$B --force "$IF" || fail "--force $IF exited $?"
[ "$(drv)" = vfio-pci ] || fail "--force by interface name left $DEV on '$(drv)'"
$B --status | tee "$ERR"
grep "^$DEV" "$ERR" | grep -q "vfio-pci .* $KDRV " || fail "--status does not show $DEV on vfio-pci, previously $KDRV"
echo "ok: --force by interface name, --status"

$B "$DEV" || fail "binding an already bound NIC exited $?"
[ "$(drv)" = vfio-pci ] || fail "re-binding moved $DEV"
$B --unbind "$DEV" && [ "$(drv)" = "$KDRV" ] || fail "second --unbind: $DEV on '$(drv)'"
IF=$(ifname)
$B "$IF" || fail "binding the idle $IF by name exited $?"
[ "$(drv)" = vfio-pci ] || fail "$DEV on '$(drv)' after binding $IF"
echo "ok: already-bound is a no-op; unbind/bind round trip"

if $B 0000:7f:1f.7 2>"$ERR"; then fail "bound a device that does not exist"; fi
grep -q "no such PCI device" "$ERR" || fail "no 'no such PCI device' message: $(cat "$ERR")"
if $B 3:0 2>"$ERR"; then fail "accepted '3:0'"; fi
grep -q "expected DDDD:BB:DD.F" "$ERR" || fail "no address-form message: $(cat "$ERR")"
echo "ok: bad names refused with the expected form"
echo "all bind checks passed"
