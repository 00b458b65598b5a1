"""Host side of igb-packet-filter: OID_GEN_CURRENT_PACKET_FILTER per setting on QEMU's igb (issue 12 item 2).

The guest (VMScenarios igb-packet-filter) sets one NDIS packet filter after another on the IGB
miniport through vfio, with the multicast list holding one group and a VMQ queue whose filter is
MAC Q. For each step N it writes step-N; the host then sends its mix, each frame tagged "PF<N>":
the NIC's own address, an unknown unicast, broadcast, the listed group, an unlisted group and MAC Q,
and writes sent-N. Per step the guest reports every frame it received with its queue. Checked:
- exactly the kinds the setting admits arrived, and nothing else (NDIS: directed = the NIC's
  address, or on the VMQ queue its own MAC Q; multicast = the list; all-multicast = every group;
  broadcast; promiscuous = everything);
- MAC Q only ever on the VMQ queue; the NIC's own address and unknown unicast only on the default
  queue; broadcast and the listed group on the default queue (copies on the VMQ queue allowed,
  VMOLR.BAM / ROMPE);
- the halt was clean.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_common  # noqa: E402
import traffic  # noqa: E402

QUEUE_MAC = "02:4d:50:00:0a:07"
GROUP = "01:00:5e:00:00:01"
OTHER_GROUP = "01:00:5e:00:00:02"
UNKNOWN = "02:4d:50:00:0c:07"
DIRECTED, MULTICAST, ALL_MULTICAST, BROADCAST, PROMISCUOUS = 0x1, 0x2, 0x4, 0x8, 0x20
STEPS = 8  # IGBPacketFilter.settings
KINDS = ["own address", "unknown unicast", "broadcast", "listed group", "unlisted group", "queue MAC"]


def expected(f):
    if f & PROMISCUOUS:
        return set(KINDS)
    k = set()
    if f & DIRECTED:
        k |= {"own address", "queue MAC"}
    if f & BROADCAST:
        k.add("broadcast")
    if f & (MULTICAST | ALL_MULTICAST):
        k.add("listed group")
    if f & ALL_MULTICAST:
        k.add("unlisted group")
    return k


def mix(n, guest, host):
    dst = {"own address": guest, "unknown unicast": UNKNOWN, "broadcast": traffic.BROADCAST,
           "listed group": GROUP, "unlisted group": OTHER_GROUP, "queue MAC": QUEUE_MAC}
    return [(k, traffic.ether(dst[k], host, traffic.ETH_TEST, f"PF{n:02d}-{k}".encode() + bytes(40))) for k in KINDS]


def run(ctx):
    sent = []
    for n in range(STEPS):
        step = os.path.join(ctx.out, f"step-{n}")
        try:
            hit = traffic.wait_for_file(step, 90, abort_paths=[os.path.join(ctx.out, "exit")])
        except TimeoutError:
            raise cli_common.Failure(f"the guest did not write step-{n}") from None
        ctx.check(hit == step, f"the guest exited before step {n} (see guest.log)")
        frames = mix(n, ctx.guest_mac, ctx.host_mac)
        ctx.send([f for _, f in frames], pace=0.01)
        sent.append(frames)
        time.sleep(0.2)
        open(os.path.join(ctx.out, f"sent-{n}"), "w").close()
    cli_common.wait_exit(ctx, timeout=60, host_done=False)
    d = ctx.guest_json("igb-packet-filter.json")
    ctx.check(d.get("ok"), f"the guest reports errors: {d.get('errors')}")
    ctx.check(len(d["steps"]) == STEPS, f"the guest walked {len(d['steps'])} settings, expected {STEPS}")
    q = d["queue"]
    problems = []
    for n, (step, frames) in enumerate(zip(d["steps"], sent)):
        f = step["filter"]
        by_bytes = {bytes(b): k for k, b in frames}
        got = {}
        for r in step["frames"]:
            b = bytes.fromhex(r["bytes"])
            kind = by_bytes.get(b)
            if kind is None:
                problems.append(f"filter 0x{f:x}: a frame the host did not send in this step: {traffic.describe(b)}")
                continue
            got.setdefault(kind, []).append(r["queue"])
        want = expected(f)
        if set(got) != want:
            problems.append(f"filter 0x{f:x}: received {sorted(got)}, NDIS says {sorted(want)}")
        for kind, queues in got.items():
            home = q if kind == "queue MAC" else 0
            allowed = {0, q} if kind in ("broadcast", "listed group", "unlisted group") else {home}
            if home not in queues or not set(queues) <= allowed or len(queues) != len(set(queues)):
                problems.append(f"filter 0x{f:x}: {kind} on queues {queues}, expected on {home} (copies allowed on {sorted(allowed)})")
        ctx.log(f"filter 0x{f:x}: {sorted((k, v) for k, v in got.items())}; framework rejects {step['packetFilterRejects']}")
    ctx.check(not problems, "; ".join(problems[:6]))
    ctx.check(d.get("haltClean"), f"halt: {d.get('halt')}")
    with open(os.path.join(ctx.out, "verified.txt"), "w") as out:
        out.write(f"{STEPS} packet filter settings, each delivered exactly its kinds\n")
