#!/usr/bin/env python3
"""Test-bed self-test, guest side: transmits ONE frame from QEMU's igb through vfio-pci with a
20-line Python "driver" (one advanced TX descriptor), so the host can check it arrives.

    vfio-tx.py --device 0000:01:00.0 --dst 02:4d:50:00:00:fe --out DIR [--no-bus-master]

--no-bus-master deliberately skips enabling PCI bus mastering: the NIC then cannot read its
descriptor, nothing leaves, DD never comes back, and the scenario MUST fail (it is registered
with expect=fail, proving the test bed catches a broken driver step).

Writes DIR/ready just before the tail write. Exit 0 when the descriptor came back with DD.
"""

import argparse
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import traffic  # noqa: E402
import vfio_stub as vfio  # noqa: E402

# 82576 registers (datasheet 8.2 Transmit Register Descriptions, queue 0) and bits.
TCTL = 0x0400
TCTL_EN = 1 << 1
TCTL_PSP = 1 << 3
TDBAL0, TDBAH0, TDLEN0, TDH0, TDT0, TXDCTL0 = 0xE000, 0xE004, 0xE008, 0xE010, 0xE018, 0xE028
TXDCTL_ENABLE = 1 << 25
RAL0, RAH0 = 0x5400, 0x5404
# Advanced transmit data descriptor (datasheet 7.2.2.3): DTYP=0011, DCMD = EOP|IFCS|RS|DEXT.
ADV_DTYP_DATA = 0x3 << 20
DCMD_EOP, DCMD_IFCS, DCMD_RS, DCMD_DEXT = 1 << 24, 1 << 25, 1 << 27, 1 << 29
PAYLEN_SHIFT = 14
WB_DD = 1 << 0
RING = 8  # descriptors; TDLEN must be a multiple of 128 bytes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", required=True)
    ap.add_argument("--dst", required=True, help="destination MAC of the frame (the host's)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--no-bus-master", action="store_true")
    a = ap.parse_args()

    d = vfio.Device(a.device)
    d.reset()
    cmd = d.set_command_bits(vfio.PCI_COMMAND_MEMORY | (0 if a.no_bus_master else vfio.PCI_COMMAND_MASTER))
    print(f"PCI command 0x{cmd:04x} (bus master {'OFF, on purpose' if a.no_bus_master else 'on'})", flush=True)
    regs = d.map_bar(vfio.BAR0)
    ral, rah = regs[RAL0 // 4], regs[RAH0 // 4]
    src = struct.pack("<IH", ral, rah & 0xFFFF)

    mem, iova = d.dma(2 * 4096)
    ring_iova, buf_iova = iova, iova + 4096
    frame = traffic.test_frame(a.dst, src, 0x5A5A, size=128, tag=b"VFIOTX")
    mem[4096:4096 + len(frame)] = frame
    mem[0:RING * 16] = bytes(RING * 16)
    desc = struct.pack("<QII", buf_iova,
                       len(frame) | ADV_DTYP_DATA | DCMD_EOP | DCMD_IFCS | DCMD_RS | DCMD_DEXT,
                       len(frame) << PAYLEN_SHIFT)
    mem[0:16] = desc

    regs[TDBAL0 // 4] = ring_iova & 0xFFFFFFFF
    regs[TDBAH0 // 4] = ring_iova >> 32
    regs[TDLEN0 // 4] = RING * 16
    regs[TDH0 // 4] = 0
    regs[TDT0 // 4] = 0
    regs[TXDCTL0 // 4] = regs[TXDCTL0 // 4] | TXDCTL_ENABLE
    regs[TCTL // 4] = regs[TCTL // 4] | TCTL_EN | TCTL_PSP

    open(os.path.join(a.out, "ready"), "w").close()
    regs[TDT0 // 4] = 1  # QEMU transmits synchronously inside this write
    deadline = time.monotonic() + 2
    status = 0
    while time.monotonic() < deadline:
        status = struct.unpack_from("<I", mem, 12)[0]
        if status & WB_DD:
            break
        time.sleep(0.01)
    tdh = regs[TDH0 // 4]
    done = bool(status & WB_DD)
    print(f"queued {traffic.describe(frame)}", flush=True)
    print(f"TDH={tdh}, write-back status 0x{status:08x}: DD {'set' if done else 'NOT set'}", flush=True)
    traffic.write_pcap(os.path.join(a.out, "guest-sent.pcap"), [(time.time(), frame)])
    while "host-done" not in os.listdir(a.out):
        time.sleep(0.05)
    d.unmap(iova, 2 * 4096)
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
