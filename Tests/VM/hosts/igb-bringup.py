"""Host side of igb-bringup: the IGB miniport's bring-up through vfio on QEMU's igb.

The guest traces every register access of the bring-up (VMScenarios igb-traffic --trace-bringup)
and checks the datasheet's order (§4.5); here: frames flow (echoed byte for byte, which needs the
link raised by the PHY autonegotiation restart), then the trace, the link, a clean halt and no
VFIO resource left (DMA regions 0) are asserted on the guest's JSON.
"""

import igbhost
import traffic

COUNT = 6


def run(ctx):
    ctx.wait_ready()
    host = traffic.mac(ctx.host_mac)
    frames = [traffic.test_frame(ctx.guest_mac, ctx.host_mac, seq, size=64 + 250 * seq) for seq in range(COUNT)]
    ctx.send(frames)
    echoes = ctx.expect_frames(COUNT, timeout=10, what="echoes",
                               match=lambda f: f[12:14] == b"\x88\xb5" and f[0:6] == host)
    for seq, (sent, echo) in enumerate(zip(frames, echoes)):
        ctx.check(echo[6:12] == traffic.mac(ctx.guest_mac), f"echo {seq} comes from {traffic.mac_str(echo[6:12])}")
        ctx.check(echo[12:] == sent[12:], f"echo {seq} differs from frame {seq}: {traffic.describe(echo)}")

    d = igbhost.finish(ctx, "igb-traffic.json")
    b = d.get("bringUp") or {}
    ctx.check(not b.get("errors"), f"bring-up order: {b.get('errors')}")
    names = [s["name"] for s in b.get("steps", [])]
    ctx.check(len(names) == 19, f"bring-up trace found {len(names)} of 19 datasheet steps: {names}")
    for s in b["steps"]:
        ctx.log(f"  {s['atMilliseconds']:9.1f} ms  #{s['access']:<6} {s['name']}  ({s['register']} = {s['value']})")
    ctx.check(d["link"].startswith("up"), f"link after bring-up: {d['link']}")
    ctx.check(d["haltClean"], f"halt: {d['halt']}")
    ctx.check(d["liveDMARegionsAfterHalt"] == 0, f"{d['liveDMARegionsAfterHalt']} DMA regions left after halt")
    ctx.check(d.get("resourcesAfterClose", "").startswith("fds 0, BAR mappings 0, DMA regions 0"),
              f"VFIO resources after close: {d.get('resourcesAfterClose')}")
    ctx.check(d["framesPerQueue"] == {"0": COUNT}, f"frames per queue {d['framesPerQueue']}, expected {COUNT} on the default queue")
    ctx.check(d["echoed"] == COUNT and d["sendSuccesses"] == COUNT,
              f"echoed {d['echoed']}, completions {d['sendCompletions']}")
    igbhost.summary(ctx, bringUpMilliseconds=round(d["bringUpMilliseconds"], 1),
                    linkUpAfterAutonegMilliseconds=round(b.get("linkUpAfterAutonegMilliseconds") or -1, 1),
                    registerReads=b.get("reads"), registerWrites=b.get("writes"),
                    eepromAutoReadDone=d["eepromAutoReadDone"], link=d["link"], echoed=d["echoed"],
                    halt=d["halt"], resourcesAfterClose=d.get("resourcesAfterClose"))
