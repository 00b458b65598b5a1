#!/bin/sh
# cli-live-wire: `miniport capture` started on a wire that is already busy (issue 12 item 1).
#
#   live-wire.sh MINIPORT OUT DEV
#
# The host starts sending its frame mix before this script runs the capture, and writes
# OUT/wire-busy once frames are queued at the NIC (QEMU holds them while RCTL.EN is clear and
# delivers them at the first RCTL.EN write). The capture must still put every frame on the queue
# its filters select: receive may start only after the queues and filters exist. A second short
# capture then takes whatever the host sent after the first one stopped, so nothing is left
# waiting in QEMU's socket for the next scenario.
set -u
bin=$1 out=$2 dev=$3

i=0
while [ ! -e "$out/wire-busy" ]; do
    i=$((i + 1))
    if [ "$i" -gt 600 ]; then echo "the host never wrote wire-busy"; exit 2; fi
    sleep 0.1
done
echo "wire busy; starting the capture"
"$bin" capture --device "$dev" --mac 52:54:00:aa:00:01 --mac 52:54:00:aa:00:02 --vlan 100 --count 150 --seconds 60 \
    --write "$out/cap.pcapng" --json --ready "$out/ready" > "$out/capture.json"
st=$?
echo "capture exited $st"; cat "$out/capture.json"
# The host stops sending once capture.json is written; wait for it before draining.
i=0
while [ ! -e "$out/host-stopped" ] && [ "$i" -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
"$bin" capture --device "$dev" --seconds 1 --write "$out/drain.pcapng" --json > "$out/drain.json"
echo "drain exited $?"; cat "$out/drain.json"
[ "$st" -eq 0 ]
