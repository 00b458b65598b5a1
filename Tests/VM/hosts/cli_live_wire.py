"""Host side of cli-live-wire: `miniport capture` starting on a busy wire (issue 12 item 1).

The host sends a cyclic frame mix -- unicast to MAC A and MAC B (each a VMQ queue), VLAN 100
(a software queue), broadcast, multicast, unknown unicast and frames for the NIC itself -- and
keeps sending from BEFORE the guest command runs (it writes wire-busy after the first frames are
queued at the NIC; the guest script waits for that file) until the capture has written its JSON.
Then every frame in cap.pcapng is judged by its queue (pcapng interface rxq<id>):
- to MAC A on rxq1, to MAC B on rxq2, tagged VLAN 100 on rxq3, everything else on rxq0
  (broadcast may also be copied to the MAC queues, at most once each; a multicast only on rxq0);
- every frame is one the host sent, byte for byte;
- some frames the host sent before the command ran are in the capture (the wire really was busy
  and QEMU delivered them at RCTL.EN), and they too are on their queues;
- multicast frames are captured (the packet filter was set before receive started).
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_common  # noqa: E402
import traffic  # noqa: E402

MAC_A = "52:54:00:aa:00:01"
MAC_B = "52:54:00:aa:00:02"
VLAN = 100
COUNT = 150  # --count in checks/live-wire.sh
KINDS = ["mac A", "mac B", "vlan 100", "broadcast", "multicast", "unknown unicast", "to the NIC", "vlan 100 stranger"]
QUEUE = {"mac A": 1, "mac B": 2, "vlan 100": 3, "vlan 100 stranger": 3}


def frame(kind, seq, guest, host):
    body = b"LIVEWIRE" + seq.to_bytes(4, "big") + kind.encode()
    body += bytes((i * 5 + seq) & 0xFF for i in range(64))
    t = traffic.ETH_TEST
    if kind == "mac A":
        return traffic.ether(MAC_A, host, t, body)
    if kind == "mac B":
        return traffic.ether(MAC_B, host, t, body)
    if kind == "vlan 100":
        return traffic.vlan(guest, host, VLAN, t, body)
    if kind == "vlan 100 stranger":
        return traffic.vlan("02:00:00:00:00:99", host, VLAN, t, body)
    if kind == "broadcast":
        return traffic.ether(traffic.BROADCAST, host, t, body)
    if kind == "multicast":
        return traffic.ether("01:00:5e:00:00:01", host, t, body)
    if kind == "unknown unicast":
        return traffic.ether("02:00:00:00:00:99", host, t, body)
    return traffic.ether(guest, host, t, body)


def run(ctx):
    guest, host = ctx.guest_mac, ctx.host_mac
    sent = {}  # frame bytes -> (kind, seq, time sent)
    stop = threading.Event()
    state = {"attempts": 0, "before": set()}
    busy = os.path.join(ctx.out, "wire-busy")
    ready = os.path.join(ctx.out, "ready")

    began = time.monotonic()

    def sender():
        seq = 0
        while not stop.is_set():
            kind = KINDS[seq % len(KINDS)]
            f = frame(kind, seq, guest, host)
            # One frame per call: while the NIC cannot receive, QEMU stops reading its socket and a
            # call waits for the socket's timeout; the next one tries again.
            if ctx.port.send([f], pace=0) == 1:
                sent[bytes(f)] = (kind, seq, time.monotonic())
                if not os.path.exists(ready):
                    state["before"].add(bytes(f))
            state["attempts"] += 1
            seq += 1
            if (state["attempts"] >= 14 or time.monotonic() - began > 3) and not os.path.exists(busy):
                open(busy, "w").close()
                ctx.log(f"wire busy: {len(sent)} frames queued at the NIC before the guest command ran")
            time.sleep(0.004)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not cli_common.nonempty(ctx, "capture.json") and not cli_common.exited(ctx):
        time.sleep(0.1)
    stop.set()
    t.join(timeout=10)
    open(os.path.join(ctx.out, "host-stopped"), "w").close()
    ctx.log(f"sent {len(sent)} frames ({state['attempts']} attempts), {len(state['before'])} before the guest's ready file")
    cli_common.wait_exit(ctx, timeout=60, host_done=False)
    check(ctx, sent, state["before"])


def check(ctx, sent, before):
    path = os.path.join(ctx.out, "cap.pcapng")
    ctx.check(os.path.exists(path), "the guest wrote no cap.pcapng")
    own = cli_common.read_pcapng(path)
    packets = own["packets"]
    names = [i["name"] for i in own["interfaces"]]
    ctx.check(names == ["rxq0", "rxq1", "rxq2", "rxq3"], f"interfaces {names}, expected rxq0..rxq3")
    ctx.check(len(packets) == COUNT, f"the capture holds {len(packets)} frames, --count was {COUNT}")
    wrong, copies, unknown = [], {}, 0
    kinds_seen = {}
    early = 0
    for n, p in enumerate(packets):
        b = bytes(p["bytes"])
        q = p["interface"]
        if b not in sent:
            unknown += 1
            wrong.append(f"frame {n + 1} on rxq{q} is not one the host sent: {traffic.describe(b)}")
            continue
        kind, seq, _ = sent[b]
        kinds_seen[kind] = kinds_seen.get(kind, 0) + 1
        if b in before:
            early += 1
        want = QUEUE.get(kind, 0)
        if kind == "broadcast" and q != 0:
            copies.setdefault(b, []).append(q)
            continue
        if q != want:
            wrong.append(f"frame {n + 1} ({kind} #{seq}{', sent before the capture was ready' if b in before else ''}) on rxq{q}, belongs on rxq{want}")
    for b, qs in copies.items():
        if len(set(qs)) != len(qs) or 3 in qs:
            wrong.append(f"broadcast #{sent[b][1]} copied to {qs} (at most once to each MAC queue)")
    ctx.log(f"per kind {kinds_seen}; {early} captured frames were sent before the capture was ready")
    ctx.check(not wrong, f"{len(wrong)} frame(s) on the wrong queue: " + "; ".join(wrong[:6]))
    ctx.check(early > 0, "no frame sent before the capture was ready reached it: the wire was not busy when it started")
    ctx.check(kinds_seen.get("multicast", 0) > 0, "no multicast frame was captured")
    for k in ["mac A", "mac B", "vlan 100"]:
        ctx.check(kinds_seen.get(k, 0) > 0, f"no '{k}' frame was captured")
    with open(os.path.join(ctx.out, "verified.txt"), "w") as f:
        f.write(f"{len(packets)} frames judged by queue, 0 wrong; {early} sent before the capture was ready; per kind {kinds_seen}\n")
