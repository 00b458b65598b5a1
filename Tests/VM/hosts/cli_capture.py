"""Host side of cli-capture: `miniport capture` on QEMU's igb against its exact contract (issue 8).

The guest runs
    miniport capture --device igb0 --mac A --mac B --mac M --vlan 100 --count N --write cap.pcapng --json
(queues: rxq0 default, rxq1 mac A, rxq2 mac B, rxq3 mac M (a multicast group), rxq4 vlan 100).
The host sends a known mix, each frame with the queue it must reach, then numbered filler frames
to the NIC's own address until the capture has its N frames. Then it checks, with tshark and with
our own pcapng reader:
- the file holds exactly N frames; one IDB per queue in queue-id order, if_name rxq<id>,
  if_description "default" / "mac …" / "vlan 100", link type Ethernet;
- every mix frame is there once, byte for byte as sent (a stripped VLAN tag put back, priority
  bits included; no FCS), on its queue; the 1522-byte tagged frame (1518 bytes + FCS) included;
- broadcast is on rxq0 (copies on other queues allowed, at most one each); a multicast frame only
  on the queues whose filter accepts it, else only on rxq0;
- the other frames are the fillers, on rxq0, in order;
- the --json figures match the file per queue (frames, bytes) and name the filters; drops 0.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_common  # noqa: E402
import traffic  # noqa: E402

MAC_A = "52:54:00:aa:00:01"
MAC_B = "52:54:00:aa:00:02"
MAC_M = "01:00:5e:00:00:fb"  # a multicast group with a queue of its own
VLAN = 100
# queue id -> (if_name, if_description, JSON filters), as `--mac A --mac B --mac M --vlan 100` makes them
QUEUES = {
    0: ("rxq0", "default", []),
    1: ("rxq1", f"mac {MAC_A}", [{"mac": MAC_A}]),
    2: ("rxq2", f"mac {MAC_B}", [{"mac": MAC_B}]),
    3: ("rxq3", f"mac {MAC_M}", [{"mac": MAC_M}]),
    4: ("rxq4", f"vlan {VLAN}", [{"vlan": VLAN}]),
}
COUNT = 20  # --count in scenarios.txt: the mix (13 frames) + room for broadcast copies and fillers


def payload(n, label):
    """A recognisable payload of n bytes: label, then a counting pattern."""
    body = label.encode()[:n]
    return body + bytes((i * 7 + len(label)) & 0xFF for i in range(n - len(body)))


def mix(guest, host):
    """[(name, frame, queue, copies_allowed)]: what the host sends and where it must land."""
    t = traffic.ETH_TEST
    f = []
    f.append(("unicast to mac A", traffic.ether(MAC_A, host, t, payload(50, "to-A")), 1, False))
    f.append(("unicast to mac B, 200 bytes", traffic.ether(MAC_B, host, t, payload(186, "to-B")), 2, False))
    f.append(("vlan 100 priority 5 to the NIC", traffic.vlan(guest, host, VLAN, t, payload(100, "vlan100-p5"), pcp=5), 4, False))
    # 1518 bytes without FCS = 1522 on the wire: the largest standard tagged frame.
    f.append(("vlan 100, 1522 bytes on the wire", traffic.vlan(guest, host, VLAN, t, payload(1518 - 18, "vlan100-max")), 4, False))
    f.append(("unknown unicast", traffic.ether("02:00:00:00:00:99", host, t, payload(60, "unknown")), 0, False))
    f.append(("broadcast", traffic.ether(traffic.BROADCAST, host, t, payload(80, "broadcast")), 0, True))
    f.append(("multicast to group M (its queue)", traffic.ether(MAC_M, host, t, payload(70, "mcast-M")), 3, False))
    f.append(("multicast no filter accepts", traffic.ether("01:00:5e:00:00:01", host, t, payload(70, "mcast-none")), 0, False))
    f.append(("multicast tagged vlan 100", traffic.vlan("33:33:00:00:00:01", host, VLAN, t, payload(90, "mcast-vlan100")), 4, False))
    f.append(("unicast to the NIC", traffic.ether(guest, host, t, payload(46, "to-nic")), 0, False))
    f.append(("vlan 200 to the NIC (no filter)", traffic.vlan(guest, host, 200, t, payload(64, "vlan200")), 0, False))
    f.append(("unicast to mac A, 1514 bytes", traffic.ether(MAC_A, host, t, payload(1500, "to-A-max")), 1, False))
    f.append(("IPv4/UDP to mac B", traffic.ether(MAC_B, host, traffic.ETH_IPV4,
                                                 traffic.udp("10.0.0.1", "10.0.0.2", 4000, 5000, payload(32, "udp"))), 2, False))
    return f


def filler(guest, host, seq):
    return traffic.test_frame(guest, host, seq, size=64, tag=b"FILLER00")


def done(ctx):
    try:
        return cli_common.exited(ctx) or os.path.getsize(os.path.join(ctx.out, "capture.json")) > 0
    except OSError:
        return False


def run(ctx):
    ctx.wait_ready()
    frames = mix(ctx.guest_mac, ctx.host_mac)
    ctx.send([f for _, f, _, _ in frames], pace=0.02)
    time.sleep(1.0)  # let every mix frame be written before the fillers come
    fillers = []
    # Slowly: a filler sent after the capture stopped waits in QEMU's socket and reaches the next
    # scenario's NIC. The JSON on stdout is the first sign the command is done.
    while not done(ctx) and len(fillers) < 30:
        fr = filler(ctx.guest_mac, ctx.host_mac, len(fillers))
        if ctx.port.send([fr], pace=0) == 1:
            fillers.append(fr)
        time.sleep(0.3)
    ctx.log(f"sent {len(fillers)} fillers")
    cli_common.wait_exit(ctx, timeout=30)
    check(ctx, frames, fillers)


def check(ctx, frames, fillers):
    path = os.path.join(ctx.out, "cap.pcapng")
    ctx.check(os.path.exists(path), "the guest wrote no cap.pcapng")
    ts = cli_common.tshark_frames(path)
    own = cli_common.read_pcapng(path)
    report = cli_common.guest_json(ctx, "capture.json")
    ctx.log(f"tshark read {len(ts)} frames; JSON {report}")

    # The file: exactly N frames, interfaces in queue-id order, named and described.
    ctx.check(len(ts) == COUNT, f"tshark reads {len(ts)} frames in cap.pcapng, --count was {COUNT}")
    ctx.check(len(own["packets"]) == COUNT, f"the pcapng has {len(own['packets'])} packet blocks, --count was {COUNT}")
    got_ifs = [(i["name"], i["description"]) for i in own["interfaces"]]
    want_ifs = [(n, d) for _, (n, d, _) in sorted(QUEUES.items())]
    ctx.check(got_ifs == want_ifs, f"interface blocks {got_ifs}, expected {want_ifs} (one per queue, in queue-id order)")
    ctx.check(all(i["linktype"] == 1 for i in own["interfaces"]), "an interface is not link type 1 (Ethernet)")
    ctx.check(all(i["tsresol"] == 9 for i in own["interfaces"]), "an interface has no nanosecond if_tsresol (9)")
    for n, (t, p) in enumerate(zip(ts, own["packets"])):
        ctx.check(t["bytes"] == p["bytes"], f"frame {n + 1}: tshark and our reader disagree on its bytes")
        ctx.check(t["len"] == t["cap_len"] == len(t["bytes"]), f"frame {n + 1}: len {t['len']} cap_len {t['cap_len']} (want both = the wire length)")
        name, desc, _ = QUEUES.get(t["interface_id"], ("?", "?", None))
        ctx.check((t["name"], t["description"]) == (name, desc),
                  f"frame {n + 1}: tshark names its interface {t['name']!r} ({t['description']!r}), expected {name!r} ({desc!r})")

    # Where each frame landed.
    seen = {}  # frame bytes -> [queue ids]
    for t in ts:
        seen.setdefault(t["bytes"], []).append(t["interface_id"])
    known = {f for _, f, _, _ in frames} | set(fillers)
    for t in ts:
        ctx.check(t["bytes"] in known, f"cap.pcapng holds a frame the host did not send (not byte-exact?): "
                                       f"rxq{t['interface_id']} {traffic.describe(t['bytes'])}")
    for name, f, queue, copies in frames:
        where = seen.get(f, [])
        ctx.check(queue in where, f"{name}: expected on rxq{queue}, found on {['rxq%d' % q for q in where] or 'no queue'} "
                                  f"({traffic.describe(f)})")
        extra = [q for q in where if q != queue]
        if copies:
            ctx.check(len(set(extra)) == len(extra) and 0 not in extra,
                      f"{name}: copies on {extra} (at most one per other queue allowed)")
        else:
            ctx.check(not extra, f"{name}: also on {['rxq%d' % q for q in extra]}; it must reach rxq{queue} only")
    # The rest are fillers on rxq0, in order, with nothing missing.
    got_fillers = [t for t in ts if t["bytes"] in set(fillers)]
    ctx.check(all(t["interface_id"] == 0 for t in got_fillers), "a filler frame (to the NIC's address) is not on rxq0")
    ctx.check([t["bytes"] for t in got_fillers] == fillers[:len(got_fillers)],
              "the filler frames are not the first fillers sent, in order")

    # JSON against the file.
    per_q = {q: [0, 0] for q in QUEUES}
    for t in ts:
        per_q.setdefault(t["interface_id"], [0, 0])
        per_q[t["interface_id"]][0] += 1
        per_q[t["interface_id"]][1] += t["len"]
    jq = {q["id"]: q for q in report.get("queues", [])}
    ctx.check(sorted(jq) == sorted(QUEUES), f"--json lists queues {sorted(jq)}, expected {sorted(QUEUES)}")
    for qid, (_, _, filters) in QUEUES.items():
        q = jq[qid]
        ctx.check(q["default"] == (qid == 0), f"--json queue {qid}: default is {q['default']}")
        ctx.check(q["filters"] == filters, f"--json queue {qid}: filters {q['filters']}, expected {filters}")
        ctx.check([q["frames"], q["bytes"]] == per_q[qid],
                  f"--json queue {qid}: {q['frames']} frames / {q['bytes']} bytes, the file holds {per_q[qid][0]} / {per_q[qid][1]}")
    ctx.check(report.get("drops") == 0, f"--json drops = {report.get('drops')}, expected 0")
    copies = len(ts) - len(frames) - len(got_fillers)
    ctx.log(f"verified: {len(frames)} mix frames on their queues, {copies} broadcast copies, "
            f"{len(got_fillers)} fillers; per queue {per_q}")
    with open(os.path.join(ctx.out, "verified.txt"), "w") as f:
        f.write(f"frames {len(ts)}; mix {len(frames)}; broadcast copies {copies}; fillers {len(got_fillers)}\n")
        for qid in sorted(per_q):
            f.write(f"rxq{qid}: {per_q[qid][0]} frames, {per_q[qid][1]} bytes\n")
