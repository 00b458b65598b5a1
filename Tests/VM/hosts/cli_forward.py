"""Host side of cli-forward and cli-forward-copy: `miniport forward --device igb0 --to igb-a
[--copy]` across the igb pair (zero-copy: both NICs in one process share one VFIO container).

    host --igb0 socket--> igb0 [forward] igb-a --hub 1--> igb-b [capture]
                                                  \\--> host socket "link"

The host sends COUNT numbered frames into igb0's wire: sizes 60…1514, every fourth one tagged
VLAN 100 (priority 3; igb0 strips the tag, the forwarder carries it in the send NBL, igb-a inserts
it again, igb-b strips it, the capture writes it back), one broadcast. It checks that the same
frames, byte for byte and in order, came out on the hub ("link": only igb-a transmits there) and
are in igb-b's capture file (tshark), and that forward's and capture's --json agree.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_common  # noqa: E402
import traffic  # noqa: E402

COUNT = 32  # the last argument of cli-forward.sh in scenarios.txt
FAR_MAC = "52:54:00:4d:50:12"  # igb-b


def frames(host):
    out = []
    for seq in range(COUNT):
        size = 60 + (seq * 1454) // (COUNT - 1)  # 60 … 1514
        dst = traffic.BROADCAST if seq == 5 else FAR_MAC
        f = traffic.test_frame(dst, host, seq, size=size, tag=b"FORWARD0")
        if seq % 4 == 3:  # the same frame with a VLAN 100 tag (4 bytes longer)
            f = traffic.vlan(dst, host, 100, traffic.ETH_TEST, f[14:], pcp=3)
        out.append(f)
    return out


def run(ctx):
    sent = frames(ctx.host_mac)
    cli_common.wait_file(ctx, "far-ready", timeout=90)
    ctx.wait_ready(timeout=90)
    ctx.send(sent, pace=0.005)
    is_ours = lambda f: b"FORWARD0" in f[14:30]  # noqa: E731
    out = ctx.expect_frames(COUNT, timeout=20, port="link", match=is_ours, what="forwarded frames on the hub")
    for seq, (s, o) in enumerate(zip(sent, out)):
        ctx.check(o == s, f"forwarded frame {seq} differs: sent {traffic.describe(s)}, the hub saw {traffic.describe(o)}")
    back = ctx.port.received_since(ctx.marks[ctx.port.name])
    ctx.check(not [f for _, f in back if is_ours(f)], "forwarded frames came back out of igb0")
    code = cli_common.wait_exit(ctx, timeout=60)
    ctx.check(code == 0, f"cli-forward.sh exited {code} (see guest.log)")

    fw = cli_common.guest_json(ctx, "forward.json")
    ctx.log(f"forward --json: {fw}")
    want_bytes = sum(len(f) for f in sent)
    ctx.check(fw.get("forwarded") == COUNT and fw.get("completed") == COUNT,
              f"forward --json: forwarded {fw.get('forwarded')}, completed {fw.get('completed')}, expected {COUNT}")
    ctx.check(fw.get("sendErrors") == 0 and fw.get("drops") == 0, f"forward --json: {fw}")
    # One process opens both NICs: one VFIO container, so zero-copy unless the scenario passes --copy.
    want = "copy" if "--copy" in ctx.scenario.command.split() else "zero-copy"
    ctx.check(fw.get("mode") == want, f"forward --json mode {fw.get('mode')}, expected {want}")
    # forwardedBytes counts the frames as received (a stripped tag is not in the buffer)
    untagged = want_bytes - 4 * sum(1 for seq in range(COUNT) if seq % 4 == 3)
    ctx.check(fw.get("bytes") in (want_bytes, untagged), f"forward --json bytes {fw.get('bytes')}, sent {want_bytes} on the wire")

    cap = cli_common.tshark_frames(os.path.join(ctx.out, "far.pcapng"))
    ctx.check(len(cap) == COUNT, f"igb-b's capture holds {len(cap)} frames, expected {COUNT}")
    for seq, (s, c) in enumerate(zip(sent, cap)):
        ctx.check(c["bytes"] == s, f"frame {seq} as igb-b received it differs: sent {traffic.describe(s)}, "
                                   f"captured {traffic.describe(c['bytes'])}")
    far = cli_common.guest_json(ctx, "far.json")
    q0 = far["queues"][0]
    ctx.check((q0["frames"], q0["bytes"], far["drops"]) == (COUNT, want_bytes, 0), f"igb-b capture --json {far}")
    ctx.log(f"verified {COUNT} frames igb0 -> igb-a -> wire -> igb-b, byte for byte and in order")
