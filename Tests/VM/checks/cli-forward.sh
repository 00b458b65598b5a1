#!/bin/sh
# cli-forward: `miniport forward` across the back-to-back igb pair (Docs/PROTOCOLS.md, issue 8).
#
#   cli-forward.sh MINIPORT OUT IN TO FAR COUNT [--copy]
#
# The host injects COUNT frames into IN's wire (igb0); `miniport forward --device IN --to TO`
# (igb-a) sends them out of TO onto the hub TO shares with FAR (igb-b) and the host's "link"
# socket; `miniport capture --device FAR` receives what crossed the back-to-back wire. Forwarding
# out of igb-a's hub rather than into it keeps the forwarded frames from coming back to the
# forwarder's input (on the hub every frame reaches every other port). Both commands write their
# JSON to OUT; the host checks the frames on "link", the capture file, and both JSON results.
# --seconds bounds both, should the host's frames never come.
# IN and TO are opened by one process, so they share one VFIO container: forward sends the received
# buffers as they are (zero-copy) unless --copy is passed through.
set -u
bin=$1 out=$2 in=$3 to=$4 far=$5 count=$6 copy=${7:-}

"$bin" capture --device "$far" --count "$count" --seconds 90 --write "$out/far.pcapng" --json --ready "$out/far-ready" \
    > "$out/far.json" 2> "$out/far.err" &
cap=$!
"$bin" forward --device "$in" --to "$to" $copy --count "$count" --seconds 90 --json --ready "$out/ready" > "$out/forward.json"
fwd=$?
wait "$cap"
capst=$?
echo "forward exited $fwd, capture on $far exited $capst"
echo "--- forward.json"; cat "$out/forward.json"
echo "--- far.json"; cat "$out/far.json"
echo "--- capture stderr"; cat "$out/far.err"
[ "$fwd" -eq 0 ] && [ "$capst" -eq 0 ]
