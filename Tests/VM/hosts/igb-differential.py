"""Host side of igb-differential: one frame mix through QEMU's igb and through the 82576 model.

The guest runs the IGB miniport through vfio with two VMQ queues (MAC filters A and B, 128-byte
lookahead split). The host sends a mix of 40-odd frames: every kind of address (own, A, B,
unmatched, broadcast, multicast), IPv4 UDP/TCP/ICMP, IPv6, VLAN-tagged and priority-tagged,
runts, the longest legal frames and oversize ones, bad IPv4 and UDP checksums. Then the same
frames run through the same driver on the model (`.qemu` fidelity, here on the host): queue
assignment, bytes, segments, VLAN and checksum verdicts must be identical. The datasheet
fidelity's answers are recorded beside them (differential.json) for Docs/MODEL.md.
"""

import struct

import igbhost
import traffic

A = "02:4d:50:00:0a:05"
B = "02:4d:50:00:0b:05"


def tcp(src, dst, sport, dport, payload):
    hdr = struct.pack("!HHIIBBHHH", sport, dport, 1, 1, 5 << 4, 0x10, 8192, 0, 0)
    pseudo = traffic.ip4(src) + traffic.ip4(dst) + struct.pack("!BBH", 0, 6, len(hdr) + len(payload))
    c = traffic.checksum(pseudo + hdr + payload)
    return traffic.ipv4(src, dst, 6, hdr[:16] + struct.pack("!H", c) + hdr[18:] + payload)


def udp6(dst_mac, src_mac, payload):
    import socket
    s, d = socket.inet_pton(socket.AF_INET6, "fd00::1"), socket.inet_pton(socket.AF_INET6, "fd00::2")
    length = 8 + len(payload)
    hdr = struct.pack("!HHHH", 7, 9, length, 0)
    c = traffic.checksum(s + d + struct.pack("!IxxxB", length, 17) + hdr + payload) or 0xFFFF
    ip = struct.pack("!IHBB", 6 << 28, length, 17, 64) + s + d + hdr[:6] + struct.pack("!H", c) + payload
    return traffic.ether(dst_mac, src_mac, traffic.ETH_IPV6, ip)


