"""Host side of selftest-vfio-tx / selftest-no-bus-master: the frame the guest's stand-in driver
transmits must come out of the NIC, byte for byte."""

import traffic


def run(ctx):
    ctx.wait_ready()
    got = ctx.expect_frames(1, timeout=5, what="VFIOTX frames", match=lambda f: f[14:20] == b"VFIOTX")
    f = got[0]
    ctx.check(f[0:6] == traffic.mac(ctx.host_mac), f"sent to {traffic.mac_str(f[0:6])}, not {ctx.host_mac}")
    ctx.check(f[6:12] == traffic.mac(ctx.guest_mac), f"sent from {traffic.mac_str(f[6:12])}, not {ctx.guest_mac}")
    ctx.check(len(f) == 128, f"length {len(f)}, expected 128")
