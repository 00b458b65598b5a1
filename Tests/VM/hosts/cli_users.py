"""Host side of cli-users: sends frames to the NIC once the in-group user's capture is ready, then
checks that it captured exactly --count of them, and that the outsider's refusal named the group
and the udev rule (the guest script checks the exit codes; this reads the files it left).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_common  # noqa: E402
import traffic  # noqa: E402

COUNT = 10  # --count in checks/cli-users.sh


def run(ctx):
    ctx.wait_ready(timeout=120)
    sent = 0
    while not cli_common.nonempty(ctx, "user.json") and not cli_common.exited(ctx) and sent < 60:
        if ctx.port.send([traffic.test_frame(ctx.guest_mac, ctx.host_mac, sent, size=64, tag=b"USERS000")], pace=0) == 1:
            sent += 1
        time.sleep(0.2)
    ctx.log(f"sent {sent} frames")
    cli_common.wait_exit(ctx, timeout=60)
    report = cli_common.guest_json(ctx, "user.json")
    frames = sum(q["frames"] for q in report["queues"])
    ctx.check(frames == COUNT, f"the in-group user's capture reports {frames} frames, --count was {COUNT}")
    own = cli_common.read_pcapng(os.path.join(ctx.out, "user.pcapng"))
    ctx.check(len(own["packets"]) == COUNT, f"user.pcapng holds {len(own['packets'])} frames, expected {COUNT}")
    with open(os.path.join(ctx.out, "outsider.err")) as f:
        err = f.read()
    ctx.check("group `miniport`" in err and "70-miniport-vfio.rules" in err,
              f"the outsider's refusal does not name the group and the rule: {err!r}")
