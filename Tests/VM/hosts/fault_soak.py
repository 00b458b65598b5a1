"""Host side of fault-soak (Docs/TESTBED.md "Fault soak"): the faults, step by step.

flood    3000 frames as fast as the socket takes them while the guest does not poll (RX overflow);
exhaust  600 frames while the guest's protocol holds every NBL (the pool runs dry), then 50 more
         after it returned them (they must all arrive);
churn    a stream to the churn queue's MAC while the guest allocates and frees it 200 times;
link     QMP set_link off, then on (the guest must see both and count its sends while down).
Each step: the guest writes at-STEP, the host does its part and writes STEP-done (frames delivered).
Then the guest's JSON is judged again here: counts consistent, nothing left after halt/close.
"""

import os
import threading
import time

import traffic

CHURN = "02:4d:50:00:0c:01"


def wait(ctx, name, timeout=120):
    hit = traffic.wait_for_file(os.path.join(ctx.out, name), timeout, abort_paths=[os.path.join(ctx.out, "exit")])
    if not hit.endswith(name):
        ctx.check(False, f"the guest exited before it wrote {name} (see its output)")


def done(ctx, name, value=0):
    with open(os.path.join(ctx.out, name), "w") as f:
        f.write(f"{value}\n")


def run(ctx):
    ctx.wait_ready()
    h, g = ctx.host_mac, ctx.guest_mac
    port = ctx.port

    wait(ctx, "at-flood")
    n = port.send([traffic.test_frame(g, h, i) for i in range(3000)], pace=0)
    ctx.log(f"flood: {n} of 3000 frames delivered to QEMU")
    done(ctx, "flood-done", n)

    wait(ctx, "at-exhaust")
    n = port.send([traffic.test_frame(g, h, 10000 + i) for i in range(600)], pace=0.0005)
    done(ctx, "exhaust-done", n)
    wait(ctx, "at-resume")
    n = port.send([traffic.test_frame(g, h, 20000 + i) for i in range(50)], pace=0.001)
    done(ctx, "resume-done", n)

    wait(ctx, "at-churn")
    stop = threading.Event()

    def stream():
        i = 0
        while not stop.is_set():
            port.send([traffic.test_frame(CHURN, h, 30000 + i)], pace=0.002)
            i += 1
    t = threading.Thread(target=stream, daemon=True)
    t.start()
    done(ctx, "churn-started")
    wait(ctx, "churn-end", timeout=300)
    stop.set()
    t.join(5)
    done(ctx, "churn-done")

    wait(ctx, "at-link")
    ctx.set_link(False)
    done(ctx, "link-off")
    wait(ctx, "at-link-on")
    ctx.set_link(True)
    done(ctx, "link-on")

    code = ctx.finish_guest(timeout=120, host_done=False)
    d = ctx.guest_json("fault-soak.json")
    for e in d["events"]:
        ctx.log("guest event " + e)
    ctx.check(code == 0 and d["ok"], f"the guest reported errors: {d['errors']}")
    f = d["flood"]
    ctx.check(f["received"] + f["nicDrops"] == f["sent"], f"flood: received {f['received']} + NIC drops {f['nicDrops']} != delivered {f['sent']}")
    x = d["exhaust"]
    ctx.check(0 < x["held"] < x["sent"], f"exhaustion: held {x['held']} of {x['sent']}: the pool never ran dry")
    ctx.check(x["resumeReceived"] == x["resumeSent"], f"exhaustion: {x['resumeReceived']} of {x['resumeSent']} frames after the return")
    c = d["churn"]
    ctx.check(c["failures"] == 0 and c["withOutstanding"] > 0 and c["queuesLeft"] == 1, f"churn: {c}")
    l = d["link"]
    ctx.check(l["downIndicated"] == 1 and l["upIndicated"] == 1, f"link: {l}")
    ctx.check(l["completedWhileDown"] == l["sentWhileDown"], f"link: {l}")
    ctx.check(d["liveDMARegionsAfterHalt"] == 0, f"{d['liveDMARegionsAfterHalt']} DMA regions after halt")
