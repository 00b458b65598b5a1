"""Host side of cli-pktgen: `miniport pktgen` on QEMU's igb; its frames arrive at the host in order.

The guest runs two generators one after the other (scenarios.txt): SMALL frames of 60 bytes and
LARGE frames of 1514 bytes, both to our MAC. For each run the host expects every frame, in
sequence order 0, 1, 2, … with nothing missing or repeated, each of the requested size, from the
NIC's MAC, with a valid IPv4 header checksum, UDP checksum, IP id = low 16 bits of the sequence,
and the generator's addresses and ports; then it checks each run's --json (sent = completed =
count, no send errors).
"""

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_common  # noqa: E402
import traffic  # noqa: E402

RUNS = [("pktgen-60.json", 60, 300), ("pktgen-1514.json", 1514, 100)]  # (json, --size, --count) as in scenarios.txt
SRC_IP, DST_IP = "10.0.9.1", "10.0.9.2"


def is_udp(f):
    return len(f) >= 42 and f[12:14] == b"\x08\x00" and f[23] == 17


def check_frame(ctx, f, size, seq):
    where = f"frame {seq} of the {size}-byte run"
    ctx.check(len(f) == size, f"{where}: {len(f)} bytes, expected {size}")
    ctx.check(f[0:6] == traffic.mac(ctx.host_mac) and f[6:12] == traffic.mac(ctx.guest_mac), f"{where}: {traffic.describe(f)}")
    ip = f[14:34]
    total = struct.unpack("!H", ip[2:4])[0]
    ctx.check(ip[0] == 0x45 and total == size - 14, f"{where}: IPv4 byte 0x{ip[0]:02x}, total length {total}")
    ctx.check(traffic.checksum(ip) == 0, f"{where}: bad IPv4 header checksum")
    ctx.check(ip[12:16] == traffic.ip4(SRC_IP) and ip[16:20] == traffic.ip4(DST_IP), f"{where}: addresses {ip[12:20].hex()}")
    ctx.check(struct.unpack("!H", ip[4:6])[0] == seq & 0xFFFF, f"{where}: IP id {ip[4:6].hex()}, expected the sequence's low 16 bits")
    udp = f[34:14 + total]
    ulen = struct.unpack("!H", udp[4:6])[0]
    ctx.check(ulen == len(udp), f"{where}: UDP length {ulen}, the datagram has {len(udp)}")
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 17, ulen)
    ctx.check(struct.unpack("!H", udp[6:8])[0] != 0 and traffic.checksum(pseudo + udp) == 0, f"{where}: bad UDP checksum")
    got = struct.unpack("!Q", udp[8:16])[0]
    ctx.check(got == seq, f"{where}: carries sequence number {got}: out of order, lost or repeated")


def run(ctx):
    is_ours = lambda f: is_udp(f) and f[6:12] == traffic.mac(ctx.guest_mac)  # noqa: E731
    total = sum(c for _, _, c in RUNS)
    got = ctx.expect_frames(total, timeout=90, match=is_ours, what="generated UDP frames")
    i = 0
    for _, size, count in RUNS:
        for seq in range(count):
            check_frame(ctx, got[i], size, seq)
            i += 1
    ctx.check(len(got) == total, f"{len(got) - total} frames more than the {total} generated")
    cli_common.wait_exit(ctx, timeout=60)
    for name, size, count in RUNS:
        j = cli_common.guest_json(ctx, name)
        ctx.log(f"{name}: {j}")
        for k, v in (("sent", count), ("completed", count), ("sendErrors", 0), ("bytes", count * size)):
            ctx.check(j.get(k) == v, f"pktgen --size {size} --json {k} = {j.get(k)}, expected {v} ({j})")
    # the host's own view: frames and their arrival rate
    recs = ctx.port.received_since(ctx.marks[ctx.port.name])
    ctx.log(f"received {len(got)} generated frames in order; first-to-last {recs[-1][0] - recs[0][0]:.3f} s on the host")
