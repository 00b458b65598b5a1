"""Host side of igb-workers: the IGB miniport's per-queue receive workers on QEMU's igb.

The guest runs `igb-traffic --workers` (IGBConfiguration.receiveWorkers, MSI-X): one thread per
receive ring, queue A's worker pinned to CPU 0, queue B's to CPU 1, the default queue's to CPU 0;
an idle worker sleeps up to 2.5 s on its vector's eventfd. The guest samples the workers' counters
every 100 ms and records the thread id and CPU that indicated each frame.

Here: let the workers go idle, then send single frames well apart (A, B, own address, twice), then
a burst of 8 for A and 8 for B interleaved. Asserted: A's frames on A and B's on B, each indicated
on its own queue's worker thread on the worker's CPU; while idle no worker polls (it sleeps on its
eventfd) and each single frame wakes the worker of its queue; halt joins every worker (no worker
listed, no thread left in the process), leaves no DMA region and, after close, no VFIO resource.
"""

import time

import igbhost
import traffic
from testbed import Failure

A = "02:4d:50:00:0a:06"
B = "02:4d:50:00:0b:06"
IDLE = 1.5
GAP = 0.5
# An idle worker polls workerIdlePollsBeforeSleep (64) + 1 times per sleep of up to 2.5 s; a
# worker that never sleeps polls thousands of times per second even under TCG.
IDLE_POLLS_PER_SECOND_MAX = 200


