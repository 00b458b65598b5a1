"""Host side of selftest-missing-reply: expects an answer the guest never sends (so it must fail)."""

import traffic


def run(ctx):
    ctx.wait_ready()
    ctx.send([traffic.test_frame(ctx.guest_mac, ctx.host_mac, 1)])
    ctx.expect_frames(1, timeout=3, what="replies", match=lambda f: f[12:14] == b"\x88\xb5")
