"""Host side of igb-vlan: {MAC, VLAN} filters on VMDq pools through vfio on QEMU's igb.

Queue A takes MAC A on VLAN 10, queue B MAC B on VLAN 20 (VLVF entries with the pool's bit and
the default pool's, RCTL.VFE, VFTA open). Tagged frames follow the VLAN filter: A/10 on A, B/20
on B; A on the wrong VLAN (20) or untagged matches no pool and, being unicast, falls to the
default pool; tagged broadcast reaches the pools of its VLAN (default + A for VLAN 10), untagged
broadcast only the default pool (AUPE); a VLAN no filter names is dropped. Then the differential.
"""

import igbhost
import traffic

A = "02:4d:50:00:0a:02"
B = "02:4d:50:00:0b:02"


def run(ctx):
    ctx.wait_ready()
    h, g = ctx.host_mac, ctx.guest_mac
    T = traffic.ETH_TEST

    def tagged(dst, vid, n, pcp=0):
        return traffic.vlan(dst, h, vid, T, b"MINIPORTvlan" + bytes([n]) * 20, pcp=pcp)

    cases = [
        ("A on VLAN 10", tagged(A, 10, 1, pcp=5), [f"{A}/10"]),
        ("A on VLAN 10 (UDP)", traffic.vlan(A, h, 10, traffic.ETH_IPV4, traffic.udp("10.7.0.1", "10.7.0.2", 1, 2, b"x" * 64)), [f"{A}/10"]),
        ("B on VLAN 20", tagged(B, 20, 2), [f"{B}/20"]),
        ("A on VLAN 20 (not its VLAN)", tagged(A, 20, 3), ["default"]),
        ("A untagged", traffic.test_frame(A, h, 4), ["default"]),
        ("own address on VLAN 10", tagged(g, 10, 5), ["default"]),
        ("own address untagged", traffic.test_frame(g, h, 6), ["default"]),
        ("broadcast on VLAN 10", tagged(traffic.BROADCAST, 10, 7), ["default", f"{A}/10"]),
        ("broadcast on VLAN 20", tagged(traffic.BROADCAST, 20, 8), ["default", f"{B}/20"]),
        ("broadcast untagged", traffic.test_frame(traffic.BROADCAST, h, 9), ["default"]),
        ("broadcast on VLAN 30 (no filter)", tagged(traffic.BROADCAST, 30, 10), []),
    ]
    sent = [c[1] for c in cases]
    ctx.send(sent)
    d = igbhost.finish(ctx, "igb-traffic.json")
    igbhost.check_delivery(ctx, d, cases)
    prio = [f.get("priority") for f in igbhost.guest_frames(d) if f.get("vlan") == 10 and f["raw"][14:26] == b"MINIPORTvlan"]
    ctx.check(5 in prio, f"the priority of A's VLAN 10 frame was not kept in the info: {prio}")
    igbhost.differential(ctx, d, sent)
    igbhost.summary(ctx, framesPerQueue=d["framesPerQueue"], queues=d["queues"])
