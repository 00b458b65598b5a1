"""Host side of igb-interrupts: an idle queue sleeps on its MSI-X eventfd and wakes on a frame.

The guest runs the miniport with interrupts (GPIE multi-vector MSI-X, IVAR, EIAC, EITR) and sleeps
up to 2.5 s on the vectors' eventfds whenever 8 polls in a row find nothing. Here the host lets it
go idle, then sends one frame at a time, well apart, to queue A and to the default queue. Each
frame must end a sleep early (an interrupt, not the timeout) and be found by the next poll.
"""

import time

import igbhost
import traffic

A = "02:4d:50:00:0a:04"
GAP = 0.8


def run(ctx):
    ctx.wait_ready()
    time.sleep(1.5)  # idle: the guest is asleep on its eventfds
    h, g = ctx.host_mac, ctx.guest_mac
    cases = [("A #1", traffic.test_frame(A, h, 301), [A]),
             ("default", traffic.test_frame(g, h, 302), ["default"]),
             ("A #2", traffic.test_frame(A, h, 303), [A]),
             ("default #2", traffic.test_frame(g, h, 304, size=900), ["default"])]
    for c in cases:
        ctx.send([c[1]])
        time.sleep(GAP)
    d = igbhost.finish(ctx, "igb-traffic.json")
    igbhost.check_delivery(ctx, d, cases)
    ctx.check(d["usesInterrupts"], "the miniport did not set up MSI-X interrupts")
    vectors = {q["filter"]: q.get("vector") for q in d["queues"]}
    ctx.check(vectors.get(A) not in (None, 0), f"queue A has no MSI-X vector of its own: {vectors}")
    i = d["interrupts"]
    ctx.log(f"interrupts: {i}")
    ctx.check(i["framesFoundAfterWakeup"] == len(cases),
              f"{i['framesFoundAfterWakeup']} of {len(cases)} frames were found right after an interrupt "
              f"({i['framesFoundWhilePolling']} while polling, {i['wakeups']} wakeups, {i['timeouts']} timeouts)")
    ctx.check(i["wakeups"] >= len(cases), f"{i['wakeups']} wakeups for {len(cases)} frames")
    ctx.check(i["sleptMilliseconds"] > 1000 * GAP * len(cases) * 0.5,
              f"slept only {i['sleptMilliseconds']:.0f} ms of the idle time: the queue did not sleep")
    # Each frame was indicated right after a wakeup.
    late = []
    for f in igbhost.guest_frames(d):
        before = [w for w in i["wakeupAtMilliseconds"] if w <= f["atMilliseconds"]]
        if not before or f["atMilliseconds"] - before[-1] > 100:
            late.append(f["atMilliseconds"])
    ctx.check(not late, f"frames indicated without a wakeup just before them at {late} ms (wakeups {i['wakeupAtMilliseconds']})")
    polls_per_second = i["polls"] / (d["milliseconds"] / 1000)
    igbhost.summary(ctx, interrupts=i, vectors=vectors, pollsPerSecond=round(polls_per_second, 1),
                    wakeupToIndicateMilliseconds=[round(f["atMilliseconds"] - max(w for w in i["wakeupAtMilliseconds"] if w <= f["atMilliseconds"]), 3)
                                                  for f in igbhost.guest_frames(d)])
