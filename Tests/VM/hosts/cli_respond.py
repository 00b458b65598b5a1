"""Host side of cli-respond: `miniport respond --ip 10.0.8.2 --count 4` on QEMU's igb.

The host asks ARP who-has 10.0.8.2 (broadcast) and expects the reply: an ARP reply from the NIC's
MAC, to ours, sender = (NIC MAC, 10.0.8.2), target = (our MAC, our IP). Then it pings the
address three times (payloads of 8, 57 (odd) and 1000 bytes) and expects echo replies with the
same identifier, sequence and data and valid IPv4 and ICMP checksums; between them a ping with a
broken ICMP checksum must get no reply and be counted malformed. Afterwards the command's --json
must say 1 ARP reply, 3 echo replies, 1 malformed, 0 drops.
"""

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_common  # noqa: E402
import traffic  # noqa: E402

IP = "10.0.8.2"  # --ip in scenarios.txt
HOST_IP = "10.0.8.1"


def is_arp(f):
    return f[12:14] == b"\x08\x06"


def is_icmp(f):
    return f[12:14] == b"\x08\x00" and len(f) >= 34 and f[23] == 1


def run(ctx):
    me, nic = traffic.mac(ctx.host_mac), traffic.mac(ctx.guest_mac)
    ctx.wait_ready()

    ctx.send([traffic.arp_request(ctx.host_mac, HOST_IP, IP)])
    arp = ctx.expect_frames(1, timeout=5, match=is_arp, what="ARP replies")[0]
    ctx.check(arp[0:6] == me and arp[6:12] == nic, f"ARP reply addressed {traffic.describe(arp)}")
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = struct.unpack("!HHBBH6s4s6s4s", arp[14:42])
    ctx.check((htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, 2),
              f"ARP reply header htype {htype} ptype 0x{ptype:04x} hlen {hlen} plen {plen} op {op}")
    ctx.check(sha == nic and spa == traffic.ip4(IP), f"ARP reply sender {traffic.mac_str(sha)} {spa.hex()}")
    ctx.check(tha == me and tpa == traffic.ip4(HOST_IP), f"ARP reply target {traffic.mac_str(tha)} {tpa.hex()}")
    ctx.check(len(arp) >= 60, f"ARP reply is {len(arp)} bytes, shorter than the 60-byte minimum")

    pings = [(0x4d50, 1, b"miniport"), (0x4d50, 2, bytes(range(57))), (0x4d50, 3, bytes(i & 0xFF for i in range(1000)))]
    bad = traffic.ether(ctx.guest_mac, ctx.host_mac, traffic.ETH_IPV4,
                        traffic.icmp_echo(HOST_IP, IP, ident=0x4d50, seq=99, payload=b"broken"))
    bad = bad[:36] + bytes([bad[36] ^ 0xFF]) + bad[37:]  # ICMP checksum high byte flipped
    for n, (ident, seq, data) in enumerate(pings):
        ctx.send([traffic.ether(ctx.guest_mac, ctx.host_mac, traffic.ETH_IPV4,
                                traffic.icmp_echo(HOST_IP, IP, ident=ident, seq=seq, payload=data))])
        if n == 1:
            ctx.send([bad])
        replies = ctx.expect_frames(n + 1, timeout=5, match=is_icmp, what="echo replies")
        r = replies[n]
        ctx.check(r[0:6] == me and r[6:12] == nic, f"echo reply {seq} addressed {traffic.describe(r)}")
        ihl = (r[14] & 0x0F) * 4
        total = struct.unpack("!H", r[16:18])[0]
        ip = r[14:14 + ihl]
        ctx.check(r[14] >> 4 == 4 and ihl == 20, f"echo reply {seq}: IP version/IHL byte 0x{r[14]:02x}")
        ctx.check(traffic.checksum(ip) == 0, f"echo reply {seq}: bad IPv4 header checksum ({ip.hex()})")
        ctx.check(ip[12:16] == traffic.ip4(IP) and ip[16:20] == traffic.ip4(HOST_IP), f"echo reply {seq}: addresses {ip[12:20].hex()}")
        icmp = r[14 + ihl:14 + total]
        ctx.check(traffic.checksum(icmp) == 0, f"echo reply {seq}: bad ICMP checksum")
        rtype, code, _, rid, rseq = struct.unpack("!BBHHH", icmp[:8])
        ctx.check((rtype, code, rid, rseq) == (0, 0, ident, seq), f"echo reply {seq}: type {rtype} code {code} id {rid} seq {rseq}")
        ctx.check(icmp[8:] == data, f"echo reply {seq}: data differs from the request's ({len(icmp) - 8} bytes back of {len(data)})")
        ctx.check(len(r) >= 60, f"echo reply {seq} is {len(r)} bytes, shorter than the 60-byte minimum")
    ctx.check(len(ctx.port.wait_received(ctx.marks[ctx.port.name], 99, 0.5, match=lambda f: is_icmp(f) and f[41] == 99)) == 0,
              "the ping with a broken ICMP checksum was answered")

    cli_common.wait_exit(ctx, timeout=30)
    j = cli_common.guest_json(ctx, "respond.json")
    ctx.log(f"respond --json: {j}")
    want = {"ip": IP, "arpReplies": 1, "echoReplies": 3, "malformed": 1, "drops": 0}
    for k, v in want.items():
        ctx.check(j.get(k) == v, f"respond --json {k} = {j.get(k)}, expected {v} ({j})")
