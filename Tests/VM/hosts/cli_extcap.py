"""Host side of cli-extcap: Wireshark's extcap (`miniport extcap`) on QEMU's igb, tshark in the guest.

The guest (checks/cli-extcap.sh) installs the extcap wrapper with udev/install, writes `ready`,
then runs
    tshark -i miniport-<dev> -o extcap.<iface>.mac:52:54:00:aa:00:01 -c COUNT -w x.pcapng
(one VMQ queue for MAC A besides the default queue). The host sends numbered frames, alternately
to MAC A and to the NIC's own address, until the guest command exits: the wire is busy however
long the extcap takes to bring the NIC up, and stops when tshark is done (`captured`; the guest then
drains the NIC with a short capture, which also shows the extcap released it). Then it checks x.pcapng with tshark and with our own
pcapng reader: exactly COUNT frames; IDBs rxq0 "default" and rxq1 "mac 52:54:00:aa:00:01", link
type Ethernet, nanosecond timestamps; every frame is one the host sent, byte for byte, on the queue
its destination names (MAC A -> rxq1, the NIC -> rxq0); both queues have frames; each queue's
frames in the order sent (sequence numbers ascending).
"""

import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_common  # noqa: E402
import traffic  # noqa: E402

MAC_A = "52:54:00:aa:00:01"
COUNT = 40  # as in scenarios.txt
TAG = b"EXTCAP00"


def run(ctx):
    ctx.wait_ready(timeout=240)
    sent = {}
    seq = 0
    deadline = time.monotonic() + 300
    captured = os.path.join(ctx.out, "captured")
    while not cli_common.exited(ctx) and not os.path.exists(captured) and time.monotonic() < deadline:
        dst = MAC_A if seq % 2 == 0 else ctx.guest_mac
        f = traffic.test_frame(dst, ctx.host_mac, seq, size=64 + (seq % 5) * 100, tag=TAG)
        # One frame per call: until the extcap enables receive QEMU stops reading its socket, and a
        # call waits for the socket's timeout; the next one tries again. Only delivered frames count.
        if ctx.port.send([f], pace=0) == 1:
            sent[seq] = f
        seq += 1
        time.sleep(0.004)
    ctx.log(f"{len(sent)} of {seq} frames reached QEMU while the guest captured")
    cli_common.wait_exit(ctx, timeout=60, host_done=False)

    path = os.path.join(ctx.out, "x.pcapng")
    ctx.check(os.path.exists(path), "the guest wrote no x.pcapng (see guest.log)")
    ours = cli_common.read_pcapng(path)
    names = [(i["name"], i["description"]) for i in ours["interfaces"]]
    ctx.log(f"interfaces: {names}")
    ctx.check(("rxq0", "default") in names and ("rxq1", f"mac {MAC_A}") in names,
              f"the capture's interfaces are {names}, expected rxq0 'default' and rxq1 'mac {MAC_A}'")
    ctx.check(all(i["linktype"] == 1 for i in ours["interfaces"]), "an interface is not Ethernet")
    frames = cli_common.tshark_frames(path)
    ctx.check(len(frames) == COUNT, f"tshark reads {len(frames)} frames, expected {COUNT}")
    per_queue = {"rxq0": [], "rxq1": []}
    for i, fr in enumerate(frames):
        b = fr["bytes"]
        ctx.check(len(b) >= 26 and b[14:22] == TAG, f"frame {i} is not one the host sent: {traffic.describe(b)}")
        s = struct.unpack("!I", b[22:26])[0]
        ctx.check(sent.get(s) == b, f"frame {i} (sequence {s}) differs from what the host sent")
        want = "rxq1" if b[0:6] == traffic.mac(MAC_A) else "rxq0"
        ctx.check(fr["name"] == want, f"frame {i} to {traffic.mac_str(b[0:6])} is on {fr['name']}, expected {want}")
        per_queue[fr["name"]].append(s)
    for q, seqs in per_queue.items():
        ctx.check(len(seqs) > 0, f"no frame on {q}")
        ctx.check(seqs == sorted(seqs), f"{q}'s frames are out of order: {seqs}")
    ctx.log(f"rxq0 {len(per_queue['rxq0'])} frames, rxq1 {len(per_queue['rxq1'])} frames")
