"""Host side of igb-vmq: VMQ queues on VMDq pools through vfio on QEMU's igb.

Two VMQ queues with MAC filters A and B (RAH pool select). Frames for A land on A's queue, for B
on B's, unmatched unicast and the adapter's own address on the default queue, broadcast on every
pool that accepts it (VMOLR.BAM: the default pool and both queues), an unjoined multicast
nowhere; a tagged frame for A still lands on A (no VLAN filter: RCTL.VFE off) with its tag
stripped into the info. Then the same frames run through the model (differential).
"""

import igbhost
import traffic

A = "02:4d:50:00:0a:01"
B = "02:4d:50:00:0b:01"
UNKNOWN = "02:4d:50:00:0c:01"


def run(ctx):
    ctx.wait_ready()
    h, g = ctx.host_mac, ctx.guest_mac
    udp = traffic.udp("10.77.0.1", "10.77.0.2", 4000, 5000, bytes(range(100)))
    cases = [
        ("A #1", traffic.test_frame(A, h, 1), [A]),
        ("A #2 (UDP)", traffic.ether(A, h, traffic.ETH_IPV4, udp), [A]),
        ("A #3 (1514 bytes)", traffic.test_frame(A, h, 3, size=1514), [A]),
        ("B #1", traffic.test_frame(B, h, 11), [B]),
        ("B #2", traffic.test_frame(B, h, 12, size=700), [B]),
        ("own address", traffic.test_frame(g, h, 21), ["default"]),
        ("unmatched unicast #1", traffic.test_frame(UNKNOWN, h, 31), ["default"]),
        ("unmatched unicast #2", traffic.test_frame("02:00:00:00:00:77", h, 32), ["default"]),
        ("broadcast", traffic.test_frame(traffic.BROADCAST, h, 41), ["default", A, B]),
        ("ARP broadcast", traffic.arp_request(h, "10.77.0.1", "10.77.0.2"), ["default", A, B]),
        ("unjoined multicast", traffic.test_frame("01:00:5e:00:00:fb", h, 51), []),
        ("A tagged VLAN 7", traffic.vlan(A, h, 7, traffic.ETH_TEST, b"MINIPORTvlan7", pcp=3), [A]),
    ]
    sent = [c[1] for c in cases]
    ctx.send(sent)
    d = igbhost.finish(ctx, "igb-traffic.json")
    igbhost.check_delivery(ctx, d, cases)
    igbhost.differential(ctx, d, sent)
    igbhost.summary(ctx, framesPerQueue=d["framesPerQueue"], queues=d["queues"], statistics=d["statistics"])
