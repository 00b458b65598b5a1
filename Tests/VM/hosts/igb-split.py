"""Host side of igb-split: lookahead (header) split through vfio on QEMU's igb.

Queue A asks for a 128-byte lookahead: SRRCTL header split (DESCTYPE 101b, split always) with
header buffers from receive-lookahead shared memory. The rule (Shared Memory in Receive Buffers):
the adapter splits "at an offset equal to or greater than the requested lookahead size". QEMU
splits after the TCP/UDP header (42, 54, 66, 62 bytes), after the IP header for other IP (34) and
at the header buffer size for non-IP; the driver moves the bytes up to the lookahead from the
packet buffer into the header buffer, so every frame longer than 128 bytes has a 128-byte lookahead
segment and the rest in the post-lookahead segment, and a shorter frame lies whole in the lookahead
segment. The segments together are exactly the frame; the framework's own check of the rule
(lookaheadSplitViolations) reads 0. Then the differential.
"""

import socket
import struct

import igbhost
import traffic

A = "02:4d:50:00:0a:03"
HEADER = 128


def tcp(src, dst, sport, dport, payload, options=b""):
    """An IPv4 packet carrying a TCP segment (ACK|PSH) with its checksum."""
    off = (20 + len(options)) // 4
    hdr = struct.pack("!HHIIBBHHH", sport, dport, 1, 1, off << 4, 0x18, 8192, 0, 0) + options
    pseudo = traffic.ip4(src) + traffic.ip4(dst) + struct.pack("!BBH", 0, 6, len(hdr) + len(payload))
    c = traffic.checksum(pseudo + hdr + payload)
    hdr = hdr[:16] + struct.pack("!H", c) + hdr[18:]
    return traffic.ipv4(src, dst, 6, hdr + payload)


def udp6(src, dst, sport, dport, payload):
    """An IPv6 packet carrying a UDP datagram with its checksum."""
    s, d = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
    length = 8 + len(payload)
    pseudo = s + d + struct.pack("!IxxxB", length, 17)
    hdr = struct.pack("!HHHH", sport, dport, length, 0)
    c = traffic.checksum(pseudo + hdr + payload) or 0xFFFF
    return struct.pack("!IHBB", 6 << 28, length, 17, 64) + s + d + hdr[:6] + struct.pack("!H", c) + payload


def split(n):
    """The segments a frame of n bytes must have on queue A: the lookahead, then the rest."""
    return [n] if n <= HEADER else [HEADER, n - HEADER]


def segments(want):
    def check(got):
        bad = [f["segments"] for f in got if f["segments"] != want]
        return f"segments {bad[0]}, expected {want}" if bad else None
    return check


def run(ctx):
    ctx.wait_ready()
    h = ctx.host_mac
    p = bytes(range(256)) * 6
    E = lambda et, body: traffic.ether(A, h, et, body)
    cases = [
        ("UDP/IPv4, 200-byte payload (device splits at 42)", E(traffic.ETH_IPV4, traffic.udp("10.3.0.1", "10.3.0.2", 7, 9, p[:200])), [A], segments(split(242))),
        ("TCP/IPv4, 300-byte payload", E(traffic.ETH_IPV4, tcp("10.3.0.1", "10.3.0.2", 7, 9, p[:300])), [A], segments(split(354))),
        ("TCP/IPv4 with 12 option bytes", E(traffic.ETH_IPV4, tcp("10.3.0.1", "10.3.0.2", 7, 9, p[:100], options=b"\x01\x01\x08\x0a" + bytes(8))), [A], segments(split(166))),
        ("ICMP/IPv4 (device splits after the IP header, 34)", E(traffic.ETH_IPV4, traffic.icmp_echo("10.3.0.1", "10.3.0.2", payload=p[:150])), [A], segments(split(192))),
        ("UDP/IPv6", E(traffic.ETH_IPV6, udp6("fd00::1", "fd00::2", 7, 9, p[:120])), [A], segments(split(182))),
        ("non-IP, 300 bytes (device splits at the header buffer size)", traffic.test_frame(A, h, 1, size=300), [A], segments(split(300))),
        ("non-IP, 64 bytes (fits the header buffer)", traffic.test_frame(A, h, 2, size=64), [A], segments(split(64))),
        ("UDP/IPv4, 100 bytes in all (fits the header buffer)", E(traffic.ETH_IPV4, traffic.udp("10.3.0.1", "10.3.0.2", 7, 9, p[:58])), [A], segments(split(100))),
        ("UDP/IPv4, 1472-byte payload (1514-byte frame)", E(traffic.ETH_IPV4, traffic.udp("10.3.0.1", "10.3.0.2", 7, 9, p[:1472])), [A], segments(split(1514))),
        ("UDP/IPv4 tagged VLAN 5 (tag stripped)", traffic.vlan(A, h, 5, traffic.ETH_IPV4, traffic.udp("10.3.0.1", "10.3.0.2", 7, 9, p[3:203])), [A], segments(split(242))),
        ("UDP/IPv4 to the default queue (no split there)", traffic.ether(ctx.guest_mac, h, traffic.ETH_IPV4, traffic.udp("10.3.0.1", "10.3.0.2", 7, 9, p[:200])), ["default"], segments([242])),
    ]
    sent = [c[1] for c in cases]
    ctx.send(sent)
    d = igbhost.finish(ctx, "igb-traffic.json")
    igbhost.check_delivery(ctx, d, cases)
    two = [f for f in igbhost.guest_frames(d) if len(f["segments"]) == 2]
    ctx.check(all(sum(f["segments"]) == f["length"] for f in two), "segment lengths do not add up to the frame length")
    early = [f["segments"] for f in two if f["segments"][0] < HEADER]
    ctx.check(not early, f"a frame split before the {HEADER}-byte lookahead: {early[:1]}")
    ctx.check(d.get("statistics", {}).get("lookaheadSplitViolations") == 0,
              f"the framework counted {d.get('statistics', {}).get('lookaheadSplitViolations')} lookahead split violations (want 0)")
    ctx.check(all("udp" in f["checksum"] for f in igbhost.guest_frames(d) if f["raw"][12:14] == b"\x08\x00" and f["raw"][23] == 17),
              "a UDP/IPv4 frame lost its checksum verdict with header split")
    igbhost.differential(ctx, d, sent)
    igbhost.summary(ctx, splits={c[0]: next((f["segments"] for f in igbhost.guest_frames(d) if f["raw"] == igbhost.strip_vlan(c[1])[0]), None) for c in cases})
