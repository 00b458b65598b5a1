#!/bin/sh
# udev/miniport-bind refuses PCI functions that are not network controllers (issue 12 item 9): in
# the q35 guest the ICH9 SATA controller (ahci) and the host bridge. The refusal is one line naming
# the class, the device and its driver; the driver stays; nothing is recorded. --force is not tried.
#   bind-nonnet.sh MINIPORT-BIND MINIPORT
set -u
B=$1
M=$2
ERR=${MINIPORT_SCENARIO_DIR:-/tmp}/stderr.txt
fail() { echo "FAIL: $*"; exit 1; }
drv() { basename "$(readlink "/sys/bus/pci/devices/$1/driver" 2>/dev/null)" 2>/dev/null; }
checked=0
# Every storage controller, and the host bridge (each miniport-bind run costs seconds under TCG).
for d in /sys/bus/pci/devices/*; do
    addr=$(basename "$d")
    class=$(cat "$d/class")
    case "$class" in 0x01*) ;; 0x0600*) [ "$addr" = 0000:00:00.0 ] || continue ;; *) continue ;; esac
    before=$(drv "$addr")
    if $B "$addr" 2>"$ERR"; then fail "bound $addr (class $class) although it is not a network controller"; fi
    cat "$ERR"
    [ "$(wc -l < "$ERR")" -eq 1 ] || fail "$addr: the refusal is not one line"
    grep -q "$addr is not a network controller: it is a .*(class $class)" "$ERR" || fail "$addr: the refusal does not name its class"
    [ -z "$before" ] || grep -q "in use by the $before driver" "$ERR" || fail "$addr: the refusal does not name its driver $before"
    [ "$(drv "$addr")" = "$before" ] || fail "$addr moved from '$before' to '$(drv "$addr")'"
    [ ! -e "/run/miniport/bound/$addr.json" ] || fail "$addr: a refused bind was recorded"
    # The CLI refuses it by class too, and does not advise binding it.
    $M info --device "$addr" 2>"$ERR" && fail "miniport info opened $addr"
    grep -q "is not a network controller" "$ERR" || fail "miniport info on $addr: $(cat "$ERR")"
    if grep -q "miniport-bind" "$ERR"; then fail "miniport advises binding $addr: $(cat "$ERR")"; fi
    checked=$((checked + 1))
    case "$class" in 0x01*) storage=$addr ;; esac
done
[ $checked -ge 2 ] || fail "only $checked non-network functions found"
[ -n "${storage:-}" ] || fail "no storage controller in the guest to check"
echo "ok: $checked non-network functions refused, storage $storage among them"
