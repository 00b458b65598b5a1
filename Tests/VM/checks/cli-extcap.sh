#!/bin/sh
# cli-extcap: Wireshark's extcap (`miniport extcap`) on QEMU's igb through vfio, with tshark in the
# guest (Docs/PROTOCOLS.md "Wireshark and tshark").
#
#   cli-extcap.sh MINIPORT OUT DEV REPO COUNT
#
# Installs the extcap wrapper with udev/install into a Wireshark personal extcap folder under
# OUT/home (the guest runs as root, and a privileged tshark ignores WIRESHARK_EXTCAP_DIR but reads
# $HOME/.config/wireshark/extcap), writes OUT/ready (the host then sends frames to MAC A and to
# the NIC, over and over, until this exits) and captures
# COUNT frames with `tshark -i miniport-DEV -o extcap.<iface>.mac:MAC_A -c COUNT`: one queue for
# MAC A besides the default queue. The host reads OUT/x.pcapng.
set -u
bin=$1 out=$2 dev=$3 repo=$4 count=$5
mac_a=52:54:00:aa:00:01
iface=miniport-$dev
# Wireshark names an extcap option's preference extcap.<interface, non-alphanumerics as _>.<call>.
pref=extcap.$(printf %s "$iface" | tr -c 'a-zA-Z0-9' '_')
home=$out/home
mkdir -p "$home"

"$repo/udev/install" --prefix "$out/prefix" --binary "$bin" --no-rules --no-c-api \
    --extcap-dir "$home/.config/wireshark/extcap" > "$out/install.log" 2>&1 || { cat "$out/install.log"; exit 1; }
cat "$out/install.log"

# The host sends from now on, until this script exits.
touch "$out/ready"
# tshark -i NAME looks NAME up in the extcap's --extcap-interfaces list (so this also shows the
# vfio-bound NIC is listed; under TCG one tshark start-up costs about a minute, so no tshark -D).
HOME=$home timeout 240 tshark -i "$iface" -o "$pref.mac:$mac_a" -c "$count" -w "$out/x.pcapng" 2> "$out/tshark-i.err"
st=$?
echo "--- tshark -i $iface exited $st"; cat "$out/tshark-i.err"
[ "$st" -eq 0 ] || exit 1
grep -q "Capturing on 'Miniport $dev " "$out/tshark-i.err" || { echo "tshark did not capture on the Miniport interface"; exit 1; }
# The host stops sending now. The extcap must have let the NIC go (queues freed, adapter halted,
# device closed): a capture opens it again, and takes what is still queued in QEMU's socket, so the
# next scenario's NIC starts on a quiet wire.
touch "$out/captured"
sleep 1
"$bin" capture --device "$dev" --seconds 3 --write "$out/drain.pcapng" --json > "$out/drain.json" 2> "$out/drain.err"
st=$?
echo "--- drain capture after the extcap exited $st"; cat "$out/drain.err"; cat "$out/drain.json"
[ "$st" -eq 0 ] || exit 1
