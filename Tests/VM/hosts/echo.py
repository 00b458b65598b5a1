"""Host side of selftest-kernel-echo: 8 numbered test frames in, 8 echoes out, same payloads."""

import traffic

COUNT = 8


def run(ctx):
    ctx.wait_ready()
    frames = [traffic.test_frame(ctx.guest_mac, ctx.host_mac, seq, size=64 + 100 * seq) for seq in range(COUNT)]
    ctx.send(frames)
    echoes = ctx.expect_frames(COUNT, timeout=10, what="echoes",
                               match=lambda f: f[12:14] == b"\x88\xb5" and f[0:6] == traffic.mac(ctx.host_mac))
    for seq, (sent, echo) in enumerate(zip(frames, echoes)):
        ctx.check(echo[6:12] == traffic.mac(ctx.guest_mac), f"echo {seq} comes from {traffic.mac_str(echo[6:12])}")
        ctx.check(echo[12:] == sent[12:], f"echo {seq} differs from frame {seq}: {traffic.describe(echo)}")
