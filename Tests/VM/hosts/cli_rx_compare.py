"""Host side of cli-rx-compare: the same COUNT frames offered to (b) the Linux kernel's igb driver
with an AF_PACKET receiver and (a) miniport's IGB miniport through vfio (`miniport capture`), on
igb0 (issue 9 item 4; Docs/BENCHMARKS.md "In the VM").

For each receiver the host sends COUNT 64-byte test frames as fast as QEMU takes them (pace 0: a
unix datagram socket blocks while the NIC has no free descriptor, so the host is held to the
receive rate) and reports:
- offered rate: COUNT / the host's time to hand every frame to QEMU (driver + emulation; a few
  hundred frames may still sit in the socket buffer at the end);
- receiver rate: (frames - 1) / (last - first frame) as the receiving program saw them
  (afpacket_rx.py's own clock; for miniport the pcapng's per-frame timestamps);
- frames received (both must get all COUNT).
It writes compare.json and compare.txt in the scenario directory. Under TCG both rates are bounded
by QEMU's emulation of the NIC and the CPU, not by either driver: the ratio says which loses less.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_common  # noqa: E402
import traffic  # noqa: E402

COUNT = 10000  # the fourth argument of cli-rx-compare.sh in scenarios.txt


def offer(ctx, frames):
    t0 = time.monotonic()
    ctx.send(frames, pace=0)
    return time.monotonic() - t0


def run(ctx):
    frames = [traffic.test_frame(ctx.guest_mac, ctx.host_mac, seq, size=64) for seq in range(COUNT)]
    results = {"count": COUNT, "frameBytes": 64, "note": "TCG: both rates are bounded by QEMU's emulation, not by either driver"}

    cli_common.wait_file(ctx, "kernel-ready", timeout=120)
    time.sleep(0.2)
    k_secs = offer(ctx, frames)
    cli_common.wait_file(ctx, "kernel.json", timeout=60)
    k = cli_common.guest_json(ctx, "kernel.json")
    results["kernel"] = {"receiver": "Linux igb + AF_PACKET (afpacket_rx.py)", "frames": k["frames"],
                         "offeredSeconds": round(k_secs, 4), "offeredPerSecond": round(COUNT / k_secs),
                         "receiverPerSecond": k["packetsPerSecond"], "kernelDrops": k["kernelDrops"]}
    ctx.log(f"kernel: {results['kernel']}")

    cli_common.wait_file(ctx, "miniport-ready", timeout=120)
    m_secs = offer(ctx, frames)
    cli_common.wait_nonempty(ctx, "miniport.json", timeout=60)
    m = cli_common.guest_json(ctx, "miniport.json")
    pcap = cli_common.read_pcapng(os.path.join(ctx.out, "miniport.pcapng"))["packets"]
    span = (pcap[-1]["time_ns"] - pcap[0]["time_ns"]) / 1e9 if len(pcap) > 1 else 0
    in_order = all(p["bytes"] == f for p, f in zip(pcap, frames))
    results["miniport"] = {"receiver": "miniport capture (IGB miniport through vfio, debug build)",
                           "frames": m["queues"][0]["frames"], "offeredSeconds": round(m_secs, 4),
                           "offeredPerSecond": round(COUNT / m_secs),
                           "receiverPerSecond": round((len(pcap) - 1) / span, 1) if span > 0 else None,
                           "drops": m["drops"], "inOrderByteExact": in_order}
    ctx.log(f"miniport: {results['miniport']}")

    # miniport bench --device --mode receive: a 3 s window; keep the NIC busy until it is over.
    cli_common.wait_nonempty(ctx, "miniport.json", timeout=60)
    chunk = frames[:256]
    offered = 0
    while not cli_common.nonempty(ctx, "bench.json") and not cli_common.exited(ctx):
        offered += ctx.port.send(chunk, pace=0)  # stalls (2 s) while the NIC is not up yet: fine
    code = cli_common.wait_exit(ctx, timeout=90)
    b = cli_common.guest_json_object(ctx, "bench.json")["receive"]
    results["miniportBench"] = {"receiver": "miniport bench --device --mode receive (IGB miniport through vfio, debug build)",
                                "packetsPerSecond": b["packetsPerSecond"], "packets": b["packets"],
                                "seconds": b["seconds"], "cyclesPerPacket": b["cyclesPerPacket"],
                                "idlePolls": b["idlePolls"], "tscHz": b["tscHz"], "hostOffered": offered}
    ctx.log(f"miniport bench: {results['miniportBench']}")
    results["ratio"] = {
        "offered": round(results["miniport"]["offeredPerSecond"] / results["kernel"]["offeredPerSecond"], 3),
        "bench": round(results["miniportBench"]["packetsPerSecond"] / results["kernel"]["offeredPerSecond"], 3),
        "receiver": (round(results["miniport"]["receiverPerSecond"] / results["kernel"]["receiverPerSecond"], 3)
                     if results["miniport"]["receiverPerSecond"] and results["kernel"]["receiverPerSecond"] else None),
    }
    with open(os.path.join(ctx.out, "compare.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(ctx.out, "compare.txt"), "w") as f:
        for side in ("kernel", "miniport"):
            r = results[side]
            f.write(f"{side:8}  frames {r['frames']:6} of {COUNT}  offered {r['offeredPerSecond']:7} /s  receiver {r['receiverPerSecond']} /s\n")
        mb = results["miniportBench"]
        f.write(f"miniport bench --device receive: {mb['packetsPerSecond']} /s over {mb['seconds']} s, "
                f"{mb['cyclesPerPacket']} cycles/packet (idle polls included)\n")
        f.write(f"ratio miniport/kernel: offered {results['ratio']['offered']}, receiver {results['ratio']['receiver']}, "
                f"bench/kernel offered {results['ratio']['bench']}\n")
        f.write(results["note"] + "\n")
    ctx.log(f"ratio: {results['ratio']}")

    ctx.check(code == 0, f"cli-rx-compare.sh exited {code} (see guest.log)")
    # The kernel path's losses are reported, not judged (they are not this project's driver), as
    # long as it ran at all; miniport must receive every frame.
    ctx.check(k["frames"] >= COUNT * 9 // 10, f"the kernel path received only {k['frames']} of {COUNT} frames "
                                              f"(kernel drops {k['kernelDrops']}; see kernel-stats.txt)")
    ctx.check(results["miniport"]["frames"] == COUNT and len(pcap) == COUNT,
              f"miniport received {results['miniport']['frames']} of {COUNT} frames ({len(pcap)} in the file)")
    ctx.check(in_order, "miniport's capture is not the frames sent, in order, byte for byte")
    ctx.check(b["packets"] > 0, "miniport bench --device received nothing in its window")
