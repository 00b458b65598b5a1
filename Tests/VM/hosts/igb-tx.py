"""Host side of igb-tx: transmitted frames reach the host byte for byte through vfio on QEMU's igb.

The host writes the guest's transmit plan (tx-plan.json): frames as handed to the miniport, some
with their IPv4/UDP/TCP checksums zeroed and checksum offload asked for in the NBL info, some
with a VLAN tag to insert (DCMD.VLE). The host computes every expected wire frame itself (its own
checksums, its own 802.1Q tag) and compares byte for byte, in order.
"""

import json
import os
import struct

import subprocess

import igbhost
import testbed
import traffic


def tcp(src, dst, sport, dport, payload):
    hdr = struct.pack("!HHIIBBHHH", sport, dport, 7, 9, 5 << 4, 0x18, 4096, 0, 0)
    pseudo = traffic.ip4(src) + traffic.ip4(dst) + struct.pack("!BBH", 0, 6, len(hdr) + len(payload))
    c = traffic.checksum(pseudo + hdr + payload)
    return traffic.ipv4(src, dst, 6, hdr[:16] + struct.pack("!H", c) + hdr[18:] + payload)


def zero(frame, *offsets):
    b = bytearray(frame)
    for o in offsets:
        b[o:o + 2] = b"\0\0"
    return bytes(b)


def insert_tag(frame, vid, prio):
    return frame[:12] + struct.pack("!HH", 0x8100, (prio << 13) | vid) + frame[12:]


