#!/usr/bin/env python3
"""Stand-in VFIO smoke check, run in the guest: proves the test bed hands out a NIC that vfio can
drive, independently of the project's Swift VFIO module.

    vfio-check.py --device 0000:01:00.0 [--mac 52:54:00:4d:50:01] --out DIR

Checks, in order: bound to vfio-pci, /dev/vfio/<group> exists, container API version and the
type-1 IOMMU extension, group viable, device fd, config space ids equal sysfs, device reset,
BAR0 mmap (Intel NICs: STATUS readable, RAL0/RAH0 hold the expected MAC), and a DMA map/unmap
through the IOMMU. Writes DIR/vfio-check.json. Exit 0 when all pass.
"""

import argparse
import json
import os
import struct
import sys

import vfio_stub as vfio

# 82576 / 82574L registers (datasheets: Device Status, Receive Address Low/High 0).
STATUS = 0x0008
RAL0 = 0x5400
RAH0 = 0x5404
RAH_AV = 1 << 31


class CheckFailed(Exception):
    pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", required=True)
    ap.add_argument("--mac")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    dev = a.device
    report = {"device": dev, "steps": []}

    def step(name, ok, detail=""):
        report["steps"].append({"step": name, "ok": bool(ok), "detail": detail})
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)
        if not ok:
            raise CheckFailed(f"{name}: {detail}")

    sysdev = f"/sys/bus/pci/devices/{dev}"
    try:
        drv = os.path.basename(os.readlink(f"{sysdev}/driver")) if os.path.islink(f"{sysdev}/driver") else None
        step("bound to vfio-pci", drv == "vfio-pci", f"driver is {drv}")
        group = os.path.basename(os.readlink(f"{sysdev}/iommu_group"))
        step("group node exists", os.path.exists(f"/dev/vfio/{group}"), f"/dev/vfio/{group}")
        d = vfio.Device(dev)
        step("container API version", d.api_version == 0, f"VFIO_GET_API_VERSION = {d.api_version}")
        step("type-1 v2 IOMMU offered", d.type1v2 == 1, f"VFIO_CHECK_EXTENSION(TYPE1v2) = {d.type1v2}")
        step("group viable", d.group_flags & vfio.VFIO_GROUP_FLAGS_VIABLE, f"flags 0x{d.group_flags:x}")
        step("device info", d.flags & vfio.VFIO_DEVICE_FLAGS_PCI and d.num_regions >= 9,
             f"fd {d.fd}, flags 0x{d.flags:x}, {d.num_regions} regions, {d.num_irqs} irq types")
        vid, did = struct.unpack("<HH", d.config_read(0, 4))
        want = (int(open(f"{sysdev}/vendor").read(), 16), int(open(f"{sysdev}/device").read(), 16))
        step("config space ids", (vid, did) == want, f"{vid:04x}:{did:04x} (sysfs {want[0]:04x}:{want[1]:04x})")
        if d.flags & vfio.VFIO_DEVICE_FLAGS_RESET:
            d.reset()
            step("device reset", True, "VFIO_DEVICE_RESET")
        if vid == 0x8086:
            regs = d.map_bar(vfio.BAR0)
            status, ral, rah = regs[STATUS // 4], regs[RAL0 // 4], regs[RAH0 // 4]
            mac = ":".join(f"{b:02x}" for b in struct.pack("<IH", ral, rah & 0xFFFF))
            report.update(status=f"0x{status:08x}", mac=mac)
            step("BAR0 mapped, STATUS readable", status not in (0, 0xFFFFFFFF), f"STATUS 0x{status:08x}")
            if a.mac:
                step("RAL0/RAH0 hold the MAC", mac == a.mac.lower() and rah & RAH_AV,
                     f"{mac} (AV={int(bool(rah & RAH_AV))}), expected {a.mac}")
        size = 64 << 10
        _, iova = d.dma(size)
        unmapped = d.unmap(iova, size)
        step("DMA map/unmap", unmapped == size, f"{size} bytes at IOVA {iova:#x}, unmapped {unmapped}")
        report["ok"] = True
    except (CheckFailed, OSError) as e:
        if isinstance(e, OSError):
            print(f"FAIL {e}", flush=True)
        report["ok"] = False
        report["error"] = str(e)
    with open(os.path.join(a.out, "vfio-check.json"), "w") as f:
        json.dump(report, f, indent=1)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