def run(ctx):
    ctx.wait_ready()
    time.sleep(IDLE)
    h, g = ctx.host_mac, ctx.guest_mac
    singles = [("A #1", traffic.test_frame(A, h, 601), [A]),
               ("B #1", traffic.test_frame(B, h, 602), [B]),
               ("default #1", traffic.test_frame(g, h, 603), ["default"]),
               ("A #2", traffic.test_frame(A, h, 604, size=900), [A]),
               ("B #2", traffic.test_frame(B, h, 605, size=1514), [B]),
               ("default #2", traffic.test_frame(g, h, 606), ["default"])]
    for c in singles:
        ctx.send([c[1]])
        time.sleep(GAP)
    burst = []
    for i in range(8):
        burst.append((f"A burst {i}", traffic.test_frame(A, h, 700 + i), [A]))
        burst.append((f"B burst {i}", traffic.test_frame(B, h, 800 + i), [B]))
    ctx.send([c[1] for c in burst])
    time.sleep(GAP)
    d = igbhost.finish(ctx, "igb-traffic.json")
    igbhost.check_delivery(ctx, d, singles + burst)

    ctx.check(d["usesInterrupts"], "the miniport did not set up MSI-X interrupts")
    w = d.get("workers")
    if not w:
        raise Failure("the guest wrote no workers report: did it run with --workers?")
    names = igbhost.queue_names(d)
    workers = {names.get(x["queue"], f"slot {x['slot']}"): x for x in w["workers"]}
    ctx.log(f"workers: {w['workers']}")
    ctx.check(sorted(workers) == sorted(["default", A, B]), f"expected one worker each for default, A and B, got {sorted(workers)}")
    want_cpu = {"default": 0, A: 0, B: 1}
    for name, cpu in want_cpu.items():
        x = workers.get(name)
        if x:
            ctx.check(x["pinnedCPUs"] == [cpu], f"worker of {name} pinned to {x['pinnedCPUs']} ({x.get('pinningProblem')}), expected [{cpu}]")
    tids = [x["threadID"] for x in workers.values()]
    ctx.check(len(set(tids)) == len(tids) and 0 not in tids, f"workers do not each have a thread of their own: {tids}")

    # Each frame was indicated on its queue's worker thread, on that worker's CPU.
    wrong = []
    for f in igbhost.guest_frames(d):
        name = names.get(f["queue"])
        x = workers.get(name)
        if x is None or f.get("thread") != x["threadID"] or f.get("cpu") != want_cpu.get(name):
            wrong.append(f"{name} at {f['atMilliseconds']:.0f} ms: thread {f.get('thread')} cpu {f.get('cpu')}"
                         f" (worker {x and x['threadID']}, cpu {want_cpu.get(name)})")
    ctx.check(not wrong, f"{len(wrong)} frames indicated off their queue's worker: {wrong[:4]}")

    # Idle: from 300 ms after ready to the last sample before the first frame, no worker polls.
    samples = w["samples"]
    slot_of = {name: x["slot"] for name, x in workers.items()}

    def counters(sample, slot):
        for c in sample["counters"]:
            if c[0] == slot:
                return {"polls": c[1], "eventWaits": c[2], "wakeups": c[3]}
        return None

    frames = sorted(igbhost.guest_frames(d), key=lambda f: f["atMilliseconds"])
    first_at = frames[0]["atMilliseconds"] if frames else float("inf")
    idle = [s for s in samples if s["atMilliseconds"] >= samples[0]["atMilliseconds"] + 300 and s["atMilliseconds"] < first_at - 50]
    idle_rates = {}
    if len(idle) < 5:
        ctx.check(False, f"only {len(idle)} samples in the idle window before the first frame (at {first_at} ms): cannot tell whether the workers slept")
    else:
        span = (idle[-1]["atMilliseconds"] - idle[0]["atMilliseconds"]) / 1000
        for name, slot in slot_of.items():
            a, b = counters(idle[0], slot), counters(idle[-1], slot)
            if a is None or b is None:
                ctx.check(False, f"no samples of the worker of {name} in the idle window")
                continue
            rate = (b["polls"] - a["polls"]) / span
            idle_rates[name] = round(rate, 1)
            ctx.check(b["eventWaits"] >= 1, f"the worker of {name} never slept on its eventfd while idle ({b})")
            ctx.check(rate < IDLE_POLLS_PER_SECOND_MAX, f"the worker of {name} polled {rate:.0f} times/s while idle: it does not sleep on its eventfd")

    # Each single frame woke its queue's worker: its wakeups grew between the sample 50 ms before the
    # frame was indicated and the first sample after.
    not_woken, woken_others = [], 0
    singles_seen = [f for f in frames if f["raw"] in {igbhost.strip_vlan(c[1])[0] for c in singles}]
    for f in singles_seen:
        name = names.get(f["queue"])
        before = [s for s in samples if s["atMilliseconds"] < f["atMilliseconds"] - 50]
        after = [s for s in samples if s["atMilliseconds"] > f["atMilliseconds"]]
        if not before or not after:
            not_woken.append(f"{name} at {f['atMilliseconds']:.0f} ms: no samples around it")
            continue
        a, b = counters(before[-1], slot_of[name]), counters(after[0], slot_of[name])
        if b["wakeups"] <= a["wakeups"]:
            not_woken.append(f"{name} at {f['atMilliseconds']:.0f} ms: wakeups {a['wakeups']} -> {b['wakeups']}")
        for other, slot in slot_of.items():
            if other != name and counters(after[0], slot)["wakeups"] > counters(before[-1], slot)["wakeups"]:
                woken_others += 1
    ctx.check(len(singles_seen) == len(singles), f"{len(singles_seen)} of {len(singles)} single frames seen")
    ctx.check(not not_woken, f"single frames that did not wake their worker: {not_woken}")

    # Halt joined every worker and left nothing (the guest also checks DMA regions and VFIO resources).
    ctx.check(w["workersAfterHalt"] == 0, f"{w['workersAfterHalt']} workers listed after halt")
    ctx.check(not w["threadsLeftAfterHalt"], f"worker threads left after halt: {w['threadsLeftAfterHalt']}")
    ctx.check(d["haltClean"], f"halt was not clean: {d['halt']}")
    ctx.check(d["liveDMARegionsAfterHalt"] == 0, f"{d['liveDMARegionsAfterHalt']} DMA regions after halt")
    ctx.check(d.get("resourcesAfterClose") is not None, "the guest did not report its VFIO resources after close")

    final = {name: {k: workers[name][k] for k in ("threadID", "lastCPU", "polls", "busyPolls", "eventWaits", "wakeups")}
             for name in workers}
    igbhost.summary(ctx, framesPerQueue=d["framesPerQueue"], workers=final, idlePollsPerSecond=idle_rates,
                    otherWorkersWokenAroundSingles=woken_others, resourcesAfterClose=d.get("resourcesAfterClose"),
                    milliseconds=d["milliseconds"])
