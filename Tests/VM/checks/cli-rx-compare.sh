#!/bin/sh
# cli-rx-compare: the same frames received by the Linux kernel's igb driver (AF_PACKET receiver,
# Tests/VM/afpacket_rx.py) and by miniport's IGB miniport through vfio (`miniport capture`), on
# one NIC (Docs/BENCHMARKS.md, issue 9 item 4). The host offers COUNT frames to each and compares.
#
#   cli-rx-compare.sh MINIPORT OUT DEVICE COUNT VM_DIR BIND
#
# Leaves DEVICE bound to vfio-pci, as setup left it.
set -u
bin=$1 out=$2 dev=$3 count=$4 vm=$5 bind=$6

fail() { echo "cli-rx-compare: $*"; "$bind" --force "$dev" >/dev/null 2>&1; exit 1; }

# (b) the kernel's igb driver
"$bind" --unbind "$dev" || fail "miniport-bind --unbind $dev failed"
iface=
for _ in $(seq 1 100); do
    iface=$(ls "/sys/bus/pci/devices/$dev/net" 2>/dev/null | head -n 1)
    [ -n "$iface" ] && break
    sleep 0.1
done
[ -n "$iface" ] || fail "the kernel's igb made no interface for $dev"
echo "kernel driver: $(basename "$(readlink "/sys/bus/pci/devices/$dev/driver")"), interface $iface"
sysctl -qw net.core.rmem_max=67108864 || fail "cannot raise net.core.rmem_max"
ip link set "$iface" up || fail "ip link set $iface up failed"
up=0
for _ in $(seq 1 200); do
    [ "$(cat "/sys/class/net/$iface/carrier" 2>/dev/null)" = 1 ] && { up=1; break; }
    sleep 0.1
done
[ "$up" = 1 ] || fail "$iface: no carrier after 20 s"
python3 "$vm/afpacket_rx.py" --interface "$iface" --expect "$count" --idle 3 --duration 90 \
    --ready "$out/kernel-ready" --out "$out/kernel.json" || fail "afpacket_rx.py failed"
# where the kernel path lost frames, if it did (NIC, driver and stack counters)
{ for f in rx_packets rx_dropped rx_missed_errors rx_fifo_errors rx_over_errors; do
      echo "$f $(cat "/sys/class/net/$iface/statistics/$f")"; done
  command -v ethtool >/dev/null && ethtool -S "$iface" | grep -Ei 'rx_(packets|no_buffer|missed|fifo|queue_[0-9]_(packets|drops))'
} > "$out/kernel-stats.txt" 2>&1
ip link set "$iface" down
"$bind" --force "$dev" || fail "miniport-bind $dev (back to vfio-pci) failed"

# (a) miniport's IGB miniport through vfio: the same COUNT frames to `miniport capture`, then
# `miniport bench --device` receiving for 3 s while the host keeps the NIC busy.
"$bin" capture --device "$dev" --count "$count" --seconds 60 --write "$out/miniport.pcapng" --json \
    --ready "$out/miniport-ready" > "$out/miniport.json" || fail "miniport capture failed"
"$bin" bench --device "$dev" --mode receive --seconds 3 --json > "$out/bench.json" || fail "miniport bench --device failed"
cat "$out/kernel.json" "$out/miniport.json" "$out/bench.json"