def mix(g, h):
    p = bytes((i * 13 + 1) & 0xFF for i in range(1600))
    out = []
    for n, dst in enumerate((g, A, B)):
        k = 100 * (n + 1)
        out += [
            (f"{dst} test 60", traffic.test_frame(dst, h, k + 1, size=60)),
            (f"{dst} test 1514", traffic.test_frame(dst, h, k + 2, size=1514)),
            (f"{dst} UDP", traffic.ether(dst, h, traffic.ETH_IPV4, traffic.udp("10.5.0.1", "10.5.0.2", k, 53, p[k:k + 150]))),
            (f"{dst} TCP", traffic.ether(dst, h, traffic.ETH_IPV4, tcp("10.5.0.1", "10.5.0.2", k, 80, p[k:k + 400]))),
            (f"{dst} ICMP", traffic.ether(dst, h, traffic.ETH_IPV4, traffic.icmp_echo("10.5.0.1", "10.5.0.2", seq=k, payload=p[:80]))),
            (f"{dst} UDP/IPv6", udp6(dst, h, p[k:k + 90])),
            (f"{dst} tagged VLAN 5", traffic.vlan(dst, h, 5, traffic.ETH_TEST, b"MINIPORTmix" + bytes([n]) * 40, pcp=2)),
            (f"{dst} priority tag (VLAN 0)", traffic.vlan(dst, h, 0, traffic.ETH_TEST, b"MINIPORTprio" + bytes([n]) * 40, pcp=6)),
        ]
    bad_ip = bytearray(traffic.ether(g, h, traffic.ETH_IPV4, traffic.udp("10.5.0.1", "10.5.0.2", 1, 2, p[:64])))
    bad_ip[24] ^= 0xFF
    bad_udp = bytearray(traffic.ether(A, h, traffic.ETH_IPV4, traffic.udp("10.5.0.1", "10.5.0.2", 1, 2, p[:64])))
    bad_udp[40] ^= 0xFF
    out += [
        ("unmatched unicast", traffic.test_frame("02:4d:50:00:0c:05", h, 401)),
        ("unmatched unicast tagged VLAN 5", traffic.vlan("02:4d:50:00:0c:05", h, 5, traffic.ETH_TEST, b"MINIPORTunm" * 5)),
        ("broadcast", traffic.test_frame(traffic.BROADCAST, h, 402)),
        ("ARP broadcast", traffic.arp_request(h, "10.5.0.1", "10.5.0.2")),
        ("broadcast tagged VLAN 5", traffic.vlan(traffic.BROADCAST, h, 5, traffic.ETH_TEST, b"MINIPORTbc" * 5)),
        ("IPv4 multicast (not joined)", traffic.test_frame("01:00:5e:00:00:01", h, 403)),
        ("IPv6 all-nodes multicast (not joined)", traffic.test_frame("33:33:00:00:00:01", h, 404)),
        ("own, bad IPv4 header checksum", bytes(bad_ip)),
        ("A, bad UDP checksum", bytes(bad_udp)),
        ("own, 42-byte runt (unpadded)", traffic.ether(g, h, traffic.ETH_TEST, b"MINIPORTrunt" + bytes(16), pad=False)),
        ("own, 1518 bytes tagged (longest legal)", traffic.vlan(g, h, 9, traffic.ETH_TEST, p[:1500])),
        ("own, 1515 bytes untagged (within the 1522-byte limit)", traffic.ether(g, h, traffic.ETH_TEST, p[1:1502])),
        ("own, 1522 bytes tagged (the driver's limit)", traffic.vlan(g, h, 9, traffic.ETH_TEST, p[3:1507])),
        ("own, 1523 bytes tagged (too long)", traffic.vlan(g, h, 9, traffic.ETH_TEST, p[4:1509])),
        ("A, 1600 bytes (too long)", traffic.ether(A, h, traffic.ETH_TEST, p[2:1588])),
    ]
    return out


def run(ctx):
    ctx.wait_ready()
    frames = mix(ctx.guest_mac, ctx.host_mac)
    sent = [f for _, f in frames]
    ctx.send(sent)
    d = igbhost.finish(ctx, "igb-traffic.json")
    names = igbhost.queue_names(d)
    table = []
    for label, f in frames:
        forms = igbhost.forms_of(f)
        got = [x for x in igbhost.guest_frames(d) if x["raw"] in forms]
        table.append((label, sorted(names[x["queue"]] for x in got), [x["segments"] for x in got]))
        ctx.log(f"  {label}: {table[-1][1] or 'dropped'} {table[-1][2]}")
    where = {label: q for label, q, _ in table}
    ctx.check(where[f"{ctx.guest_mac} UDP"] == ["default"], f"own UDP: {where[f'{ctx.guest_mac} UDP']}")
    ctx.check(where[f"{A} UDP"] == [A] and where[f"{B} TCP"] == [B], f"A/B: {where[f'{A} UDP']} {where[f'{B} TCP']}")
    ctx.check(where["broadcast"] == sorted(["default", A, B]), f"broadcast: {where['broadcast']}")
    # The driver accepts frames up to 1522 bytes without FCS (RCTL.LPE, RLPML 1526 with FCS).
    ctx.check(where["own, 1523 bytes tagged (too long)"] == [] and where["A, 1600 bytes (too long)"] == [], "an oversize frame was accepted")
    ctx.check(where["own, 1522 bytes tagged (the driver's limit)"] == ["default"], "a 1522-byte tagged frame was dropped")
    ctx.check(where["own, 1515 bytes untagged (within the 1522-byte limit)"] == ["default"], "a 1515-byte frame was dropped")
    ctx.check(where["own, 1518 bytes tagged (longest legal)"] == ["default"], "the longest legal tagged frame was dropped")
    report = igbhost.differential(ctx, d, sent)
    igbhost.summary(ctx, frames=len(sent), delivered=len(d["frames"]), framesPerQueue=d["framesPerQueue"],
                    datasheetDifferences=len(report["datasheet"]["differences"]), qemuFidelityDifferences=0)