def run(ctx):
    ctx.wait_ready()
    g, h = ctx.guest_mac, ctx.host_mac
    p = bytes((i * 7) & 0xFF for i in range(1500))
    IPCS, UDPCS, TCPCS = 14 + 10, 14 + 20 + 6, 14 + 20 + 16
    udp = lambda n, sport=1000: traffic.ether(h, g, traffic.ETH_IPV4, traffic.udp("10.9.0.2", "10.9.0.1", sport, 2000, p[:n]))
    plan = []  # (given frame, offloads, vlan, priority, expected wire frame)
    plan.append(("plain UDP, no offload", udp(100), [], None, None, udp(100)))
    plan.append(("UDP, IPv4+UDP checksum offload", zero(udp(200, 1001), IPCS, UDPCS), ["ipv4", "udp"], None, None, udp(200, 1001)))
    t = traffic.ether(h, g, traffic.ETH_IPV4, tcp("10.9.0.2", "10.9.0.1", 3000, 80, p[:333]))
    plan.append(("TCP, IPv4+TCP checksum offload", zero(t, IPCS, TCPCS), ["ipv4", "tcp"], None, None, t))
    plan.append(("UDP, UDP checksum offload only", zero(udp(64, 1002), UDPCS), ["udp"], None, None, udp(64, 1002)))
    icmp = traffic.ether(h, g, traffic.ETH_IPV4, traffic.icmp_echo("10.9.0.2", "10.9.0.1", payload=p[:56]))
    plan.append(("ICMP, IPv4 header checksum offload", zero(icmp, IPCS), ["ipv4"], None, None, icmp))
    f = traffic.test_frame(h, g, 500, size=128)
    plan.append(("VLAN 42 priority 5 inserted", f, [], 42, 5, insert_tag(f, 42, 5)))
    u = udp(300, 1003)
    plan.append(("UDP offload + VLAN 100 inserted", zero(u, IPCS, UDPCS), ["ipv4", "udp"], 100, 0, insert_tag(u, 100, 0)))
    t2 = traffic.ether(h, g, traffic.ETH_IPV4, tcp("10.9.0.2", "10.9.0.1", 3001, 80, p[:1000]))
    plan.append(("TCP offload + VLAN 7 priority 7", zero(t2, IPCS, TCPCS), ["ipv4", "tcp"], 7, 7, insert_tag(t2, 7, 7)))
    for n in (60, 61, 127, 512, 1024, 1514):
        f = traffic.test_frame(h, g, 600 + n, size=n)
        plan.append((f"plain {n} bytes", f, [], None, None, f))
    big = udp(1472, 1004)
    plan.append(("1514-byte UDP, offload", zero(big, IPCS, UDPCS), ["ipv4", "udp"], None, None, big))
    big2 = udp(1472, 1005)
    plan.append(("1514-byte UDP, offload + VLAN 4000 (1518 on the wire)", zero(big2, IPCS, UDPCS), ["ipv4", "udp"], 4000, 1,
                 insert_tag(big2, 4000, 1)))
    # TCTL.PSP: the 82576 pads short frames to the 64-byte minimum (60 without the FCS) (§8.12.1).
    # QEMU 10's igb ignores PSP and sends them as they are: that is what this wire shows (the
    # model's .noShortFramePadding; Docs/MODEL.md). The datasheet model pads (differential.json).
    short = traffic.ether(h, g, traffic.ETH_ARP, bytes(range(28)), pad=False)
    plan.append(("42-byte frame (QEMU ignores TCTL.PSP: not padded)", short, [], None, None, short))

    doc = [{"bytes": given.hex(), "offload": off, "vlan": vid, "priority": prio} for _, given, off, vid, prio, _ in plan]
    tmp = os.path.join(ctx.out, "tx-plan.json.tmp")
    with open(tmp, "w") as fh:
        json.dump(doc, fh)
    os.rename(tmp, os.path.join(ctx.out, "tx-plan.json"))
    ctx.log(f"wrote a plan of {len(plan)} frames")
    gm = traffic.mac(g)
    got = ctx.expect_frames(len(plan), timeout=20, what="transmitted frames", match=lambda fr: fr[6:12] == gm)
    problems = []
    for (label, _, _, _, _, want), wire in zip(plan, got):
        if wire != want:
            first = next((i for i in range(min(len(wire), len(want))) if wire[i] != want[i]), min(len(wire), len(want)))
            problems.append(f"{label}: {len(wire)} bytes on the wire, expected {len(want)}; first difference at byte {first}: "
                            f"got {wire[first:first + 8].hex()} expected {want[first:first + 8].hex()}")
        else:
            ctx.log(f"  byte-exact: {label} ({len(wire)} bytes)")
    ctx.check(not problems, "; ".join(problems))
    d = igbhost.finish(ctx, "igb-transmit.json")
    # The differential: the same plan through the same driver on the model.
    report = {}
    plan_path = os.path.join(ctx.out, "tx-plan.json")
    for fidelity in ("qemu", "datasheet"):
        out = os.path.join(ctx.out, f"model-{fidelity}")
        os.makedirs(out, exist_ok=True)
        cmd = [igbhost.VMSCENARIOS, "igb-transmit", "--model", "--plan", plan_path, "--fidelity", fidelity,
               "--mac", g, "--out", out]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        try:
            with open(os.path.join(out, "igb-transmit.json")) as fh:
                m = json.load(fh)
        except (OSError, ValueError) as e:
            raise testbed.Failure(f"the model run ({fidelity}) wrote no result: {e}: {r.stdout[-300:]}{r.stderr[-300:]}")
        wire = [bytes.fromhex(x) for x in m.get("wire") or []]
        diffs = [{"frame": i, "what": label, "qemu": q.hex() if q else None, "model": w.hex() if w else None}
                 for i, (label, q, w) in enumerate(zip([p[0] for p in plan], got + [None] * len(plan), wire + [None] * len(plan)))
                 if q != w]
        report[fidelity] = {"frames": len(plan), "differences": diffs}
        ctx.log(f"differential vs model ({fidelity} fidelity): {len(plan)} frames, {len(diffs)} differences"
                + "".join(f"; frame {x['frame']} {x['what']}" for x in diffs[:5]))
        if fidelity == "qemu":
            ctx.check(m.get("ok") and not diffs, f"the model (qemu fidelity) transmits differently from QEMU: "
                      f"{m.get('errors')} {diffs[:2]}")
    with open(os.path.join(ctx.out, "differential.json"), "w") as fh:
        json.dump(report, fh, indent=1)
    ctx.check(d["successes"] == len(plan), f"send completions {d['completions']}")
    igbhost.summary(ctx, frames=len(plan), sendMilliseconds=round(d["sendMilliseconds"], 2),
                    transmitCounters=d["transmitCounters"], statistics=d["statistics"])
